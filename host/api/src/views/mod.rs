//! The API's objects as it answers them: one typed view per object, built
//! from its store row (`From<&Row>`, or a constructor when the view needs
//! more than the row). A view is at once what a handler sends, what the
//! OpenAPI document describes (`ToSchema`, under the same name) and what a
//! client reads back (`Deserialize`: the `warden` command line parses its
//! answers into these types). Times are RFC 3339 UTC strings.
//!
//! A view declares its fields in the order the OpenAPI document lists
//! them; [`Answer`] sends it through a [`Value`], whose keys serde_json
//! keeps sorted, so answers list their keys in alphabetical order as they
//! always have.

use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use crate::error::{ApiError, Error};

mod alert;
mod gate;
mod plugin;
mod run;
mod status;
mod system;
mod task;
mod thread;
mod token;
mod workspace;

pub use alert::{
    Alert, AlertList, Breaker, BreakerList, Notification, Notifications, Silence, SilenceList,
};
pub use gate::{
    Deleted, GateBinding, GateBindings, GateBreaker, GateDecision, GateStatistic, GateStatistics,
    TaskVerdicts, TopReason, Verdict, VerdictList, VerdictReason,
};
pub use plugin::{
    Grant, GrantList, Pin, PinInForce, PinList, PinTarget, Plugin, PluginList, PluginUploaded,
    PluginVersion, Rejection,
};
pub use run::{Action, ActionList, Run, RunAccepted, RunActions, RunList, RunTriggered};
pub use status::{HourlyUsage, LiveWorker, RunningTask, WorkspaceStatus};
pub use system::{
    CallPolicy, GatewayCall, GatewayCalls, GatewayUsage, GatewayUsageGroup, Process, Processes,
    Provider, Providers,
};
pub use task::{
    Claim, ClaimResponse, CompleteResponse, DeadLetters, DecisionResponse, EventSeq, FailResponse,
    HeartbeatResponse, Lease, StageRun, Task, TaskBudget, TaskDetail, TaskEvent, TaskEvents,
    TaskList, TaskUsed,
};
pub use thread::{
    Message, MessageList, Participant, ParticipantAdded, ParticipantState, Thread, ThreadAudit,
    ThreadAuditEntry, ThreadDetail, ThreadList, ThreadTransition,
};
pub use token::{AuditEntry, AuditLog, TokenCreated, TokenInfo, TokenList};
pub use workspace::{HourlyBudget, ModeView, Settings, Worker, WorkerList};

/// A view as the JSON body of an answer, keys in alphabetical order.
pub struct Answer<T>(pub T);

impl<T: Serialize> IntoResponse for Answer<T> {
    fn into_response(self) -> Response {
        match to_json(&self.0) {
            Ok(v) => axum::Json(v).into_response(),
            Err(e) => ApiError(e).into_response(),
        }
    }
}

/// `view` as the [`Value`] that [`Answer`] sends (or that an answer built
/// with `json!` embeds).
pub fn to_json<T: Serialize>(view: &T) -> Result<Value, Error> {
    serde_json::to_value(view).map_err(|e| Error::Internal(format!("cannot serialise a view: {e}")))
}

#[cfg(test)]
mod samples;

#[cfg(test)]
mod tests;
