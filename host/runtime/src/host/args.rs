//! Checks of what a plugin passes to a host call, made before anything of
//! the host copies, logs or stores it (SPEC SE-4: a hostile plugin wastes
//! only its own limits).
//!
//! wasmtime has already lifted each argument into host memory when a host
//! function runs; from then on the host touches at most a short prefix of
//! an argument (for the call's event) until the argument passed these
//! checks. Free text has its NUL characters (U+0000) stripped, as every
//! string a plugin hands the host does: PostgreSQL stores no NUL in `text`.

use serde_json::{Value, json};

use crate::backend::Mutation;
use crate::types::HostError;

/// Longest task id a host call accepts, in bytes. The host's own ids are
/// 36 bytes; this leaves room for ids of other stores.
pub(crate) const MAX_ID: usize = 128;
/// Longest reason of a task mutation, in bytes.
pub(crate) const MAX_REASON: usize = 1024;
/// Longest title of a new task, in bytes.
pub(crate) const MAX_TITLE: usize = 500;
/// Largest body of a new task, in bytes.
pub(crate) const MAX_BODY: usize = 64 * 1024;
/// Longest dedup key of a new task, in bytes.
pub(crate) const MAX_DEDUP_KEY: usize = 200;
/// Longest evidence path, in bytes.
pub(crate) const MAX_PATH: usize = 1024;
/// Most states one task filter may name.
pub(crate) const MAX_STATES: usize = 16;
/// Longest state name in a task filter, in bytes.
pub(crate) const MAX_STATE: usize = 32;
/// Longest kv key or key prefix, in bytes.
pub(crate) const MAX_KEY: usize = 256;
/// Longest string an event's arguments carry, in bytes; the rest is cut.
pub(crate) const MAX_EVENT_ARG: usize = 128;
/// Longest summary of a host call's answer in its event, in bytes.
pub(crate) const MAX_SUMMARY: usize = 512;

/// The priorities of a new task.
const PRIORITIES: [&str; 3] = ["urgent", "normal", "low"];

/// At most [`MAX_EVENT_ARG`] bytes of `value`, marked when cut, for an
/// event: copies only the prefix, however long `value` is.
pub(crate) fn abridged(value: &str) -> Value {
    Value::String(prefix(value, MAX_EVENT_ARG))
}

/// The first `max` bytes of `value` (on a character boundary), with NUL
/// characters dropped and a mark when cut.
fn prefix(value: &str, max: usize) -> String {
    let mut end = value.len().min(max);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    let mut out: String = value[..end].chars().filter(|&c| c != '\0').collect();
    if end < value.len() {
        out.push('…');
    }
    out
}

/// The value as an error message quotes it: a short prefix, escaped.
fn quoted(value: &str) -> String {
    format!("\"{}\"", prefix(value, 32).escape_debug())
}

/// Removes NUL characters (U+0000) from `s`, in place; a string without
/// one is left untouched (no copy).
pub(crate) fn strip_nul(s: &mut String) {
    if s.contains('\0') {
        s.retain(|c| c != '\0');
    }
}

/// An identifier (task id, kv key): 1 to `max` bytes, no NUL. Identifiers
/// are refused rather than stripped, so that two keys never become one.
pub(crate) fn check_name(what: &str, value: &str, max: usize) -> Result<(), HostError> {
    if value.is_empty() {
        return Err(HostError::Invalid(format!("{what} must not be empty")));
    }
    check_len(what, value, max)?;
    if value.contains('\0') {
        return Err(HostError::Invalid(format!(
            "{what} {} must not contain the NUL character (U+0000)",
            quoted(value)
        )));
    }
    Ok(())
}

/// A key prefix: like [`check_name`], but may be empty.
pub(crate) fn check_prefix(what: &str, value: &str, max: usize) -> Result<(), HostError> {
    if value.is_empty() {
        return Ok(());
    }
    check_name(what, value, max)
}

/// Free text of at most `max` bytes.
pub(crate) fn check_len(what: &str, value: &str, max: usize) -> Result<(), HostError> {
    if value.len() > max {
        return Err(HostError::Invalid(format!(
            "{what} {} is {} bytes, over the {max} byte limit",
            quoted(value),
            value.len()
        )));
    }
    Ok(())
}

/// The states of a task filter: at most [`MAX_STATES`], each a short name.
pub(crate) fn check_states(states: &[String]) -> Result<(), HostError> {
    if states.len() > MAX_STATES {
        return Err(HostError::Invalid(format!(
            "a task filter names {} states, over the limit of {MAX_STATES}",
            states.len()
        )));
    }
    for s in states {
        check_name("task state", s, MAX_STATE)?;
    }
    Ok(())
}

/// The states of a task filter as an event shows them: the first
/// [`MAX_STATES`], each abridged.
pub(crate) fn abridged_states(states: &[String]) -> Value {
    Value::Array(
        states
            .iter()
            .take(MAX_STATES)
            .map(|s| abridged(s))
            .collect(),
    )
}

