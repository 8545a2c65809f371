//! `crowsnest tokens list|create|revoke`: the API tokens of a running server
//! (`/api/v1/tokens`, admin). Creation and revocation are written to the server's self-audit
//! stream (`token.create`, `token.revoke`).

use std::process::ExitCode;

use serde_json::json;

use crate::client::ServerArgs;

/// Flags of `crowsnest tokens`.
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
    /// Names, scopes and creation times (never the tokens).
    List,
    /// Make a token (replacing one of the same name); prints it once.
    Create {
        /// Its name (`user.name` of what it does).
        name: String,
        /// Scopes: ingest, read, admin.
        #[arg(long = "scope", required = true, value_delimiter = ',')]
        scopes: Vec<String>,
    },
    /// Revoke a token: it authenticates nothing from now on.
    Revoke {
        /// The token's name.
        name: String,
    },
}

/// Runs `crowsnest tokens`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let client = args.server.client()?;
    match args.action {
        Action::List => {
            let answer = client.get_json("/api/v1/tokens")?;
            for token in answer["tokens"].as_array().into_iter().flatten() {
                let scopes: Vec<&str> = token["scopes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.as_str())
                    .collect();
                println!(
                    "{:<24} {:<20} {}",
                    token["name"].as_str().unwrap_or_default(),
                    scopes.join(","),
                    token["created"].as_str().unwrap_or_default()
                );
            }
        }
        Action::Create { name, scopes } => {
            let answer =
                client.post_json("/api/v1/tokens", &json!({"name": name, "scopes": scopes}))?;
            println!("{}", answer["token"].as_str().unwrap_or_default());
            eprintln!("token `{name}` created; it is shown only this once");
        }
        Action::Revoke { name } => {
            client.post_json(
                &format!("/api/v1/tokens/{}/revoke", percent(&name)),
                &json!({}),
            )?;
            println!("token `{name}` revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Percent-encodes a path segment (token names are free text).
fn percent(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_one_path_segment() {
        assert_eq!(super::percent("ci-bot_1.x"), "ci-bot_1.x");
        assert_eq!(super::percent("a/b c"), "a%2Fb%20c");
    }
}
