//! The plugin's configuration for the run's workspace, from `warden.toml`
//! or the API. Always available.

use crate::wit::playbook::warden::plugin::config as wit;

/// One value, when set.
pub fn get(key: &str) -> Option<String> {
    wit::get(key)
}

/// One value parsed, or `default` when unset or unparsable.
pub fn get_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    get(key).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Every key and value.
pub fn all() -> Vec<(String, String)> {
    wit::all()
}
