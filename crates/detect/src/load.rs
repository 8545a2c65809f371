//! Loading Sigma rule files into a [`RuleSet`], with a per-file [`LoadReport`].
//!
//! Files are parsed with `rsigma_parser::parse_sigma_yaml`, which handles one or many
//! documents per file, `action: global|reset|repeat`, correlation and filter documents. Every
//! detection rule is then run through our pipelines and compiled once, on its own, so one
//! broken rule is reported and skipped while the rest of its file (and every other file)
//! keeps loading. Correlations are checked for rule references that resolve.
//!
//! rsigma reports parse errors as strings without positions; we recover a line by locating the
//! offending construct (a modifier, the rule's title) in the file text.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use rsigma_eval::{EvalError, Pipeline};
use rsigma_parser::SigmaCollection;

use crate::baseline::BaselineSpec;
use crate::pipelines::builtin_pipelines;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/builtin_rules.rs"));
}

/// The built-in pack, embedded at build time: `(path under rules/, contents)`.
pub fn builtin_files() -> &'static [(&'static str, &'static str)] {
    embedded::BUILTIN_FILES
}

/// Loaded and validated rules, correlations and filters, with the pipelines to apply.
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub(crate) collection: SigmaCollection,
    pub(crate) pipelines: Vec<Pipeline>,
    /// The file each correlation came from (parallel to `collection.correlations`).
    corr_origin: Vec<PathBuf>,
    /// The file each detection rule came from (parallel to `collection.rules`).
    rule_origin: Vec<PathBuf>,
    /// `baseline:` sections of rules, by rule id (see [`crate::baseline`]).
    pub(crate) baselines: HashMap<String, BaselineSpec>,
}

pub use crate::report::{FileReport, FileStatus, LoadReport, Problem};

impl Default for RuleSet {
    fn default() -> Self {
        Self {
            collection: SigmaCollection::new(),
            pipelines: builtin_pipelines().to_vec(),
            corr_origin: Vec::new(),
            rule_origin: Vec::new(),
            baselines: HashMap::new(),
        }
    }
}

impl RuleSet {
    /// Loads every `*.yml`/`*.yaml` file under `paths` (files or directories, recursively),
    /// plus the built-in pack when `builtin` is set. Never fails as a whole: problems are in
    /// the report and the affected documents are skipped.
    pub fn load(paths: &[PathBuf], builtin: bool) -> (RuleSet, LoadReport) {
        let mut set = RuleSet::default();
        let mut report = LoadReport::default();
        if builtin {
            for (name, text) in builtin_files() {
                if is_rule_file(Path::new(name)) {
                    let path = PathBuf::from(format!("builtin:{name}"));
                    report.files.push(set.add_text(path, text));
                }
            }
        }
        for path in paths {
            let mut files = Vec::new();
            collect_files(path, &mut files, &mut report);
            files.sort();
            for file in files {
                let outcome = match std::fs::read_to_string(&file) {
                    Ok(text) => set.add_text(file, &text),
                    Err(e) => FileReport {
                        path: file,
                        loaded: 0,
                        problems: vec![Problem::Invalid {
                            reason: format!("expected a readable UTF-8 file: {e}"),
                            line: None,
                        }],
                    },
                };
                report.files.push(outcome);
            }
        }
        set.drop_dangling_correlations(&mut report);
        (set, report)
    }

    /// The built-in pack alone.
    pub fn builtin() -> (RuleSet, LoadReport) {
        Self::load(&[], true)
    }

    /// Parses Sigma YAML text as if it were the file `path`.
    pub fn from_yaml(path: impl Into<PathBuf>, text: &str) -> (RuleSet, LoadReport) {
        let mut set = RuleSet::default();
        let file = set.add_text(path.into(), text);
        let mut report = LoadReport { files: vec![file] };
        set.drop_dangling_correlations(&mut report);
        (set, report)
    }

