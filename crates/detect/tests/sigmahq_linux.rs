//! SigmaHQ's Linux rules, unchanged, on events shaped as our auditd/agent events: the
//! process_creation and file_event taxonomy maps to ECS, `service: auditd` reads `auditd.<key>`.

use std::path::PathBuf;

use crowsnest_detect::{Detector, RuleSet};
use crowsnest_model::Event;
use serde_json::{json, Value};

fn detector() -> Detector {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/testdata/sigma/sigmahq/rules/linux"
    ));
    let (rules, report) = RuleSet::load(&[dir], false);
    assert_eq!(report.loaded_files(), report.files.len());
    assert!(rules.len() >= 200);
    Detector::new(rules)
}

fn fired(det: &mut Detector, v: Value) -> Vec<String> {
    let event: Event = serde_json::from_value(v).expect("event");
    det.process(&event).into_iter().map(|d| d.title).collect()
}

fn process(parent_cmd: &str, exe: &str, cmd: &str) -> Value {
    json!({
        "@timestamp": "2024-02-01T00:00:00Z",
        "event": {"dataset": "auditd.process", "module": "auditd", "category": ["process"], "type": ["start"]},
        "process": {"executable": exe, "command_line": cmd, "parent": {"command_line": parent_cmd}},
        "user": {"name": "www-data"}
    })
}

#[test]
fn process_creation_fields_map_to_ecs() {
    let mut det = detector();
    let hit = fired(&mut det, process("bash -i", "/usr/bin/whoami", "whoami"));
    assert!(
        hit.iter()
            .any(|t| t == "Interactive Bash Suspicious Children"),
        "{hit:?}"
    );
    let miss = fired(&mut det, process("zsh", "/usr/bin/whoami", "whoami"));
    assert!(
        !miss
            .iter()
            .any(|t| t == "Interactive Bash Suspicious Children"),
        "{miss:?}"
    );
}

#[test]
fn file_event_fields_map_to_ecs() {
    let mut det = detector();
    let file = |path: &str, exe: &str| {
        json!({
            "@timestamp": "2024-02-01T00:00:00Z",
            "event": {"dataset": "agent.file", "module": "agent", "category": ["file"], "type": ["creation"]},
            "file": {"path": path}, "process": {"executable": exe}
        })
    };
    let hit = fired(&mut det, file("/etc/sudoers.d/backdoor", "/usr/bin/vi"));
    assert!(
        hit.iter().any(|t| t == "Persistence Via Sudoers.d Files"),
        "{hit:?}"
    );
    let filtered = fired(
        &mut det,
        file("/etc/sudoers.d/README.dpkg-new", "/usr/bin/dpkg"),
    );
    assert!(
        !filtered
            .iter()
            .any(|t| t == "Persistence Via Sudoers.d Files"),
        "{filtered:?}"
    );
}

#[test]
fn auditd_rules_read_raw_keys() {
    let mut det = detector();
    let audit = |a0: &str| {
        json!({
            "@timestamp": "2024-02-01T00:00:00Z",
            "event": {"dataset": "auditd.process", "module": "auditd", "category": ["process"], "type": ["start"]},
            "auditd": {"type": ["SYSCALL", "EXECVE", "CWD", "PATH"], "a0": a0, "a1": "-vv", "a2": "-fdat"},
            "process": {"executable": format!("/usr/bin/{a0}"), "command_line": format!("{a0} -vv -fdat")}
        })
    };
    let hit = fired(&mut det, audit("arecord"));
    assert!(hit.iter().any(|t| t == "Audio Capture"), "{hit:?}");
    let miss = fired(&mut det, audit("aplay"));
    assert!(!miss.iter().any(|t| t == "Audio Capture"), "{miss:?}");
}
