//! Behaviour tests of the query language through the public API: one test binary, one module
//! per area (filters, pipes, error messages, round trips and robustness, row pipes).

mod errors;
mod filter;
mod pipes;
mod properties;
mod rows;

use crowsnest_query::{Filter, RangeBound, Scalar};

/// `field:value` (or free text with `None`).
pub fn term(field: Option<&str>, value: &str) -> Filter {
    Filter::Term {
        field: field.map(str::to_owned),
        value: value.to_owned(),
    }
}

/// Free-text term.
pub fn word(value: &str) -> Filter {
    term(None, value)
}

/// `field:value`.
pub fn ft(field: &str, value: &str) -> Filter {
    term(Some(field), value)
}

/// Phrase.
pub fn phrase(field: Option<&str>, text: &str) -> Filter {
    Filter::Phrase {
        field: field.map(str::to_owned),
        text: text.to_owned(),
    }
}

/// Wildcard.
pub fn wild(field: Option<&str>, pattern: &str) -> Filter {
    Filter::Wildcard {
        field: field.map(str::to_owned),
        pattern: pattern.to_owned(),
    }
}

/// Exists.
pub fn exists(field: &str) -> Filter {
    Filter::Exists {
        field: field.to_owned(),
    }
}

/// Not.
pub fn not(f: Filter) -> Filter {
    Filter::Not(Box::new(f))
}

/// Range.
pub fn range(field: &str, lower: RangeBound, upper: RangeBound) -> Filter {
    Filter::Range {
        field: field.to_owned(),
        lower,
        upper,
    }
}

/// Inclusive number bound.
pub fn inc(n: f64) -> RangeBound {
    RangeBound::Inclusive(Scalar::Number(n))
}

/// Exclusive number bound.
pub fn exc(n: f64) -> RangeBound {
    RangeBound::Exclusive(Scalar::Number(n))
}

/// Inclusive text bound.
pub fn inc_text(s: &str) -> RangeBound {
    RangeBound::Inclusive(Scalar::Text(s.to_owned()))
}
