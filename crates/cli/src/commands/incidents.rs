//! `crowsnest incidents list|show|ack|investigate|resolve|assign|comment`: the incidents of a
//! running server (`/api/v1/incidents`).

use std::process::ExitCode;

use serde_json::{json, Value};

use crate::client::ServerArgs;

/// Flags of `crowsnest incidents`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// What to do.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Action {
    /// Incidents, riskiest first (open ones unless `--status` says otherwise).
    List {
        /// open, new, acknowledged, investigating or resolved.
        #[arg(long, default_value = "open")]
        status: String,
        /// Only incidents at least this risky.
        #[arg(long)]
        min_risk: Option<f64>,
        /// Print the server's JSON.
        #[arg(long)]
        json: bool,
    },
    /// One incident: alerts, risk factors, comments (JSON).
    Show {
        /// The incident id (`inc-...`).
        id: String,
    },
    /// Mark an incident acknowledged.
    Ack {
        /// The incident id.
        id: String,
        /// Who takes it.
        #[arg(long)]
        assignee: Option<String>,
    },
    /// Mark an incident under investigation.
    Investigate {
        /// The incident id.
        id: String,
        /// Who works on it.
        #[arg(long)]
        assignee: Option<String>,
    },
    /// Resolve an incident.
    Resolve {
        /// The incident id.
        id: String,
        /// true_positive, benign_true_positive or false_positive.
        #[arg(long, default_value = "true_positive")]
        classification: String,
    },
    /// Assign an incident.
    Assign {
        /// The incident id.
        id: String,
        /// Who.
        assignee: String,
    },
    /// Comment on an incident.
    Comment {
        /// The incident id.
        id: String,
        /// The text.
        text: String,
    },
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let client = args.server.client()?;
    let (id, body) = match args.action {
        Action::List {
            status,
            min_risk,
            json,
        } => {
            let mut path = format!("/api/v1/incidents?status={status}");
            if let Some(risk) = min_risk {
                path.push_str(&format!("&min_risk={risk}"));
            }
            let answer = client.get_json(&path)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
            } else {
                print_table(&answer);
            }
            return Ok(ExitCode::SUCCESS);
        }
        Action::Show { id } => {
            let answer = client.get_json(&format!("/api/v1/incidents/{id}"))?;
            println!("{}", serde_json::to_string_pretty(&answer)?);
            return Ok(ExitCode::SUCCESS);
        }
        Action::Ack { id, assignee } => {
            (id, json!({"action": "acknowledge", "assignee": assignee}))
        }
        Action::Investigate { id, assignee } => {
            (id, json!({"action": "investigate", "assignee": assignee}))
        }
        Action::Resolve { id, classification } => (
            id,
            json!({"action": "resolve", "classification": classification}),
        ),
        Action::Assign { id, assignee } => (id, json!({"action": "assign", "assignee": assignee})),
        Action::Comment { id, text } => (id, json!({"action": "comment", "text": text})),
    };
    let body = strip_nulls(body);
    let answer = client.post_json(&format!("/api/v1/incidents/{id}/actions"), &body)?;
    eprintln!(
        "{} recorded for {id}",
        body["action"].as_str().unwrap_or("action")
    );
    // A false positive: the suppressions that would silence it next time, to review and paste.
    if let Some(toml) = answer["suggested_suppressions_toml"]
        .as_str()
        .filter(|t| !t.is_empty())
    {
        eprintln!("suggested suppressions (review, then add to the [detect] configuration):");
        print!("{toml}");
    }
    Ok(ExitCode::SUCCESS)
}

fn strip_nulls(mut body: Value) -> Value {
    if let Some(map) = body.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    body
}

fn print_table(answer: &Value) {
    let empty = Vec::new();
    let incidents = answer["incidents"].as_array().unwrap_or(&empty);
    if incidents.is_empty() {
        println!("no incidents");
        return;
    }
    println!(
        "{:<26} {:>6} {:<8} {:<13} {:>6}  TITLE",
        "ID", "RISK", "LEVEL", "STATUS", "ALERTS"
    );
    for incident in incidents {
        let page = if incident["page"] == true { "!" } else { " " };
        println!(
            "{:<26} {:>5}{page} {:<8} {:<13} {:>6}  {}",
            incident["id"].as_str().unwrap_or("-"),
            incident["risk"]
                .as_f64()
                .map_or("-".into(), |r| format!("{r:.1}")),
            incident["level"].as_str().unwrap_or("-"),
            incident["status"].as_str().unwrap_or("-"),
            incident["alerts"].as_u64().unwrap_or(0),
            incident["title"].as_str().unwrap_or(""),
        );
    }
}
