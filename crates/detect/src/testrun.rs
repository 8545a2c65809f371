//! `X.test.ndjson` rule tests (the convention is written down in `rules/README.md`).
//!
//! A rule file `X.yml` may have a sibling `X.test.ndjson`; each line is
//! `{"expect": "match"|"nomatch", "event": {...}, "rule": "<optional id or title>"}`. The rules
//! of `X.yml` alone are loaded into a fresh [`Detector`] and the lines are fed in order, so
//! correlation state carries from line to line.

use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone, Utc};
use crowsnest_model::Event;
use serde_json::Value;

use crate::detector::{Detection, Detector};
use crate::error::DetectError;
use crate::load::{LoadReport, RuleSet};

/// The test-event file that belongs to a rule file (`X.yml` -> `X.test.ndjson`).
pub fn test_file_for(rule_file: &Path) -> PathBuf {
    rule_file.with_extension("test.ndjson")
}

/// One test line's outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CaseResult {
    /// 1-based line in the test file.
    pub line: usize,
    /// `match` or `nomatch`.
    pub expect: String,
    /// The rule the expectation is about, if named.
    pub rule: Option<String>,
    /// Rule ids that fired on this line.
    pub fired: Vec<String>,
    /// Whether the expectation held.
    pub passed: bool,
}

/// The outcome of one rule file's tests.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuleTestReport {
    /// The rule file.
    pub rule_file: PathBuf,
    /// The test file (absent: no tests).
    pub test_file: Option<PathBuf>,
    /// Per line.
    pub cases: Vec<CaseResult>,
    /// How the rule file loaded.
    pub load: LoadReport,
}

impl RuleTestReport {
    /// Whether every case passed and the rules loaded cleanly.
    pub fn passed(&self) -> bool {
        !self.load.any_invalid() && self.cases.iter().all(|c| c.passed)
    }
}

fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn fired_by(d: &Detection, rule: &str) -> bool {
    d.rule_id == rule || d.title == rule
}

/// Runs the test lines `tests` (file name `test_name`) against the rules in `rule_text`.
pub fn run_tests(
    rule_name: &Path,
    rule_text: &str,
    test_name: &Path,
    tests: &str,
) -> Result<RuleTestReport, DetectError> {
    let (set, load) = RuleSet::from_yaml(rule_name, rule_text);
    let mut detector = Detector::new(set);
    let mut cases = Vec::new();
    for (index, raw) in tests.lines().enumerate() {
        let line = index + 1;
        let text = raw.trim();
        if text.is_empty() || text.starts_with("//") {
            continue;
        }
        let bad = |reason: String| DetectError::TestLine {
            path: test_name.display().to_string(),
            line,
            reason,
        };
        let value: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let expect = value
            .get("expect")
            .and_then(Value::as_str)
            .filter(|e| *e == "match" || *e == "nomatch")
            .ok_or_else(|| bad("`expect` must be \"match\" or \"nomatch\"".to_string()))?
            .to_string();
        let Some(Value::Object(map)) = value.get("event") else {
            return Err(bad("`event` must be an object".to_string()));
        };
        let rule = value
            .get("rule")
            .and_then(Value::as_str)
            .map(str::to_string);
        let mut event = Event::from_map(map.clone());
        if event.get("@timestamp").is_none() {
            let ts = base_time() + chrono::Duration::seconds(index as i64);
            event.set(
                "@timestamp",
                Value::String(crowsnest_model::format_timestamp(ts)),
            );
        }
        let detections = detector.process(&event);
        let hit = match &rule {
            Some(r) => detections.iter().any(|d| fired_by(d, r)),
            None => !detections.is_empty(),
        };
        cases.push(CaseResult {
            line,
            passed: hit == (expect == "match"),
            expect,
            rule,
            fired: detections.into_iter().map(|d| d.rule_id).collect(),
        });
    }
    Ok(RuleTestReport {
        rule_file: rule_name.to_path_buf(),
        test_file: Some(test_name.to_path_buf()),
        cases,
        load,
    })
}

/// Runs the tests of one rule file on disk; `Ok(None)` when it has no test file.
pub fn run_file_tests(rule_file: &Path) -> Result<Option<RuleTestReport>, DetectError> {
    let test_file = test_file_for(rule_file);
    if !test_file.exists() {
        return Ok(None);
    }
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|source| DetectError::Io {
            path: p.display().to_string(),
            source,
        })
    };
    let rules = read(rule_file)?;
    let tests = read(&test_file)?;
    run_tests(rule_file, &rules, &test_file, &tests).map(Some)
}
