//! Helpers shared by the table modules: JSON columns, error classification,
//! limits, statements built at run time.

use serde_json::Value;
use sqlx::any::{Any, AnyArguments};
use sqlx::{Arguments, AssertSqlSafe, Encode, Type};

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

/// Serializes a list of names as a JSON array column.
pub(crate) fn strings_text(values: &[String]) -> String {
    Value::from(values.to_vec()).to_string()
}

/// Parses a JSON array of strings; `column` names it in the error.
pub(crate) fn parse_strings(column: &'static str, text: &str) -> Result<Vec<String>> {
    serde_json::from_str(text).map_err(|e| Error::Corrupt {
        column,
        message: e.to_string(),
    })
}

/// A statement whose text depends on its inputs (lists of ids, optional
/// filters): `arg` appends a bound value and returns its `$n` placeholder,
/// so that the numbering always matches the bindings.
#[derive(Default)]
pub(crate) struct Sql {
    text: String,
    args: AnyArguments,
    count: usize,
    failed: Option<String>,
}

impl Sql {
    /// A statement starting with `text`.
    pub(crate) fn new(text: &str) -> Sql {
        Sql {
            text: text.to_string(),
            ..Sql::default()
        }
    }

    /// Appends SQL text.
    pub(crate) fn push(&mut self, text: &str) -> &mut Sql {
        self.text.push_str(text);
        self
    }

    /// Binds `value`; returns its placeholder.
    pub(crate) fn arg<'t, T>(&mut self, value: T) -> String
    where
        T: Encode<'t, Any> + Type<Any>,
    {
        self.count += 1;
        if let Err(e) = self.args.add(value)
            && self.failed.is_none()
        {
            self.failed = Some(format!("encoding argument ${} failed: {e}", self.count));
        }
        format!("${}", self.count)
    }

    /// Binds every value; returns their placeholders, comma-separated (for
    /// `IN (...)`; the list must not be empty).
    pub(crate) fn args<'t, T>(&mut self, values: impl IntoIterator<Item = T>) -> String
    where
        T: Encode<'t, Any> + Type<Any>,
    {
        values
            .into_iter()
            .map(|v| self.arg(v))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The query, ready to run.
    pub(crate) fn build(self) -> Result<sqlx::query::Query<'static, Any, AnyArguments>> {
        if let Some(message) = self.failed {
            return Err(Error::Database(sqlx::Error::Encode(message.into())));
        }
        Ok(sqlx::query_with(AssertSqlSafe(self.text), self.args))
    }
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
