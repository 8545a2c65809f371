//! The native payload of each channel kind, built from a [`Notice`]; no I/O.
//!
//! | kind | request |
//! |---|---|
//! | slack | `POST <webhook>`: `text` (the fallback for notifications) + Block Kit `blocks` (header, section with fields, context) |
//! | teams | `POST <workflow webhook>`: `{"type":"message","attachments":[{"contentType":"application/vnd.microsoft.card.adaptive","content":<AdaptiveCard 1.4>}]}` |
//! | pagerduty | `POST /v2/enqueue`: `routing_key`, `event_action` (`trigger`, `acknowledge`, `resolve`), `dedup_key` = incident id, `payload` (`summary`, `source`, `severity`, ...) on trigger |
//! | alertmanager | `POST <base>/api/v2/alerts`: a list of one alert (`labels`, `annotations`, `startsAt`, `endsAt` once resolved, `generatorURL`) |
//! | opsgenie | `POST <base>/v2/alerts` (create, `alias` = incident id), `.../v2/alerts/<alias>/acknowledge` or `/close` `?identifierType=alias` |
//! | webhook | `POST <url>`: CloudEvents 1.0 structured JSON (`application/cloudevents+json`), Standard Webhooks headers `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>` |
//! | email | a text/plain message |

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use crowsnest_model::Severity;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::config::{Channel, ChannelKind};
use crate::{ChangeKind, Notice};

/// One HTTP request to make.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    /// Where.
    pub url: String,
    /// Headers beside `Content-Type`.
    pub headers: Vec<(String, String)>,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

/// What to send for a notice on a channel.
#[derive(Debug, Clone)]
pub enum Payload {
    /// An HTTP POST.
    Http(HttpRequest),
    /// An email.
    Email(Box<lettre::Message>),
    /// Nothing: the change means nothing to this kind (acknowledging on Alertmanager).
    Skip,
}

fn verb(change: ChangeKind) -> &'static str {
    match change {
        ChangeKind::Opened => "New incident",
        ChangeKind::Updated => "Incident updated",
        ChangeKind::Paged => "Incident pages",
        ChangeKind::Acknowledged => "Incident acknowledged",
        ChangeKind::Investigating => "Incident under investigation",
        ChangeKind::Resolved => "Incident resolved",
        ChangeKind::ApprovalNeeded => "Containment awaits approval",
    }
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Cuts `text` to at most `max` characters (with `…` when cut).
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The link to the incident's page in the console, when a public URL is configured.
fn link(public_url: Option<&str>, notice: &Notice) -> Option<String> {
    public_url.map(|base| {
        format!(
            "{}/incidents/{}",
            base.trim_end_matches('/'),
            notice.incident.id
        )
    })
}

/// One line of what the notice is: `New incident: <title>`.
pub fn headline(notice: &Notice) -> String {
    format!("{}: {}", verb(notice.change), notice.incident.title)
}

/// The facts every payload shows, as (name, value).
pub fn facts(notice: &Notice) -> Vec<(&'static str, String)> {
    let i = &notice.incident;
    let mut facts = vec![
        ("Incident", i.id.clone()),
        ("Status", format!("{:?}", i.status).to_lowercase()),
        ("Level", i.level.as_str().to_string()),
        ("Risk", format!("{}", i.risk)),
        ("Entity", format!("{} {}", i.entity_kind, i.entity)),
        ("Alerts", i.alert_count.to_string()),
    ];
    if let Some(ns) = &i.namespace {
        facts.push(("Namespace", ns.clone()));
    }
    if let Some(cluster) = &i.cluster {
        facts.push(("Cluster", cluster.clone()));
    }
    if !i.tags.is_empty() {
        facts.push((
            "ATT&CK",
            i.tags.iter().cloned().collect::<Vec<_>>().join(", "),
        ));
    }
    if let Some(by) = &notice.by {
        facts.push(("By", by.clone()));
    }
    if let Some(c) = &i.classification {
        facts.push(("Classification", c.clone()));
    }
    if let Some(a) = &notice.approval {
        facts.insert(0, ("Action", format!("{} {}", a.action, a.target)));
        facts.insert(1, ("Playbook", a.playbook.clone()));
        facts.insert(2, ("Link expires", rfc3339(a.expires)));
    }
    facts
}

