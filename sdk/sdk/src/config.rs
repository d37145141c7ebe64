//! The plugin's configuration for the run's workspace, from `warden.toml`
//! or the API. Always available.
//!
//! Values arrive as text: a TOML string as it is, any other TOML value
//! (number, boolean, array) in its TOML form, e.g. `800`, `true` or
//! `["a", "b"]`.

use std::fmt::Display;
use std::str::FromStr;

use crate::wit::playbook::warden::plugin::config as wit;

/// One value, when set.
pub fn get(key: &str) -> Option<String> {
    wit::get(key)
}

/// One value parsed, or `default` when unset or unparsable.
pub fn get_or<T: FromStr>(key: &str, default: T) -> T {
    get(key).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One value parsed, `default` when unset, and an error naming the key and
/// the value when it does not parse (so that a typo in the operator's
/// config is reported instead of silently ignored).
pub fn get_parsed<T>(key: &str, default: T) -> Result<T, String>
where
    T: FromStr,
    T::Err: Display,
{
    match get(key) {
        None => Ok(default),
        Some(value) => parse_value(key, &value),
    }
}

/// One optional value parsed, with an error as [`get_parsed`] gives.
pub fn get_parsed_opt<T>(key: &str) -> Result<Option<T>, String>
where
    T: FromStr,
    T::Err: Display,
{
    get(key).map(|value| parse_value(key, &value)).transpose()
}

/// A list of strings: a TOML array of strings (`["a", 'b']`), or text with
/// one item per line or comma. Empty when unset.
pub fn get_list(key: &str) -> Vec<String> {
    get(key).map(|v| parse_list(&v)).unwrap_or_default()
}

/// Every key and value.
pub fn all() -> Vec<(String, String)> {
    wit::all()
}

fn parse_value<T>(key: &str, value: &str) -> Result<T, String>
where
    T: FromStr,
    T::Err: Display,
{
    let trimmed = value.trim();
    // A TOML string holding a number arrives as the bare text; a quoted
    // one (from the API's JSON) may keep its quotes.
    let unquoted = trimmed
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(trimmed);
    unquoted
        .parse()
        .map_err(|e| format!("invalid config value {key} = \"{value}\": {e}"))
}

/// Splits a list value; see [`get_list`].
fn parse_list(value: &str) -> Vec<String> {
    let trimmed = value.trim();
    let Some(inner) = trimmed.strip_prefix('[').and_then(|v| v.strip_suffix(']')) else {
        return trimmed
            .split([',', '\n'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
    };
    let mut items = Vec::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // A basic (double-quoted) string, with backslash escapes.
            '"' => {
                let mut item = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some('n') => item.push('\n'),
                            Some('t') => item.push('\t'),
                            Some(other) => item.push(other),
                            None => {}
                        },
                        other => item.push(other),
                    }
                }
                items.push(item);
            }
            // A literal (single-quoted) string: no escapes.
            '\'' => {
                let item: String = chars.by_ref().take_while(|c| *c != '\'').collect();
                items.push(item);
            }
            // Separators, whitespace and bare words (numbers) are skipped
            // or taken as they are.
            c if c == ',' || c.is_whitespace() => {}
            c => {
                let mut item = c.to_string();
                while let Some(&next) = chars.peek() {
                    if next == ',' || next.is_whitespace() {
                        break;
                    }
                    item.push(next);
                    chars.next();
                }
                items.push(item);
            }
        }
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_come_as_toml_arrays_or_plain_text() {
        assert_eq!(parse_list(r#"["a", "b\"c", 'd\e']"#), ["a", "b\"c", "d\\e"]);
        assert_eq!(parse_list("[]"), Vec::<String>::new());
        assert_eq!(parse_list("[1, 2]"), ["1", "2"]);
        assert_eq!(parse_list("x, y\nz"), ["x", "y", "z"]);
        assert_eq!(parse_list("  "), Vec::<String>::new());
    }

    #[test]
    fn bad_values_name_the_key() {
        assert_eq!(parse_value::<u32>("max", " 80 "), Ok(80));
        assert_eq!(parse_value::<u32>("max", "\"80\""), Ok(80));
        assert_eq!(
            parse_value::<u32>("max", "eighty"),
            Err("invalid config value max = \"eighty\": invalid digit found in string".into())
        );
    }
}
