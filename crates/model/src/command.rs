//! Containment commands the server sends to a node agent, and what the agent answers.
//!
//! The server queues an [`AgentCommand`] for a node; that node's agent fetches it
//! (`GET /api/v1/agent/commands`), carries it out on the local Docker engine and posts a
//! [`CommandResult`] (`POST /api/v1/agent/commands/{id}/result`). Both travel as JSON in the
//! shapes below.
//!
//! ```
//! use crowsnest_model::command::{AgentCommand, ContainerOp};
//! let command = AgentCommand::new("node-1", ContainerOp::Pause, "web", "reverse shell", chrono::Duration::minutes(5));
//! assert!(!command.is_expired(command.issued_at));
//! let json = serde_json::to_value(&command).unwrap();
//! assert_eq!(json["op"], "pause");
//! ```

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What to do to a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerOp {
    /// Freeze every process (`docker pause`); undone by [`ContainerOp::Unpause`].
    Pause,
    /// Thaw a paused container.
    Unpause,
    /// Disconnect the container from every network, remembering each attachment; undone by
    /// [`ContainerOp::Release`].
    Quarantine,
    /// Reconnect a quarantined container to the networks it had, with the same aliases and
    /// static addresses.
    Release,
    /// Stop the container (SIGTERM, then SIGKILL after 10 s); undone by [`ContainerOp::Start`].
    Stop,
    /// Start a stopped container.
    Start,
    /// Kill the container (SIGKILL).
    Kill,
    /// Only collect evidence.
    Evidence,
}

impl ContainerOp {
    /// Every operation, in the order of the documentation.
    pub const ALL: [Self; 8] = [
        Self::Pause,
        Self::Unpause,
        Self::Quarantine,
        Self::Release,
        Self::Stop,
        Self::Start,
        Self::Kill,
        Self::Evidence,
    ];

    /// The lowercase name (`pause`, `quarantine`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Unpause => "unpause",
            Self::Quarantine => "quarantine",
            Self::Release => "release",
            Self::Stop => "stop",
            Self::Start => "start",
            Self::Kill => "kill",
            Self::Evidence => "evidence",
        }
    }

    /// Parses the lowercase name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.as_str() == name)
    }

    /// The operation that undoes this one, if there is one.
    pub fn undo(self) -> Option<Self> {
        match self {
            Self::Pause => Some(Self::Unpause),
            Self::Quarantine => Some(Self::Release),
            Self::Stop => Some(Self::Start),
            _ => None,
        }
    }

    /// Whether the operation takes something away from the container (these are refused on
    /// the agent's own container).
    pub fn is_disruptive(self) -> bool {
        matches!(
            self,
            Self::Pause | Self::Quarantine | Self::Stop | Self::Kill
        )
    }
}

impl std::fmt::Display for ContainerOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One network attachment of a container, with what is needed to restore it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAttachment {
    /// The network's name.
    pub network: String,
    /// The network's id, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_id: Option<String>,
    /// The container's aliases on that network (user-defined networks only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// A static IPv4 address (`--ip`), when one was configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<String>,
    /// A static IPv6 address (`--ip6`), when one was configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<String>,
    /// Legacy links (`--link`) on that network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
}

/// A containment command for one container on one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentCommand {
    /// Unique id (a ULID).
    pub id: String,
    /// The node (agent `--node`, by default its host name) that must carry it out.
    pub node: String,
    /// What to do.
    pub op: ContainerOp,
    /// The container's id (or an unambiguous prefix) or name.
    pub container: String,
    /// For [`ContainerOp::Release`]: the attachments to restore (from the quarantine's
    /// [`CommandResult::networks_disconnected`]); empty = what the agent remembers of the
    /// container's last quarantine.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<NetworkAttachment>,
    /// Collect evidence (inspect, logs, processes, filesystem changes) before acting.
    #[serde(default)]
    pub evidence: bool,
    /// With `evidence`: also export the container's filesystem as a tar (can be large).
    #[serde(default)]
    pub export: bool,
    /// Why (the rule, the incident, the person).
    #[serde(default)]
    pub reason: String,
    /// Who or what issued it (a token name, a playbook).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_by: Option<String>,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// After this instant the command is neither delivered nor carried out.
    pub expires_at: DateTime<Utc>,
}

impl AgentCommand {
    /// A command issued now with a fresh id, valid for `ttl`.
    pub fn new(
        node: impl Into<String>,
        op: ContainerOp,
        container: impl Into<String>,
        reason: impl Into<String>,
        ttl: chrono::Duration,
    ) -> Self {
        let issued_at = Utc::now();
        Self {
            id: ulid::Ulid::new().to_string(),
            node: node.into(),
            op,
            container: container.into(),
            networks: Vec::new(),
            evidence: false,
            export: false,
            reason: reason.into(),
            issued_by: None,
            issued_at,
            expires_at: issued_at + ttl,
        }
    }

