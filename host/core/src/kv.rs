//! A plugin's own key/value state in a workspace (SPEC PL-2 `kv`), for
//! every backend over the database (playbooks and gates).

use warden_runtime::CallInfo;
use warden_runtime::types::HostError;
use warden_store::Store;

pub(crate) async fn get(
    store: &Store,
    call: &CallInfo,
    key: &str,
) -> Result<Option<Vec<u8>>, HostError> {
    store
        .kv_get(&call.workspace, &call.plugin, key)
        .await
        .map_err(unavailable)
}

pub(crate) async fn set(
    store: &Store,
    call: &CallInfo,
    key: &str,
    value: &[u8],
) -> Result<(), HostError> {
    store
        .kv_set(&call.workspace, &call.plugin, key, value, KV_MAX_KEYS)
        .await
        .map_err(unavailable)
}

pub(crate) async fn delete(store: &Store, call: &CallInfo, key: &str) -> Result<bool, HostError> {
    store
        .kv_delete(&call.workspace, &call.plugin, key)
        .await
        .map_err(unavailable)
}

pub(crate) async fn list(
    store: &Store,
    call: &CallInfo,
    prefix: &str,
) -> Result<Vec<String>, HostError> {
    store
        .kv_list(&call.workspace, &call.plugin, prefix, KV_MAX_KEYS)
        .await
        .map_err(unavailable)
}

/// Largest number of keys a plugin may keep in one workspace.
const KV_MAX_KEYS: i64 = 1000;

/// A store error as a host call's error: what the plugin may know, the
/// rest logged.
pub fn unavailable(e: warden_store::Error) -> HostError {
    match e {
        warden_store::Error::NotFound(m) => HostError::NotFound(m),
        warden_store::Error::Conflict(m) => HostError::Invalid(m),
        warden_store::Error::AlreadyExists(m) => HostError::Invalid(format!("{m} already exists")),
        other => {
            tracing::warn!(error = %other, "host call failed on the database");
            HostError::Unavailable("the database is unavailable".to_string())
        }
    }
}
