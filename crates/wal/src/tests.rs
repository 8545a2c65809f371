use std::fs::OpenOptions;

use proptest::prelude::*;

use super::*;

fn all(wal: &Wal) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    wal.replay(0, |p, d| out.push((p, d))).expect("replay");
    out
}

fn small() -> WalConfig {
    WalConfig {
        segment_bytes: 200,
        fsync: true,
    }
}

#[test]
fn append_then_replay_after_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (mut wal, report) = Wal::open(dir.path(), small(), 0).expect("open");
        assert_eq!(
            report,
            OpenReport {
                torn_bytes_dropped: 0,
                segments: 0
            }
        );
        assert_eq!(wal.append(&[b"a".as_slice(), b"bb"]).expect("append"), 0..2);
        assert_eq!(wal.append(&[b"ccc"]).expect("append"), 2..3);
    }
    let (mut wal, _) = Wal::open(dir.path(), small(), 0).expect("reopen");
    assert_eq!(
        all(&wal),
        vec![
            (0, b"a".to_vec()),
            (1, b"bb".to_vec()),
            (2, b"ccc".to_vec())
        ]
    );
    assert_eq!(wal.append(&[b"d"]).expect("append"), 3..4);
    let mut from_two = Vec::new();
    wal.replay(2, |p, _| from_two.push(p)).expect("replay");
    assert_eq!(from_two, vec![2, 3]);
}

#[test]
fn torn_tail_is_cut_and_appends_continue() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path;
    {
        let (mut wal, _) = Wal::open(dir.path(), WalConfig::default(), 0).expect("open");
        wal.append(&[b"first".as_slice(), b"second"])
            .expect("append");
        path = wal.segments[0].path.clone();
    }
    // Simulate a crash in the middle of writing a third record.
    let whole = fs::metadata(&path).expect("stat").len();
    let mut file = OpenOptions::new().append(true).open(&path).expect("open");
    file.write_all(&[9, 0, 0, 0, 1, 2, 3])
        .expect("write partial header");
    drop(file);
    let (mut wal, report) = Wal::open(dir.path(), WalConfig::default(), 0).expect("reopen");
    assert_eq!(report.torn_bytes_dropped, 7);
    assert_eq!(fs::metadata(&path).expect("stat").len(), whole);
    assert_eq!(wal.append(&[b"third"]).expect("append"), 2..3);
    let (wal, _) = Wal::open(dir.path(), WalConfig::default(), 0).expect("reopen");
    let records: Vec<u64> = all(&wal).into_iter().map(|(p, _)| p).collect();
    assert_eq!(records, vec![0, 1, 2]);
}

#[test]
fn checksum_mismatch_in_old_segment_is_reported_and_replay_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first_path;
    {
        let (mut wal, _) = Wal::open(dir.path(), small(), 0).expect("open");
        for i in 0..20u8 {
            wal.append(&[vec![i; 30]]).expect("append");
        }
        assert!(wal.segment_count() > 2);
        first_path = wal.segments[0].path.clone();
    }
    // Flip a payload byte of the second record of the first segment.
    let mut bytes = fs::read(&first_path).expect("read");
    let second_payload = MAGIC.len() + HEADER_LEN + 30 + HEADER_LEN;
    bytes[second_payload] ^= 0xff;
    fs::write(&first_path, bytes).expect("write");
    let (wal, _) = Wal::open(dir.path(), small(), 0).expect("reopen");
    let mut positions = Vec::new();
    let stats = wal.replay(0, |p, _| positions.push(p)).expect("replay");
    assert_eq!(stats.corrupt_segments, vec![first_path]);
    assert_eq!(positions[0], 0);
    assert!(
        !positions.contains(&1),
        "the damaged record must not be replayed"
    );
    assert_eq!(positions.last(), Some(&19));
}

#[test]
fn truncation_keeps_positions_monotonic() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (mut wal, _) = Wal::open(dir.path(), small(), 0).expect("open");
        for i in 0..30u8 {
            wal.append(&[vec![i; 40]]).expect("append");
        }
        let before = wal.size_bytes();
        let deleted = wal.truncate_through(29).expect("truncate");
        assert!(deleted >= 3, "deleted {deleted}");
        assert!(wal.size_bytes() < before);
        assert_eq!(wal.segment_count(), 1);
        // Records in the active segment are still replayable.
        assert!(all(&wal).iter().all(|(p, _)| *p <= 29));
    }
    let (mut wal, _) = Wal::open(dir.path(), small(), 0).expect("reopen");
    assert_eq!(wal.append(&[b"x"]).expect("append"), 30..31);
}

#[test]
fn a_durable_active_segment_is_rolled_and_deleted() {
    // One large segment (as on a small disk): once everything in it is durable downstream, the
    // log must shrink to an empty segment, not keep the whole segment until it fills.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = WalConfig {
        segment_bytes: 64 * 1024 * 1024,
        fsync: false,
    };
    let (mut wal, _) = Wal::open(dir.path(), config.clone(), 0).expect("open");
    let payload = vec![7u8; 64 * 1024];
    for _ in 0..20 {
        wal.append(&[&payload]).expect("append");
    }
    assert_eq!(wal.segment_count(), 1);
    let full = wal.size_bytes();
    assert!(full > ROLL_DURABLE_BYTES, "{full}");
    // Not everything durable: the active segment stays.
    assert_eq!(wal.truncate_through(18).expect("truncate"), 0);
    assert_eq!(wal.size_bytes(), full);
    // Everything durable: rolled and deleted.
    assert_eq!(wal.truncate_through(19).expect("truncate"), 1);
    assert!(
        wal.size_bytes() <= MAGIC.len() as u64,
        "{}",
        wal.size_bytes()
    );
    assert_eq!(wal.append(&[b"x"]).expect("append"), 20..21);
    drop(wal);
    let (wal, _) = Wal::open(dir.path(), config, 0).expect("reopen");
    assert_eq!(all(&wal), vec![(20, b"x".to_vec())]);
}

