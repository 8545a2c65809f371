//! A generator of realistic Kubernetes cluster activity, with an attack woven in, for
//! `crowsnest demo` (something to search right away), `crowsnest bench` and the criterion
//! benches (a representative corpus of any size) and the tests that need realistic traffic.
//!
//! [`Generator`] is an infinite iterator of [`Generated`] records describing a small cluster
//! over time: three nodes, six namespaces (`prod`, `staging`, `payments`, `kube-system`,
//! `monitoring`, `default`) and 28 pods of 17 workloads (nginx, Go and Spring services,
//! PostgreSQL, Redis, CoreDNS, kube-proxy, Prometheus, Grafana, ...). By count the stream is
//! about
//!
//! * 45 % Kubernetes API-server audit events ([`Generated::K8sAudit`], one `audit.k8s.io/v1`
//!   `Event`, as kube-apiserver's audit webhook sends them): controllers' and kubelets'
//!   get/list/watch/update dominate, people are a thin slice, creates of pods and
//!   RoleBindings carry their `requestObject`;
//! * 40 % container logs ([`Generated::Ndjson`] with source `container_logs`): ECS JSON with
//!   `message` in each program's real format, `log.level`, `stream`, `container.*` and
//!   `kubernetes.*`; mostly nginx 200s and `info`, with a 4xx/5xx and error tail;
//! * 15 % process executions ([`Generated::Ndjson`] with source `auditd`): ECS
//!   `event.category: [process]` with `process.*`, `container.*`, `host.name`.
//!
//! With [`GenConfig::attacks`] the nine steps of an intrusion (anonymous secret listing, a
//! stolen service-account token used from outside, a cluster-admin binding, a privileged
//! escape pod, `kubectl exec` into payments, `/etc/shadow`, a reverse shell, `curl | sh`, a
//! miner) are inserted at deterministic points: the first after 1,000 events, the next every
//! 3,000 to 5,000 events, all nine within the first 50,000 and then again, in a loop.
//! [`attack_queries`] returns one query per step; the tests check that each query matches its
//! step and nothing benign. The attack addresses are documentation ranges (RFC 5737).
//!
//! Invariants:
//! * **Deterministic**: the same [`GenConfig`] gives the same stream, byte for byte, on every
//!   platform and release (the PRNG is our own xoshiro256++, see `rng.rs`).
//! * **Time only moves forward**: each record's time (`requestReceivedTimestamp` or
//!   `@timestamp`) is at or after the previous one's. Arrivals are a Poisson process at
//!   [`GenConfig::events_per_second`] of event time, starting at [`GenConfig::start`].
//! * **Consistent**: logs, processes and audit events refer to the same pods, uids,
//!   container ids, nodes and IPs.
//! * **Cheap, but not free**: the cost is building `serde_json::Value` trees (about 78
//!   allocations per record: one per key, string and map). Per-pod envelopes are prepared
//!   once and cloned, maps are allocated at their final size, timestamps are formatted by
//!   hand. Measured in a release build on the shared 2-vCPU development VM (2026-11, load
//!   3 to 6): 110k to 185k records per wall-clock second, about 120k per CPU-second; on
//!   that machine cloning a generated record already costs more than generating it.
//!
//! ```ignore
//! use crowsnest_gen::{GenConfig, Generated, Generator};
//! let config = GenConfig { seed: 7, start: Utc::now(), events_per_second: 500.0, attacks: true };
//! for record in Generator::new(config).take(10_000) {
//!     match record {
//!         Generated::K8sAudit(event) => { /* POST to /api/v1/ingest/k8s-audit */ }
//!         Generated::Ndjson { source, line } => { /* POST to /api/v1/ingest/ndjson?source=... */ }
//!     }
//! }
//! ```

mod activity;
mod actors;
mod attacks;
mod audit;
mod cluster;
mod logs;
mod objects;
mod process;
mod record;
mod rng;
mod text;

#[cfg(test)]
mod e2e_tests;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use rand::Rng;

pub use attacks::attack_queries;
pub use record::Generated;

use attacks::{Attack, ATTACKS};
use cluster::{Cluster, Pod};
use rng::Rand;

