//! `crowsnest server`: configuration layering (defaults < TOML file < `CROWSNEST_*` < flags)
//! and the serve loop.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use crowsnest_server::ServerConfig;

use crate::runtime::{runtime, shutdown_signal};

/// Flags of `crowsnest server`. Each also reads the `CROWSNEST_*` variable named in its help.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// TOML config file (every key is optional; see README "Configuration").
    #[arg(long, env = "CROWSNEST_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (WAL, store, tokens) [default: ./crowsnest-data].
    #[arg(long, env = "CROWSNEST_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address of the HTTP API [default: 127.0.0.1:8470].
    #[arg(long, env = "CROWSNEST_LISTEN")]
    pub listen: Option<String>,
    /// Largest request body in bytes, after decompression [default: 33554432].
    #[arg(long, env = "CROWSNEST_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Drop store partitions older than this many hours [default: keep].
    #[arg(long, env = "CROWSNEST_RETENTION_MAX_AGE_HOURS")]
    pub retention_max_age_hours: Option<u64>,
    /// Drop the oldest partitions while the store is bigger than this many bytes [default: no limit].
    #[arg(long, env = "CROWSNEST_RETENTION_MAX_BYTES")]
    pub retention_max_bytes: Option<u64>,
    /// Width of one store partition in hours [default: 24].
    #[arg(long, env = "CROWSNEST_PARTITION_HOURS")]
    pub partition_hours: Option<u32>,
    /// Longest time until an acknowledged event is searchable, in milliseconds [default: 1000].
    #[arg(long, env = "CROWSNEST_COMMIT_INTERVAL_MS")]
    pub commit_interval_ms: Option<u64>,
    /// Receive syslog over UDP on this address, e.g. `127.0.0.1:5514` [default: off].
    /// No authentication: bind to loopback or a private interface.
    #[arg(long, env = "CROWSNEST_SYSLOG_UDP", value_name = "ADDR")]
    pub syslog_udp: Option<String>,
    /// Receive syslog over TCP (octet-counted or newline framing) on this address [default: off].
    #[arg(long, env = "CROWSNEST_SYSLOG_TCP", value_name = "ADDR")]
    pub syslog_tcp: Option<String>,
    /// Receive syslog over TLS on this address; needs `--tls-cert` and `--tls-key`
    /// [default: off].
    #[arg(long, env = "CROWSNEST_SYSLOG_TLS", value_name = "ADDR")]
    pub syslog_tls: Option<String>,
    /// Receive the Fluentd forward protocol on this address, e.g. `127.0.0.1:24224` [default: off].
    #[arg(long, env = "CROWSNEST_FORWARD", value_name = "ADDR")]
    pub forward: Option<String>,
    /// Receive the forward protocol over TLS on this address; needs `--tls-cert` and
    /// `--tls-key` [default: off].
    #[arg(long, env = "CROWSNEST_FORWARD_TLS", value_name = "ADDR")]
    pub forward_tls: Option<String>,
    /// Require forward clients to prove they know the shared key in this file (Fluentd
    /// `shared_key`, Fluent Bit `Shared_Key`); applies to every forward input, also those of
    /// the config file [default: no handshake].
    #[arg(long, env = "CROWSNEST_FORWARD_SHARED_KEY_FILE", value_name = "PATH")]
    pub forward_shared_key_file: Option<PathBuf>,
    /// PEM certificate chain for `--syslog-tls` and `--forward-tls`.
    #[arg(long, env = "CROWSNEST_TLS_CERT", value_name = "PATH")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `--syslog-tls` and `--forward-tls`.
    #[arg(long, env = "CROWSNEST_TLS_KEY", value_name = "PATH")]
    pub tls_key: Option<PathBuf>,
    /// Also run the node agent's collectors for this host (container logs, Docker events,
    /// kernel audit, host logs), shipping to this server; state in `<data-dir>/agent`.
    #[arg(long, env = "CROWSNEST_COLLECT_LOCAL")]
    pub collect_local: bool,
}