/// The approval line of an `approval_needed` notice.
fn approval_line(notice: &Notice) -> Option<String> {
    notice.approval.as_ref().map(|a| {
        format!(
            "Review and approve (single use, expires {}): {}",
            rfc3339(a.expires),
            a.link
        )
    })
}

/// The plain-text description (email body, PagerDuty/Opsgenie details, annotations).
pub fn description(notice: &Notice, public_url: Option<&str>) -> String {
    let mut text = format!("{}\n\n", headline(notice));
    if let Some(line) = approval_line(notice) {
        text.push_str(&format!("{line}\n\n"));
    }
    for (name, value) in facts(notice) {
        text.push_str(&format!("{name}: {value}\n"));
    }
    if !notice.incident.factors.is_empty() {
        text.push_str("\nRisk factors:\n");
        for factor in &notice.incident.factors {
            text.push_str(&format!("- {factor}\n"));
        }
    }
    if !notice.incident.alerts.is_empty() {
        text.push_str("\nLatest alerts:\n");
        for alert in &notice.incident.alerts {
            text.push_str(&format!(
                "- [{}] {} (x{})\n",
                alert.level.as_str(),
                alert.title,
                alert.count
            ));
        }
    }
    text.push_str(&format!(
        "\nOpened {}, last alert {}\n",
        rfc3339(notice.incident.opened),
        rfc3339(notice.incident.last_alert)
    ));
    if let Some(link) = link(public_url, notice) {
        text.push_str(&format!("{link}\n"));
    }
    text
}

/// Escapes text for Slack's mrkdwn.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Slack incoming webhook: Block Kit with a `text` fallback. Limits: header 150 characters,
/// section text 3,000, at most 10 fields of 2,000.
pub fn slack(notice: &Notice, public_url: Option<&str>) -> Value {
    let i = &notice.incident;
    let fields: Vec<Value> = facts(notice)
        .into_iter()
        .take(10)
        .map(|(name, value)| {
            json!({"type": "mrkdwn", "text": truncate(&format!("*{name}*\n{}", slack_escape(&value)), 2000)})
        })
        .collect();
    let mut alerts = String::new();
    for alert in &i.alerts {
        alerts.push_str(&format!(
            "• `{}` {} (x{})\n",
            alert.level.as_str(),
            slack_escape(&alert.title),
            alert.count
        ));
    }
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&headline(notice), 150), "emoji": false}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&format!("*{}*", slack_escape(&i.title)), 3000)}, "fields": fields}),
    ];
    if let Some(a) = &notice.approval {
        blocks.insert(1, json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&format!("*{} {}* waits for approval · <{}|Review and approve> (single use, expires {})", slack_escape(&a.action), slack_escape(&a.target), a.link, rfc3339(a.expires)), 3000)}}));
    }
    if !alerts.is_empty() {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&format!("*Latest alerts*\n{alerts}"), 3000)}}));
    }
    let mut context = format!("crowsnest · opened {}", rfc3339(i.opened));
    if let Some(link) = link(public_url, notice) {
        context.push_str(&format!(" · <{link}|open>"));
    }
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": truncate(&context, 3000)}]}));
    json!({
        "text": truncate(&format!("{} (risk {}, {})", headline(notice), i.risk, i.level.as_str()), 3000),
        "blocks": blocks,
    })
}

