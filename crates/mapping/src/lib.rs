//! User-defined mappings per source, for shapes no built-in parser knows: rename, copy,
//! parse (JSON, key=value, grok, regex, nginx/apache/klog/syslog lines), set constants.
//!
//! A mapping is a program in VRL, the Vector Remap Language (the `vrl` crate): a language made
//! for exactly this, with compile-time type checking that makes the author handle every call
//! that can fail (`parse_json!(...)` or `parse_json(...) ?? {}`), and parsers we would
//! otherwise write by hand. It runs on the normalized event (the fields as the parser left
//! them, `event.original` included) of every input, after decoding and before the event is
//! stamped and written to the WAL, so detection, storage and outputs all see its result; and
//! in `crowsnest hunt --mapping FILE`.
//!
//! Why VRL and not jq (`jaq`), measured here on the same mapping (rename two nested fields,
//! parse a `key=value` message, set four fields; docs/ARCHITECTURE.md has the table): VRL ran
//! it in 9.7 µs per event against 190 µs for jaq (whose regex-based key/value split is the
//! only way jq has), creates nested ECS objects on assignment (`.user.name = ...`, which jaq
//! refuses on a missing parent), and brings the parsers; jaq builds in 39 s of CPU against
//! 263 s and adds 3.5 MB to a binary against 15 MB. We pay the build time once.
//!
//! What a mapping can never do: lose the event or its original. A program that fails at run
//! time (a field that does not parse, an `abort`) leaves the event exactly as it was before
//! that mapping and notes why in `crowsnest.mapping_error` ("name, line L, column C:
//! message"); `event.original` is restored if a program removed or changed it. The VRL
//! functions that reach the network, the system or the environment are not compiled in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crowsnest_model::Event;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use vrl::compiler::state::RuntimeState;
use vrl::compiler::{Context, ExpressionError, Program, TargetValue, TimeZone};
use vrl::diagnostic::{DiagnosticList, Formatter};
use vrl::value::{Secrets, Value};

/// The field where a failed mapping says why.
pub const ERROR_FIELD: &str = "crowsnest.mapping_error";

/// The field every event keeps as received.
const ORIGINAL_FIELD: &str = "event.original";

/// One `[[mappings]]` entry of the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingConfig {
    /// The mapping's name, in errors and in `crowsnest.mapping_error`.
    pub name: String,
    /// The `event.dataset` values it applies to (`*` matches any run of characters, `?` one,
    /// e.g. `acme.*`); empty: every event.
    #[serde(default)]
    pub datasets: Vec<String>,
    /// The VRL program, inline.
    #[serde(default)]
    pub program: Option<String>,
    /// Or the file that holds it (relative paths from the configuration file's directory).
    #[serde(default)]
    pub file: Option<PathBuf>,
}

/// Why a mapping could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    /// The entry itself is wrong (no name, no program, both program and file, ...).
    #[error("mapping `{name}`: {reason}")]
    Config {
        /// The mapping.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The program file could not be read.
    #[error("mapping `{name}`: reading {path}: {source}")]
    Read {
        /// The mapping.
        name: String,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The program does not compile; `diagnostics` shows each error at its line and column.
    #[error("mapping `{name}` ({origin}) does not compile:\n{diagnostics}")]
    Compile {
        /// The mapping.
        name: String,
        /// `inline` or the file.
        origin: String,
        /// The compiler's messages with the program's lines.
        diagnostics: String,
    },
}

/// A mapping that failed on one event (the event was kept as it was before it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The mapping.
    pub mapping: String,
    /// Line and column of the failing expression in the program (from 1), when known.
    pub at: Option<(usize, usize)>,
    /// What failed, as VRL says it (it names the function and the value).
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.at {
            Some((line, column)) => write!(
                f,
                "{}, line {line}, column {column}: {}",
                self.mapping, self.message
            ),
            None => write!(f, "{}: {}", self.mapping, self.message),
        }
    }
}

/// One compiled mapping.
struct Mapping {
    name: String,
    datasets: Vec<String>,
    source: String,
    program: Program,
    /// Times without a zone in the program's parse functions are UTC.
    timezone: TimeZone,
}

/// The compiled mappings, applied in their configured order.
#[derive(Default)]
pub struct Mappings {
    list: Vec<Mapping>,
}

impl std::fmt::Debug for Mappings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.list.iter().map(|m| m.name.as_str()).collect();
        f.debug_struct("Mappings").field("names", &names).finish()
    }
}

impl Mappings {
    /// Compiles the configured mappings; `base` resolves relative `file` paths.
    ///
    /// # Errors
    ///
    /// [`MappingError`] for the first entry that is wrong, unreadable or does not compile.
    pub fn compile(configs: &[MappingConfig], base: Option<&Path>) -> Result<Self, MappingError> {
        let functions = vrl::stdlib::all();
        let mut list = Vec::with_capacity(configs.len());
        let mut names = std::collections::HashSet::new();
        for config in configs {
            let name = config.name.trim().to_string();
            let fail = |reason: &str| MappingError::Config {
                name: name.clone(),
                reason: reason.to_string(),
            };
            if name.is_empty() {
                return Err(fail("`name` is empty"));
            }
            if !names.insert(name.clone()) {
                return Err(fail("another mapping has this name"));
            }
            if config.datasets.iter().any(|d| d.trim().is_empty()) {
                return Err(fail("`datasets` has an empty entry"));
            }
            let (source, origin) = match (&config.program, &config.file) {
                (Some(program), None) => (program.clone(), "inline".to_string()),
                (None, Some(file)) => {
                    let path = match base {
                        Some(base) if file.is_relative() => base.join(file),
                        _ => file.clone(),
                    };
                    let source =
                        std::fs::read_to_string(&path).map_err(|source| MappingError::Read {
                            name: name.clone(),
                            path: path.clone(),
                            source,
                        })?;
                    (source, path.display().to_string())
                }
                (Some(_), Some(_)) => return Err(fail("give `program` or `file`, not both")),
                (None, None) => return Err(fail("give the VRL `program` or its `file`")),
            };
            let program = compile_program(&name, &origin, &source, &functions)?;
            list.push(Mapping {
                name,
                datasets: config.datasets.clone(),
                source,
                program,
                timezone: utc(),
            });
        }
        Ok(Self { list })
    }