    /// Checks what the server and the agent rely on: an id usable as a file name (1 to 64
    /// letters, digits, `-`, `_`), a node, a container and network names in Docker's alphabet
    /// (letters, digits, `_`, `.`, `-`; they become parts of Docker API paths), and an expiry
    /// after the issue. The error names the field and why.
    pub fn validate(&self) -> Result<(), String> {
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 64
            && self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !id_ok {
            return Err(format!(
                "`id` `{}` must be 1 to 64 letters, digits, `-` or `_`",
                self.id.chars().take(80).collect::<String>()
            ));
        }
        if self.node.trim().is_empty() || self.node.len() > 253 {
            return Err("`node` must be 1 to 253 characters".into());
        }
        if !docker_name(&self.container) {
            return Err(format!(
                "`container` `{}` is not a container id or name (letters, digits, `_`, `.`, `-`; at most 255)",
                self.container.chars().take(80).collect::<String>()
            ));
        }
        if let Some(bad) = self.networks.iter().find(|n| !docker_name(&n.network)) {
            return Err(format!(
                "`networks`: `{}` is not a network name (letters, digits, `_`, `.`, `-`)",
                bad.network.chars().take(80).collect::<String>()
            ));
        }
        if self.expires_at <= self.issued_at {
            return Err("`expires_at` must be after `issued_at`".into());
        }
        Ok(())
    }

    /// Whether the command has expired at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        now >= self.expires_at
    }
}

/// A container or network id or name as Docker allows them (never a path).
fn docker_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 255
        && text
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// One evidence file the agent wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceFile {
    /// What it holds: `inspect.json`, `logs.txt`, `top.json`, `diff.json`, `export.tar`.
    pub name: String,
    /// Hex SHA-256 of the file's bytes.
    pub sha256: String,
    /// Its size.
    pub bytes: u64,
    /// Where it is on the node.
    pub path: String,
}

/// What the agent did with a command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandResult {
    /// The command's id.
    pub id: String,
    /// The node that carried it out.
    pub node: String,
    /// Whether the operation succeeded (or there was nothing to do).
    pub ok: bool,
    /// Why it failed or was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Remarks (`already paused`, evidence that could not be taken, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The container's full id, when it was found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// The container's name, when it was found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    /// For a quarantine: the attachments removed (give them back to a release).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks_disconnected: Vec<NetworkAttachment>,
    /// For a release: the attachments restored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks_connected: Vec<NetworkAttachment>,
    /// Evidence files written before acting.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<EvidenceFile>,
    /// The container's `docker inspect` output as the agent saw it before acting (with
    /// `evidence`, or for the `evidence` operation): the server's responder reads the networks
    /// and the network mode from it for the undo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inspect: Option<serde_json::Value>,
    /// When the agent began.
    pub started_at: DateTime<Utc>,
    /// When it finished.
    pub finished_at: DateTime<Utc>,
}

impl CommandResult {
    /// A failed result for `command` (refused before anything was done).
    pub fn refused(command: &AgentCommand, node: &str, error: impl Into<String>) -> Self {
        let now = Utc::now();
        Self {
            id: command.id.clone(),
            node: node.to_string(),
            ok: false,
            error: Some(error.into()),
            notes: Vec::new(),
            container_id: None,
            container_name: None,
            networks_disconnected: Vec::new(),
            networks_connected: Vec::new(),
            evidence: Vec::new(),
            inspect: None,
            started_at: now,
            finished_at: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_results_round_trip_and_undo_pairs_hold() {
        let mut command = AgentCommand::new(
            "n1",
            ContainerOp::Release,
            "web",
            "undo",
            chrono::Duration::seconds(30),
        );
        command.networks.push(NetworkAttachment {
            network: "backend".into(),
            network_id: None,
            aliases: vec!["api".into()],
            ipv4_address: Some("10.5.0.9".into()),
            ipv6_address: None,
            links: Vec::new(),
        });
        let text = serde_json::to_string(&command).expect("json");
        let back: AgentCommand = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, command);
        assert!(text.contains("\"op\":\"release\""), "{text}");
        assert!(command.is_expired(command.expires_at));
        assert!(!command.is_expired(command.issued_at));
        for op in ContainerOp::ALL {
            assert_eq!(ContainerOp::parse(op.as_str()), Some(op));
        }
        assert_eq!(ContainerOp::Pause.undo(), Some(ContainerOp::Unpause));
        assert_eq!(ContainerOp::Quarantine.undo(), Some(ContainerOp::Release));
        assert_eq!(ContainerOp::Kill.undo(), None);
        let minimal = r#"{"id":"x","node":"n","op":"pause","container":"c",
            "issued_at":"2026-01-01T00:00:00Z","expires_at":"2026-01-01T00:05:00Z"}"#;
        let parsed: AgentCommand = serde_json::from_str(minimal).expect("defaults");
        assert!(!parsed.evidence && parsed.networks.is_empty());
        assert_eq!(parsed.validate(), Ok(()));
        for (container, node) in [("../images/x", "n"), ("", "n"), ("web", " ")] {
            let mut bad = parsed.clone();
            bad.container = container.into();
            bad.node = node.into();
            assert!(bad.validate().is_err(), "{container:?} {node:?}");
        }
        let mut bad = parsed.clone();
        bad.id = "a/b".into();
        assert!(bad.validate().is_err_and(|e| e.contains("`id`")));
        let result = CommandResult::refused(&parsed, "n", "expired");
        assert!(!result.ok);
        let value = serde_json::to_value(&result).expect("json");
        assert!(value.get("networks_disconnected").is_none());
    }
}
