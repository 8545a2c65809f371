//! Where the server is and which token: the flags of the commands that talk to a running
//! server, resolved into a [`Client`].

use std::path::PathBuf;

use anyhow::{bail, Context};
pub use crowsnest_client::{Client, ServerError};

/// Where the server is and how to authenticate. Shared by `search` and `ingest`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Server URL.
    #[arg(
        long,
        env = "CROWSNEST_SERVER",
        default_value = "http://127.0.0.1:8470"
    )]
    pub server: String,
    /// API token (default: read from --token-file).
    #[arg(long, env = "CROWSNEST_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the API token (default: <data-dir>/admin.token).
    #[arg(long, env = "CROWSNEST_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// The local server's data directory, where `admin.token` is looked for.
    #[arg(long, env = "CROWSNEST_DATA_DIR", default_value = "crowsnest-data")]
    pub data_dir: PathBuf,
}

impl ServerArgs {
    /// Resolves the token and builds a client.
    pub fn client(&self) -> anyhow::Result<Client> {
        let token = match (&self.token, &self.token_file) {
            (Some(token), _) => token.trim().to_string(),
            (None, Some(file)) => read_token(file)?,
            (None, None) => read_token(&self.data_dir.join("admin.token")).context(
                "no token given: pass --token, --token-file or CROWSNEST_TOKEN, or run next to the server's data directory",
            )?,
        };
        Ok(Client::new(&self.server, &token))
    }
}

fn read_token(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading token file `{}`", path.display()))?;
    let token = text.trim().to_string();
    if token.is_empty() {
        bail!("token file `{}` is empty", path.display());
    }
    Ok(token)
}
