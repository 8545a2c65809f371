//! The durable outbox: notifications waiting for their channel, the ledger of dedup keys
//! already delivered, and one worker thread per channel.
//!
//! # Files
//! `<data-dir>/notify/outbox.jsonl`, one JSON record per line, appended and fsynced before
//! [`Outbox::offer`] returns: `add` (a notification for a channel), `merge` (an `updated`
//! change folded into a waiting one), `done` (delivered, or given up), `ledger` (a key
//! delivered before the last compaction). On open the file is read back (a torn last line is
//! ignored) and rewritten with only the waiting notifications and the ledger, pruned to
//! `ledger_keep_days` and `ledger_max_keys`.
//!
//! # Order and pacing
//! A channel's worker sends its notifications oldest first, and never a change of an incident
//! before an earlier change of the same incident is delivered or given up. A channel sends at
//! most `rate_per_minute` (bursts of up to 5); `updated` notifications of one incident at most
//! once per `update_interval_secs`. A failure is retried after a jittered, doubling delay, or
//! after the receiver's `Retry-After`; a notification older than `max_age_secs` is given up
//! with an error in the log and in the channel's status, never silently.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::config::{Channel, NotifyConfig};
use crate::send::{Failure, Sender};
use crate::{ChangeKind, Notice};

/// The journal's file name in the outbox directory.
pub const JOURNAL: &str = "outbox.jsonl";

/// The longest `Retry-After` honoured as given.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// A channel's delivery figures, for the API, health and metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ChannelStatus {
    /// The channel's name.
    pub name: String,
    /// Its kind.
    pub kind: String,
    /// Notifications waiting.
    pub pending: usize,
    /// Delivered since the start.
    pub delivered: u64,
    /// Given up since the start (too old, or refused by the receiver).
    pub failed: u64,
    /// Failed attempts since the start (each retried later).
    pub retries: u64,
    /// Failed attempts in a row (0 after a delivery).
    pub consecutive_failures: u64,
    /// The last failure.
    pub last_error: Option<String>,
    /// When it happened.
    pub last_error_at: Option<DateTime<Utc>>,
    /// The last delivery.
    pub last_delivery_at: Option<DateTime<Utc>>,
    /// When the oldest waiting notification was made.
    pub oldest_pending: Option<DateTime<Utc>>,
}

/// Why the outbox cannot open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The settings are wrong.
    #[error(transparent)]
    Config(#[from] crate::ConfigError),
    /// The journal cannot be read or written.
    #[error("notify outbox `{path}`: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// A channel's client cannot be built (its TLS settings).
    #[error("notify: channel {channel:?}: {reason}")]
    Channel {
        /// The channel.
        channel: String,
        /// Why.
        reason: String,
    },
}

