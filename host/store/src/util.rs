//! Helpers shared by the table modules: JSON columns, error classification,
//! limits.

use serde_json::Value;

use crate::{Error, Result};

/// Serializes a JSON column.
pub(crate) fn json_text(value: &Value) -> String {
    value.to_string()
}

/// Serializes an optional JSON column.
pub(crate) fn json_text_opt(value: Option<&Value>) -> Option<String> {
    value.map(json_text)
}

/// Parses a JSON column; `column` names it (`table.column`) in the error.
pub(crate) fn parse_json(column: &'static str, text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| Error::Corrupt {
        column,
        message: e.to_string(),
    })
}

/// Parses an optional JSON column.
pub(crate) fn parse_json_opt(column: &'static str, text: Option<String>) -> Result<Option<Value>> {
    text.map(|t| parse_json(column, &t)).transpose()
}

/// True when the database refused a write because of a unique index or a
/// primary key.
pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// The number of rows a listing returns: `default` when the caller asked
/// for none (0 or less), at most `max`.
pub(crate) fn clamp_limit(limit: i64, default: i64, max: i64) -> i64 {
    if limit <= 0 { default } else { limit.min(max) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_default_and_cap() {
        assert_eq!(clamp_limit(0, 100, 500), 100);
        assert_eq!(clamp_limit(-3, 100, 500), 100);
        assert_eq!(clamp_limit(7, 100, 500), 7);
        assert_eq!(clamp_limit(10_000, 100, 500), 500);
    }

    #[test]
    fn corrupt_json_names_the_column() {
        let err = parse_json("runs.input", "{not json").expect_err("invalid");
        assert!(
            err.to_string()
                .starts_with("stored runs.input is not valid JSON: "),
            "{err}"
        );
        assert_eq!(parse_json_opt("runs.report", None).expect("none"), None);
    }
}
