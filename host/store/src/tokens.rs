//! `tokens`: bearer tokens, stored as SHA-256 hashes only (SPEC SE-1).

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::util::is_unique_violation;
use crate::{Error, Result, Store, now_ms};

macro_rules! token_columns {
    () => {
        "id, name, workspace, role, hash, created_at, last_used_at, revoked_at"
    };
}

/// One token (never its secret).
#[derive(Clone, Debug, PartialEq)]
pub struct TokenRow {
    /// Id (UUID v7).
    pub id: String,
    /// A label for humans.
    pub name: String,
    /// The workspace it is confined to.
    pub workspace: String,
    /// `admin`, `operator`, `agent` or `viewer`.
    pub role: String,
    /// Hex SHA-256 of the secret; unique.
    pub hash: String,
    /// Created.
    pub created_at: i64,
    /// Last seen (updated at most once a minute by the server).
    pub last_used_at: Option<i64>,
    /// Revoked, when it is.
    pub revoked_at: Option<i64>,
}

/// The hex SHA-256 of a token's secret: what [`TokenRow::hash`] holds and
/// [`Store::find_token`] looks up, so that every caller hashes alike.
pub fn hash_secret(secret: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

impl Store {
    /// Stores a new token.
    ///
    /// A token whose id or hash is taken is an `Error::AlreadyExists`.
    pub async fn insert_token(&self, token: &TokenRow) -> Result<()> {
        let inserted = sqlx::query(concat!(
            "INSERT INTO tokens (",
            token_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(&token.id)
        .bind(&token.name)
        .bind(&token.workspace)
        .bind(&token.role)
        .bind(&token.hash)
        .bind(token.created_at)
        .bind(token.last_used_at)
        .bind(token.revoked_at)
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => {
                let id_taken: Option<i64> =
                    sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM tokens WHERE id = $1")
                        .bind(&token.id)
                        .fetch_optional(&self.pool)
                        .await?;
                Err(Error::AlreadyExists(match id_taken {
                    Some(_) => format!("token \"{}\"", token.id),
                    None => "a token with this secret".to_string(),
                }))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The unrevoked token with this hash.
    pub async fn find_token(&self, hash: &str) -> Result<Option<TokenRow>> {
        sqlx::query(concat!(
            "SELECT ",
            token_columns!(),
            " FROM tokens WHERE hash = $1 AND revoked_at IS NULL"
        ))
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(token_from_row)
        .transpose()
    }

    /// Tokens of a workspace, newest first.
    pub async fn list_tokens(&self, workspace: &str) -> Result<Vec<TokenRow>> {
        sqlx::query(concat!(
            "SELECT ",
            token_columns!(),
            " FROM tokens WHERE workspace = $1 ORDER BY created_at DESC, id DESC"
        ))
        .bind(workspace)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(token_from_row)
        .collect()
    }

    /// Revokes a token of a workspace; false when there was none.
    ///
    /// Revoking a revoked token is true and keeps its first `revoked_at`.
    pub async fn revoke_token(&self, workspace: &str, id: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE tokens SET revoked_at = COALESCE(revoked_at, $3) WHERE workspace = $1 AND id = $2",
        )
        .bind(workspace)
        .bind(id)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records use.
    pub async fn touch_token(&self, id: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE tokens SET last_used_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

fn token_from_row(row: &AnyRow) -> Result<TokenRow> {
    Ok(TokenRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        workspace: row.try_get("workspace")?,
        role: row.try_get("role")?,
        hash: row.try_get("hash")?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_secret_is_hex_sha256() {
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
