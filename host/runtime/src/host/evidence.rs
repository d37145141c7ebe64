//! `warden:plugin/evidence`: `artifacts:read` for `usage` and `list-old`,
//! `artifacts:compact` for the audited `compress`.

use serde_json::{Value, json};
use warden_meta::Capability;

use crate::backend::{ActionStatus, Mutation};
use crate::bindings::iface::evidence::Host;
use crate::types::{Compressed, EvidenceFile, EvidenceUsage, HostError};

use super::HostState;

impl Host for HostState {
    async fn usage(&mut self) -> wasmtime::Result<Result<EvidenceUsage, HostError>> {
        let call = self.call.tool_start("evidence.usage", Value::Null);
        let result = match self.call.require(Capability::ArtifactsRead) {
            Ok(()) => self.call.backend.evidence_usage(&self.call.info).await,
            Err(e) => Err(e),
        };
        Ok(self.call.tool_result(call, "evidence.usage", result, |u| {
            format!("{:.1} % used", u.used_pct)
        }))
    }

    async fn list_old(
        &mut self,
        older_than_secs: u64,
    ) -> wasmtime::Result<Result<Vec<EvidenceFile>, HostError>> {
        let call = self.call.tool_start(
            "evidence.list_old",
            json!({ "older_than_secs": older_than_secs }),
        );
        let result = match self.call.require(Capability::ArtifactsRead) {
            Ok(()) => {
                self.call
                    .backend
                    .evidence_list_old(&self.call.info, older_than_secs)
                    .await
            }
            Err(e) => Err(e),
        };
        Ok(self
            .call
            .tool_result(call, "evidence.list_old", result, |f| {
                format!("{} file(s)", f.len())
            }))
    }

    async fn compress(
        &mut self,
        path: String,
    ) -> wasmtime::Result<Result<Option<Compressed>, HostError>> {
        let answer = self
            .call
            .mutate(
                Capability::ArtifactsCompact,
                Mutation::CompressEvidence { path },
            )
            .await?;
        if let Err(e) = answer {
            return Ok(Err(e));
        }
        // The sizes travel in the audited action's `after`, which the
        // backend filled in when it applied the compression; a planned
        // action has none, and the plugin is told `none`.
        let sizes = self
            .call
            .actions
            .last()
            .filter(|a| a.status == ActionStatus::Applied)
            .and_then(|a| a.after.as_ref())
            .map(|after| Compressed {
                original_bytes: after["original_bytes"].as_u64().unwrap_or(0),
                compressed_bytes: after["compressed_bytes"].as_u64().unwrap_or(0),
            });
        Ok(Ok(sizes))
    }
}