    /// Applies the configured Kubernetes principal lists to the pipelines' placeholder
    /// variables (see [`crate::K8sPrincipals`]). Takes effect when a [`crate::Detector`] is
    /// built from (or replaces its rules with) this set.
    pub fn set_k8s_principals(&mut self, principals: &crate::K8sPrincipals) {
        use crate::K8sPrincipals as P;
        for pipeline in &mut self.pipelines {
            if !pipeline.vars.contains_key(P::OPERATORS_VAR) {
                continue;
            }
            if let Some(list) = &principals.system_principals {
                pipeline
                    .vars
                    .insert(P::SYSTEM_VAR.to_string(), list.clone());
            }
            if let Some(list) = &principals.operators {
                pipeline
                    .vars
                    .insert(P::OPERATORS_VAR.to_string(), list.clone());
            }
            let operators = pipeline
                .vars
                .entry(P::OPERATORS_VAR.to_string())
                .or_default();
            for extra in &principals.extra_operators {
                if !operators.contains(extra) {
                    operators.push(extra.clone());
                }
            }
        }
    }

    /// The value of a pipeline placeholder variable (the first pipeline defining it).
    pub fn pipeline_var(&self, name: &str) -> Option<&[String]> {
        self.pipelines
            .iter()
            .find_map(|p| p.vars.get(name).map(Vec::as_slice))
    }

    /// Number of detection rules, correlations and filters.
    pub fn len(&self) -> usize {
        self.collection.len()
    }

    /// Whether nothing loaded.
    pub fn is_empty(&self) -> bool {
        self.collection.len() == 0
    }

    /// The rules with a `baseline:` section (rule id -> spec).
    pub fn baselines(&self) -> &HashMap<String, BaselineSpec> {
        &self.baselines
    }

    /// Number of correlation rules.
    pub fn correlation_count(&self) -> usize {
        self.collection.correlations.len()
    }

    /// Ids (or titles, for rules without id) of the detection rules and correlations.
    pub fn rule_keys(&self) -> Vec<String> {
        let rules = self
            .collection
            .rules
            .iter()
            .map(|r| r.id.clone().unwrap_or_else(|| r.title.clone()));
        let corrs = self
            .collection
            .correlations
            .iter()
            .map(|c| c.id.clone().unwrap_or_else(|| c.title.clone()));
        rules.chain(corrs).collect()
    }

    /// What the rules page and `GET /api/v1/rules` show of each detection rule and
    /// correlation: id, title, level, status, tags and the file it came from.
    pub fn infos(&self) -> Vec<RuleInfo> {
        fn name<T: serde::Serialize>(value: &Option<T>) -> Option<String> {
            value
                .as_ref()
                .and_then(|v| serde_json::to_value(v).ok())
                .and_then(|v| v.as_str().map(str::to_string))
        }
        let rules = self
            .collection
            .rules
            .iter()
            .zip(&self.rule_origin)
            .map(|(r, origin)| RuleInfo {
                id: r.id.clone().unwrap_or_else(|| r.title.clone()),
                title: r.title.clone(),
                kind: if self
                    .baselines
                    .contains_key(r.id.as_deref().unwrap_or(&r.title))
                {
                    "baseline"
                } else {
                    "rule"
                },
                level: name(&r.level),
                status: name(&r.status),
                tags: r.tags.clone(),
                description: r.description.clone(),
                file: origin.display().to_string(),
            });
        let corrs = self
            .collection
            .correlations
            .iter()
            .zip(&self.corr_origin)
            .map(|(c, origin)| RuleInfo {
                id: c.id.clone().unwrap_or_else(|| c.title.clone()),
                title: c.title.clone(),
                kind: "correlation",
                level: name(&c.level),
                status: name(&c.status),
                tags: c.tags.clone(),
                description: c.description.clone(),
                file: origin.display().to_string(),
            });
        rules.chain(corrs).collect()
    }

    /// Removes the detection rules and correlations whose id (or title, for rules without
    /// one) is in `disabled`, and the correlations left referencing a removed rule. Returns
    /// the ids removed, the dependent correlations included.
    pub fn disable(&mut self, disabled: &HashSet<String>) -> Vec<String> {
        let mut removed = Vec::new();
        if disabled.is_empty() {
            return removed;
        }
        let key = |id: &Option<String>, title: &String| id.clone().unwrap_or_else(|| title.clone());
        let rules = std::mem::take(&mut self.collection.rules);
        let origins = std::mem::take(&mut self.rule_origin);
        for (rule, origin) in rules.into_iter().zip(origins) {
            let id = key(&rule.id, &rule.title);
            if disabled.contains(&id) {
                self.baselines.remove(&id);
                removed.push(id);
            } else {
                self.collection.rules.push(rule);
                self.rule_origin.push(origin);
            }
        }
        let corrs = std::mem::take(&mut self.collection.correlations);
        let origins = std::mem::take(&mut self.corr_origin);
        for (corr, origin) in corrs.into_iter().zip(origins) {
            let id = key(&corr.id, &corr.title);
            if disabled.contains(&id) {
                removed.push(id);
            } else {
                self.collection.correlations.push(corr);
                self.corr_origin.push(origin);
            }
        }
        let mut report = LoadReport {
            files: self
                .corr_origin
                .iter()
                .map(|path| FileReport {
                    path: path.clone(),
                    loaded: 0,
                    problems: Vec::new(),
                })
                .collect(),
        };
        let before: Vec<String> = self
            .collection
            .correlations
            .iter()
            .map(|c| key(&c.id, &c.title))
            .collect();
        self.drop_dangling_correlations(&mut report);
        let after: HashSet<String> = self
            .collection
            .correlations
            .iter()
            .map(|c| key(&c.id, &c.title))
            .collect();
        removed.extend(before.into_iter().filter(|id| !after.contains(id)));
        removed
    }