#[test]
fn a_segment_cut_inside_its_header_is_repaired() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("00000000000000000007.wal"), b"CNW").expect("write");
    let (mut wal, report) = Wal::open(dir.path(), small(), 0).expect("open");
    assert_eq!(report.torn_bytes_dropped, 3);
    assert_eq!(wal.append(&[b"x"]).expect("append"), 7..8);
    let (wal, _) = Wal::open(dir.path(), small(), 0).expect("reopen");
    assert_eq!(all(&wal), vec![(7, b"x".to_vec())]);
}

#[test]
fn min_next_wins_over_an_empty_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut wal, _) = Wal::open(dir.path(), small(), 500).expect("open");
    assert_eq!(wal.append(&[b"x"]).expect("append"), 500..501);
}

#[test]
fn rejects_foreign_files_named_like_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(
        dir.path().join("00000000000000000000.wal"),
        b"not a wal at all",
    )
    .expect("write");
    let error = Wal::open(dir.path(), small(), 0).expect_err("must refuse");
    assert!(matches!(error, WalError::NotASegment(_)), "{error}");
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<Vec<u8>>),
    Roll,
    Truncate(u64),
    Reopen,
    CrashTail(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..5).prop_map(Op::Append),
        1 => Just(Op::Roll),
        1 => (0u64..60).prop_map(Op::Truncate),
        1 => Just(Op::Reopen),
        1 => (1u8..20).prop_map(Op::CrashTail),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// The log behaves like a simple model: every acknowledged record above the truncation point
    /// replays exactly once, in order, with its payload; positions never repeat.
    #[test]
    fn behaves_like_the_model(ops in proptest::collection::vec(op(), 1..30)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = WalConfig { segment_bytes: 256, fsync: false };
        let (mut wal, _) = Wal::open(dir.path(), config.clone(), 0).expect("open");
        let mut model: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut truncated_through: Option<u64> = None;
        for op in ops {
            match op {
                Op::Append(batch) => {
                    let range = wal.append(&batch).expect("append");
                    prop_assert_eq!(range.end - range.start, batch.len() as u64);
                    for (p, d) in range.zip(batch) {
                        prop_assert!(model.last().is_none_or(|(last, _)| p > *last));
                        model.push((p, d));
                    }
                }
                Op::Roll => wal.roll().expect("roll"),
                Op::Truncate(p) => {
                    wal.truncate_through(p).expect("truncate");
                    truncated_through = Some(truncated_through.map_or(p, |t| t.max(p)));
                }
                Op::Reopen => {
                    drop(wal);
                    wal = Wal::open(dir.path(), config.clone(), 0).expect("reopen").0;
                }
                Op::CrashTail(garbage) => {
                    let path = wal.segments[wal.segments.len() - 1].path.clone();
                    drop(wal);
                    let mut file = OpenOptions::new().append(true).open(&path).expect("open");
                    file.write_all(&vec![garbage; garbage as usize]).expect("write");
                    drop(file);
                    wal = Wal::open(dir.path(), config.clone(), 0).expect("reopen").0;
                }
            }
            let replayed = all(&wal);
            // Everything above the truncation point is there, in order, exactly once.
            let must: Vec<_> = model
                .iter()
                .filter(|(p, _)| truncated_through.is_none_or(|t| *p > t))
                .cloned()
                .collect();
            let kept: Vec<_> = replayed
                .iter()
                .filter(|(p, _)| truncated_through.is_none_or(|t| *p > t))
                .cloned()
                .collect();
            prop_assert_eq!(kept, must);
            // Whatever older records remain are real ones.
            for record in &replayed {
                prop_assert!(model.contains(record));
            }
        }
    }
}

#[test]
fn sealed_segments_are_in_the_chain_and_a_flipped_byte_is_named() {
    use crowsnest_integrity::{verify, Severity, VerifyOptions};
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("wal");
    {
        // Written before the chain is attached: the active segment's bytes are hashed then.
        let (mut wal, _) = Wal::open(&dir, small(), 0).expect("open");
        wal.append(&[vec![1u8; 50]]).expect("append");
    }
    let chain = Chain::open(data.path(), None).expect("chain");
    let (mut wal, _) = Wal::open(&dir, small(), 0).expect("reopen");
    wal.set_chain(chain.clone()).expect("set chain");
    for i in 0..12u8 {
        wal.append(&[vec![i; 60]]).expect("append");
    }
    assert!(wal.segment_count() >= 3, "{}", wal.segment_count());
    let report = verify(data.path(), &VerifyOptions::default()).expect("verify");
    assert!(report.passed(), "{:?}", report.findings);
    assert_eq!(report.files_ok as usize, wal.segment_count() - 1);

    // Truncation is recorded: the gap is explained.
    let deleted = wal.truncate_through(2).expect("truncate");
    assert!(deleted >= 1);
    let report = verify(data.path(), &VerifyOptions::default()).expect("verify");
    assert!(report.passed(), "{:?}", report.findings);
    let gaps = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Gap)
        .count();
    assert_eq!(gaps, deleted);

    // One flipped byte in a sealed segment is named.
    let victim = &wal.segments[1].path;
    let mut bytes = fs::read(victim).expect("read");
    bytes[20] ^= 0x01;
    fs::write(victim, bytes).expect("write");
    let report = verify(data.path(), &VerifyOptions::default()).expect("verify");
    let failure = report.first_failure().expect("failure");
    let name = victim
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert_eq!(failure.path, format!("wal/{name}"));
}
