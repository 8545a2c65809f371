//! The built-in pack, as embedded in the binary: every file loads, every rule has test events
//! (`X.test.ndjson`, see rules/README.md) and they all pass.

use std::path::Path;

use crowsnest_detect::load::{builtin_files, is_rule_file};
use crowsnest_detect::testrun::run_tests;
use crowsnest_detect::RuleSet;

#[test]
fn builtin_pack_loads_and_its_test_events_pass() {
    let (rules, report) = RuleSet::builtin();
    for file in report.files.iter().filter(|f| !f.problems.is_empty()) {
        println!("{}: {:?}", file.path.display(), file.problems);
    }
    assert_eq!(report.loaded_files(), report.files.len());
    let files = builtin_files();
    let rule_files: Vec<_> = files
        .iter()
        .filter(|(n, _)| is_rule_file(Path::new(n)))
        .collect();
    assert!(rules.len() >= rule_files.len());
    let (mut cases, mut failures, mut untested) = (0, Vec::new(), Vec::new());
    for (name, text) in rule_files {
        let test_name = Path::new(name).with_extension("test.ndjson");
        let Some((_, body)) = files.iter().find(|(n, _)| Path::new(n) == test_name) else {
            untested.push(*name);
            continue;
        };
        let report =
            run_tests(Path::new(name), text, &test_name, body).expect("well-formed test file");
        cases += report.cases.len();
        let expects: Vec<&str> = report.cases.iter().map(|c| c.expect.as_str()).collect();
        if !expects.contains(&"match") || !expects.contains(&"nomatch") {
            failures.push(format!(
                "{name}: needs at least one match and one nomatch event"
            ));
        }
        for c in report.cases.iter().filter(|c| !c.passed) {
            failures.push(format!(
                "{name} line {}: expected {}, fired {:?}",
                c.line, c.expect, c.fired
            ));
        }
    }
    println!(
        "built-in pack: {} rules, {cases} test events, untested: {untested:?}",
        rules.len()
    );
    assert!(
        untested.is_empty(),
        "rules without test events: {untested:?}"
    );
    assert!(failures.is_empty(), "{failures:#?}");
}