/// Teams Workflows webhook: a message with one Adaptive Card attachment.
pub fn teams(notice: &Notice, public_url: Option<&str>) -> Value {
    let i = &notice.incident;
    let color = match i.level {
        Severity::Critical | Severity::High => "Attention",
        Severity::Medium => "Warning",
        _ => "Default",
    };
    let facts: Vec<Value> = facts(notice)
        .into_iter()
        .map(|(title, value)| json!({"title": title, "value": value}))
        .collect();
    let mut body = vec![
        json!({"type": "TextBlock", "text": verb(notice.change), "weight": "Bolder", "size": "Medium", "color": color, "wrap": true}),
        json!({"type": "TextBlock", "text": i.title, "wrap": true}),
        json!({"type": "FactSet", "facts": facts}),
    ];
    for alert in &i.alerts {
        body.push(json!({"type": "TextBlock", "text": format!("[{}] {} (x{})", alert.level.as_str(), alert.title, alert.count), "wrap": true, "isSubtle": true, "spacing": "Small"}));
    }
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    });
    let mut actions = Vec::new();
    if let Some(a) = &notice.approval {
        actions
            .push(json!({"type": "Action.OpenUrl", "title": "Review and approve", "url": a.link}));
    }
    if let Some(link) = link(public_url, notice) {
        actions.push(json!({"type": "Action.OpenUrl", "title": "Open incident", "url": link}));
    }
    if !actions.is_empty() {
        card["actions"] = json!(actions);
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    })
}

/// PagerDuty severity of a level.
fn pagerduty_severity(level: Severity) -> &'static str {
    match level {
        Severity::Critical => "critical",
        Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Informational => "info",
    }
}

/// PagerDuty Events API v2 event: `trigger` for opened/updated/paged, `acknowledge` for
/// acknowledged/investigating, `resolve` for resolved; `dedup_key` is the incident id.
pub fn pagerduty(notice: &Notice, routing_key: &str, public_url: Option<&str>) -> Value {
    let i = &notice.incident;
    let action = match notice.change {
        ChangeKind::Opened | ChangeKind::Updated | ChangeKind::Paged => "trigger",
        // Folded into the open alert of the same dedup key, with the approval link.
        ChangeKind::ApprovalNeeded => "trigger",
        ChangeKind::Acknowledged | ChangeKind::Investigating => "acknowledge",
        ChangeKind::Resolved => "resolve",
    };
    let mut event = json!({
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": truncate(&i.id, 255),
    });
    if action == "trigger" {
        let top = i.alerts.last().map(|a| a.rule_id.clone());
        event["payload"] = json!({
            "summary": truncate(&i.title, 1024),
            "source": i.entity,
            "severity": pagerduty_severity(i.level),
            "timestamp": rfc3339(i.opened),
            "component": i.entity_kind,
            "custom_details": {
                "risk": i.risk,
                "risk_factors": i.factors,
                "status": format!("{:?}", i.status).to_lowercase(),
                "alerts": i.alert_count,
                "latest_alerts": i.alerts.iter().map(|a| format!("[{}] {} (x{})", a.level.as_str(), a.title, a.count)).collect::<Vec<_>>(),
                "attack": i.tags,
                "change": notice.change.as_str(),
            },
        });
        if let Some(ns) = &i.namespace {
            event["payload"]["group"] = json!(ns);
        }
        if let Some(rule) = top {
            event["payload"]["class"] = json!(rule);
        }
        event["client"] = json!("crowsnest");
        let mut links = Vec::new();
        if let Some(a) = &notice.approval {
            links.push(
                json!({"href": a.link, "text": format!("Approve {} {}", a.action, a.target)}),
            );
            event["payload"]["custom_details"]["approval"] = json!(a);
        }
        if let Some(link) = link(public_url, notice) {
            event["client_url"] = json!(link);
            links.push(json!({"href": link, "text": "crowsnest incident"}));
        }
        if !links.is_empty() {
            event["links"] = json!(links);
        }
    }
    event
}