    /// Keeps only the rule (or correlation) `id` and, for a correlation, the rules it
    /// references (transitively): what running one rule over past events needs. `false`
    /// when no rule has that id.
    pub fn keep_only(&mut self, id: &str) -> bool {
        let key = |id: &Option<String>, title: &String| id.clone().unwrap_or_else(|| title.clone());
        let mut wanted: HashSet<String> = HashSet::from([id.to_string()]);
        loop {
            let before = wanted.len();
            for corr in &self.collection.correlations {
                let matches = wanted.contains(&key(&corr.id, &corr.title))
                    || corr.name.as_ref().is_some_and(|n| wanted.contains(n));
                if matches {
                    wanted.extend(corr.rules.iter().cloned());
                }
            }
            if wanted.len() == before {
                break;
            }
        }
        let named = |id: &Option<String>, name: &Option<String>, title: &String| {
            wanted.contains(&key(id, title)) || name.as_ref().is_some_and(|n| wanted.contains(n))
        };
        let found = self
            .collection
            .rules
            .iter()
            .any(|r| key(&r.id, &r.title) == id)
            || self
                .collection
                .correlations
                .iter()
                .any(|c| key(&c.id, &c.title) == id);
        let all: HashSet<String> = self.rule_keys().into_iter().collect();
        let keep: HashSet<String> = self
            .collection
            .rules
            .iter()
            .filter(|r| named(&r.id, &r.name, &r.title))
            .map(|r| key(&r.id, &r.title))
            .chain(
                self.collection
                    .correlations
                    .iter()
                    .filter(|c| named(&c.id, &c.name, &c.title))
                    .map(|c| key(&c.id, &c.title)),
            )
            .collect();
        let drop: HashSet<String> = all.difference(&keep).cloned().collect();
        self.disable(&drop);
        found
    }

    fn add_text(&mut self, path: PathBuf, text: &str) -> FileReport {
        let mut report = FileReport {
            path,
            loaded: 0,
            problems: Vec::new(),
        };
        let parsed = match rsigma_parser::parse_sigma_yaml(text) {
            Ok(c) => c,
            Err(e) => {
                report
                    .problems
                    .push(classify_parse_error(&e.to_string(), text));
                return report;
            }
        };
        for message in &parsed.errors {
            if let Some(problem) = classify_parse_message(message, text) {
                report.problems.push(problem);
            }
        }
        for mut rule in parsed.rules {
            // rsigma links a match to correlations through the rule *id* only, so a rule that
            // a correlation names by `name` but that has no id would never feed it: use the
            // name as its id.
            if rule.id.is_none() {
                rule.id = rule.name.clone();
            }
            let baseline = match rule.custom_attributes.get("baseline") {
                None => None,
                Some(section) => match serde_json::to_value(section)
                    .map_err(|e| e.to_string())
                    .and_then(|v| BaselineSpec::from_value(&v))
                {
                    Ok(spec) => Some(spec),
                    Err(reason) => {
                        report.problems.push(Problem::Invalid {
                            reason: format!("rule `{}`: baseline: {reason}", rule.title),
                            line: line_of(text, "baseline:"),
                        });
                        continue;
                    }
                },
            };
            let mut transformed = rule.clone();
            let compiled = rsigma_eval::apply_pipelines(&self.pipelines, &mut transformed)
                .and_then(|()| rsigma_eval::compile_rule(&transformed));
            match compiled {
                Ok(_) => {
                    if let Some(spec) = baseline {
                        let key = rule.id.clone().unwrap_or_else(|| rule.title.clone());
                        self.baselines.insert(key, spec);
                    }
                    self.collection.rules.push(rule);
                    self.rule_origin.push(report.path.clone());
                    report.loaded += 1;
                }
                Err(e) => report
                    .problems
                    .push(classify_compile_error(&e, &rule.title, text)),
            }
        }
        for mut corr in parsed.correlations {
            require_all_temporal_rules(&mut corr);
            match rsigma_eval::correlation::compile_correlation(&corr) {
                Ok(_) => {
                    self.collection.correlations.push(corr);
                    self.corr_origin.push(report.path.clone());
                    report.loaded += 1;
                }
                Err(e) => report.problems.push(Problem::Invalid {
                    reason: format!("correlation `{}`: {e}", corr.title),
                    line: line_of(text, &corr.title),
                }),
            }
        }
        report.loaded += parsed.filters.len();
        self.collection.filters.extend(parsed.filters);
        report
    }