impl Args {
    /// Builds the effective configuration.
    pub fn resolve(&self) -> anyhow::Result<ServerConfig> {
        let mut config = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file `{}`", path.display()))?;
                let mut config = toml::from_str::<ServerConfig>(&text)
                    .with_context(|| format!("invalid config file `{}`", path.display()))?;
                // A mapping's program file is found next to the configuration file.
                let dir = path.parent().unwrap_or(std::path::Path::new("."));
                for mapping in &mut config.mappings {
                    if let Some(file) = mapping.file.as_mut().filter(|f| f.is_relative()) {
                        *file = dir.join(&*file);
                    }
                }
                config
            }
            None => ServerConfig::default(),
        };
        if let Some(v) = &self.data_dir {
            config.data_dir = v.clone();
        }
        if let Some(v) = &self.listen {
            config.listen = v.clone();
        }
        if let Some(v) = self.max_body_bytes {
            config.max_body_bytes = v;
        }
        if let Some(v) = self.retention_max_age_hours {
            config.store.retention_max_age_hours = Some(v);
        }
        if let Some(v) = self.retention_max_bytes {
            config.store.retention_max_bytes = Some(v);
        }
        if let Some(v) = self.partition_hours {
            config.store.partition_hours = v;
        }
        if let Some(v) = self.commit_interval_ms {
            config.pipeline.commit_interval_ms = v;
        }
        self.add_inputs(&mut config)?;
        Ok(config)
    }

    /// The input flags are shorthands for `[[inputs]]` entries, added to the config file's.
    fn add_inputs(&self, config: &mut ServerConfig) -> anyhow::Result<()> {
        use crowsnest_ingest::listen::{InputConfig, SyslogTransport, TlsFiles};
        let tls = || -> anyhow::Result<TlsFiles> {
            match (&self.tls_cert, &self.tls_key) {
                (Some(cert), Some(key)) => Ok(TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                }),
                _ => anyhow::bail!("`--syslog-tls` and `--forward-tls` need `--tls-cert` and `--tls-key` (PEM files)"),
            }
        };
        let syslog = [
            (&self.syslog_udp, SyslogTransport::Udp),
            (&self.syslog_tcp, SyslogTransport::Tcp),
            (&self.syslog_tls, SyslogTransport::Tls),
        ];
        for (flag, transport) in syslog {
            if let Some(addr) = flag {
                let mut input = InputConfig::syslog(addr, transport);
                if let InputConfig::Syslog(syslog) = &mut input {
                    if transport == SyslogTransport::Tls {
                        syslog.tls = Some(tls()?);
                    }
                }
                config.inputs.push(input);
            }
        }
        for (flag, secure) in [(&self.forward, false), (&self.forward_tls, true)] {
            if let Some(addr) = flag {
                let mut input = InputConfig::forward(addr);
                if let InputConfig::Forward(forward) = &mut input {
                    if secure {
                        forward.tls = Some(tls()?);
                    }
                }
                config.inputs.push(input);
            }
        }
        if let Some(path) = &self.forward_shared_key_file {
            // The flag wins over a key written in the config file.
            for input in &mut config.inputs {
                if let InputConfig::Forward(forward) = input {
                    forward.shared_key = None;
                    forward.shared_key_file = Some(path.clone());
                }
            }
        }
        Ok(())
    }
}

