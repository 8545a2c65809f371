use super::*;

fn sha(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn setup() -> (tempfile::TempDir, Arc<Chain>, PathBuf, PathBuf) {
    let data = tempfile::tempdir().expect("tempdir");
    let wal = data.path().join("wal");
    let part = data.path().join("store/partitions/20260101T00");
    fs::create_dir_all(&wal).expect("wal dir");
    fs::create_dir_all(&part).expect("partition dir");
    let segment = wal.join("00000000000000000000.wal");
    fs::write(&segment, b"CNWAL001records").expect("segment");
    fs::write(part.join("a.store"), b"docs").expect("file");
    fs::write(part.join("meta.json"), b"{}").expect("file");
    let chain = Chain::open(data.path(), None).expect("chain");
    chain.seal_wal_segment(&segment, sha(b"CNWAL001records"), 15, 0, 3);
    chain.seal_partition(&part);
    (data, chain, segment, part)
}

#[test]
fn intact_data_verifies() {
    let (data, chain, _, _) = setup();
    chain.checkpoint();
    let report = verify(data.path(), &VerifyOptions::default()).expect("verify");
    assert!(report.passed(), "{:?}", report.findings);
    assert_eq!(report.files_ok, 2);
}

#[test]
fn flipped_bytes_are_named() {
    let (data, _chain, segment, part) = setup();
    let mut bytes = fs::read(&segment).expect("read");
    bytes[9] ^= 1;
    fs::write(&segment, bytes).expect("write");
    let report = verify(data.path(), &VerifyOptions::default()).expect("verify");
    assert!(!report.passed());
    let first = report.first_failure().expect("failure");
    assert_eq!(first.path, "wal/00000000000000000000.wal");
    assert!(first.message.contains("expected"), "{first}");

    let mut bytes = fs::read(part.join("a.store")).expect("read");
    bytes[0] ^= 1;
    fs::write(part.join("a.store"), bytes).expect("write");
    let report = verify(data.path(), &VerifyOptions::default()).expect("verify");
    let failed: Vec<&str> = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Fail)
        .map(|f| f.path.as_str())
        .collect();
    assert_eq!(
        failed,
        [
            "store/partitions/20260101T00",
            "wal/00000000000000000000.wal"
        ]
    );
}

#[test]
fn recorded_deletions_are_gaps_and_silent_ones_fail() {
    let (data, chain, segment, part) = setup();
    fs::remove_dir_all(&part).expect("rm");
    chain.delete_partition(&part, "retention: older than 24 h");
    let report = verify(data.path(), &VerifyOptions::default()).expect("verify");
    assert!(report.passed(), "{:?}", report.findings);
    let gap = report
        .findings
        .iter()
        .find(|f| f.severity == Severity::Gap)
        .expect("gap");
    assert_eq!(gap.path, "store/partitions/20260101T00");
    assert!(gap.message.contains("retention"));

    fs::remove_file(&segment).expect("rm");
    let report = verify(data.path(), &VerifyOptions::default()).expect("verify");
    assert!(report
        .first_failure()
        .expect("fail")
        .message
        .contains("missing"));
}

#[test]
fn altered_or_removed_records_break_the_chain() {
    let (data, chain, _, _) = setup();
    chain.checkpoint();
    let path = data.path().join(CHAIN_DIR).join(CHAIN_FILE);
    let text = fs::read_to_string(&path).expect("chain");
    let altered = text.replacen("\"bytes\":15", "\"bytes\":16", 1);
    assert_ne!(altered, text);
    fs::write(&path, &altered).expect("write");
    let report = verify(data.path(), &VerifyOptions::default()).expect("verify");
    assert!(report
        .first_failure()
        .expect("fail")
        .message
        .contains("altered"));

    let lines: Vec<&str> = text.lines().collect();
    let removed = format!("{}\n{}\n", lines[0], lines[2..].join("\n"));
    fs::write(&path, removed).expect("write");
    let report = verify(data.path(), &VerifyOptions::default()).expect("verify");
    assert!(report
        .first_failure()
        .expect("fail")
        .message
        .contains("does not follow"));
}