    /// One mapping of every event from a program's text (`crowsnest hunt --mapping x.vrl`).
    ///
    /// # Errors
    ///
    /// [`MappingError::Compile`] when it does not compile.
    pub fn from_program(name: &str, source: &str) -> Result<Self, MappingError> {
        let program = compile_program(name, name, source, &vrl::stdlib::all())?;
        Ok(Self {
            list: vec![Mapping {
                name: name.to_string(),
                datasets: Vec::new(),
                source: source.to_string(),
                program,
                timezone: utc(),
            }],
        })
    }

    /// True when there is no mapping (the pipeline then skips the step).
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The mappings' names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.list.iter().map(|m| m.name.as_str())
    }

    /// Applies every mapping whose datasets match the event (as it is when that mapping's turn
    /// comes), in order. A mapping that fails leaves the event as it was before it; the
    /// failures are returned and written to [`ERROR_FIELD`].
    pub fn apply(&self, event: &mut Event) -> Vec<Failure> {
        let mut failures = Vec::new();
        for mapping in &self.list {
            if !mapping.applies_to(event) {
                continue;
            }
            if let Err(failure) = mapping.run(event) {
                failures.push(failure);
            }
        }
        if !failures.is_empty() {
            let text: Vec<String> = failures.iter().map(ToString::to_string).collect();
            event.set(ERROR_FIELD, Json::String(text.join("; ")));
        }
        failures
    }
}

impl Mapping {
    fn applies_to(&self, event: &Event) -> bool {
        if self.datasets.is_empty() {
            return true;
        }
        let dataset = event
            .get_str(crowsnest_model::ecs::EVENT_DATASET)
            .unwrap_or("");
        self.datasets
            .iter()
            .any(|pattern| crowsnest_util::glob(pattern, dataset))
    }

    /// Runs the program on a copy of the event and takes its result only when it succeeded.
    fn run(&self, event: &mut Event) -> Result<(), Failure> {
        let original = event.get(ORIGINAL_FIELD).cloned();
        let mut target = TargetValue {
            value: Value::from(Json::Object(event.as_map().clone())),
            metadata: Value::Object(BTreeMap::new()),
            secrets: Secrets::default(),
        };
        let mut state = RuntimeState::default();
        let mut context = Context::new(&mut target, &mut state, &self.timezone);
        if let Err(error) = self.program.resolve(&mut context) {
            return Err(self.failure(&error));
        }
        let mapped: Json = target.value.try_into().map_err(|e| Failure {
            mapping: self.name.clone(),
            at: None,
            message: format!("the result is not JSON: {e}"),
        })?;
        let Json::Object(map) = mapped else {
            return Err(Failure {
                mapping: self.name.clone(),
                at: None,
                message: format!("the result is {}, not an object", kind(&mapped)),
            });
        };
        *event = Event::from_map(map);
        if let Some(original) = original {
            if event.get(ORIGINAL_FIELD) != Some(&original) {
                event.set(ORIGINAL_FIELD, original);
            }
        }
        Ok(())
    }

    fn failure(&self, error: &ExpressionError) -> Failure {
        let (message, span) = match error {
            ExpressionError::Error {
                message, labels, ..
            } => {
                let primary = labels.iter().find(|l| l.primary).or(labels.first());
                // VRL writes byte offsets into its message (`... at (77:90): ...`); the line and
                // column replace them.
                let message = strip_offsets(message);
                let text = match primary.map(|l| l.message.as_str()) {
                    Some(detail) if !detail.is_empty() && !message.contains(detail) => {
                        format!("{message}: {detail}")
                    }
                    _ => message,
                };
                (text, primary.map(|l| l.span))
            }
            ExpressionError::Abort { span, message } => (
                match message {
                    Some(message) => format!("aborted: {message}"),
                    None => "aborted".to_string(),
                },
                Some(*span),
            ),
            other => (other.to_string(), None),
        };
        Failure {
            mapping: self.name.clone(),
            at: span.map(|s| line_column(&self.source, s.start())),
            message,
        }
    }
}

fn compile_program(
    name: &str,
    origin: &str,
    source: &str,
    functions: &[Box<dyn vrl::compiler::Function>],
) -> Result<Program, MappingError> {
    let diagnostics = |list: DiagnosticList| MappingError::Compile {
        name: name.to_string(),
        origin: origin.to_string(),
        diagnostics: Formatter::new(source, list).to_string(),
    };
    let compiled = vrl::compiler::compile(source, functions).map_err(diagnostics)?;
    Ok(compiled.program)
}

fn utc() -> TimeZone {
    TimeZone::parse("UTC").unwrap_or_default()
}

/// Line and column (from 1, in characters) of a byte offset.
fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let before = source.get(..offset.min(source.len())).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

/// Removes VRL's ` at (start:end)` byte offsets from a runtime error's message.
fn strip_offsets(message: &str) -> String {
    if let Some(start) = message.find(" at (") {
        let rest = &message[start + 5..];
        if let Some(end) = rest.find(')') {
            let inside = &rest[..end];
            if inside
                .split(':')
                .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            {
                return format!("{}{}", &message[..start], &rest[end + 1..]);
            }
        }
    }
    message.to_string()
}

fn kind(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests;