/// Alertmanager `POST /api/v2/alerts` body: one alert whose labels identify the incident;
/// `endsAt` is set once it is resolved (Alertmanager resolves it then).
pub fn alertmanager(notice: &Notice, now: DateTime<Utc>, public_url: Option<&str>) -> Value {
    let i = &notice.incident;
    let mut labels = json!({
        "alertname": "CrowsnestIncident",
        "incident_id": i.id,
        "severity": i.level.as_str(),
        "entity_kind": i.entity_kind,
        "entity": i.entity,
    });
    if let Some(ns) = &i.namespace {
        labels["namespace"] = json!(ns);
    }
    if let Some(cluster) = &i.cluster {
        labels["cluster"] = json!(cluster);
    }
    let mut alert = json!({
        "labels": labels,
        "annotations": {
            "summary": i.title,
            "description": description(notice, public_url),
            "risk": format!("{}", i.risk),
            "status": format!("{:?}", i.status).to_lowercase(),
        },
        "startsAt": rfc3339(i.opened),
    });
    if notice.change == ChangeKind::Resolved {
        alert["endsAt"] = json!(rfc3339(now.max(i.opened)));
    }
    if let Some(link) = link(public_url, notice) {
        alert["generatorURL"] = json!(link);
    }
    json!([alert])
}

/// Opsgenie priority of a level.
fn opsgenie_priority(level: Severity) -> &'static str {
    match level {
        Severity::Critical => "P1",
        Severity::High => "P2",
        Severity::Medium => "P3",
        Severity::Low => "P4",
        Severity::Informational => "P5",
    }
}

/// Opsgenie: the path (below the base URL) and body. Create (opened/updated/paged) with
/// `alias` = incident id (Opsgenie folds a create with an open alias into the open alert);
/// acknowledge and close by alias.
pub fn opsgenie(notice: &Notice, public_url: Option<&str>) -> (String, Value) {
    let i = &notice.incident;
    let alias = truncate(&i.id, 512);
    let note = format!(
        "{} in crowsnest{}",
        verb(notice.change),
        notice
            .by
            .as_deref()
            .map(|b| format!(" by {b}"))
            .unwrap_or_default()
    );
    match notice.change {
        ChangeKind::Acknowledged | ChangeKind::Investigating => (
            format!("/v2/alerts/{alias}/acknowledge?identifierType=alias"),
            json!({"source": "crowsnest", "user": notice.by.as_deref().unwrap_or("crowsnest"), "note": note}),
        ),
        ChangeKind::Resolved => (
            format!("/v2/alerts/{alias}/close?identifierType=alias"),
            json!({"source": "crowsnest", "user": notice.by.as_deref().unwrap_or("crowsnest"), "note": note}),
        ),
        // A note on the open alert (an alert create with its alias would only count up).
        ChangeKind::ApprovalNeeded => (
            format!("/v2/alerts/{alias}/notes?identifierType=alias"),
            json!({"source": "crowsnest", "user": "crowsnest", "note": truncate(&format!("{note}: {}", approval_line(notice).unwrap_or_default()), 25_000)}),
        ),
        ChangeKind::Opened | ChangeKind::Updated | ChangeKind::Paged => {
            let mut details = serde_json::Map::new();
            details.insert("risk".into(), json!(format!("{}", i.risk)));
            details.insert("level".into(), json!(i.level.as_str()));
            details.insert("alerts".into(), json!(i.alert_count.to_string()));
            details.insert("change".into(), json!(notice.change.as_str()));
            if let Some(ns) = &i.namespace {
                details.insert("namespace".into(), json!(ns));
            }
            if let Some(link) = link(public_url, notice) {
                details.insert("link".into(), json!(link));
            }
            let tags: Vec<String> = i.tags.iter().take(20).cloned().collect();
            (
                "/v2/alerts".into(),
                json!({
                    "message": truncate(&i.title, 130),
                    "alias": alias,
                    "description": truncate(&description(notice, public_url), 15_000),
                    "priority": opsgenie_priority(i.level),
                    "source": "crowsnest",
                    "entity": truncate(&format!("{} {}", i.entity_kind, i.entity), 512),
                    "tags": tags,
                    "details": details,
                }),
            )
        }
    }
}