#[test]
fn late_events_reseal_with_a_link_to_the_previous_seal() {
    let (data, chain, _, part) = setup();
    chain.open_partition(&part);
    let report = verify(data.path(), &VerifyOptions::default()).expect("verify");
    assert!(report.passed());
    assert!(report
        .findings
        .iter()
        .any(|f| f.message.contains("late events")));
    fs::write(part.join("b.store"), b"late").expect("file");
    chain.seal_partition(&part);
    let report = verify(data.path(), &VerifyOptions::default()).expect("verify");
    assert!(report.passed(), "{:?}", report.findings);
    let (records, _) = read_records(chain.path()).expect("records");
    let seals: Vec<&Record> = records
        .iter()
        .filter(|r| matches!(r.entry, Entry::PartitionSeal { .. }))
        .collect();
    assert_eq!(seals.len(), 2);
    match &seals[1].entry {
        Entry::PartitionSeal { replaces, .. } => {
            assert_eq!(replaces.as_deref(), Some(seals[0].hash.as_str()))
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn signed_checkpoints_check_against_the_pinned_key() {
    let data = tempfile::tempdir().expect("tempdir");
    let key = data.path().join("chain.key");
    let public = generate_key(&key).expect("key");
    let chain = Chain::open(data.path(), Some(&key)).expect("chain");
    let segment = data.path().join("wal/00000000000000000000.wal");
    fs::create_dir_all(segment.parent().expect("parent")).expect("dir");
    fs::write(&segment, b"x").expect("write");
    chain.seal_wal_segment(&segment, sha(b"x"), 1, 0, 1);
    chain.checkpoint();
    let pinned = VerifyOptions {
        public_key: Some(public),
        ..VerifyOptions::default()
    };
    let report = verify(data.path(), &pinned).expect("verify");
    assert!(report.passed(), "{:?}", report.findings);
    assert_eq!(report.signed_checkpoints, 1);
    let other = tempfile::tempdir().expect("tempdir");
    let other_key = generate_key(&other.path().join("k")).expect("key");
    let report = verify(
        data.path(),
        &VerifyOptions {
            public_key: Some(other_key),
            ..VerifyOptions::default()
        },
    )
    .expect("verify");
    assert!(!report.passed());
}

#[test]
fn a_torn_last_record_is_cut_on_open() {
    let (data, chain, _, _) = setup();
    drop(chain);
    let path = data.path().join(CHAIN_DIR).join(CHAIN_FILE);
    let mut file = OpenOptions::new().append(true).open(&path).expect("open");
    file.write_all(b"{\"seq\":9,\"ti").expect("write");
    drop(file);
    let chain = Chain::open(data.path(), None).expect("reopen");
    chain.checkpoint();
    let report = verify(data.path(), &VerifyOptions::default()).expect("verify");
    assert!(report.passed(), "{:?}", report.findings);
}

/// A cold rewrite is recorded with the digest it replaces: the rewritten files verify (noted),
/// an interrupted swap (old files still in place) verifies too, other bytes fail, and a
/// reopened chain knows the new digest.
#[test]
fn cold_rewrites_replace_the_seal_and_either_copy_verifies() {
    let (data, chain, _, part) = setup();
    let copy = data.path().join("store/cold-work/20260101T00.ready");
    fs::create_dir_all(&copy).expect("copy dir");
    fs::write(copy.join("merged.store"), b"docs, smaller").expect("file");
    fs::write(copy.join("meta.json"), b"{}").expect("file");
    assert!(chain.rewrite_partition(&part, &copy, "cold: zstd 19"));
    // Recorded, not yet swapped: the old files still verify.
    let report = verify(data.path(), &VerifyOptions::default()).expect("verify");
    assert!(report.passed(), "{:?}", report.findings);
    assert!(report
        .findings
        .iter()
        .any(|f| f.message.contains("not swapped in")));
    // Swapped.
    fs::remove_dir_all(&part).expect("rm");
    fs::rename(&copy, &part).expect("swap");
    let report = verify(data.path(), &VerifyOptions::default()).expect("verify");
    assert!(report.passed(), "{:?}", report.findings);
    assert_eq!(report.files_ok, 2);
    let note = report
        .findings
        .iter()
        .find(|f| f.path == "store/partitions/20260101T00")
        .expect("note");
    assert!(note.message.contains("cold: zstd 19"), "{note}");
    let (records, _) = read_records(chain.path()).expect("records");
    let seal = records
        .iter()
        .find(|r| matches!(r.entry, Entry::PartitionSeal { .. }))
        .expect("seal");
    match &records.last().expect("record").entry {
        Entry::PartitionRewrite {
            replaces, previous, ..
        } => {
            assert_eq!(replaces.as_deref(), Some(seal.hash.as_str()));
            assert!(previous.is_some());
        }
        other => panic!("unexpected {other:?}"),
    }
    // Other bytes fail.
    fs::write(part.join("merged.store"), b"docs, altered").expect("write");
    let report = verify(data.path(), &VerifyOptions::default()).expect("verify");
    assert!(report
        .first_failure()
        .expect("fail")
        .message
        .contains("altered since it was rewritten"));
    fs::write(part.join("merged.store"), b"docs, smaller").expect("write");
    // A reopened chain seals against the rewrite: an unchanged partition is not sealed again.
    drop(chain);
    let chain = Chain::open(data.path(), None).expect("reopen");
    let before = read_records(chain.path()).expect("records").0.len();
    chain.seal_partition(&part);
    assert_eq!(read_records(chain.path()).expect("records").0.len(), before);
}

#[test]
fn a_reseal_reads_only_new_files_and_verify_still_rehashes_everything() {
    let (data, chain, _, part) = setup();
    // A large immutable segment file, sealed once.
    let big = vec![7u8; 256 * 1024];
    fs::write(part.join("seg1.idx"), &big).expect("file");
    chain.open_partition(&part);
    chain.seal_partition(&part);
    let after_first = chain.partition_bytes_read();
    assert!(after_first >= big.len() as u64, "{after_first}");
    // Late events: a new segment file; the reseal reads it and the small files, not seg1.
    chain.open_partition(&part);
    fs::write(part.join("seg2.idx"), vec![9u8; 100 * 1024]).expect("file");
    fs::write(part.join("meta.json"), b"{\"segments\":2}").expect("file");
    chain.seal_partition(&part);
    let reread = chain.partition_bytes_read() - after_first;
    assert!(
        reread < 110 * 1024,
        "read {reread} bytes: seg1 was read again"
    );
    let (records, _) = read_records(chain.path()).expect("records");
    assert!(records
        .iter()
        .all(|r| !matches!(r.entry, Entry::PartitionSeal { scheme, .. } if scheme != Some(2))));
    let report = verify(data.path(), &VerifyOptions::default()).expect("verify");
    assert!(report.passed(), "{:?}", report.findings);
    // A byte flipped in the file the reseal did not read: verify names the partition.
    let mut bytes = fs::read(part.join("seg1.idx")).expect("read");
    bytes[1000] ^= 1;
    fs::write(part.join("seg1.idx"), bytes).expect("write");
    let report = verify(data.path(), &VerifyOptions::default()).expect("verify");
    assert_eq!(
        report.first_failure().map(|f| f.path.as_str()),
        Some("store/partitions/20260101T00")
    );
}

#[test]
fn seals_of_the_first_scheme_still_verify() {
    // A chain written before scheme 2: its partition seal has no `scheme` and digests the
    // files' contents in one hash.
    let data = tempfile::tempdir().expect("tempdir");
    let part = data.path().join("store/partitions/20250101T00");
    fs::create_dir_all(&part).expect("dir");
    fs::write(part.join("a.store"), b"old docs").expect("file");
    let (sha256, bytes, files) = dir_digest(&part).expect("digest");
    let chain = Chain::open(data.path(), None).expect("chain");
    {
        let mut inner = chain.lock();
        chain.append(
            &mut inner,
            Entry::PartitionSeal {
                path: "store/partitions/20250101T00".into(),
                sha256,
                bytes,
                files,
                replaces: None,
                scheme: None,
            },
        );
    }
    let text = fs::read_to_string(chain.path()).expect("chain");
    assert!(!text.contains("scheme"), "{text}");
    let report = verify(data.path(), &VerifyOptions::default()).expect("verify");
    assert!(report.passed(), "{:?}", report.findings);
    assert_eq!(report.files_ok, 1);
    fs::write(part.join("a.store"), b"new docs").expect("file");
    let report = verify(data.path(), &VerifyOptions::default()).expect("verify");
    assert!(!report.passed());
}
