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

/// `value` cut to `max` characters, for echoing bad input back safely.
pub fn truncate(value: &str, max: usize) -> String {
    let mut out: String = value.chars().take(max).collect();
    if out.len() < value.len() {
        out.push('…');
    }
    out.escape_debug().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_names() {
        assert!(workspace("acme").is_ok());
        assert!(workspace("team_2-prod").is_ok());
        for bad in ["", "Acme", "-x", "a/b", &"x".repeat(64)] {
            assert!(workspace(bad).is_err(), "{bad}");
        }
    }
}
