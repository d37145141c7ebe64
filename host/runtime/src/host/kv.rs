//! `warden:plugin/kv`: capability `kv`. The plugin's own state, so not an
//! audited action and allowed in every mode.

use serde_json::json;
use warden_meta::Capability;

use crate::bindings::iface::kv::Host;
use crate::types::HostError;

use super::HostState;
use super::args::{self, MAX_KEY};

/// Largest value, in bytes.
pub(crate) const MAX_VALUE: usize = 64 * 1024;

fn check_key(key: &str) -> Result<(), HostError> {
    args::check_name("kv key", key, MAX_KEY)
}

impl Host for HostState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, HostError>> {
        let call = self
            .call
            .tool_start("kv.get", json!({ "key": args::abridged(&key) }));
        let result = match check_key(&key).and_then(|()| self.call.require(Capability::Kv)) {
            Ok(()) => self.call.backend.kv_get(&self.call.info, &key).await,
            Err(e) => Err(e),
        };
        Ok(self.call.tool_result(call, "kv.get", result, |v| match v {
            Some(v) => format!("{} byte(s)", v.len()),
            None => "unset".to_string(),
        }))
    }

    async fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), HostError>> {
        let call = self.call.tool_start(
            "kv.set",
            json!({ "key": args::abridged(&key), "bytes": value.len() }),
        );
        let checked = check_key(&key).and_then(|()| self.call.require(Capability::Kv));
        let result = match checked {
            Ok(()) if value.len() > MAX_VALUE => Err(HostError::Invalid(format!(
                "kv value of {} bytes is over the {MAX_VALUE} byte limit",
                value.len()
            ))),
            Ok(()) => {
                self.call
                    .backend
                    .kv_set(&self.call.info, &key, &value)
                    .await
            }
            Err(e) => Err(e),
        };
        Ok(self
            .call
            .tool_result(call, "kv.set", result, |()| "stored".to_string()))
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<Result<bool, HostError>> {
        let call = self
            .call
            .tool_start("kv.delete", json!({ "key": args::abridged(&key) }));
        let result = match check_key(&key).and_then(|()| self.call.require(Capability::Kv)) {
            Ok(()) => self.call.backend.kv_delete(&self.call.info, &key).await,
            Err(e) => Err(e),
        };
        Ok(self.call.tool_result(call, "kv.delete", result, |existed| {
            format!("existed: {existed}")
        }))
    }

    async fn list_keys(
        &mut self,
        prefix: String,
    ) -> wasmtime::Result<Result<Vec<String>, HostError>> {
        let call = self
            .call
            .tool_start("kv.list-keys", json!({ "prefix": args::abridged(&prefix) }));
        let result = match args::check_prefix("kv key prefix", &prefix, MAX_KEY)
            .and_then(|()| self.call.require(Capability::Kv))
        {
            Ok(()) => self.call.backend.kv_list(&self.call.info, &prefix).await,
            Err(e) => Err(e),
        };
        Ok(self.call.tool_result(call, "kv.list-keys", result, |k| {
            format!("{} key(s)", k.len())
        }))
    }
}
