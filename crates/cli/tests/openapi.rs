//! The server against its own OpenAPI document, with schemathesis (from PyPI, installed in
//! `.venv-test` by `scripts/setup-ecosystem.sh`): every documented operation is called with
//! generated valid and invalid parameters and bodies, and none may answer with a server error
//! or drop the connection (a panic). This is how a `since` value holding a multi-byte
//! character was found to panic `/api/v1/alerts`.

mod common;

use std::path::Path;
use std::process::Command;

use common::{free_port, Server};

#[test]
fn no_documented_operation_fails_with_a_server_error_on_generated_input() {
    let st = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv-test/bin/st");
    if !st.exists() {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "schemathesis is missing and CI=true (scripts/setup-ecosystem.sh installs it)"
        );
        eprintln!("skipping: .venv-test/bin/st is missing (run scripts/setup-ecosystem.sh)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(dir.path(), free_port());
    let output = Command::new(&st)
        .args(["run", &format!("{}/api/v1/openapi.json", server.url)])
        .args(["-H", &format!("Authorization: Bearer {}", server.token)])
        .args([
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "25",
            "--workers",
            "1",
            "--seed",
            "20261124",
        ])
        .env("SCHEMATHESIS_TELEMETRY", "false")
        // Its report folder (`.schemathesis/`) goes to the temporary directory, not the repo.
        .current_dir(dir.path())
        .output()
        .expect("run schemathesis");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // It really exercised the API: every operation it found in the document was tested, and
    // that is all of them (21 when the forwarding outputs' status was added).
    let selected = report
        .lines()
        .find_map(|line| line.trim().strip_prefix("Selected: "))
        .and_then(|counts| counts.split('/').nth(1))
        .and_then(|total| total.trim().parse::<usize>().ok())
        .unwrap_or_else(|| panic!("no `Selected: n/N` line:\n{report}"));
    assert!(
        selected >= 21,
        "only {selected} operations found:\n{report}"
    );
    assert!(
        report.contains(&format!("Tested: {selected}\n")),
        "not every operation was tested:\n{report}"
    );
    assert!(server.terminate().success());
}