/// The arguments of a mutation as its `tool_start` event shows them: each
/// string abridged, a body by its size only.
pub(crate) fn mutation_args(m: &Mutation) -> Value {
    match m {
        Mutation::Requeue { id, reason }
        | Mutation::Reset { id, reason }
        | Mutation::Block { id, reason }
        | Mutation::Unblock { id, reason } => {
            json!({ "id": abridged(id), "reason": abridged(reason) })
        }
        Mutation::Create {
            title,
            body,
            priority,
            dedup_key,
        } => json!({
            "title": abridged(title),
            "body_bytes": body.len(),
            "priority": abridged(priority),
            "dedup_key": dedup_key.as_deref().map(abridged),
        }),
        Mutation::CompressEvidence { path } => json!({ "path": abridged(path) }),
    }
}

/// Checks a mutation's arguments and strips NUL from its free text, in
/// every mode, before it is recorded, planned or applied.
pub(crate) fn check_mutation(m: &mut Mutation) -> Result<(), HostError> {
    match m {
        Mutation::Requeue { id, reason }
        | Mutation::Reset { id, reason }
        | Mutation::Block { id, reason }
        | Mutation::Unblock { id, reason } => {
            check_name("task id", id, MAX_ID)?;
            check_len("reason", reason, MAX_REASON)?;
            strip_nul(reason);
        }
        Mutation::Create {
            title,
            body,
            priority,
            dedup_key,
        } => {
            check_len("title", title, MAX_TITLE)?;
            check_len("body", body, MAX_BODY)?;
            strip_nul(title);
            strip_nul(body);
            if title.trim().is_empty() {
                return Err(HostError::Invalid("a task needs a title".to_string()));
            }
            if !PRIORITIES.contains(&priority.as_str()) {
                return Err(HostError::Invalid(format!(
                    "unknown priority {} (urgent, normal or low)",
                    quoted(priority)
                )));
            }
            if let Some(key) = dedup_key {
                check_name("dedup key", key, MAX_DEDUP_KEY)?;
            }
        }
        Mutation::CompressEvidence { path } => check_name("evidence path", path, MAX_PATH)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_carries_a_short_prefix_of_a_long_argument() {
        let long = "x".repeat(4 << 20);
        let v = abridged(&long);
        let s = v.as_str().unwrap();
        assert_eq!(s.len(), MAX_EVENT_ARG + '…'.len_utf8());
        assert!(s.ends_with('…'));
        assert_eq!(abridged("short"), json!("short"));
        // A cut never splits a character, and NUL is dropped.
        let wide = "é".repeat(100);
        assert!(abridged(&wide).as_str().unwrap().starts_with("éé"));
        assert_eq!(abridged("a\0b"), json!("ab"));
    }

    #[test]
    fn names_are_refused_with_their_size_not_their_bytes() {
        let long = "x".repeat(4 << 20);
        let e = check_name("task id", &long, MAX_ID).unwrap_err();
        let HostError::Invalid(m) = e else {
            panic!("{e:?}")
        };
        assert!(m.starts_with("task id \"xxxx"), "{m}");
        assert!(
            m.ends_with("…\" is 4194304 bytes, over the 128 byte limit"),
            "{m}"
        );
        assert!(m.len() < 120, "{m}");
        assert!(check_name("kv key", "", MAX_KEY).is_err());
        assert!(check_name("kv key", "a\0b", MAX_KEY).is_err());
        assert!(check_prefix("kv prefix", "", MAX_KEY).is_ok());
        assert!(check_name("task id", "01a24e8f-af0f", MAX_ID).is_ok());
    }

    #[test]
    fn mutations_are_checked_and_their_text_stripped() {
        let mut m = Mutation::Block {
            id: "t1".into(),
            reason: "a\0b".into(),
        };
        check_mutation(&mut m).unwrap();
        assert_eq!(
            m,
            Mutation::Block {
                id: "t1".into(),
                reason: "ab".into()
            }
        );
        let mut m = Mutation::Requeue {
            id: "t1".into(),
            reason: "r".repeat(MAX_REASON + 1),
        };
        assert!(check_mutation(&mut m).is_err());
        let mut m = Mutation::Create {
            title: "t".into(),
            body: String::new(),
            priority: "soon".into(),
            dedup_key: None,
        };
        let e = check_mutation(&mut m).unwrap_err();
        assert!(
            matches!(&e, HostError::Invalid(m) if m == "unknown priority \"soon\" (urgent, normal or low)"),
            "{e:?}"
        );
        let mut m = Mutation::Create {
            title: "\0".into(),
            body: String::new(),
            priority: "low".into(),
            dedup_key: None,
        };
        assert!(check_mutation(&mut m).is_err());
    }

    #[test]
    fn mutation_args_show_sizes_not_bodies() {
        let m = Mutation::Create {
            title: "t".into(),
            body: "b".repeat(10_000),
            priority: "low".into(),
            dedup_key: Some("k".into()),
        };
        assert_eq!(
            mutation_args(&m),
            json!({ "title": "t", "body_bytes": 10_000, "priority": "low", "dedup_key": "k" })
        );
    }
}
