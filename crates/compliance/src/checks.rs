//! The evidence checks. Each runs real queries over the store (or reads the incidents and the
//! store's configuration) and records the exact queries, counts and sample event ids.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use crowsnest_store::SearchRequest;
use serde_json::{json, Value};

use crate::{
    CheckResult, Error, IncidentFacts, Inputs, QueryEvidence, Request, SourceHealth, Status,
};

/// Every check a catalog may name.
pub const CHECKS: [&str; 28] = [
    "k8s-audit",
    "runtime-events",
    "alerts",
    "anonymous-access",
    "denied-access",
    "change-tracking",
    "field-completeness",
    "retention",
    "silent-sources",
    "clock-skew",
    "incident-handling",
    "breach-72h",
    "self-audit",
    "integrity",
    "docker-events",
    "docker-daemon-audit",
    "docker-privileged",
    "docker-capabilities",
    "docker-host-mounts",
    "docker-host-network",
    "docker-host-pid",
    "docker-host-ipc",
    "docker-host-userns",
    "docker-socket-mount",
    "docker-root-user",
    "docker-seccomp",
    "docker-apparmor",
    "docker-readonly-rootfs",
];

/// Docker engine events (the agent's, from the Docker API).
const DOCKER_EVENTS: &str = "event.dataset:docker.events";
/// Container starts that carry the container's settings from `docker inspect` (the agent adds
/// `docker.container.mounts_runtime_socket` whenever it inspected the container).
const DOCKER_STARTS: &str =
    "event.dataset:docker.events AND event.action:start AND docker.container.mounts_runtime_socket:*";
/// Kernel audit records of the container runtime's own processes.
const DOCKER_DAEMON_AUDIT: &str =
    "event.module:auditd AND process.name:(dockerd OR containerd OR runc)";

/// A check over the settings of started containers: `condition` finds the starts that break
/// the recommendation; `what` names them ("privileged").
struct DockerSetting {
    check: &'static str,
    condition: &'static str,
    what: &'static str,
}

const DOCKER_SETTINGS: [DockerSetting; 12] = [
    DockerSetting {
        check: "docker-privileged",
        condition: "docker.container.privileged:true",
        what: "privileged",
    },
    DockerSetting {
        check: "docker-capabilities",
        condition: "docker.container.cap_add:(ALL OR SYS_ADMIN OR CAP_SYS_ADMIN OR SYS_MODULE OR SYS_PTRACE OR SYS_RAWIO OR NET_ADMIN OR DAC_READ_SEARCH OR BPF)",
        what: "given powerful added capabilities (ALL, SYS_ADMIN, SYS_MODULE, SYS_PTRACE, SYS_RAWIO, NET_ADMIN, DAC_READ_SEARCH, BPF)",
    },
    DockerSetting {
        check: "docker-host-mounts",
        condition: "docker.container.mounts_host_root:true OR docker.container.mounts.source:(\\/etc OR \\/boot OR \\/dev OR \\/lib OR \\/proc OR \\/sys OR \\/usr OR \\/root)",
        what: "mounting a sensitive host directory (/, /etc, /boot, /dev, /lib, /proc, /sys, /usr, /root)",
    },
    DockerSetting {
        check: "docker-host-network",
        condition: "docker.container.network_mode:host",
        what: "sharing the host's network namespace",
    },
    DockerSetting {
        check: "docker-host-pid",
        condition: "docker.container.pid_mode:host",
        what: "sharing the host's process namespace",
    },
    DockerSetting {
        check: "docker-host-ipc",
        condition: "docker.container.ipc_mode:host",
        what: "sharing the host's IPC namespace",
    },
    DockerSetting {
        check: "docker-host-userns",
        condition: "docker.container.userns_mode:host",
        what: "sharing the host's user namespace",
    },
    DockerSetting {
        check: "docker-socket-mount",
        condition: "docker.container.mounts_runtime_socket:true",
        what: "mounting the container runtime's socket (docker.sock, containerd.sock, crio.sock)",
    },
    DockerSetting {
        check: "docker-root-user",
        condition: "NOT docker.container.user:* OR docker.container.user:(0 OR root OR 0\\:0 OR root\\:root)",
        what: "running as root (no user set, or user 0/root)",
    },
    DockerSetting {
        check: "docker-seccomp",
        condition: "docker.container.security_opt:(seccomp\\=unconfined OR seccomp\\:unconfined)",
        what: "running without a seccomp profile (seccomp=unconfined)",
    },
    DockerSetting {
        check: "docker-apparmor",
        condition: "docker.container.security_opt:(apparmor\\=unconfined OR apparmor\\:unconfined)",
        what: "running without an AppArmor profile (apparmor=unconfined)",
    },
    DockerSetting {
        check: "docker-readonly-rootfs",
        condition: "NOT docker.container.readonly_rootfs:true",
        what: "running with a writable root filesystem",
    },
];

