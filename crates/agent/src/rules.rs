//! The kernel audit rules the agent reads, installed with `auditctl` on request
//! (`crowsnest agent --install-audit-rules`).
//!
//! * every `execve`/`execveat` (64- and 32-bit), key `crowsnest-exec`;
//! * reads and writes of credentials and runtime control files, key `crowsnest-sensitive`
//!   (`-w <path> -p rwa`).
//!
//! Installing is idempotent: rules already loaded (`auditctl -l`) are not added again.

use std::process::Command;

/// Key of the exec rules.
pub const EXEC_KEY: &str = "crowsnest-exec";
/// Key of the sensitive-file watches.
pub const FILE_KEY: &str = "crowsnest-sensitive";

/// Paths watched for access.
pub const SENSITIVE_PATHS: &[&str] = &[
    "/etc/shadow",
    "/etc/sudoers",
    "/etc/passwd",
    "/root/.ssh",
    "/var/run/docker.sock",
    "/etc/kubernetes/admin.conf",
];

/// The `auditctl` argument lists, in order.
pub fn rule_args() -> Vec<Vec<String>> {
    let mut rules = Vec::new();
    for arch in ["b64", "b32"] {
        rules.push(
            format!("-a always,exit -F arch={arch} -S execve -S execveat -k {EXEC_KEY}")
                .split(' ')
                .map(str::to_string)
                .collect(),
        );
    }
    for path in SENSITIVE_PATHS {
        rules.push(vec![
            "-w".into(),
            (*path).into(),
            "-p".into(),
            "rwa".into(),
            "-k".into(),
            FILE_KEY.into(),
        ]);
    }
    rules
}

/// Why rules could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// `auditctl` could not be run.
    #[error("expected `auditctl` (Debian package auditd) on PATH: {0}")]
    Missing(std::io::Error),
    /// `auditctl` refused a rule.
    #[error("auditctl {args} failed: {stderr}")]
    Refused {
        /// The arguments.
        args: String,
        /// What it said.
        stderr: String,
    },
}

/// Loads the rules that are not loaded yet; returns how many were added.
pub fn install() -> Result<usize, RulesError> {
    let listed = Command::new("auditctl")
        .arg("-l")
        .output()
        .map_err(RulesError::Missing)?;
    let loaded = String::from_utf8_lossy(&listed.stdout).into_owned();
    let mut added = 0;
    for args in rule_args() {
        let present = if args[0] == "-w" {
            loaded.contains(&format!("-w {} ", args[1]))
        } else {
            let arch = args.iter().find(|a| a.starts_with("arch=")).cloned();
            loaded.lines().any(|l| {
                l.contains(EXEC_KEY) && arch.as_ref().is_some_and(|a| l.contains(a.as_str()))
            })
        };
        if present {
            continue;
        }
        if args[0] == "-w" && !std::path::Path::new(&args[1]).exists() {
            continue;
        }
        let output = Command::new("auditctl")
            .args(&args)
            .output()
            .map_err(RulesError::Missing)?;
        if !output.status.success() {
            return Err(RulesError::Refused {
                args: args.join(" "),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        added += 1;
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_cover_exec_on_both_abis_and_every_sensitive_path() {
        let rules = rule_args();
        let exec: Vec<_> = rules
            .iter()
            .filter(|r| r.contains(&EXEC_KEY.to_string()))
            .collect();
        assert_eq!(exec.len(), 2);
        assert!(exec.iter().any(|r| r.contains(&"arch=b32".to_string())));
        for path in SENSITIVE_PATHS {
            assert!(rules.iter().any(|r| r[1] == *path), "{path}");
        }
    }
}
