//! Values read from fast-field columns: segment-local ([`SegVal`]) and resolved ([`GVal`]).

use std::cmp::Ordering;
use std::hash::{BuildHasherDefault, Hasher};

use crowsnest_model::format_timestamp;
use serde_json::Value;
use tantivy::columnar::{Column, DynamicColumn, StrColumn};
use tantivy::{DocId, SegmentReader};

use super::Source;
use crate::schema::{micros_to_time, TS};

// ---- values ----

/// A value inside one segment (strings as term ordinals of the path's column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum SegVal {
    Str(u64),
    I64(i64),
    U64(u64),
    F64(u64),
    Bool(bool),
    Date(i64),
}

impl SegVal {
    pub(super) fn as_f64(self) -> Option<f64> {
        match self {
            SegVal::I64(v) => Some(v as f64),
            SegVal::U64(v) => Some(v as f64),
            SegVal::F64(bits) => Some(f64::from_bits(bits)),
            _ => None,
        }
    }
    pub(super) fn is_int(self) -> bool {
        matches!(self, SegVal::I64(_) | SegVal::U64(_))
    }
}

/// A resolved value, numbers canonical (integral floats become integers).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum GVal {
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(u64),
    Date(i64),
    Str(String),
}

impl GVal {
    pub(super) fn rank(&self) -> u8 {
        match self {
            GVal::Bool(_) => 0,
            GVal::Int(_) | GVal::UInt(_) | GVal::Float(_) => 1,
            GVal::Date(_) => 2,
            GVal::Str(_) => 3,
        }
    }
    pub(super) fn number(&self) -> Option<f64> {
        match self {
            GVal::Int(v) => Some(*v as f64),
            GVal::UInt(v) => Some(*v as f64),
            GVal::Float(bits) => Some(f64::from_bits(*bits)),
            _ => None,
        }
    }
    pub(super) fn to_json(&self) -> Value {
        match self {
            GVal::Bool(b) => Value::Bool(*b),
            GVal::Int(v) => Value::from(*v),
            GVal::UInt(v) => Value::from(*v),
            GVal::Float(bits) => number_json(f64::from_bits(*bits)),
            GVal::Date(micros) => micros_to_time(*micros)
                .map(|t| Value::String(format_timestamp(t)))
                .unwrap_or(Value::Null),
            GVal::Str(s) => Value::String(s.clone()),
        }
    }
}

pub(super) fn cmp_gval(a: &GVal, b: &GVal) -> Ordering {
    match (a, b) {
        (GVal::Int(x), GVal::Int(y)) => x.cmp(y),
        (GVal::UInt(x), GVal::UInt(y)) => x.cmp(y),
        (GVal::Str(x), GVal::Str(y)) => x.cmp(y),
        (GVal::Date(x), GVal::Date(y)) => x.cmp(y),
        (GVal::Bool(x), GVal::Bool(y)) => x.cmp(y),
        _ => match (a.number(), b.number()) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            _ => a.rank().cmp(&b.rank()),
        },
    }
}

pub(super) fn cmp_segval(a: SegVal, b: SegVal) -> Ordering {
    match (a, b) {
        (SegVal::Str(x), SegVal::Str(y)) => x.cmp(&y),
        (SegVal::Date(x), SegVal::Date(y)) => x.cmp(&y),
        (SegVal::Bool(x), SegVal::Bool(y)) => x.cmp(&y),
        (SegVal::I64(x), SegVal::I64(y)) => x.cmp(&y),
        _ => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            _ => seg_rank(a).cmp(&seg_rank(b)),
        },
    }
}

pub(super) fn seg_rank(v: SegVal) -> u8 {
    match v {
        SegVal::Bool(_) => 0,
        SegVal::I64(_) | SegVal::U64(_) | SegVal::F64(_) => 1,
        SegVal::Date(_) => 2,
        SegVal::Str(_) => 3,
    }
}

