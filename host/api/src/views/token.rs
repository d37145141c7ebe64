//! Tokens of a workspace (SPEC SE-1) and its audit log (SE-3).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use warden_core::time::{opt_time, time};
use warden_store::audit::AuditRow;
use warden_store::tokens::TokenRow;

/// A token just created (`tokens::create`): the secret shows only here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenCreated {
    pub id: String,
    pub name: String,
    pub workspace: String,
    pub role: String,
    /// The bearer secret.
    pub token: String,
    pub created_at: String,
}

impl TokenCreated {
    /// The view of `row`, just created with the secret `secret`.
    pub fn new(row: &TokenRow, secret: &str) -> TokenCreated {
        TokenCreated {
            id: row.id.clone(),
            name: row.name.clone(),
            workspace: row.workspace.clone(),
            role: row.role.clone(),
            token: secret.to_string(),
            created_at: time(row.created_at),
        }
    }
}

/// A token, without its secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub role: String,
    pub workspace: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl From<&TokenRow> for TokenInfo {
    fn from(t: &TokenRow) -> TokenInfo {
        TokenInfo {
            id: t.id.clone(),
            name: t.name.clone(),
            role: t.role.clone(),
            workspace: t.workspace.clone(),
            created_at: time(t.created_at),
            last_used_at: opt_time(t.last_used_at),
            revoked_at: opt_time(t.revoked_at),
        }
    }
}

/// `tokens::list`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenInfo>,
}

/// `tokens::audit`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditLog {
    pub entries: Vec<AuditEntry>,
}

/// One audit event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: Value,
}

impl From<&AuditRow> for AuditEntry {
    fn from(a: &AuditRow) -> AuditEntry {
        AuditEntry {
            id: a.id,
            at: time(a.at),
            actor: a.actor.clone(),
            action: a.action.clone(),
            target: a.target.clone(),
            detail: a.detail.clone(),
        }
    }
}
