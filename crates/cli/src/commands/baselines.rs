//! `crowsnest baselines list|show|reset|accept|lock|unlock|import`: what the baseline rules of
//! a running server learned (`/api/v1/baselines`), and changes to it.

use std::process::ExitCode;

use anyhow::Context;
use serde_json::{json, Value};

use crate::client::ServerArgs;

/// Flags of `crowsnest baselines`.
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
    /// Every baseline rule: kind, entities, terms held, events refused at a cap.
    List {
        /// Print the server's JSON.
        #[arg(long)]
        json: bool,
    },
    /// One rule's profile (JSON): per entity the terms learned, first/last seen, counts, mode
    /// (for a rate rule, `rates`: per entity the current bucket and the per-slot history).
    /// The output is the profile format `hunt --export-baselines` writes.
    Show {
        /// The rule id.
        rule: String,
        /// Only entities with this value.
        #[arg(long)]
        entity: Option<String>,
    },
    /// Forget what a rule learned about an entity (or everything, without `--entity`: the rule
    /// learns again from now).
    Reset {
        /// The rule id.
        rule: String,
        /// An entity value.
        #[arg(long)]
        entity: Option<String>,
    },
    /// Accept a term into an entity's baseline (it no longer alerts). For a `kind: rate` rule,
    /// give no term: the entity's current bucket is accepted as normal (its value joins the
    /// history at once and the bucket raises no more alerts).
    Accept {
        /// The rule id.
        rule: String,
        /// An entity value.
        #[arg(long)]
        entity: String,
        /// The term fields' values, in the rule's `terms` order (none for a rate rule).
        term: Vec<String>,
    },
    /// Lock an entity: new terms alert every time and are never learned (a rate entity's
    /// history is frozen: closed buckets are not learned; it still alerts).
    Lock {
        /// The rule id.
        rule: String,
        /// An entity value.
        #[arg(long)]
        entity: String,
    },
    /// Unlock an entity (back to monitoring: a new term alerts once, then is learned).
    Unlock {
        /// The rule id.
        rule: String,
        /// An entity value.
        #[arg(long)]
        entity: String,
    },
    /// Import profiles from a file: one profile or a list (what `show` prints, or what
    /// `hunt --export-baselines` writes); each replaces the entities it names.
    Import {
        /// The JSON file.
        file: std::path::PathBuf,
    },
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let client = args.server.client()?;
    let (rule, body) = match args.action {
        Action::List { json } => {
            let answer = client.get_json("/api/v1/baselines")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
            } else {
                print_table(&answer);
            }
            return Ok(ExitCode::SUCCESS);
        }
        Action::Show { rule, entity } => {
            let mut path = format!("/api/v1/baselines/{}", encode(&rule));
            if let Some(entity) = entity {
                path.push_str(&format!("?entity={}", encode(&entity)));
            }
            let answer = client.get_json(&path)?;
            println!("{}", serde_json::to_string_pretty(&answer)?);
            return Ok(ExitCode::SUCCESS);
        }
        Action::Reset { rule, entity } => (rule, json!({"action": "reset", "entity": entity})),
        Action::Accept { rule, entity, term } => (
            rule,
            json!({"action": "accept", "entity": entity, "term": term}),
        ),
        Action::Lock { rule, entity } => (rule, json!({"action": "lock", "entity": entity})),
        Action::Unlock { rule, entity } => (rule, json!({"action": "unlock", "entity": entity})),
        Action::Import { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let value: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            let profiles = match value {
                Value::Array(items) => items,
                one => vec![one],
            };
            for mut profile in profiles {
                let rule = profile["rule"]
                    .as_str()
                    .map(str::to_string)
                    .with_context(|| format!("a profile in {} has no `rule`", file.display()))?;
                if let Some(map) = profile.as_object_mut() {
                    map.remove("entity_count");
                }
                let entities = profile["entities"].as_array().map_or(0, Vec::len)
                    + profile["rates"].as_array().map_or(0, Vec::len);
                client.post_json(
                    &format!("/api/v1/baselines/{}/actions", encode(&rule)),
                    &json!({"action": "import", "profile": profile}),
                )?;
                eprintln!("import of {entities} entities recorded for rule {rule}");
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    let mut body = body;
    if let Some(map) = body.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    client.post_json(
        &format!("/api/v1/baselines/{}/actions", encode(&rule)),
        &body,
    )?;
    eprintln!(
        "{} recorded for rule {rule}",
        body["action"].as_str().unwrap_or("action")
    );
    Ok(ExitCode::SUCCESS)
}

/// Percent-encodes what is not unreserved in a URL path segment or query value.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn print_table(answer: &Value) {
    let empty = Vec::new();
    let rules = answer["baselines"].as_array().unwrap_or(&empty);
    if rules.is_empty() {
        println!("no baseline rules");
        return;
    }
    println!(
        "{:<38} {:<9} {:>8} {:>8} {:>8}  LEARNING UNTIL",
        "RULE", "KIND", "ENTITIES", "TERMS", "REFUSED"
    );
    for rule in rules {
        let refused = rule["entities_refused"].as_u64().unwrap_or(0)
            + rule["terms_refused"].as_u64().unwrap_or(0);
        println!(
            "{:<38} {:<9} {:>8} {:>8} {:>8}  {}",
            rule["rule"].as_str().unwrap_or("-"),
            rule["kind"].as_str().unwrap_or("-"),
            rule["entities"].as_u64().unwrap_or(0),
            rule["terms"].as_u64().unwrap_or(0),
            refused,
            rule["learning_until"].as_str().unwrap_or("-"),
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(super::encode("shop/api x"), "shop%2Fapi%20x");
        assert_eq!(super::encode("2253aacc-269c"), "2253aacc-269c");
    }
}