/// Share of audit events, in percent of all records.
const AUDIT_PERCENT: u32 = 45;
/// Share of container log lines, in percent of all records.
const LOG_PERCENT: u32 = 40;
/// Events before the first attack step.
const FIRST_ATTACK_AT: u64 = 1_000;
/// Events between two attack steps (uniform in this range).
const ATTACK_SPACING: std::ops::Range<u64> = 3_000..5_000;
/// The rate used when [`GenConfig::events_per_second`] is not a positive finite number.
const FALLBACK_RATE: f64 = 100.0;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenConfig {
    /// Seed of the stream: equal seeds (and other fields) give equal streams.
    pub seed: u64,
    /// Event time of the first record.
    pub start: DateTime<Utc>,
    /// Average records per second of *event time* (not of wall-clock generation speed).
    /// A value that is not a positive finite number is replaced by 100.
    pub events_per_second: f64,
    /// Whether to weave the attack scenario into the stream.
    pub attacks: bool,
}

/// A pod's prepared JSON envelopes: of its log events and of its process events.
fn envelopes(pod: &Pod) -> (serde_json::Value, serde_json::Value) {
    (logs::template(pod), process::template(pod))
}

/// The infinite, deterministic stream of cluster activity; see the [module docs](self).
#[derive(Debug)]
pub struct Generator {
    rng: Rand,
    /// Separate stream for the attack steps, so they do not shift the benign draws.
    attack_rng: Rand,
    cluster: Cluster,
    start_micros: i64,
    elapsed_micros: f64,
    mean_gap_micros: f64,
    emitted: u64,
    attacks: bool,
    next_attack_at: u64,
    next_attack: usize,
    pending: VecDeque<(Attack, usize)>,
}

impl Generator {
    /// Creates the generator: instantiates the cluster from the seed and positions the clock
    /// at `config.start`.
    pub fn new(config: GenConfig) -> Self {
        let mut rng = Rand::seed_from_u64(config.seed);
        let attack_rng = Rand::seed_from_u64(config.seed ^ 0xA77A_C4ED_5EED_0001);
        let cluster = Cluster::new(&mut rng, envelopes);
        let rate = if config.events_per_second.is_finite() && config.events_per_second > 0.0 {
            config.events_per_second
        } else {
            FALLBACK_RATE
        };
        Self {
            rng,
            attack_rng,
            cluster,
            start_micros: config.start.timestamp_micros(),
            elapsed_micros: 0.0,
            mean_gap_micros: 1e6 / rate,
            emitted: 0,
            attacks: config.attacks,
            next_attack_at: FIRST_ATTACK_AT,
            next_attack: 0,
            pending: VecDeque::new(),
        }
    }

    /// Advances the clock by an exponential gap (Poisson arrivals) and returns the new time in
    /// microseconds since the epoch. The first record is exactly at the start time.
    fn tick(&mut self) -> i64 {
        if self.emitted > 0 {
            // 1 - u is in (0, 1], so the logarithm is finite.
            let u: f64 = self.rng.gen();
            self.elapsed_micros += -(1.0 - u).ln() * self.mean_gap_micros;
        }
        self.start_micros.saturating_add(self.elapsed_micros as i64)
    }

    /// Queues the next attack step when its turn has come.
    fn schedule_attack(&mut self) {
        if !self.attacks || !self.pending.is_empty() || self.emitted < self.next_attack_at {
            return;
        }
        let attack = ATTACKS[self.next_attack % ATTACKS.len()];
        for part in 0..attack.parts() {
            self.pending.push_back((attack, part));
        }
        self.next_attack += 1;
        self.next_attack_at = self.emitted + self.attack_rng.gen_range(ATTACK_SPACING);
    }

    /// One benign record of the mix.
    fn benign(&mut self, micros: i64) -> Generated {
        let roll = self.rng.gen_range(0..100u32);
        if roll < AUDIT_PERCENT {
            return Generated::K8sAudit(activity::event(&mut self.rng, &self.cluster, micros));
        }
        if roll < AUDIT_PERCENT + LOG_PERCENT {
            let pod = self.cluster.pod_for_logs(&mut self.rng);
            return Generated::Ndjson {
                source: logs::DATASET,
                line: logs::event(&mut self.rng, pod, micros),
            };
        }
        let pod = self.cluster.pod_for_exec(&mut self.rng);
        Generated::Ndjson {
            source: process::DATASET,
            line: process::event(&mut self.rng, pod, micros),
        }
    }
}

impl Iterator for Generator {
    type Item = Generated;

    /// Never returns `None`.
    fn next(&mut self) -> Option<Generated> {
        let micros = self.tick();
        self.schedule_attack();
        self.emitted += 1;
        if let Some((attack, part)) = self.pending.pop_front() {
            return Some(attack.build(part, &mut self.attack_rng, &self.cluster, micros));
        }
        Some(self.benign(micros))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (usize::MAX, None)
    }
}