/// A notification for one channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Item {
    seq: u64,
    channel: String,
    /// The delivery's idempotency key (the first key; `webhook-id`).
    id: String,
    /// Every dedup key folded into it.
    keys: Vec<String>,
    notice: Notice,
    created: DateTime<Utc>,
    #[serde(skip)]
    attempts: u32,
    #[serde(skip)]
    not_before: Option<Instant>,
    #[serde(skip)]
    inflight: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Record {
    Add {
        item: Box<Item>,
    },
    Merge {
        seq: u64,
        key: String,
        notice: Box<Notice>,
    },
    Done {
        seq: u64,
        at: i64,
        delivered: bool,
    },
    Ledger {
        channel: String,
        key: String,
        at: i64,
    },
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

struct State {
    items: BTreeMap<u64, Item>,
    /// `channel\0key` → the waiting item that holds the key.
    held: HashMap<String, u64>,
    /// `channel\0incident` → its waiting `updated` item (the one later updates fold into).
    waiting_update: HashMap<String, u64>,
    /// Waiting items per channel.
    counts: HashMap<String, usize>,
    next_seq: u64,
    /// `channel\0key` → when it was delivered or given up (unix seconds).
    ledger: HashMap<String, i64>,
    /// (channel, incident) pairs a notification went or goes to: stateful kinds follow up.
    notified: HashSet<(String, String)>,
    /// (channel, incident) → the last delivery, for `update_interval_secs`.
    last_sent: HashMap<(String, String), Instant>,
    buckets: HashMap<String, Bucket>,
    status: BTreeMap<String, ChannelStatus>,
    journal: File,
    records: usize,
    deduplicated: u64,
}

struct Inner {
    config: NotifyConfig,
    channels: Vec<Channel>,
    path: PathBuf,
    state: Mutex<State>,
    wake: Condvar,
    stop: AtomicBool,
}

/// The outbox and its channel workers. Dropping it stops the workers (after their current
/// attempt); waiting notifications stay in the journal for the next start.
pub struct Outbox {
    inner: Arc<Inner>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

fn ledger_key(channel: &str, key: &str) -> String {
    format!("{channel}\0{key}")
}

fn incident_of(key: &str) -> &str {
    key.split(':').next().unwrap_or(key)
}

impl Outbox {
    /// Validates `config`, reads the journal in `dir` and starts one worker per channel.
    /// `None` when no channel is configured.
    ///
    /// # Errors
    ///
    /// A configuration problem (which channel or route, which field, why) or an unreadable or
    /// unwritable journal.
    pub fn open(config: NotifyConfig, dir: &Path) -> Result<Option<Arc<Self>>, OpenError> {
        let channels = config.validate()?;
        if channels.is_empty() {
            return Ok(None);
        }
        let io = |source| OpenError::Io {
            path: dir.join(JOURNAL),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let path = dir.join(JOURNAL);
        let mut senders = Vec::new();
        for channel in &channels {
            let sender = Sender::new(channel).map_err(|reason| OpenError::Channel {
                channel: channel.name.clone(),
                reason,
            })?;
            senders.push(sender);
        }
        let (items, ledger) = load(&path).map_err(io)?;
        let mut status = BTreeMap::new();
        for channel in &channels {
            status.insert(
                channel.name.clone(),
                ChannelStatus {
                    name: channel.name.clone(),
                    kind: channel.kind.as_str().into(),
                    ..ChannelStatus::default()
                },
            );
        }
        let journal = File::options()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        let next_seq = items.keys().next_back().map_or(0, |s| s + 1);
        let mut state = State {
            items: BTreeMap::new(),
            held: HashMap::new(),
            waiting_update: HashMap::new(),
            counts: HashMap::new(),
            next_seq,
            ledger,
            notified: HashSet::new(),
            last_sent: HashMap::new(),
            buckets: HashMap::new(),
            status,
            journal,
            records: 0,
            deduplicated: 0,
        };
        // Notifications for channels no longer configured are dropped, with a word.
        let names: HashSet<&str> = channels.iter().map(|c| c.name.as_str()).collect();
        let mut orphans = 0;
        for item in items.into_values() {
            if names.contains(item.channel.as_str()) {
                state.insert(item);
            } else {
                orphans += 1;
            }
        }
        if orphans > 0 {
            tracing::warn!(
                notifications = orphans,
                "notifications for channels no longer configured are dropped"
            );
        }
        let inner = Arc::new(Inner {
            config,
            channels,
            path,
            state: Mutex::new(state),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        inner.compact(&mut inner.lock()).map_err(io)?;
        let mut workers = Vec::new();
        for (channel, sender) in inner.channels.clone().into_iter().zip(senders) {
            let worker = inner.clone();
            let handle = std::thread::Builder::new()
                .name(format!("notify-{}", channel.name))
                .spawn(move || worker.run(&channel, &sender))
                .map_err(io)?;
            workers.push(handle);
        }
        Ok(Some(Arc::new(Self {
            inner,
            workers: Mutex::new(workers),
        })))
    }

    /// Queues `notice` for every channel a route (or, for stateful kinds, an earlier
    /// notification of the incident) sends it to, unless the channel already holds or has
    /// delivered its key. Durable when it returns (the journal is fsynced); a journal that
    /// cannot be written is logged and the notification kept in memory.
    pub fn offer(&self, notice: &Notice) {
        let inner = &self.inner;
        let mut targets: BTreeSet<&str> = BTreeSet::new();
        for route in &inner.config.routes {
            if route.matches(notice) {
                targets.extend(route.channels.iter().map(String::as_str));
            }
        }
        let mut state = inner.lock();
        if matches!(
            notice.change,
            ChangeKind::Acknowledged | ChangeKind::Investigating | ChangeKind::Resolved
        ) {
            for channel in inner.channels.iter().filter(|c| c.kind.is_stateful()) {
                let pair = (channel.name.clone(), notice.incident.id.clone());
                if state.notified.contains(&pair) {
                    targets.insert(channel.name.as_str());
                }
            }
        }
        if notice.change == ChangeKind::ApprovalNeeded {
            // A paging system gets the approval on the alert it already holds for the
            // incident (a note, a folded trigger), never as a new alert of its own.
            for channel in inner.channels.iter().filter(|c| c.kind.is_stateful()) {
                let pair = (channel.name.clone(), notice.incident.id.clone());
                if !state.notified.contains(&pair) {
                    targets.remove(channel.name.as_str());
                }
            }
        }
        if targets.is_empty() {
            return;
        }
        let now = Utc::now();
        let mut records = Vec::new();
        for channel in targets {
            let key = ledger_key(channel, &notice.key);
            if state.ledger.contains_key(&key) || state.held.contains_key(&key) {
                state.deduplicated += 1;
                continue;
            }
            let waiting = (notice.change == ChangeKind::Updated)
                .then(|| {
                    let seq = *state
                        .waiting_update
                        .get(&ledger_key(channel, &notice.incident.id))?;
                    state.items.get_mut(&seq).filter(|i| !i.inflight)
                })
                .flatten();
            if let Some(item) = waiting {
                item.keys.push(notice.key.clone());
                item.notice = notice.clone();
                let seq = item.seq;
                records.push(Record::Merge {
                    seq,
                    key: notice.key.clone(),
                    notice: Box::new(notice.clone()),
                });
                state.held.insert(key, seq);
                continue;
            }
            let seq = state.next_seq;
            state.next_seq += 1;
            let item = Item {
                seq,
                channel: channel.to_string(),
                id: notice.key.clone(),
                keys: vec![notice.key.clone()],
                notice: notice.clone(),
                created: now,
                attempts: 0,
                not_before: None,
                inflight: false,
            };
            state
                .notified
                .insert((channel.to_string(), notice.incident.id.clone()));
            records.push(Record::Add {
                item: Box::new(item.clone()),
            });
            state.insert(item);
            // Bounded: past `max_pending` waiting for one channel, its oldest is given up.
            if state.counts.get(channel).copied().unwrap_or(0) > inner.config.max_pending.max(1) {
                let oldest = state
                    .items
                    .values()
                    .find(|i| i.channel == channel && !i.inflight)
                    .map(|i| i.seq);
                let dropped = oldest.and_then(|oldest| {
                    inner.drop_item(&mut state, channel, oldest, "more than max_pending waiting")
                });
                records.extend(dropped);
            }
        }
        if records.is_empty() {
            return;
        }
        inner.append(&mut state, &records);
        drop(state);
        inner.wake.notify_all();
    }

    /// Each channel's figures, by name.
    pub fn status(&self) -> Vec<ChannelStatus> {
        let state = self.inner.lock();
        let mut out: Vec<ChannelStatus> = state.status.values().cloned().collect();
        for status in &mut out {
            let waiting = state.items.values().filter(|i| i.channel == status.name);
            status.pending = 0;
            status.oldest_pending = None;
            for item in waiting {
                status.pending += 1;
                status.oldest_pending = Some(
                    status
                        .oldest_pending
                        .map_or(item.created, |o| o.min(item.created)),
                );
            }
        }
        out
    }

    /// Changes recognised as already held or delivered (replays after a restart).
    pub fn deduplicated(&self) -> u64 {
        self.inner.lock().deduplicated
    }

    /// Channels that keep failing (three failed attempts in a row, or given-up notifications
    /// and nothing delivered since), as (channel, message, since).
    pub fn problems(&self) -> Vec<(String, String, DateTime<Utc>)> {
        self.status()
            .into_iter()
            .filter(|s| s.consecutive_failures >= 3)
            .map(|s| {
                let message = format!(
                    "notifications failing ({} failed attempts in a row, {} waiting, {} given up): {}",
                    s.consecutive_failures,
                    s.pending,
                    s.failed,
                    s.last_error.as_deref().unwrap_or("-")
                );
                let since = s
                    .last_delivery_at
                    .or(s.oldest_pending)
                    .or(s.last_error_at)
                    .unwrap_or_else(Utc::now);
                (s.name, message, since)
            })
            .collect()
    }

    /// Prometheus text of the outbox's figures.
    pub fn metrics_text(&self) -> String {
        let status = self.status();
        let deduplicated = self.deduplicated();
        let mut out = String::new();
        let mut family =
            |name: &str, kind: &str, help: &str, value: &dyn Fn(&ChannelStatus) -> String| {
                out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
                for s in &status {
                    out.push_str(&format!("{name}{{channel=\"{}\"}} {}\n", s.name, value(s)));
                }
            };
        family(
            "crowsnest_notify_pending",
            "gauge",
            "Notifications waiting for their channel.",
            &|s| s.pending.to_string(),
        );
        family(
            "crowsnest_notify_delivered_total",
            "counter",
            "Notifications delivered.",
            &|s| s.delivered.to_string(),
        );
        family(
            "crowsnest_notify_given_up_total",
            "counter",
            "Notifications given up (older than max_age_secs, or refused by the receiver).",
            &|s| s.failed.to_string(),
        );
        family(
            "crowsnest_notify_retries_total",
            "counter",
            "Failed delivery attempts, retried later.",
            &|s| s.retries.to_string(),
        );
        out.push_str(&format!(
            "# HELP crowsnest_notify_deduplicated_total Incident changes recognised as already notified (WAL replay).\n# TYPE crowsnest_notify_deduplicated_total counter\ncrowsnest_notify_deduplicated_total {deduplicated}\n"
        ));
        out
    }

    /// Notifications waiting, over all channels.
    pub fn pending(&self) -> usize {
        self.inner.lock().items.len()
    }

    /// Stops the workers and waits for them (a worker in the middle of an attempt finishes it,
    /// at most its channel's timeout).
    pub fn shutdown(&self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        self.inner.wake.notify_all();
        let workers = std::mem::take(
            &mut *self
                .workers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for worker in workers {
            let _ = worker.join();
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        self.inner.wake.notify_all();
    }
}

impl State {
    fn insert(&mut self, item: Item) {
        for key in &item.keys {
            self.held.insert(ledger_key(&item.channel, key), item.seq);
        }
        if item.notice.change == ChangeKind::Updated {
            self.waiting_update.insert(
                ledger_key(&item.channel, &item.notice.incident.id),
                item.seq,
            );
        }
        *self.counts.entry(item.channel.clone()).or_default() += 1;
        self.items.insert(item.seq, item);
    }

    fn remove(&mut self, seq: u64) -> Option<Item> {
        let item = self.items.remove(&seq)?;
        for key in &item.keys {
            self.held.remove(&ledger_key(&item.channel, key));
        }
        let update = ledger_key(&item.channel, &item.notice.incident.id);
        if self.waiting_update.get(&update) == Some(&seq) {
            self.waiting_update.remove(&update);
        }
        if let Some(count) = self.counts.get_mut(&item.channel) {
            *count = count.saturating_sub(1);
        }
        Some(item)
    }
}

/// Reads the journal back: waiting items and the ledger.
#[allow(clippy::type_complexity)]
fn load(path: &Path) -> std::io::Result<(BTreeMap<u64, Item>, HashMap<String, i64>)> {
    let mut items = BTreeMap::new();
    let mut ledger = HashMap::new();
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((items, ledger)),
        Err(e) => return Err(e),
    };
    let lines: Vec<String> = BufReader::new(file).lines().collect::<Result<_, _>>()?;
    let last = lines.len().saturating_sub(1);
    for (n, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record: Record = match serde_json::from_str(line) {
            Ok(record) => record,
            Err(error) if n == last => {
                tracing::warn!(%error, "torn last record of the notify journal ignored");
                continue;
            }
            Err(error) => {
                tracing::warn!(line = n + 1, %error, "unreadable notify journal record skipped");
                continue;
            }
        };
        match record {
            Record::Add { item } => {
                items.insert(item.seq, *item);
            }
            Record::Merge { seq, key, notice } => {
                if let Some(item) = items.get_mut(&seq) {
                    item.keys.push(key);
                    item.notice = *notice;
                }
            }
            Record::Done { seq, at, .. } => {
                if let Some(item) = items.remove(&seq) {
                    for key in &item.keys {
                        ledger.insert(ledger_key(&item.channel, key), at);
                    }
                }
            }
            Record::Ledger { channel, key, at } => {
                ledger.insert(ledger_key(&channel, &key), at);
            }
        }
    }
    Ok((items, ledger))
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends and fsyncs records; compacts when the journal has grown.
    fn append(&self, state: &mut State, records: &[Record]) {
        let mut bytes = Vec::new();
        for record in records {
            if let Ok(line) = serde_json::to_vec(record) {
                bytes.extend_from_slice(&line);
                bytes.push(b'\n');
            }
        }
        let result = state
            .journal
            .write_all(&bytes)
            .and_then(|()| state.journal.sync_data());
        if let Err(error) = result {
            tracing::error!(%error, path = %self.path.display(), "notify journal not written: notifications are kept in memory only until it works again");
        }
        state.records += records.len();
        if state.records > 10_000 + 2 * (state.items.len() + state.ledger.len()) {
            if let Err(error) = self.compact(state) {
                tracing::error!(%error, "notify journal not compacted");
            }
        }
    }

    /// Rewrites the journal with the waiting items and the pruned ledger.
    fn compact(&self, state: &mut State) -> std::io::Result<()> {
        let now = Utc::now().timestamp();
        let keep =
            i64::try_from(self.config.ledger_keep_days.min(36_500)).unwrap_or(36_500) * 86_400;
        state.ledger.retain(|_, at| now - *at <= keep);
        let max = self.config.ledger_max_keys.max(1);
        if state.ledger.len() > max {
            let mut by_age: Vec<(i64, String)> = state
                .ledger
                .iter()
                .map(|(k, at)| (*at, k.clone()))
                .collect();
            by_age.sort();
            let over = by_age.len() - max;
            for (_, key) in by_age.into_iter().take(over) {
                state.ledger.remove(&key);
            }
        }
        let mut bytes = Vec::new();
        let mut push = |record: &Record| {
            if let Ok(line) = serde_json::to_vec(record) {
                bytes.extend_from_slice(&line);
                bytes.push(b'\n');
            }
        };
        let mut ledger: Vec<(&String, &i64)> = state.ledger.iter().collect();
        ledger.sort();
        for (key, at) in ledger {
            let (channel, key) = key.split_once('\0').unwrap_or(("", key));
            push(&Record::Ledger {
                channel: channel.into(),
                key: key.into(),
                at: *at,
            });
        }
        for item in state.items.values() {
            push(&Record::Add {
                item: Box::new(item.clone()),
            });
        }
        crowsnest_util::write_atomic(&self.path, &bytes)?;
        state.journal = File::options().append(true).open(&self.path)?;
        state.records = 0;
        state.notified = state
            .ledger
            .keys()
            .filter_map(|k| k.split_once('\0'))
            .map(|(c, k)| (c.to_string(), incident_of(k).to_string()))
            .chain(
                state
                    .items
                    .values()
                    .map(|i| (i.channel.clone(), i.notice.incident.id.clone())),
            )
            .collect();
        Ok(())
    }

    /// A channel's worker.
    fn run(&self, channel: &Channel, sender: &Sender) {
        loop {
            let (seq, notice, id) = {
                let mut state = self.lock();
                loop {
                    if self.stop.load(Ordering::SeqCst) {
                        return;
                    }
                    match self.pick(&mut state, channel) {
                        Ok(found) => break found,
                        Err(wait) => {
                            state = self
                                .wake
                                .wait_timeout(state, wait.min(Duration::from_secs(1)))
                                .map_or_else(|e| e.into_inner().0, |(s, _)| s);
                        }
                    }
                }
            };
            let now = Utc::now();
            let result = crate::payload::build(
                channel,
                &notice,
                &id,
                now,
                self.config.public_url.as_deref(),
            )
            .map_err(Failure::Refused)
            .and_then(|payload| sender.send(payload));
            self.settle(channel, seq, result);
        }
    }

    /// The next item `channel` may send now, or how long to wait.
    fn pick(
        &self,
        state: &mut State,
        channel: &Channel,
    ) -> Result<(u64, Notice, String), Duration> {
        let now = Instant::now();
        let wall = Utc::now();
        // At most ten years: chrono's durations end at i64::MAX milliseconds.
        let max_age = chrono::Duration::seconds(
            i64::try_from(self.config.max_age_secs.min(315_360_000)).unwrap_or(315_360_000),
        );
        let interval = Duration::from_secs(self.config.update_interval_secs);
        let mut wait = Duration::from_secs(1);
        let mut blocked: HashSet<String> = HashSet::new();
        let seqs: Vec<u64> = state
            .items
            .values()
            .filter(|i| i.channel == channel.name)
            .map(|i| i.seq)
            .collect();
        // The position of each incident's last waiting item: an `updated` with a later change
        // behind it goes without waiting for the update interval.
        let last_of: HashMap<&str, usize> = seqs
            .iter()
            .enumerate()
            .filter_map(|(n, seq)| Some((state.items.get(seq)?.notice.incident.id.as_str(), n)))
            .collect();
        let mut expired = Vec::new();
        let mut chosen = None;
        for (n, seq) in seqs.iter().enumerate() {
            let Some(item) = state.items.get(seq) else {
                continue;
            };
            let incident = item.notice.incident.id.clone();
            if item.inflight || blocked.contains(&incident) {
                blocked.insert(incident);
                continue;
            }
            if wall - item.created > max_age {
                expired.push(*seq);
                continue;
            }
            blocked.insert(incident.clone());
            if let Some(at) = item.not_before {
                if at > now {
                    wait = wait.min(at - now);
                    continue;
                }
            }
            if item.notice.change == ChangeKind::Updated {
                let later = last_of.get(incident.as_str()).is_some_and(|last| *last > n);
                let last = state
                    .last_sent
                    .get(&(channel.name.clone(), incident.clone()));
                if let Some(last) = last.filter(|_| !later) {
                    let since = now.saturating_duration_since(*last);
                    if since < interval {
                        wait = wait.min(interval - since);
                        continue;
                    }
                }
            }
            chosen = Some(*seq);
            break;
        }
        for seq in expired {
            self.give_up(state, channel, seq, "older than max_age_secs");
        }
        let Some(seq) = chosen else {
            return Err(wait);
        };
        // The channel's rate: a bucket of up to 5 sends, refilled at rate_per_minute.
        let rate = f64::from(channel.rate_per_minute) / 60.0;
        let burst = f64::from(channel.rate_per_minute.clamp(1, 5));
        let bucket = state.buckets.entry(channel.name.clone()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        bucket.tokens = (bucket.tokens
            + now.saturating_duration_since(bucket.at).as_secs_f64() * rate)
            .min(burst);
        bucket.at = now;
        if bucket.tokens < 1.0 {
            return Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate)
                .max(Duration::from_millis(10)));
        }
        bucket.tokens -= 1.0;
        let item = state.items.get_mut(&seq).ok_or(wait)?;
        item.inflight = true;
        item.attempts += 1;
        Ok((seq, item.notice.clone(), item.id.clone()))
    }

    /// Ends an item: given up, with the reason in the log and the status.
    fn give_up(&self, state: &mut State, channel: &Channel, seq: u64, why: &str) {
        if let Some(record) = self.drop_item(state, &channel.name, seq, why) {
            self.append(state, &[record]);
        }
    }

    /// Removes a given-up item (logged, counted, its keys in the ledger); the record to write.
    fn drop_item(&self, state: &mut State, channel: &str, seq: u64, why: &str) -> Option<Record> {
        let item = state.remove(seq)?;
        tracing::error!(
            channel = %channel,
            incident = %item.notice.incident.id,
            change = item.notice.change.as_str(),
            key = %item.id,
            attempts = item.attempts,
            reason = why,
            "notification given up"
        );
        let at = Utc::now();
        for key in &item.keys {
            state
                .ledger
                .insert(ledger_key(channel, key), at.timestamp());
        }
        if let Some(status) = state.status.get_mut(channel) {
            status.failed += 1;
            status.last_error = Some(format!("given up ({why}): {}", item.id));
            status.last_error_at = Some(at);
        }
        Some(Record::Done {
            seq,
            at: at.timestamp(),
            delivered: false,
        })
    }

    /// Records the outcome of an attempt.
    fn settle(&self, channel: &Channel, seq: u64, result: Result<(), Failure>) {
        let mut state = self.lock();
        let now = Utc::now();
        match result {
            Ok(()) => {
                let Some(item) = state.remove(seq) else {
                    return;
                };
                for key in &item.keys {
                    state
                        .ledger
                        .insert(ledger_key(&channel.name, key), now.timestamp());
                }
                if state.last_sent.len() > 10_000 {
                    let interval = Duration::from_secs(self.config.update_interval_secs);
                    state.last_sent.retain(|_, at| at.elapsed() < interval);
                }
                state.last_sent.insert(
                    (channel.name.clone(), item.notice.incident.id.clone()),
                    Instant::now(),
                );
                if let Some(status) = state.status.get_mut(&channel.name) {
                    status.delivered += 1;
                    status.consecutive_failures = 0;
                    status.last_delivery_at = Some(now);
                }
                tracing::debug!(channel = %channel.name, key = %item.id, "notification delivered");
                self.append(
                    &mut state,
                    &[Record::Done {
                        seq,
                        at: now.timestamp(),
                        delivered: true,
                    }],
                );
            }
            Err(Failure::Refused(message)) => {
                if let Some(status) = state.status.get_mut(&channel.name) {
                    status.consecutive_failures += 1;
                }
                self.give_up(&mut state, channel, seq, &format!("refused: {message}"));
            }
            Err(failure) => {
                let attempts = state.items.get(&seq).map_or(1, |i| i.attempts);
                let delay = match &failure {
                    Failure::Retry {
                        retry_after: Some(hint),
                        ..
                    } => (*hint).min(MAX_RETRY_AFTER),
                    Failure::Config(_) => self.backoff(attempts).max(
                        Duration::from_secs(60)
                            .min(Duration::from_secs(self.config.retry_max_secs.max(1))),
                    ),
                    Failure::Retry { .. } | Failure::Refused(_) => self.backoff(attempts),
                };
                tracing::warn!(
                    channel = %channel.name,
                    attempt = attempts,
                    retry_in_ms = delay.as_millis() as u64,
                    error = failure.message(),
                    "notification not delivered; retrying"
                );
                if let Some(status) = state.status.get_mut(&channel.name) {
                    status.retries += 1;
                    status.consecutive_failures += 1;
                    status.last_error = Some(failure.message().to_string());
                    status.last_error_at = Some(now);
                }
                if let Some(item) = state.items.get_mut(&seq) {
                    item.inflight = false;
                    item.not_before = Some(Instant::now() + delay);
                }
            }
        }
        drop(state);
        self.wake.notify_all();
    }

    /// Full jitter over a doubling base: `[0, min(initial · 2^(attempt-1), max)]`.
    fn backoff(&self, attempt: u32) -> Duration {
        // Both at most a day, so a typo cannot park a channel (or overflow the clock).
        let day = Duration::from_secs(86_400);
        let initial = Duration::from_millis(self.config.retry_initial_ms.max(1)).min(day);
        let max = Duration::from_secs(self.config.retry_max_secs.max(1))
            .min(day)
            .max(initial);
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1).min(31))
            .unwrap_or(u32::MAX);
        let base = initial.checked_mul(factor).map_or(max, |d| d.min(max));
        let millis = u64::try_from(base.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::thread_rng().gen_range(0..=millis))
    }
}
