//! Small key/value state of this plugin in the run's workspace. Needs
//! capability `kv`. Keys are up to 256 bytes, values up to 64 KiB.

use crate::HostError;
use crate::wit::playbook::warden::plugin::kv as wit;

/// The value of `key`, when set.
pub fn get(key: &str) -> Result<Option<Vec<u8>>, HostError> {
    wit::get(key).map_err(Into::into)
}

/// The value of `key` as UTF-8 text, when set and valid.
pub fn get_string(key: &str) -> Result<Option<String>, HostError> {
    Ok(get(key)?.and_then(|v| String::from_utf8(v).ok()))
}

/// Sets `key` to `value`.
pub fn set(key: &str, value: &[u8]) -> Result<(), HostError> {
    wit::set(key, value).map_err(Into::into)
}

/// Removes `key`; true when it existed.
pub fn delete(key: &str) -> Result<bool, HostError> {
    wit::delete(key).map_err(Into::into)
}

/// Keys that start with `prefix`, in order.
pub fn list_keys(prefix: &str) -> Result<Vec<String>, HostError> {
    wit::list_keys(prefix).map_err(Into::into)
}