    /// Removes correlations that reference rules which are not loaded (also transitively),
    /// reporting each as invalid in its file's report.
    fn drop_dangling_correlations(&mut self, report: &mut LoadReport) {
        loop {
            let mut known: HashSet<String> = HashSet::new();
            for r in &self.collection.rules {
                known.extend(r.id.iter().cloned());
                known.extend(r.name.iter().cloned());
            }
            for c in &self.collection.correlations {
                known.extend(c.id.iter().cloned());
                known.extend(c.name.iter().cloned());
            }
            let before = self.collection.correlations.len();
            let mut dropped = Vec::new();
            let mut kept = Vec::new();
            let mut kept_origin = Vec::new();
            let corrs = std::mem::take(&mut self.collection.correlations);
            let origins = std::mem::take(&mut self.corr_origin);
            for (c, origin) in corrs.into_iter().zip(origins) {
                if c.rules.iter().all(|r| known.contains(r)) {
                    kept.push(c);
                    kept_origin.push(origin);
                } else {
                    dropped.push((c, origin));
                }
            }
            self.collection.correlations = kept;
            self.corr_origin = kept_origin;
            for (c, origin) in dropped {
                let missing: Vec<&String> =
                    c.rules.iter().filter(|r| !known.contains(*r)).collect();
                let problem = Problem::Invalid {
                    reason: format!(
                        "correlation `{}` references rules that are not loaded: {missing:?}",
                        c.title
                    ),
                    line: None,
                };
                if let Some(file) = report.files.iter_mut().find(|f| f.path == origin) {
                    file.loaded = file.loaded.saturating_sub(1);
                    file.problems.push(problem);
                }
            }
            if self.collection.correlations.len() == before {
                break;
            }
        }
    }
}

/// One loaded detection rule or correlation, as listed by [`RuleSet::infos`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RuleInfo {
    /// The rule id (the title for rules without one): what alerts carry as `rule.id`.
    pub id: String,
    /// The title.
    pub title: String,
    /// `rule`, `baseline` or `correlation`.
    pub kind: &'static str,
    /// The Sigma level, as written (`high`), if any.
    pub level: Option<String>,
    /// The Sigma status (`stable`, `test`, `experimental`, ...), if any.
    pub status: Option<String>,
    /// The tags, as written (`attack.t1609`).
    pub tags: Vec<String>,
    /// The description, if any.
    pub description: Option<String>,
    /// The file it was loaded from (`builtin:<path>` for the built-in pack).
    pub file: String,
}

/// rsigma 0.23 parses a `temporal` correlation without `condition` as "at least one of the
/// rules" (`gte: 1`), so it fires on any single rule; the specification says all referenced
/// rules must match within the timespan. Rewrites that default to `gte: <number of rules>`.
/// (An explicit `gte: 1` is indistinguishable after parsing and gets the same treatment; it
/// would make a temporal correlation a plain OR of its rules.)
fn require_all_temporal_rules(corr: &mut rsigma_parser::CorrelationRule) {
    use rsigma_parser::{ConditionOperator, CorrelationCondition, CorrelationType};
    if corr.correlation_type != CorrelationType::Temporal {
        return;
    }
    if let CorrelationCondition::Threshold {
        predicates,
        field: None,
        ..
    } = &mut corr.condition
    {
        if predicates.as_slice() == [(ConditionOperator::Gte, 1)] {
            predicates[0].1 = corr.rules.len() as u64;
        }
    }
}

