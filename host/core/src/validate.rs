//! Checks of names and values that come from users (SPEC SE-2).

/// A workspace name: 1 to 63 lowercase letters, digits, `-` and `_`,
/// starting with a letter or digit.
pub fn workspace(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid workspace name \"{}\": use 1 to 63 lowercase letters, digits, '-' and '_'",
            truncate(name, 80)
        ))
    }
}

/// A plugin name (the same rule as plugin metadata).
pub fn plugin(name: &str) -> Result<(), String> {
    warden_meta::validate_name(name).map_err(|_| {
        format!(
            "invalid plugin name \"{}\": use 1 to 64 lowercase letters, digits and dashes",
            truncate(name, 80)
        )
    })
}

/// An opaque id from a path (run, task, token): printable, bounded.
pub fn id(kind: &str, value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!("invalid {kind} id \"{}\"", truncate(value, 80)))
    }
}

/// A free-text field with a length cap.
pub fn text(field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.len() > max {
        return Err(format!(
            "{field} is {} bytes, over the {max} byte limit",
            value.len()
        ));
    }
    Ok(())
}

/// True when JSON text holds a NUL character (U+0000, the escape
/// `\u0000`) in a string or key. PostgreSQL can store no NUL in `text` nor
/// in `jsonb`, so such input must be refused as bad input on both dialects
/// rather than fail in the database (SPEC SE-2: never a 5xx).
pub fn json_has_nul(json: &[u8]) -> bool {
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            0 => return true,
            // Outside strings valid JSON has no backslash; inside, each one
            // starts an escape, so skipping the escaped byte keeps `\\` from
            // being read as the start of another escape.
            b'\\' => {
                if json.get(i + 1) == Some(&b'u') && json.get(i + 2..i + 6) == Some(&b"0000"[..]) {
                    return true;
                }
                i += 2;
            }
            _ => i += 1,
        }
    }
    false
}

/// True when a raw (percent-encoded) URI path or query holds a NUL
/// character (`%00`); see [`json_has_nul`].
pub fn uri_has_nul(raw: &str) -> bool {
    raw.contains("%00")
}

/// The error of [`json_has_nul`] and [`uri_has_nul`].
pub const NUL_MESSAGE: &str = "text must not contain the NUL character (U+0000)";

/// `value` cut to `max` characters, for echoing bad input back safely.
pub fn truncate(value: &str, max: usize) -> String {
    let mut out: String = value.chars().take(max).collect();
    if out.len() < value.len() {
        out.push('…');
    }
    out.escape_debug().to_string()
}

/// Parses `diagnose`, `plan`, `apply`.
pub fn parse_mode(s: &str) -> crate::error::Result<warden_runtime::types::Mode> {
    match s {
        "diagnose" => Ok(warden_runtime::types::Mode::Diagnose),
        "plan" => Ok(warden_runtime::types::Mode::Plan),
        "apply" => Ok(warden_runtime::types::Mode::Apply),
        other => Err(crate::error::Error::invalid(format!(
            "invalid mode \"{}\": expected diagnose, plan or apply",
            crate::validate::truncate(other, 40)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_nul_finds_the_escape_only_where_it_is_one() {
        assert!(json_has_nul(br#"{"title": "a\u0000b"}"#));
        assert!(json_has_nul(br#"{"a\u0000": 1}"#));
        assert!(json_has_nul(br#"["x\\\u0000"]"#));
        assert!(json_has_nul(b"\"a\0b\""));
        // An escaped backslash followed by the text u0000 is no NUL.
        assert!(!json_has_nul(br#"{"title": "a\\u0000b"}"#));
        assert!(!json_has_nul(br#"{"title": "a\u0001 \"u0000\""}"#));
        assert!(!json_has_nul(b"{}"));
        assert!(!json_has_nul(br#"["\"]"#));
    }

    #[test]
    fn workspace_names() {
        assert!(workspace("acme").is_ok());
        assert!(workspace("team_2-prod").is_ok());
        for bad in ["", "Acme", "-x", "a/b", &"x".repeat(64)] {
            assert!(workspace(bad).is_err(), "{bad}");
        }
    }
}