/// The CloudEvents 1.0 structured-mode event of a notice.
pub fn cloudevent(notice: &Notice, source: &str, now: DateTime<Utc>) -> Value {
    json!({
        "specversion": "1.0",
        "id": notice.key,
        "source": source,
        "type": format!("io.crowsnest.incident.{}", notice.change.as_str()),
        "subject": notice.incident.id,
        "time": rfc3339(now),
        "datacontenttype": "application/json",
        "data": {
            "change": notice.change.as_str(),
            "by": notice.by,
            "incident": notice.incident,
            "approval": notice.approval,
        },
    })
}

/// The Standard Webhooks signature header value: `v1,` + base64 of
/// HMAC-SHA256(key, `<id>.<timestamp>.<body>`).
pub fn webhook_signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag)
    )
}

fn json_request(url: String, headers: Vec<(String, String)>, body: &Value) -> Payload {
    Payload::Http(HttpRequest {
        url,
        headers,
        content_type: "application/json",
        body: serde_json::to_vec(body).unwrap_or_default(),
    })
}

/// Builds what `channel` gets for `notice` (`id` is the delivery's idempotency key, `now` the
/// send time).
///
/// # Errors
///
/// Only for email, when the message cannot be built.
pub fn build(
    channel: &Channel,
    notice: &Notice,
    id: &str,
    now: DateTime<Utc>,
    public_url: Option<&str>,
) -> Result<Payload, String> {
    Ok(match channel.kind {
        ChannelKind::Slack => {
            json_request(channel.url.clone(), Vec::new(), &slack(notice, public_url))
        }
        ChannelKind::Teams => {
            json_request(channel.url.clone(), Vec::new(), &teams(notice, public_url))
        }
        ChannelKind::Pagerduty => json_request(
            channel.url.clone(),
            Vec::new(),
            &pagerduty(notice, &channel.key, public_url),
        ),
        ChannelKind::Alertmanager => {
            // Alertmanager holds alert state, not messages: status changes between
            // opened and resolved, and approval requests, are not sent to it.
            if matches!(
                notice.change,
                ChangeKind::Acknowledged | ChangeKind::Investigating | ChangeKind::ApprovalNeeded
            ) {
                return Ok(Payload::Skip);
            }
            let base = channel.url.trim_end_matches('/');
            let url = if base.ends_with("/api/v2/alerts") {
                base.to_string()
            } else {
                format!("{base}/api/v2/alerts")
            };
            json_request(url, Vec::new(), &alertmanager(notice, now, public_url))
        }
        ChannelKind::Opsgenie => {
            let (path, body) = opsgenie(notice, public_url);
            json_request(
                format!("{}{path}", channel.url.trim_end_matches('/')),
                vec![("Authorization".into(), format!("GenieKey {}", channel.key))],
                &body,
            )
        }
        ChannelKind::Webhook => {
            let mut event = cloudevent(notice, &channel.source, now);
            event["id"] = json!(id);
            let body = serde_json::to_vec(&event).unwrap_or_default();
            let timestamp = now.timestamp();
            let mut headers = vec![
                ("webhook-id".to_string(), id.to_string()),
                ("webhook-timestamp".to_string(), timestamp.to_string()),
            ];
            if let Some(key) = &channel.secret {
                headers.push((
                    "webhook-signature".into(),
                    webhook_signature(key, id, timestamp, &body),
                ));
            }
            Payload::Http(HttpRequest {
                url: channel.url.clone(),
                headers,
                content_type: "application/cloudevents+json",
                body,
            })
        }
        ChannelKind::Email => {
            let Some(email) = &channel.email else {
                return Err("no email settings".into());
            };
            let mut builder = lettre::Message::builder()
                .from(email.from.clone())
                .subject(truncate(
                    &format!(
                        "[crowsnest {}] {}",
                        notice.incident.level.as_str(),
                        headline(notice)
                    ),
                    200,
                ))
                .header(lettre::message::header::ContentType::TEXT_PLAIN);
            for to in &email.to {
                builder = builder.to(to.clone());
            }
            let message = builder
                .body(description(notice, public_url))
                .map_err(|e| format!("building the email: {e}"))?;
            Payload::Email(Box::new(message))
        }
    })
}