const K8S_AUDIT: &str = "event.dataset:kubernetes.audit";
const RUNTIME: &str = "event.category:process OR event.module:falco";
const ALERTS: &str = "event.dataset:crowsnest.alert";
const INCIDENT_ACTIONS: &str = "event.dataset:crowsnest.incident_action";
/// The self-audit stream (searches, exports, configuration and token changes).
pub(crate) const SELF_AUDIT: &str = "event.dataset:crowsnest.audit";
/// Records of integrity verification runs (`crowsnest verify`).
pub(crate) const INTEGRITY: &str = "event.dataset:crowsnest.verify";
const SAMPLE: usize = 5;
/// Incidents examined one by one at most (the rest are counted).
const MAX_INCIDENTS: usize = 200;
/// Newest events whose clock skew is measured.
const SKEW_SAMPLE: usize = 500;

/// The fields PCI DSS 10.2.2 asks of every audit record, and where the store has them.
const REQUIRED_FIELDS: [(&str, &str); 5] = [
    ("user", "NOT user.name:*"),
    ("action", "NOT event.action:*"),
    ("outcome", "NOT event.outcome:*"),
    ("origin", "NOT source.ip:*"),
    (
        "object",
        "NOT orchestrator.resource.type:* AND NOT url.original:*",
    ),
];

const CHANGE_VERBS: &str = "event.action:(create OR update OR patch OR delete OR deletecollection)";
const CHANGE_KINDS: [(&str, &str); 4] = [
    (
        "rbac",
        "orchestrator.resource.type:(roles OR rolebindings OR clusterroles OR clusterrolebindings OR serviceaccounts)",
    ),
    (
        "workloads",
        "orchestrator.resource.type:(deployments OR daemonsets OR statefulsets OR replicasets OR jobs OR cronjobs OR pods)",
    ),
    (
        "webhooks",
        "orchestrator.resource.type:(mutatingwebhookconfigurations OR validatingwebhookconfigurations)",
    ),
    (
        "policies",
        "orchestrator.resource.type:(networkpolicies OR validatingadmissionpolicies OR validatingadmissionpolicybindings OR resourcequotas OR limitranges)",
    ),
];

/// Escapes a value for a `field:value` term.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if !(c.is_alphanumeric() || c == '.' || c == '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn ts(value: &Value) -> Option<DateTime<Utc>> {
    value
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn field<'a>(hit: &'a Value, path: &str) -> &'a Value {
    if let Some(v) = hit.get(path) {
        return v;
    }
    let mut current = hit;
    for segment in path.split('.') {
        current = &current[segment];
    }
    current
}

fn hours(delta: TimeDelta) -> f64 {
    (delta.num_seconds() as f64 / 360.0).round() / 10.0
}

/// A dataset, its event count and the newest (or oldest) event time.
type DatasetTimes = (String, u64, Option<DateTime<Utc>>);

/// The state of one evaluation.
pub(crate) struct Context<'a> {
    inputs: &'a Inputs<'a>,
    request: &'a Request<'a>,
    sources: Option<Vec<SourceHealth>>,
}

struct Found {
    evidence: QueryEvidence,
    hits: Vec<Value>,
}

impl<'a> Context<'a> {
    pub(crate) fn new(inputs: &'a Inputs<'a>, request: &'a Request<'a>) -> Self {
        Self {
            inputs,
            request,
            sources: None,
        }
    }

