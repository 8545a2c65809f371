//! `crowsnest respond plan|simulate|verify-log|approve|reject`: containment playbooks, offline and
//! against a running server.
//!
//! - `plan --config FILE (--alert FILE.json | --incident ID)`: what the playbooks would do
//!   about one alert (a file holding an alert or a stored alert record) or one incident of a
//!   running server: every Docker call and Kubernetes request, exactly, with its undo and the
//!   guards' decision. Nothing is executed.
//! - `simulate --config FILE --since 7d`: replays the server's stored alerts of that period, in
//!   order, through the incidents and the playbooks (circuit breaker included, at the alerts'
//!   own times) and prints what would have been done and which guard would have stopped what.
//!   Nothing is executed or written.
//! - `verify-log [PATH]`: verifies the hash-chained action log; names the first broken record.
//! - `approve TOKEN|ID`: approves a waiting action on the server (a signed link's token, or an
//!   action id with an admin token).
//! - `reject TOKEN|ID [--reason TEXT]`: rejects a waiting action (it never runs).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use chrono::Utc;
use crowsnest_model::{Alert, Event};
use crowsnest_respond::contain::log as action_log;
use crowsnest_respond::contain::{
    alert_from_record, CircuitBreaker, Inventory, NoInventory, PlannedAction, Planner,
    RespondConfig, Responder, StaticInventory, Verdict,
};
use crowsnest_respond::{Change, IncidentConfig, Incidents};
use crowsnest_server::ServerConfig;
use serde_json::{json, Value};

use crate::client::ServerArgs;

/// Flags of `crowsnest respond`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