/// Runs the server until Ctrl-C or SIGTERM.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = args.resolve()?;
    // Held until the server exits: `crowsnest store` (and a second server) refuse the directory.
    let _lock = super::store::lock_data_dir(&config.data_dir)?;
    runtime()?.block_on(async move {
        let data_dir = config.data_dir.clone();
        let running = crowsnest_server::start_with(config, Some(crowsnest_console::router)).await?;
        announce(&running);
        let agent = match args.collect_local {
            true => Some(super::agent::start_local(
                &running,
                &data_dir,
                &super::agent::defaults(),
            )?),
            false => None,
        };
        shutdown_signal().await;
        if let Some(agent) = agent {
            tokio::task::spawn_blocking(move || agent.stop()).await??;
        }
        tracing::info!("shutting down: draining the pipeline and committing the store");
        running.shutdown().await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Prints where the server is and where its token lives.
pub fn announce(running: &crowsnest_server::Running) {
    eprintln!("crowsnest listening on http://{}", running.addr);
    if running.state.config.console.enabled {
        eprintln!(
            "web console: http://{}/ (log in with a token)",
            running.addr
        );
    }
    match &running.new_admin_token {
        Some(_) => eprintln!(
            "created admin token in {} (mode 0600)",
            running.admin_token_path.display()
        ),
        None => eprintln!("admin token: {}", running.admin_token_path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> Args {
        Args {
            config: None,
            data_dir: None,
            listen: None,
            max_body_bytes: None,
            retention_max_age_hours: None,
            retention_max_bytes: None,
            partition_hours: None,
            commit_interval_ms: None,
            syslog_udp: None,
            syslog_tcp: None,
            syslog_tls: None,
            forward: None,
            forward_tls: None,
            forward_shared_key_file: None,
            tls_cert: None,
            tls_key: None,
            collect_local: false,
        }
    }

    #[test]
    fn defaults_then_file_then_flags() {
        let defaults = args().resolve().expect("defaults");
        assert_eq!(defaults.listen, "127.0.0.1:8470");
        assert_eq!(defaults.data_dir, PathBuf::from("crowsnest-data"));
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("crowsnest.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9999\"\ndata_dir = \"/srv/cn\"\n[store]\nretention_max_age_hours = 48\n").expect("write");
        let from_file = Args {
            config: Some(file.clone()),
            ..args()
        }
        .resolve()
        .expect("file");
        assert_eq!(from_file.listen, "127.0.0.1:9999");
        assert_eq!(from_file.store.retention_max_age_hours, Some(48));
        let flags = Args {
            config: Some(file),
            listen: Some("127.0.0.1:1".into()),
            ..args()
        }
        .resolve()
        .expect("flags");
        assert_eq!(flags.listen, "127.0.0.1:1");
        assert_eq!(flags.data_dir, PathBuf::from("/srv/cn"));
    }

    #[test]
    fn listeners_are_off_by_default_and_flags_add_to_the_file() {
        use crowsnest_ingest::listen::{InputConfig, SyslogTransport};
        let defaults = args().resolve().expect("defaults");
        assert!(defaults.inputs.is_empty());
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("crowsnest.toml");
        std::fs::write(
            &file,
            "[[inputs]]\ntype = \"syslog\"\nlisten = \"0.0.0.0:601\"\n",
        )
        .expect("write");
        let resolved = Args {
            config: Some(file),
            forward: Some("127.0.0.1:1".into()),
            syslog_udp: Some("127.0.0.1:5514".into()),
            ..args()
        }
        .resolve()
        .expect("resolve");
        assert_eq!(
            resolved.inputs,
            [
                InputConfig::syslog("0.0.0.0:601", SyslogTransport::Tcp),
                InputConfig::syslog("127.0.0.1:5514", SyslogTransport::Udp),
                InputConfig::forward("127.0.0.1:1"),
            ]
        );
        // The TLS shorthands need their files.
        let error = Args {
            syslog_tls: Some("127.0.0.1:6515".into()),
            ..args()
        }
        .resolve()
        .expect_err("no files");
        assert!(format!("{error:#}").contains("--tls-cert"), "{error:#}");
    }

    #[test]
    fn the_forward_key_file_flag_replaces_a_key_from_the_file() {
        use crowsnest_ingest::listen::InputConfig;
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("crowsnest.toml");
        std::fs::write(
            &file,
            "[[inputs]]\ntype = \"forward\"\nlisten = \"127.0.0.1:24224\"\nshared_key = \"from-file\"\n",
        )
        .expect("write");
        let key_file = dir.path().join("forward.key");
        std::fs::write(&key_file, "from-flag\n").expect("write key");
        let forwards = |config: &ServerConfig| -> Vec<crowsnest_ingest::listen::ForwardInput> {
            config
                .inputs
                .iter()
                .filter_map(|input| match input {
                    InputConfig::Forward(forward) => Some(forward.clone()),
                    InputConfig::Syslog(_) => None,
                })
                .collect()
        };
        let from_file = Args {
            config: Some(file.clone()),
            ..args()
        }
        .resolve()
        .expect("file");
        assert_eq!(
            forwards(&from_file)[0].shared_key.as_deref(),
            Some("from-file")
        );
        let resolved = Args {
            config: Some(file),
            forward_tls: Some("127.0.0.1:24284".into()),
            tls_cert: Some("/etc/cert.pem".into()),
            tls_key: Some("/etc/key.pem".into()),
            forward_shared_key_file: Some(key_file.clone()),
            ..args()
        }
        .resolve()
        .expect("resolve");
        let resolved = forwards(&resolved);
        assert_eq!(resolved.len(), 2);
        for forward in &resolved {
            assert_eq!(forward.shared_key, None);
            assert_eq!(forward.shared_key_file.as_ref(), Some(&key_file));
            assert!(forward.auth("h").expect("auth").is_some());
        }
        assert_eq!(resolved[1].listen, "127.0.0.1:24284");
        assert!(resolved[1].tls.is_some());
        assert!(!format!("{:?}", from_file.inputs).contains("from-file"));
    }

    #[test]
    fn a_bad_config_file_names_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "lisen = \"x\"\n").expect("write");
        let error = Args {
            config: Some(file),
            ..args()
        }
        .resolve()
        .expect_err("unknown key");
        assert!(format!("{error:#}").contains("lisen"), "{error:#}");
    }
}