/// A JSON number, integral when it is one (and exact in f64).
pub(super) fn number_json(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        return Value::from(v as i64);
    }
    serde_json::Number::from_f64(v)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

// ---- column readers ----

/// The columns of one source in one segment.
pub(super) enum Reader {
    Ts(Option<Column<tantivy::DateTime>>),
    Columns {
        strings: Option<StrColumn>,
        others: Vec<DynamicColumn>,
    },
}

impl Reader {
    pub(super) fn open(source: &Source, segment: &SegmentReader) -> tantivy::Result<Self> {
        match source {
            Source::Ts => Ok(Reader::Ts(segment.fast_fields().date(TS).ok())),
            Source::Path(name) => {
                let mut strings = None;
                let mut others = Vec::new();
                for handle in segment.fast_fields().dynamic_column_handles(name)? {
                    match handle.open()? {
                        DynamicColumn::Str(column) => strings = Some(column),
                        other => others.push(other),
                    }
                }
                Ok(Reader::Columns { strings, others })
            }
        }
    }

    pub(super) fn read(&self, doc: DocId, out: &mut Vec<SegVal>) {
        out.clear();
        match self {
            Reader::Ts(column) => {
                if let Some(ts) = column.as_ref().and_then(|c| c.first(doc)) {
                    out.push(SegVal::Date(ts.into_timestamp_micros()));
                }
            }
            Reader::Columns { strings, others } => {
                if let Some(column) = strings {
                    out.extend(column.ords().values_for_doc(doc).map(SegVal::Str));
                }
                for column in others {
                    match column {
                        DynamicColumn::I64(c) => out.extend(c.values_for_doc(doc).map(SegVal::I64)),
                        DynamicColumn::U64(c) => out.extend(c.values_for_doc(doc).map(SegVal::U64)),
                        DynamicColumn::F64(c) => {
                            out.extend(c.values_for_doc(doc).map(|v| SegVal::F64(v.to_bits())))
                        }
                        DynamicColumn::Bool(c) => {
                            out.extend(c.values_for_doc(doc).map(SegVal::Bool))
                        }
                        DynamicColumn::DateTime(c) => out.extend(
                            c.values_for_doc(doc)
                                .map(|v| SegVal::Date(v.into_timestamp_micros())),
                        ),
                        _ => {}
                    }
                }
            }
        }
    }

    pub(super) fn resolve(&self, value: SegVal, buffer: &mut String) -> GVal {
        match value {
            SegVal::Str(ord) => {
                buffer.clear();
                if let Reader::Columns {
                    strings: Some(column),
                    ..
                } = self
                {
                    if column.ord_to_str(ord, buffer).is_err() {
                        buffer.clear();
                    }
                }
                GVal::Str(buffer.clone())
            }
            SegVal::I64(v) => GVal::Int(v),
            SegVal::U64(v) => match i64::try_from(v) {
                Ok(i) => GVal::Int(i),
                Err(_) => GVal::UInt(v),
            },
            SegVal::F64(bits) => {
                let f = f64::from_bits(bits);
                if f.fract() == 0.0 && f.abs() < 9.0e15 {
                    GVal::Int(f as i64)
                } else {
                    GVal::Float(bits)
                }
            }
            SegVal::Bool(b) => GVal::Bool(b),
            SegVal::Date(micros) => GVal::Date(micros),
        }
    }
}

// ---- hashing ----

/// FxHash (rustc's hasher): fast for the small integer keys of segment groups.
#[derive(Default, Clone, Copy)]
pub(super) struct FxHasher {
    hash: u64,
}

pub(super) const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.hash = (self.hash.rotate_left(5) ^ i).wrapping_mul(FX_SEED);
    }
    fn write_i64(&mut self, i: i64) {
        self.write_u64(i as u64);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    fn finish(&self) -> u64 {
        self.hash
    }
}

pub(super) type FxBuild = BuildHasherDefault<FxHasher>;
