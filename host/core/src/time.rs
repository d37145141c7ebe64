//! Times as the API and the stored JSON spell them.

use std::time::Duration;

/// Milliseconds since the epoch as RFC 3339 (UTC).
pub fn time(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// An optional time.
pub fn opt_time(ms: Option<i64>) -> Option<String> {
    ms.map(time)
}