/// The text of the rule file a [`RuleInfo::file`] names: the built-in pack's embedded copy for
/// `builtin:<path>`, else the file on disk, read up to `max_bytes` (the `bool` says it was cut).
/// `None` when it cannot be read.
pub fn rule_file_text(file: &str, max_bytes: usize) -> Option<(String, bool)> {
    if let Some(name) = file.strip_prefix("builtin:") {
        let text = builtin_files().iter().find(|(n, _)| *n == name)?.1;
        return Some(cut(text, max_bytes));
    }
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(file)
        .ok()?
        .take(max_bytes as u64 + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (text, was_cut) = cut(&text, max_bytes);
    Some((text, was_cut))
}

fn cut(text: &str, max: usize) -> (String, bool) {
    if text.len() <= max {
        return (text.to_string(), false);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (text[..end].to_string(), true)
}

/// Whether a path names a Sigma rule file (not a test-event file).
pub fn is_rule_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yml" | "yaml")
    )
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>, report: &mut LoadReport) {
    if path.is_dir() {
        match std::fs::read_dir(path) {
            Ok(entries) => {
                for entry in entries.flatten() {
                    collect_files(&entry.path(), out, report);
                }
            }
            Err(e) => report.files.push(FileReport {
                path: path.to_path_buf(),
                loaded: 0,
                problems: vec![Problem::Invalid {
                    reason: format!("expected a readable directory: {e}"),
                    line: None,
                }],
            }),
        }
    } else if is_rule_file(path) {
        out.push(path.to_path_buf());
    } else if !path.exists() {
        report.files.push(FileReport {
            path: path.to_path_buf(),
            loaded: 0,
            problems: vec![Problem::Invalid {
                reason: "expected an existing rule file or directory".to_string(),
                line: None,
            }],
        });
    }
}

/// 1-based line of the first occurrence of `needle` in `text`.
fn line_of(text: &str, needle: &str) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    text.find(needle)
        .map(|pos| text[..pos].matches('\n').count() + 1)
}

/// The first `'quoted'` token in a message.
fn quoted(message: &str) -> Option<&str> {
    let start = message.find('\'')? + 1;
    let len = message[start..].find('\'')?;
    Some(&message[start..start + len])
}

fn classify_parse_error(message: &str, text: &str) -> Problem {
    classify_parse_message(message, text).unwrap_or(Problem::Invalid {
        reason: message.to_string(),
        line: None,
    })
}

/// Maps an rsigma parse message to a problem; `None` for warnings that do not drop a document.
fn classify_parse_message(message: &str, text: &str) -> Option<Problem> {
    if message.starts_with("related[") || message.starts_with("invalid ") {
        return None;
    }
    if message.starts_with("Unknown modifier") {
        let modifier = quoted(message).unwrap_or("");
        return Some(Problem::Unsupported {
            construct: format!("modifier |{modifier}"),
            line: line_of(text, &format!("|{modifier}")),
        });
    }
    let line = yaml_line(message).or_else(|| quoted(message).and_then(|q| line_of(text, q)));
    Some(Problem::Invalid {
        reason: lower_first(message),
        line,
    })
}

