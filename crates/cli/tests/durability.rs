//! `kill -9` of the server during a sustained ingest loses no acknowledged event and
//! duplicates none: real processes, real sockets, real fsync.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{free_port, kill_9_rounds, Server};

/// One sender: posts batches of events numbered `seq` until told to stop or the server dies;
/// remembers the numbers of acknowledged batches.
fn sender(
    url: String,
    token: String,
    next: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<BTreeSet<u64>>>,
) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    while !stop.load(Ordering::SeqCst) {
        let first = next.fetch_add(50, Ordering::SeqCst);
        let mut body = String::new();
        for seq in first..first + 50 {
            body.push_str(&format!(
                "{{\"seq\":{seq},\"message\":\"durability probe {seq}\",\"pad\":\"{}\"}}\n",
                "x".repeat(200)
            ));
        }
        let result = agent
            .post(&format!("{url}/api/v1/ingest/ndjson?source=durability"))
            .set("Authorization", &format!("Bearer {token}"))
            .set("Content-Type", "application/x-ndjson")
            .send_string(&body);
        match result {
            Ok(response) if response.status() == 200 => {
                acked.lock().expect("lock").extend(first..first + 50);
            }
            Ok(_) | Err(ureq::Error::Status(..)) => {}
            Err(ureq::Error::Transport(_)) => return,
        }
    }
}

#[test]
fn kill_9_during_ingest_loses_nothing_acknowledged_and_duplicates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    check(Server::start(dir.path(), free_port()), false);
}

/// The same with an indexer queue of one batch: most batches are left in the WAL and read back
/// by the indexer, and the server is killed while it does that.
#[test]
fn kill_9_while_the_indexer_reads_back_from_the_wal_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("crowsnest.toml");
    std::fs::write(&config, "[pipeline]\nindex_queue_batches = 1\n").expect("config");
    let data = dir.path().join("data");
    let extra = ["--config".to_string(), config.display().to_string()];
    check(Server::start_with(&data, free_port(), &extra), true);
}

/// Kills `server` three times during a sustained ingest, then checks that every acknowledged
/// event is stored once; with `read_back`, first runs one more round without a kill and checks
/// that the indexer did read batches back from the WAL.
fn check(server: Server, read_back: bool) {
    let next = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let send = {
        let (next, acked) = (next.clone(), acked.clone());
        move |url, token, stop| sender(url, token, next.clone(), stop, acked.clone())
    };
    // Let the ingest run, then kill the server in the middle of it, three times.
    let pauses: Vec<_> = (0..3)
        .map(|round| Duration::from_millis(1500 + 300 * round))
        .collect();
    let mut server = kill_9_rounds(server, 3, &pauses, send.clone());
    if read_back {
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let (url, token, stop, send) = (
                    server.url.clone(),
                    server.token.clone(),
                    stop.clone(),
                    send.clone(),
                );
                std::thread::spawn(move || send(url, token, stop))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(1500));
        stop.store(true, Ordering::SeqCst);
        for thread in threads {
            thread.join().expect("sender");
        }
        let metrics = server.metrics();
        let spilled = metrics
            .lines()
            .find_map(|line| line.strip_prefix("crowsnest_index_spilled_events_total "))
            .and_then(|value| value.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        assert!(
            spilled > 0.0,
            "no batch was read back from the wal:\n{metrics}"
        );
    }
    server.settle();
    let acked = acked.lock().expect("lock").clone();
    assert!(
        acked.len() > 1000,
        "the test must ingest a meaningful volume, got {}",
        acked.len()
    );
    let stats = server.search("event.dataset:durability | stats count(), dc(seq)");
    let row = &stats["rows"][0];
    let (count, distinct) = (
        row[0].as_u64().expect("count"),
        row[1].as_u64().expect("dc"),
    );
    assert_eq!(count, distinct, "duplicated events: {stats}");
    assert!(
        count >= acked.len() as u64,
        "stored {count} < acknowledged {}",
        acked.len()
    );
    // Every acknowledged number is there: check each run of consecutive acknowledged numbers
    // (events sent but never acknowledged may or may not be stored; they fall between runs).
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for &seq in &acked {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == seq => *end = seq,
            _ => runs.push((seq, seq)),
        }
    }
    assert!(
        runs.len() < 50,
        "acknowledged numbers should form a few long runs: {}",
        runs.len()
    );
    for (first, last) in runs {
        let answer = server.search(&format!(
            "event.dataset:durability AND seq:[{first} TO {last}] | stats count(), dc(seq)"
        ));
        let row = &answer["rows"][0];
        assert_eq!(
            row[1].as_u64(),
            Some(last - first + 1),
            "acknowledged events {first}..={last} missing: {answer}"
        );
        assert_eq!(row[0], row[1], "duplicates in {first}..={last}: {answer}");
    }
    // A clean stop after all this exits 0.
    assert!(server.terminate().success());
}
