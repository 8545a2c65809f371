//! Every SigmaHQ rule (3,754 files, all platforms) loads through our pipelines.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crowsnest_detect::{Detector, Problem, RuleSet};

fn testdata(rel: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/testdata/"
    ))
    .join(rel)
}

#[test]
fn every_sigmahq_rule_loads() {
    let dir = testdata("sigma/sigmahq-all");
    let (rules, report) = RuleSet::load(&[dir], false);
    let files = report.files.len();
    let clean = report.loaded_files();
    let share = clean as f64 / files as f64 * 100.0;
    let mut constructs: BTreeMap<String, usize> = BTreeMap::new();
    for file in &report.files {
        for problem in &file.problems {
            let (kind, what, line) = match problem {
                Problem::Unsupported { construct, line } => ("unsupported", construct, line),
                Problem::Invalid { reason, line } => ("invalid", reason, line),
            };
            println!(
                "{kind}: {}:{} {what}",
                file.path.display(),
                line.unwrap_or(0)
            );
            *constructs.entry(format!("{kind}: {what}")).or_default() += 1;
        }
    }
    println!("sigmahq-all: {clean}/{files} files loaded cleanly ({share:.2}%), {} rules+correlations+filters", rules.len());
    for (construct, n) in &constructs {
        println!("  {n:>4} x {construct}");
    }
    assert!(
        files >= 3_700,
        "expected the 3,754 SigmaHQ files, found {files}"
    );
    assert!(share >= 99.9, "only {share:.2}% of SigmaHQ files loaded");
    // The whole set also compiles into one detector.
    let detector = Detector::new(rules);
    assert!(detector.rules().len() >= clean);
}