/// serde_yaml style "at line N column M".
fn yaml_line(message: &str) -> Option<usize> {
    let rest = &message[message.find("line ")? + 5..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn classify_compile_error(error: &EvalError, title: &str, text: &str) -> Problem {
    let line = line_of(text, title);
    match error {
        EvalError::InvalidRegex(e) => Problem::Unsupported {
            construct: format!("regex syntax not supported by the Rust regex engine (look-around or back-reference?) in `{title}`: {}", e.to_string().lines().last().unwrap_or("")),
            line,
        },
        EvalError::InvalidModifiers(m) => Problem::Unsupported {
            construct: format!("modifier combination in `{title}`: {m}"),
            line,
        },
        other => Problem::Invalid {
            reason: format!("rule `{title}`: {other}"),
            line,
        },
    }
}

fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_file_with_one_bad_rule_keeps_the_rest() {
        let yaml = "title: Good\nid: good-1\nlogsource: {product: linux, category: process_creation}\ndetection:\n  sel:\n    Image|endswith: /nc\n  condition: sel\n---\ntitle: Bad modifier\nlogsource: {product: linux}\ndetection:\n  sel:\n    Image|frobnicate: x\n  condition: sel\n---\ntitle: Unknown name\nlogsource: {product: linux}\ndetection:\n  sel:\n    Image: x\n  condition: other\n";
        let (set, report) = RuleSet::from_yaml("t.yml", yaml);
        assert_eq!(set.len(), 1);
        let file = &report.files[0];
        assert_eq!(file.loaded, 1);
        assert!(file.problems.iter().any(|p| matches!(p, Problem::Unsupported { construct, line: Some(13) } if construct == "modifier |frobnicate")), "{:?}", file.problems);
        assert!(file
            .problems
            .iter()
            .any(|p| matches!(p, Problem::Invalid { .. })));
        assert!(matches!(file.status(), FileStatus::Invalid { .. }));
    }

    #[test]
    fn dangling_correlation_is_dropped() {
        let yaml = "title: C\nid: c-1\ncorrelation:\n  type: event_count\n  rules: [nope]\n  group-by: [host.name]\n  timespan: 5m\n  condition: {gte: 2}\n";
        let (set, report) = RuleSet::from_yaml("c.yml", yaml);
        assert_eq!(set.correlation_count(), 0);
        assert!(report.any_invalid() || report.files[0].loaded == 0);
    }

    const THREE: &str = "title: A\nid: a\nstatus: test\nlevel: high\ntags: [attack.execution, attack.t1609]\nlogsource: {product: linux, category: process_creation}\ndetection:\n  sel:\n    Image|endswith: /nc\n  condition: sel\n---\ntitle: B\nid: b\nlogsource: {product: linux, category: process_creation}\ndetection:\n  sel:\n    Image|endswith: /sh\n  condition: sel\n---\ntitle: C\nid: c\nlevel: critical\ncorrelation:\n  type: event_count\n  rules: [a]\n  group-by: [host.name]\n  timespan: 5m\n  condition: {gte: 2}\n";

    #[test]
    fn infos_list_every_rule_with_its_metadata_and_file() {
        let (set, _) = RuleSet::from_yaml("r.yml", THREE);
        let infos = set.infos();
        let ids: Vec<&str> = infos.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(infos[0].level.as_deref(), Some("high"));
        assert_eq!(infos[0].status.as_deref(), Some("test"));
        assert_eq!(infos[0].tags, ["attack.execution", "attack.t1609"]);
        assert_eq!(infos[0].file, "r.yml");
        assert_eq!(infos[1].level, None);
        assert_eq!(infos[2].kind, "correlation");
    }

    #[test]
    fn disabling_a_rule_drops_it_and_the_correlations_over_it() {
        let (mut set, _) = RuleSet::from_yaml("r.yml", THREE);
        let removed = set.disable(&HashSet::from(["a".to_string()]));
        assert_eq!(removed, ["a", "c"]);
        assert_eq!(set.rule_keys(), ["b"]);
        let (mut set, _) = RuleSet::from_yaml("r.yml", THREE);
        assert_eq!(set.disable(&HashSet::from(["c".to_string()])), ["c"]);
        assert_eq!(set.rule_keys(), ["a", "b"]);
        assert!(set.disable(&HashSet::new()).is_empty());
    }

    #[test]
    fn keeping_one_correlation_keeps_the_rules_it_needs() {
        let (mut set, _) = RuleSet::from_yaml("r.yml", THREE);
        assert!(set.keep_only("c"));
        assert_eq!(set.rule_keys(), ["a", "c"]);
        let (mut set, _) = RuleSet::from_yaml("r.yml", THREE);
        assert!(set.keep_only("b"));
        assert_eq!(set.rule_keys(), ["b"]);
        let (mut set, _) = RuleSet::from_yaml("r.yml", THREE);
        assert!(!set.keep_only("nope"));
        assert!(set.is_empty());
    }

    #[test]
    fn builtin_rule_files_are_readable_by_their_listed_name() {
        let (set, _) = RuleSet::builtin();
        let info = set.infos().into_iter().next().expect("a built-in rule");
        let (text, cut) = rule_file_text(&info.file, 1 << 20).expect("embedded");
        assert!(!cut);
        assert!(text.contains(&info.title), "{}", info.file);
        let (short, cut) = rule_file_text(&info.file, 10).expect("embedded");
        assert!(cut && short.len() <= 10);
        assert!(rule_file_text("/nonexistent/x.yml", 100).is_none());
    }
}
