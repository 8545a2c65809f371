//! Typed access to the fields a decoder maps, with errors that name the field.
//!
//! A missing field or an explicit `null` is "absent" (`Ok(None)`); a present field of the
//! wrong type is an error naming its dotted path, because mapping it anyway would put a value
//! of the wrong type into a field rules and the index rely on.

use serde_json::{Map, Value};

use crate::error::{describe, FieldError};

/// Joins a parent path and a key (`"" + "verb"` → `verb`, `user + username` → `user.username`).
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// A string field.
pub(crate) fn opt_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    parent: &str,
) -> Result<Option<&'a str>, FieldError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(other) => Err(FieldError::field(
            join(parent, key),
            format!("expected a string, found {}", describe(other)),
        )),
    }
}

/// An object field.
pub(crate) fn opt_obj<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    parent: &str,
) -> Result<Option<&'a Map<String, Value>>, FieldError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(inner)) => Ok(Some(inner)),
        Some(other) => Err(FieldError::field(
            join(parent, key),
            format!("expected an object, found {}", describe(other)),
        )),
    }
}

/// An integer field.
pub(crate) fn opt_int(
    obj: &Map<String, Value>,
    key: &str,
    parent: &str,
) -> Result<Option<i64>, FieldError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64()),
        Some(other) => Err(FieldError::field(
            join(parent, key),
            format!("expected an integer, found {}", describe(other)),
        )),
    }
}

/// A boolean field.
pub(crate) fn opt_bool(
    obj: &Map<String, Value>,
    key: &str,
    parent: &str,
) -> Result<Option<bool>, FieldError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(FieldError::field(
            join(parent, key),
            format!("expected a boolean, found {}", describe(other)),
        )),
    }
}

/// An array-of-strings field; absent means empty.
pub(crate) fn str_list(
    obj: &Map<String, Value>,
    key: &str,
    parent: &str,
) -> Result<Vec<String>, FieldError> {
    let items = match obj.get(key) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(FieldError::field(
                join(parent, key),
                format!("expected an array of strings, found {}", describe(other)),
            ))
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        match item {
            Value::String(text) => out.push(text.clone()),
            other => {
                return Err(FieldError::field(
                    format!("{}[{index}]", join(parent, key)),
                    format!("expected a string, found {}", describe(other)),
                ))
            }
        }
    }
    Ok(out)
}

/// A string value as an owned JSON value, for `Event::set_if_present`.
pub(crate) fn text(value: Option<&str>) -> Option<Value> {
    value.map(|s| Value::String(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn absent_and_null_are_none_wrong_types_name_the_path() {
        let o = obj(json!({"a": null, "b": 5, "c": ["x", 1]}));
        assert_eq!(opt_str(&o, "a", "p"), Ok(None));
        assert_eq!(opt_str(&o, "zz", "p"), Ok(None));
        let err = opt_str(&o, "b", "user").expect_err("number is not a string");
        assert_eq!(err.field.as_deref(), Some("user.b"));
        assert_eq!(err.reason, "expected a string, found 5");
        let err = str_list(&o, "c", "").expect_err("mixed array");
        assert_eq!(err.field.as_deref(), Some("c[1]"));
        assert_eq!(opt_int(&o, "b", ""), Ok(Some(5)));
    }
}