    fn period(&self) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        (Some(self.request.from), Some(self.request.to))
    }

    /// The query text with the scope applied.
    fn scoped(&self, query: &str, scoped: bool) -> String {
        match (scoped, self.request.scope.clause()) {
            (true, Some(clause)) => format!("{clause} AND ({query})"),
            _ => query.to_string(),
        }
    }

    /// Events per source, scoped.
    fn stats_text(&self) -> String {
        match self.request.scope.clause() {
            Some(clause) => format!("{clause} | stats count() by event.dataset"),
            None => "* | stats count() by event.dataset".to_string(),
        }
    }

    /// Runs `query` (scoped unless `scoped` is false) over the range; keeps up to `limit` hits
    /// (newest first) starting at `offset`.
    #[allow(clippy::too_many_arguments)]
    fn find(
        &self,
        check: &str,
        query: &str,
        scoped: bool,
        range: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
        limit: usize,
        offset: usize,
    ) -> Result<Found, Error> {
        let text = self.scoped(query, scoped);
        let parsed = crowsnest_query::parse(&text).map_err(|source| Error::Query {
            check: check.to_string(),
            query: text.clone(),
            source,
        })?;
        let response = self
            .inputs
            .store
            .search(&SearchRequest {
                query: parsed,
                start: range.0,
                end: range.1,
                limit: limit.max(SAMPLE),
                offset,
            })
            .map_err(|source| Error::Store {
                check: check.to_string(),
                query: text.clone(),
                source,
            })?;
        let mut sample_ids: Vec<String> = response
            .hits
            .iter()
            .take(SAMPLE)
            .filter_map(|h| field(h, "event.id").as_str().map(str::to_string))
            .collect();
        sample_ids.sort();
        Ok(Found {
            evidence: QueryEvidence {
                query: text,
                from: range.0,
                to: range.1,
                count: response.total,
                sample_ids,
            },
            hits: response.hits,
        })
    }

    fn count(&self, check: &str, query: &str) -> Result<QueryEvidence, Error> {
        Ok(self
            .find(check, query, true, self.period(), SAMPLE, 0)?
            .evidence)
    }

    /// Time of the newest event matching `query` before the end of the period.
    fn newest_before_end(&self, check: &str, query: &str) -> Result<Option<DateTime<Utc>>, Error> {
        let found = self.find(check, query, true, (None, Some(self.request.to)), 1, 0)?;
        Ok(found.hits.first().and_then(|h| ts(field(h, "@timestamp"))))
    }

    /// Events per `event.dataset` in a range, with the newest (or oldest) time of each.
    fn per_dataset(
        &self,
        check: &str,
        range: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
        oldest: bool,
    ) -> Result<Vec<DatasetTimes>, Error> {
        let text = self.stats_text();
        let parsed = crowsnest_query::parse(&text).map_err(|source| Error::Query {
            check: check.to_string(),
            query: text.clone(),
            source,
        })?;
        let response = self
            .inputs
            .store
            .search(&SearchRequest {
                query: parsed,
                start: range.0,
                end: range.1,
                limit: 10_000,
                offset: 0,
            })
            .map_err(|source| Error::Store {
                check: check.to_string(),
                query: text.clone(),
                source,
            })?;
        let mut out = Vec::new();
        for row in response.rows.unwrap_or_default() {
            let Some(dataset) = row.first().and_then(Value::as_str) else {
                continue;
            };
            let count = row.get(1).and_then(Value::as_u64).unwrap_or(0);
            let query = format!("event.dataset:{}", escape(dataset));
            let offset = if oldest {
                usize::try_from(count.saturating_sub(1)).unwrap_or(usize::MAX)
            } else {
                0
            };
            let found = self.find(check, &query, true, range, 1, offset)?;
            let time = found.hits.first().and_then(|h| ts(field(h, "@timestamp")));
            out.push((dataset.to_string(), count, time));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Events per source in the period (computed once).
    pub(crate) fn sources(&mut self) -> Result<Vec<SourceHealth>, Error> {
        if let Some(sources) = &self.sources {
            return Ok(sources.clone());
        }
        let sources: Vec<SourceHealth> = self
            .per_dataset("sources", self.period(), false)?
            .into_iter()
            .map(|(dataset, events, newest)| SourceHealth {
                dataset,
                events,
                newest,
            })
            .collect();
        self.sources = Some(sources.clone());
        Ok(sources)
    }

    /// Runs one named check.
    pub(crate) fn run(&mut self, name: &str) -> Result<CheckResult, Error> {
        let mut result = CheckResult {
            check: name.to_string(),
            status: Status::Evidence,
            finding: String::new(),
            queries: Vec::new(),
            figures: BTreeMap::new(),
        };
        match name {
            "k8s-audit" => self.presence(&mut result, K8S_AUDIT, "Kubernetes audit events")?,
            "runtime-events" => {
                self.presence(&mut result, RUNTIME, "runtime (process, Falco) events")?
            }
            "alerts" => self.presence(&mut result, ALERTS, "detection alerts")?,
            "self-audit" => self.presence_unscoped(
                &mut result,
                SELF_AUDIT,
                "self-audit events (searches, exports, configuration and token changes)",
            )?,
            "integrity" => self.integrity(&mut result)?,
            "docker-events" => self.presence(&mut result, DOCKER_EVENTS, "Docker engine events")?,
            "docker-daemon-audit" => self.presence(
                &mut result,
                DOCKER_DAEMON_AUDIT,
                "kernel audit records of the container runtime (dockerd, containerd, runc)",
            )?,
            docker if docker.starts_with("docker-") => {
                match DOCKER_SETTINGS.iter().find(|d| d.check == docker) {
                    Some(setting) => self.docker_setting(&mut result, setting)?,
                    None => {
                        result.status = Status::Gap;
                        result.finding = format!("unknown check `{docker}` (a catalog error)");
                    }
                }
            }
            "anonymous-access" => self.anonymous(&mut result)?,
            "denied-access" => self.denied(&mut result)?,
            "change-tracking" => self.changes(&mut result)?,
            "field-completeness" => self.completeness(&mut result)?,
            "retention" => self.retention(&mut result)?,
            "silent-sources" => self.silent(&mut result)?,
            "clock-skew" => self.skew(&mut result)?,
            "incident-handling" => self.incidents(&mut result)?,
            "breach-72h" => self.breach(&mut result)?,
            other => {
                result.status = Status::Gap;
                result.finding = format!("unknown check `{other}` (a catalog error)");
            }
        }
        Ok(result)
    }

    /// Evidence when the query matches in the period; a gap naming the last event otherwise.
    fn presence(&self, result: &mut CheckResult, query: &str, what: &str) -> Result<(), Error> {
        let found = self.count(&result.check, query)?;
        if found.count > 0 {
            result.finding = format!("{} {what} in the period and scope", found.count);
        } else {
            result.status = Status::Gap;
            result.finding = match self.newest_before_end(&result.check, query)? {
                Some(last) => format!(
                    "no {what} in {} since {}",
                    self.request.scope.label(),
                    last.to_rfc3339()
                ),
                None => format!("no {what} in {} ever stored", self.request.scope.label()),
            };
        }
        result.queries.push(found);
        Ok(())
    }

    /// [`Context::presence`] for crowsnest's own records (its self-audit stream), which belong to
    /// no cluster: the scope does not apply.
    fn presence_unscoped(
        &self,
        result: &mut CheckResult,
        query: &str,
        what: &str,
    ) -> Result<(), Error> {
        let found = self.find(&result.check, query, false, self.period(), SAMPLE, 0)?;
        if found.evidence.count > 0 {
            result.finding = format!("{} {what} in the period", found.evidence.count);
        } else {
            result.status = Status::Gap;
            result.finding = self.none_since(&result.check, query, what)?;
        }
        result.queries.push(found.evidence);
        Ok(())
    }

    /// A gap's finding: "no {what} since <the last one before the period's end>", or "ever".
    fn none_since(&self, check: &str, query: &str, what: &str) -> Result<String, Error> {
        let last = self.find(check, query, false, (None, Some(self.request.to)), 1, 0)?;
        Ok(
            match last.hits.first().and_then(|h| ts(field(h, "@timestamp"))) {
                Some(last) => format!("no {what} since {}", last.to_rfc3339()),
                None => format!("no {what} ever stored"),
            },
        )
    }

    /// Integrity verification runs of crowsnest's own storage (the server's, at start and every
    /// `[integrity] verify_interval_secs`, and operators' through the API): evidence when runs
    /// in the period passed, a violation when one failed, a gap when none ran. Not scoped: the
    /// chain covers the whole store, not a cluster.
    fn integrity(&self, result: &mut CheckResult) -> Result<(), Error> {
        let what = "integrity verification runs (`crowsnest verify`, the server's periodic check)";
        let runs = self.find(&result.check, INTEGRITY, false, self.period(), SAMPLE, 0)?;
        if runs.evidence.count == 0 {
            result.status = Status::Gap;
            result.finding = self.none_since(&result.check, INTEGRITY, what)?;
            result.queries.push(runs.evidence);
            return Ok(());
        }
        let failed_query = format!("{INTEGRITY} AND event.outcome:failure");
        let failed = self.find(
            &result.check,
            &failed_query,
            false,
            self.period(),
            SAMPLE,
            0,
        )?;
        result
            .figures
            .insert("runs".into(), json!(runs.evidence.count));
        result
            .figures
            .insert("failed".into(), json!(failed.evidence.count));
        if failed.evidence.count > 0 {
            result.status = Status::Violation;
            let first = failed
                .hits
                .first()
                .map(|h| field(h, "message").as_str().unwrap_or_default().to_string())
                .unwrap_or_default();
            result.finding = format!(
                "{} of {} {what} failed; the newest: {first}",
                failed.evidence.count, runs.evidence.count
            );
        } else {
            let newest = runs
                .hits
                .first()
                .and_then(|h| ts(field(h, "@timestamp")))
                .map(|t| t.to_rfc3339())
                .unwrap_or_default();
            result.finding = format!(
                "{} {what} in the period, all passed (the newest at {newest})",
                runs.evidence.count
            );
        }
        result.queries.push(runs.evidence);
        result.queries.push(failed.evidence);
        Ok(())
    }

    /// The settings of the containers started in the period: a violation when some broke the
    /// recommendation (naming up to five), evidence when none did, a gap when no container
    /// start with its settings was seen.
    fn docker_setting(
        &self,
        result: &mut CheckResult,
        setting: &DockerSetting,
    ) -> Result<(), Error> {
        let starts = self.count(&result.check, DOCKER_STARTS)?;
        if starts.count == 0 {
            self.presence(
                result,
                DOCKER_STARTS,
                "Docker container starts with their settings (the agent's Docker events)",
            )?;
            return Ok(());
        }
        let query = format!("{DOCKER_STARTS} AND ({})", setting.condition);
        let found = self.find(&result.check, &query, true, self.period(), 50, 0)?;
        let mut names: Vec<String> = found
            .hits
            .iter()
            .filter_map(|h| {
                field(h, "container.name")
                    .as_str()
                    .or_else(|| field(h, "container.id").as_str())
                    .map(str::to_string)
            })
            .collect();
        names.sort();
        names.dedup();
        names.truncate(SAMPLE);
        result
            .figures
            .insert("container starts".into(), json!(starts.count));
        result.figures.insert(
            "breaking the recommendation".into(),
            json!(found.evidence.count),
        );
        if found.evidence.count > 0 {
            result.status = Status::Violation;
            result.finding = format!(
                "{} of {} container starts were {}: {}",
                found.evidence.count,
                starts.count,
                setting.what,
                names.join(", ")
            );
        } else {
            result.finding = format!(
                "none of {} container starts in the period was {}",
                starts.count, setting.what
            );
        }
        result.queries.push(starts);
        result.queries.push(found.evidence);
        Ok(())
    }

    /// A gap when there is no Kubernetes audit in the period (the query is recorded).
    fn needs_audit(&self, result: &mut CheckResult) -> Result<bool, Error> {
        let audit = self.count(&result.check, K8S_AUDIT)?;
        let present = audit.count > 0;
        if !present {
            self.presence(result, K8S_AUDIT, "Kubernetes audit events")?;
        } else {
            result.queries.push(audit);
        }
        Ok(present)
    }

    fn anonymous(&self, result: &mut CheckResult) -> Result<(), Error> {
        if !self.needs_audit(result)? {
            return Ok(());
        }
        let query =
            format!("{K8S_AUDIT} AND user.name:system\\:anonymous AND event.outcome:success");
        let found = self.count(&result.check, &query)?;
        if found.count > 0 {
            result.status = Status::Violation;
            result.finding = format!(
                "{} requests by system:anonymous succeeded (access without identity)",
                found.count
            );
        } else {
            result.finding =
                "every successful API request carried an identity (no system:anonymous)".into();
        }
        result.queries.push(found);
        Ok(())
    }

    fn denied(&self, result: &mut CheckResult) -> Result<(), Error> {
        if !self.needs_audit(result)? {
            return Ok(());
        }
        let found = self.count(
            &result.check,
            &format!("{K8S_AUDIT} AND event.outcome:failure"),
        )?;
        result.finding = format!(
            "failed and denied API requests are recorded: {} in the period",
            found.count
        );
        result.queries.push(found);
        Ok(())
    }

    fn changes(&self, result: &mut CheckResult) -> Result<(), Error> {
        if !self.needs_audit(result)? {
            return Ok(());
        }
        let mut parts = Vec::new();
        for (kind, resources) in CHANGE_KINDS {
            let found = self.count(
                &result.check,
                &format!("{K8S_AUDIT} AND {CHANGE_VERBS} AND {resources}"),
            )?;
            parts.push(format!("{kind} {}", found.count));
            result.figures.insert(kind.to_string(), json!(found.count));
            result.queries.push(found);
        }
        result.finding = format!(
            "changes tracked from the audit stream: {}",
            parts.join(", ")
        );
        Ok(())
    }

    fn completeness(&self, result: &mut CheckResult) -> Result<(), Error> {
        if !self.needs_audit(result)? {
            return Ok(());
        }
        let total = result.queries.last().map_or(0, |q| q.count);
        let mut missing = Vec::new();
        for (name, clause) in REQUIRED_FIELDS {
            let found = self.count(&result.check, &format!("{K8S_AUDIT} AND {clause}"))?;
            result
                .figures
                .insert(format!("missing {name}"), json!(found.count));
            if found.count > 0 {
                missing.push(format!("{name} in {}", found.count));
            }
            result.queries.push(found);
        }
        if missing.is_empty() {
            result.finding = format!(
                "all {total} audit records carry user, time, action, outcome, origin and object"
            );
        } else {
            result.status = Status::Violation;
            result.finding = format!(
                "of {total} audit records, some lack a required field: {}",
                missing.join(", ")
            );
        }
        Ok(())
    }

    fn retention(&self, result: &mut CheckResult) -> Result<(), Error> {
        let config = self.inputs.config;
        let store = self.inputs.store.config();
        let required = config.retention_required_days;
        result
            .figures
            .insert("required days".into(), json!(required));
        result.figures.insert(
            "immediately available days required".into(),
            json!(config.immediately_available_days),
        );
        result.figures.insert(
            "store.retention_max_age_hours".into(),
            json!(store.retention_max_age_hours),
        );
        result.figures.insert(
            "store.retention_max_bytes".into(),
            json!(store.retention_max_bytes),
        );
        let per_source = self.per_dataset(&result.check, (None, Some(self.request.to)), true)?;
        let mut oldest_overall: Option<DateTime<Utc>> = None;
        for (dataset, count, oldest) in &per_source {
            result.figures.insert(
                format!("oldest searchable: {dataset}"),
                json!({"events": count, "oldest": oldest}),
            );
            if let Some(t) = oldest {
                oldest_overall = Some(oldest_overall.map_or(*t, |o: DateTime<Utc>| o.min(*t)));
            }
        }
        let history_days = oldest_overall.map(|o| (self.request.to - o).num_days());
        let configured_days = store.retention_max_age_hours.map(|h| h / 24);
        match (configured_days, history_days) {
            (Some(days), _) if days < required => {
                result.status = Status::Violation;
                result.finding = format!(
                    "store.retention_max_age_hours keeps {days} days, fewer than the {required} required"
                );
            }
            (_, None) => {
                result.status = Status::Gap;
                result.finding = "no searchable events at all".into();
            }
            (configured, Some(history)) => {
                let kept = configured.map_or("no age limit".to_string(), |d| format!("{d} days"));
                let bytes = if store.retention_max_bytes.is_some() {
                    " (a size limit is also set: check it holds the required history)"
                } else {
                    ""
                };
                result.finding = format!(
                    "retention keeps {kept}{bytes}; the oldest searchable event is {history} days before the period end, all of it immediately searchable"
                );
            }
        }
        Ok(())
    }

    fn silent(&mut self, result: &mut CheckResult) -> Result<(), Error> {
        let sources = self.sources()?;
        let window = TimeDelta::hours(
            i64::try_from(self.inputs.config.silent_after_hours).unwrap_or(i64::MAX / 3600),
        );
        let cutoff = self.request.to - window;
        result.queries.push(QueryEvidence {
            query: self.stats_text(),
            from: Some(self.request.from),
            to: Some(self.request.to),
            count: sources.iter().map(|s| s.events).sum(),
            sample_ids: Vec::new(),
        });
        if sources.is_empty() {
            result.status = Status::Gap;
            result.finding = format!("no events at all in {}", self.request.scope.label());
            return Ok(());
        }
        let mut silent = Vec::new();
        // crowsnest's own records (alerts, incident actions) come when something happens;
        // silence is only a finding for the sources that ship events.
        for source in sources
            .iter()
            .filter(|s| !s.dataset.starts_with("crowsnest."))
        {
            if source.newest.is_some_and(|n| n < cutoff) {
                let since = source.newest.map(|n| n.to_rfc3339()).unwrap_or_default();
                silent.push(format!("{} silent since {since}", source.dataset));
                result.figures.insert(source.dataset.clone(), json!(since));
            }
        }
        if silent.is_empty() {
            result.finding = format!(
                "all {} sources sent events within the last {} h of the period",
                sources.len(),
                self.inputs.config.silent_after_hours
            );
        } else {
            result.status = Status::Violation;
            result.finding = silent.join("; ");
        }
        Ok(())
    }

    fn skew(&self, result: &mut CheckResult) -> Result<(), Error> {
        let flagged = self.count(&result.check, "crowsnest.timestamp_out_of_range:*")?;
        let sample = self.find(&result.check, "*", true, self.period(), SKEW_SAMPLE, 0)?;
        let limit = self.inputs.config.max_clock_skew_secs;
        let mut worst: i64 = 0;
        let mut over = 0u64;
        let mut measured = 0u64;
        for hit in &sample.hits {
            let (Some(time), Some(ingested)) = (
                ts(field(hit, "@timestamp")),
                ts(field(hit, "event.ingested")),
            ) else {
                continue;
            };
            measured += 1;
            let skew = (ingested - time).num_seconds().abs();
            worst = worst.max(skew);
            if u64::try_from(skew).unwrap_or(0) > limit {
                over += 1;
            }
        }
        result
            .figures
            .insert("events measured".into(), json!(measured));
        result
            .figures
            .insert("largest skew (s)".into(), json!(worst));
        result.figures.insert("over the limit".into(), json!(over));
        let flagged_count = flagged.count;
        result.queries.push(flagged);
        result.queries.push(sample.evidence);
        if measured == 0 {
            result.status = Status::Gap;
            result.finding = "no events with both an event time and an ingest time".into();
        } else if over > 0 || flagged_count > 0 {
            result.status = Status::Violation;
            result.finding = format!(
                "{over} of the newest {measured} events differ from their ingest time by more than {limit} s (largest {worst} s); {flagged_count} events outside the store's time window"
            );
        } else {
            result.finding = format!(
                "the newest {measured} events are within {limit} s of their ingest time (largest {worst} s)"
            );
        }
        Ok(())
    }

    fn scoped_incidents(&self, only: impl Fn(&IncidentFacts) -> bool) -> Vec<&'a IncidentFacts> {
        let mut list: Vec<&IncidentFacts> = self
            .inputs
            .incidents
            .iter()
            .filter(|i| i.opened >= self.request.from && i.opened < self.request.to)
            .filter(|i| self.request.scope.holds(i))
            .filter(|i| only(i))
            .collect();
        list.sort_by(|a, b| a.opened.cmp(&b.opened).then(a.id.cmp(&b.id)));
        list
    }

    /// The first action of `actions` on an incident, from the store, before the period end.
    fn first_action(
        &self,
        result: &mut CheckResult,
        incident: &IncidentFacts,
        actions: &str,
    ) -> Result<Option<DateTime<Utc>>, Error> {
        let query = format!(
            "{INCIDENT_ACTIONS} AND incident.id:{} AND incident.action:({actions})",
            escape(&incident.id)
        );
        let all = self.find(
            &result.check,
            &query,
            false,
            (Some(incident.opened), Some(self.request.to)),
            1,
            0,
        )?;
        let total = all.evidence.count;
        let first = if total > 1 {
            let oldest = self.find(
                &result.check,
                &query,
                false,
                (Some(incident.opened), Some(self.request.to)),
                1,
                usize::try_from(total - 1).unwrap_or(0),
            )?;
            oldest.hits.first().and_then(|h| ts(field(h, "@timestamp")))
        } else {
            all.hits.first().and_then(|h| ts(field(h, "@timestamp")))
        };
        result.queries.push(all.evidence);
        Ok(first)
    }

    fn incidents(&self, result: &mut CheckResult) -> Result<(), Error> {
        let limit = TimeDelta::hours(
            i64::try_from(self.inputs.config.incident_ack_hours).unwrap_or(i64::MAX / 3600),
        );
        let incidents = self.scoped_incidents(|_| true);
        result
            .figures
            .insert("incidents opened".into(), json!(incidents.len()));
        if incidents.is_empty() {
            result.finding = "no incidents opened in the period and scope".into();
            return Ok(());
        }
        let mut late = Vec::new();
        let mut handled_hours = Vec::new();
        for incident in incidents.iter().take(MAX_INCIDENTS) {
            let first =
                self.first_action(result, incident, "acknowledge OR investigate OR resolve")?;
            let figure = match first {
                Some(at) => {
                    let took = at - incident.opened;
                    handled_hours.push(hours(took));
                    if took > limit {
                        late.push(format!("{} handled after {} h", incident.id, hours(took)));
                    }
                    json!({"opened": incident.opened, "first_handled": at, "hours": hours(took)})
                }
                None => {
                    let waiting = self.request.to - incident.opened;
                    if waiting > limit {
                        late.push(format!(
                            "{} not handled {} h after it opened",
                            incident.id,
                            hours(waiting)
                        ));
                    }
                    json!({"opened": incident.opened, "first_handled": null, "status": incident.status})
                }
            };
            result.figures.insert(incident.id.clone(), figure);
        }
        let slowest = handled_hours.iter().copied().fold(0.0_f64, f64::max);
        let examined = incidents.len().min(MAX_INCIDENTS);
        if late.is_empty() {
            let waiting = examined - handled_hours.len();
            result.finding = format!(
                "{} incidents: {} handled within {} h (slowest {slowest} h){}",
                incidents.len(),
                handled_hours.len(),
                self.inputs.config.incident_ack_hours,
                if waiting > 0 {
                    format!(
                        ", {waiting} not yet handled and still within the limit at the period end"
                    )
                } else {
                    String::new()
                }
            );
        } else {
            result.status = Status::Violation;
            result.finding = format!(
                "{} of {} incidents not handled within {} h: {}",
                late.len(),
                incidents.len(),
                self.inputs.config.incident_ack_hours,
                late.join("; ")
            );
        }
        if incidents.len() > MAX_INCIDENTS {
            result
                .finding
                .push_str(&format!(" (the first {MAX_INCIDENTS} examined one by one)"));
        }
        Ok(())
    }

    fn breach(&self, result: &mut CheckResult) -> Result<(), Error> {
        let namespaces = &self.inputs.config.personal_data_namespaces;
        if namespaces.is_empty() {
            result.status = Status::Gap;
            result.finding = "no namespace is marked as holding personal data (compliance.personal_data_namespaces): the 72-hour clock cannot be tracked".into();
            return Ok(());
        }
        let incidents =
            self.scoped_incidents(|i| i.namespace.as_ref().is_some_and(|n| namespaces.contains(n)));
        result.figures.insert(
            "incidents touching personal data".into(),
            json!(incidents.len()),
        );
        let clock = TimeDelta::hours(72);
        let mut late = Vec::new();
        for incident in incidents.iter().take(MAX_INCIDENTS) {
            let deadline = incident.opened + clock;
            let resolved = self.first_action(result, incident, "resolve")?;
            let over = match resolved {
                Some(at) => at > deadline,
                None => self.request.to > deadline,
            };
            if over {
                late.push(incident.id.clone());
            }
            result.figures.insert(
                incident.id.clone(),
                json!({"opened": incident.opened, "deadline": deadline, "resolved": resolved, "past_deadline": over}),
            );
        }
        if late.is_empty() {
            result.finding = format!(
                "{} incidents touched personal data; each was resolved (or is still) within 72 h of opening; the notification itself is attested",
                incidents.len()
            );
        } else {
            result.status = Status::Violation;
            result.finding = format!(
                "incidents touching personal data ran past the 72-hour clock unresolved: {}",
                late.join(", ")
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_query_values() {
        assert_eq!(escape("inc-01ab"), "inc\\-01ab");
        assert_eq!(escape("kubernetes.audit"), "kubernetes.audit");
        assert_eq!(escape("a:b c"), "a\\:b\\ c");
    }
}