/// What to do.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Action {
    /// Show what the playbooks would do about one alert or incident: the exact operations,
    /// their undo, and the guards' decisions. Executes nothing.
    Plan {
        /// The server config file (its `[respond]` section), or a file of the `[respond]`
        /// section's contents alone.
        #[arg(long)]
        config: PathBuf,
        /// A JSON file: an alert, or a stored alert record (as `/api/v1/alerts` returns).
        #[arg(
            long,
            conflicts_with = "incident",
            required_unless_present = "incident"
        )]
        alert: Option<PathBuf>,
        /// An incident id of the running server (`inc-...`); its newest alert is planned for.
        #[arg(long)]
        incident: Option<String>,
        /// A JSON file: a list of targets with what alerts do not carry (labels, owner,
        /// replicas, host_network), matched by container id or name, or namespace and pod.
        #[arg(long)]
        inventory: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Replay the server's stored alerts through the playbooks: what would have been done,
    /// and which guards would have stopped what. Executes and writes nothing.
    Simulate {
        /// The server config file (or the `[respond]` section's contents alone).
        #[arg(long)]
        config: PathBuf,
        /// How far back (`7d`, `24h`, ...).
        #[arg(long, default_value = "7d", value_parser = super::parse_duration)]
        since: std::time::Duration,
        /// Targets' inventory (see `plan`).
        #[arg(long)]
        inventory: Option<PathBuf>,
        /// Print every planned action as a JSON line instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Verify the action log's hash chain; exit 1 naming the first broken record.
    VerifyLog {
        /// The log (default: `<data-dir>/respond/actions.jsonl`).
        path: Option<PathBuf>,
        /// The server's data directory.
        #[arg(long, env = "CROWSNEST_DATA_DIR", default_value = "crowsnest-data")]
        data_dir: PathBuf,
    },
    /// Approve a waiting action: a signed link's token, or an action id (`act-...`, needs an
    /// admin token).
    Approve {
        /// The token of an approval link, or an action id.
        token_or_id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Reject a waiting action (it never runs): a signed link's token, or an action id
    /// (needs an admin token).
    Reject {
        /// The token of an approval link, or an action id.
        token_or_id: String,
        /// Why (kept in the action log).
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.action {
        Action::Plan {
            config,
            alert,
            incident,
            inventory,
            json,
            server,
        } => {
            let (respond, _) = load_config(&config)?;
            let inventory = load_inventory(inventory.as_deref())?;
            let (alert, incident) = match (alert, incident) {
                (Some(path), _) => (load_alert(&path)?, None),
                (None, Some(id)) => {
                    let client = server.client()?;
                    fetch_incident(&client, &id)?
                }
                (None, None) => bail!("give --alert FILE.json or --incident ID"),
            };
            // The breaker starts empty: a plan shows what one alert would do on its own.
            let mut breaker = CircuitBreaker::in_memory(&respond.guards);
            let planned = Planner::new(respond).plan(
                &alert,
                incident.as_ref(),
                inventory.as_ref(),
                &mut breaker,
                Utc::now(),
            );
            let mut out = std::io::stdout().lock();
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&planned)?)?;
            } else if planned.is_empty() {
                writeln!(
                    out,
                    "no playbook matches alert {} ({}, {})",
                    alert.id,
                    alert.rule_id,
                    alert.level.as_str()
                )?;
            } else {
                for action in &planned {
                    write!(out, "{}", render_plan(action))?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Action::Simulate {
            config,
            since,
            inventory,
            json,
            server,
        } => {
            let (respond, incidents_config) = load_config(&config)?;
            let inventory = load_inventory(inventory.as_deref())?;
            let client = server.client()?;
            let alerts = fetch_alerts(&client, since)?;
            let report = simulate(respond, incidents_config, &alerts, inventory.as_ref())?;
            let mut out = std::io::stdout().lock();
            if json {
                for action in &report.planned {
                    writeln!(out, "{}", serde_json::to_string(action)?)?;
                }
            } else {
                write!(out, "{}", render_report(&report))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Action::VerifyLog { path, data_dir } => {
            let path = path.unwrap_or_else(|| data_dir.join("respond").join("actions.jsonl"));
            match action_log::verify(&path) {
                Ok(verified) => {
                    println!(
                        "{}: {} record(s), chain intact; head {}{}",
                        path.display(),
                        verified.records,
                        verified.head,
                        if verified.torn_tail {
                            " (a torn last line, from a crash mid-append, is not counted)"
                        } else {
                            ""
                        }
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(action_log::LogError::Broken { path, error }) => {
                    eprintln!("{}: {error}", path.display());
                    Ok(ExitCode::from(1))
                }
                Err(e) => Err(e.into()),
            }
        }
        Action::Approve {
            token_or_id,
            server,
        } => {
            let client = server.client()?;
            let body = if token_or_id.starts_with("v1.") {
                json!({"token": token_or_id})
            } else {
                json!({"id": token_or_id})
            };
            let answer = client
                .post_json("/api/v1/respond/approve", &body)
                .context("approving")?;
            println!("{}", serde_json::to_string_pretty(&answer)?);
            Ok(ExitCode::SUCCESS)
        }
        Action::Reject {
            token_or_id,
            reason,
            server,
        } => {
            let client = server.client()?;
            let key = if token_or_id.starts_with("v1.") {
                "token"
            } else {
                "id"
            };
            let answer = client
                .post_json(
                    "/api/v1/respond/reject",
                    &json!({key: token_or_id, "reason": reason}),
                )
                .context("rejecting")?;
            println!("{}", serde_json::to_string_pretty(&answer)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The `[respond]` section (and `[detect.incidents]`) of a server config file, or a file of
/// the `[respond]` section's contents alone.
fn load_config(path: &Path) -> anyhow::Result<(RespondConfig, IncidentConfig)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file `{}`", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("invalid TOML in `{}`", path.display()))?;
    let (respond, incidents) = if table.contains_key("respond") || table.contains_key("detect") {
        let config = toml::from_str::<ServerConfig>(&text)
            .with_context(|| format!("invalid config file `{}`", path.display()))?;
        (config.respond, config.detect.incidents)
    } else {
        let respond = toml::from_str::<RespondConfig>(&text)
            .with_context(|| format!("invalid [respond] config in `{}`", path.display()))?;
        (respond, IncidentConfig::default())
    };
    respond
        .validate()
        .with_context(|| format!("invalid config file `{}`", path.display()))?;
    if respond.playbooks.is_empty() {
        eprintln!(
            "note: `{}` has no [[respond.playbooks]]: nothing will match",
            path.display()
        );
    }
    Ok((respond, incidents))
}

fn load_inventory(path: Option<&Path>) -> anyhow::Result<Box<dyn Inventory>> {
    let Some(path) = path else {
        return Ok(Box::new(NoInventory));
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading inventory `{}`", path.display()))?;
    let inventory: StaticInventory = serde_json::from_str(&text).with_context(|| {
        format!(
            "invalid inventory `{}`: expected a JSON list of targets",
            path.display()
        )
    })?;
    Ok(Box::new(inventory))
}

/// An alert from a file: an [`Alert`] as JSON, or a stored alert record.
fn load_alert(path: &Path) -> anyhow::Result<Alert> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading alert `{}`", path.display()))?;
    let value: Value =
        serde_json::from_str(&text).with_context(|| format!("`{}` is not JSON", path.display()))?;
    alert_from_value(value).with_context(|| format!("`{}`", path.display()))
}

fn alert_from_value(value: Value) -> anyhow::Result<Alert> {
    if let Ok(alert) = serde_json::from_value::<Alert>(value.clone()) {
        return Ok(alert);
    }
    let Value::Object(map) = value else {
        bail!("expected a JSON object (an alert or an alert record)");
    };
    alert_from_record(&Event::from_map(map)).context(
        "neither an alert nor an alert record: a record needs `alert.id` (or `event.id`), `rule.id` and `@timestamp`",
    )
}

/// An incident of the server and its newest alert (with its entity fields).
fn fetch_incident(
    client: &crate::client::Client,
    id: &str,
) -> anyhow::Result<(Alert, Option<crowsnest_respond::Incident>)> {
    let answer = client.get_json(&format!("/api/v1/incidents/{id}"))?;
    let incident: crowsnest_respond::Incident =
        serde_json::from_value(answer).context("the server's incident")?;
    let newest = incident
        .alerts
        .iter()
        .max_by_key(|a| a.first_seen)
        .context("the incident lists no alert")?;
    let answer = client.get_json(&format!(
        "/api/v1/alerts?query={}&limit=1",
        encode(&format!("alert.id:{}", newest.id))
    ))?;
    let record = answer["alerts"]
        .as_array()
        .and_then(|a| a.first())
        .cloned()
        .with_context(|| format!("alert `{}` of the incident is not in the store", newest.id))?;
    Ok((alert_from_value(record)?, Some(incident)))
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The newest record of every alert of the period, oldest first (pages of 1000, up to the
/// API's offset bound).
fn fetch_alerts(
    client: &crate::client::Client,
    since: std::time::Duration,
) -> anyhow::Result<Vec<Alert>> {
    let since = format!("{}s", since.as_secs());
    let mut alerts = Vec::new();
    let mut skipped = 0usize;
    let mut offset = 0usize;
    loop {
        let answer = client.get_json(&format!(
            "/api/v1/alerts?since={since}&limit=1000&offset={offset}"
        ))?;
        let page = answer["alerts"].as_array().cloned().unwrap_or_default();
        let n = page.len();
        for record in page {
            match alert_from_value(record) {
                Ok(alert) => alerts.push(alert),
                Err(_) => skipped += 1,
            }
        }
        offset += n;
        if n < 1000 {
            break;
        }
        if offset >= 10_000 {
            eprintln!(
                "note: the alerts API pages up to 10000 alerts; shorten --since to replay the rest"
            );
            break;
        }
    }
    if skipped > 0 {
        eprintln!("note: {skipped} record(s) were not alerts and were skipped");
    }
    alerts.sort_by(|a, b| a.first_seen.cmp(&b.first_seen).then(a.id.cmp(&b.id)));
    Ok(alerts)
}

/// What a simulation found.
#[derive(Debug, Default)]
pub struct Report {
    /// Alerts replayed.
    pub alerts: usize,
    /// Incidents they made.
    pub incidents: usize,
    /// Every action planned, in order.
    pub planned: Vec<PlannedAction>,
}

/// Replays `alerts` (oldest first) through the incidents and the playbooks, at the alerts'
/// own times, with a circuit breaker and an action log kept in memory only.
pub fn simulate(
    respond: RespondConfig,
    incidents_config: IncidentConfig,
    alerts: &[Alert],
    inventory: &dyn Inventory,
) -> anyhow::Result<Report> {
    let mut incidents = Incidents::new(incidents_config);
    // Nothing written, nothing executed; the links it signs go nowhere.
    let mut responder = Responder::in_memory(respond, b"simulation: nothing is approved");
    let mut report = Report {
        alerts: alerts.len(),
        ..Report::default()
    };
    for alert in alerts {
        let changes = incidents.offer(alert);
        let incident_id = changes.first().map(|c| match c {
            Change::Opened(id) | Change::Updated(id) | Change::Paged(id) => id.clone(),
        });
        let incident = incident_id.and_then(|id| incidents.get(&id).cloned());
        let offered = responder
            .offer(alert, incident.as_ref(), inventory, alert.first_seen)
            .context("simulating")?;
        report.planned.extend(offered.planned);
    }
    report.incidents = incidents.list().len();
    Ok(report)
}

fn verdict_name(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Run => "run",
        Verdict::AwaitApproval => "await-approval",
        Verdict::DryRun => "dry-run",
        Verdict::Refused => "refused",
    }
}

/// One planned action, for humans.
pub fn render_plan(action: &PlannedAction) -> String {
    let mut out = format!(
        "{}  {}  {}\n  playbook {}, mode {}, alert {}{}{}\n",
        action.id,
        action.action.as_str(),
        action.target.describe(),
        action.playbook,
        serde_json::to_value(action.mode)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        action.alert_id,
        action
            .incident_id
            .as_deref()
            .map(|i| format!(", incident {i}"))
            .unwrap_or_default(),
        action
            .ttl_secs
            .map(|s| format!(", undone after {s} s"))
            .unwrap_or_default(),
    );
    out.push_str(&format!(
        "  decision: {}{} — {}\n",
        verdict_name(action.decision.verdict),
        action
            .decision
            .guard
            .as_deref()
            .map(|g| format!(" (guard {g})"))
            .unwrap_or_default(),
        action.decision.reason
    ));
    out.push_str("  operations:\n");
    for (n, op) in action.operations.iter().enumerate() {
        out.push_str(&format!("    {}. {}\n", n + 1, op.describe()));
    }
    if action.operations.is_empty() {
        out.push_str("  undo: -\n");
    } else if action.undo.is_empty() {
        let why = action
            .undo_operations(&Default::default())
            .err()
            .map_or_else(|| "none".to_string(), |e| e.to_string());
        out.push_str(&format!("  undo: {why}\n"));
    } else {
        out.push_str("  undo:\n");
        for (n, op) in action.undo.iter().enumerate() {
            out.push_str(&format!("    {}. {}\n", n + 1, op.describe()));
        }
    }
    out.push('\n');
    out
}

/// A simulation's table and totals.
pub fn render_report(report: &Report) -> String {
    let mut out = format!(
        "replayed {} alert(s) into {} incident(s); {} action(s) planned (nothing executed)\n\n",
        report.alerts,
        report.incidents,
        report.planned.len()
    );
    if report.planned.is_empty() {
        out.push_str("no playbook matched\n");
        return out;
    }
    out.push_str(&format!(
        "{:<20} {:<15} {:<16} {:<14} {:<40} GUARD / WHY\n",
        "WHEN", "VERDICT", "PLAYBOOK", "ACTION", "TARGET"
    ));
    let mut verdicts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut guards: BTreeMap<&str, usize> = BTreeMap::new();
    for action in &report.planned {
        *verdicts
            .entry(verdict_name(action.decision.verdict))
            .or_default() += 1;
        if let Some(guard) = &action.decision.guard {
            *guards.entry(guard.as_str()).or_default() += 1;
        }
        let why = match &action.decision.guard {
            Some(guard) => format!("{guard}: {}", action.decision.reason),
            None => String::new(),
        };
        out.push_str(&format!(
            "{:<20} {:<15} {:<16} {:<14} {:<40} {why}\n",
            action.planned_at.format("%Y-%m-%d %H:%M:%S"),
            verdict_name(action.decision.verdict),
            action.playbook,
            action.action.as_str(),
            action.target.describe(),
        ));
    }
    out.push_str("\nby verdict:");
    for (verdict, n) in &verdicts {
        out.push_str(&format!(" {verdict} {n}"));
    }
    out.push('\n');
    if !guards.is_empty() {
        out.push_str("stopped or held by guard:");
        for (guard, n) in &guards {
            out.push_str(&format!(" {guard} {n}"));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crowsnest_model::Severity;

    fn alert(id: &str, seconds: i64, container: &str, image: &str) -> Alert {
        let at = chrono::DateTime::from_timestamp(1_765_000_000 + seconds, 0).expect("time");
        Alert {
            id: id.into(),
            rule_id: "reverse-shell".into(),
            title: "Reverse shell".into(),
            level: Severity::Critical,
            tags: vec![],
            techniques: vec![],
            entity: BTreeMap::from([
                ("container.id".to_string(), container.to_string()),
                ("container.image.name".to_string(), image.to_string()),
                ("host.name".to_string(), "node-1".to_string()),
            ]),
            event_ids: vec![],
            count: 1,
            first_seen: at,
            last_seen: at,
            fold_key: id.into(),
            correlation: None,
        }
    }

    const CONFIG: &str = r#"
[respond]
[[respond.playbooks]]
name = "reverse-shell"
rules = ["reverse-*"]
level_min = "high"
actions = [{ action = "pause", mode = "auto", ttl_secs = 600 }]
"#;

    #[test]
    fn simulate_replays_alerts_and_names_the_guards_that_stop_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("crowsnest.toml");
        std::fs::write(&path, CONFIG).expect("write");
        let (respond, incidents) = load_config(&path).expect("config");
        // Five replicas fire at once, plus crowsnest's own agent.
        let mut alerts: Vec<Alert> = (0..5)
            .map(|i| alert(&format!("a{i}"), i, &format!("c{i}"), "shop/web:1"))
            .collect();
        alerts.push(alert("a9", 9, "agent", "ghcr.io/x/crowsnest:1"));
        let report = simulate(respond, incidents, &alerts, &NoInventory).expect("simulate");
        let verdicts: Vec<Verdict> = report.planned.iter().map(|a| a.decision.verdict).collect();
        assert_eq!(
            verdicts,
            [
                Verdict::Run,
                Verdict::Run,
                Verdict::Run,
                Verdict::AwaitApproval,
                Verdict::AwaitApproval,
                Verdict::Refused
            ]
        );
        let text = render_report(&report);
        assert!(text.contains("replayed 6 alert(s)"), "{text}");
        assert!(
            text.contains("stopped or held by guard: circuit_breaker 2 self_protection 1"),
            "{text}"
        );
        let plan = render_plan(&report.planned[0]);
        assert!(
            plan.contains("5. docker@node-1 POST /containers/c0/pause"),
            "{plan}"
        );
        assert!(
            plan.contains("1. docker@node-1 POST /containers/c0/unpause"),
            "{plan}"
        );
    }

    #[test]
    fn alerts_load_from_an_alert_or_a_stored_record() {
        let a = alert("a1", 0, "c1", "img");
        let from_alert = alert_from_value(serde_json::to_value(&a).expect("json")).expect("alert");
        assert_eq!(from_alert, a);
        let mut record = a.to_event();
        record.set("alert.id", json!("stable-1"));
        let from_record = alert_from_value(record.into_value()).expect("record");
        assert_eq!(from_record.id, "stable-1");
        assert_eq!(
            from_record.entity.get("container.id").map(String::as_str),
            Some("c1")
        );
        assert_eq!(from_record.level, Severity::Critical);
        let e = alert_from_value(json!({"hello": 1})).expect_err("neither");
        assert!(format!("{e:#}").contains("rule.id"), "{e:#}");
    }

    #[test]
    fn a_respond_only_file_and_bad_configs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("respond.toml");
        std::fs::write(
            &path,
            "[[playbooks]]\nname = \"p\"\nactions = [{ action = \"kill\" }]\n",
        )
        .expect("write");
        let (respond, _) = load_config(&path).expect("respond-only file");
        assert_eq!(respond.playbooks[0].name, "p");
        std::fs::write(
            &path,
            "[respond]\n[[respond.playbooks]]\nname = \"p\"\nactions = [{ action = \"explode\" }]\n",
        )
        .expect("write");
        let e = load_config(&path).expect_err("unknown action");
        assert!(format!("{e:#}").contains("explode"), "{e:#}");
    }
}
