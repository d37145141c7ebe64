//! `tokens`: stored by hash, found only while unrevoked.

use warden_store::tokens::TokenRow;
use warden_store::{Error, Store, new_id};

use crate::common::TestResult;

conformance!(find_by_hash_ignores_revoked, list_touch_and_duplicates);

fn token(workspace: &str, name: &str, hash: &str, created_at: i64) -> TokenRow {
    TokenRow {
        id: new_id(),
        name: name.to_string(),
        workspace: workspace.to_string(),
        role: "operator".to_string(),
        hash: hash.to_string(),
        created_at,
        last_used_at: None,
        revoked_at: None,
    }
}

async fn find_by_hash_ignores_revoked(store: Store) -> TestResult {
    let ci = token("ws", "ci", "aa11", 1);
    let bot = token("ws", "bot", "bb22", 2);
    store.insert_token(&ci).await?;
    store.insert_token(&bot).await?;
    assert_eq!(store.find_token("aa11").await?, Some(ci.clone()));
    assert_eq!(store.find_token("cc33").await?, None);

    assert!(
        !store.revoke_token("other", &ci.id).await?,
        "tokens are revoked in their own workspace only"
    );
    assert_eq!(store.find_token("aa11").await?, Some(ci.clone()));
    assert!(store.revoke_token("ws", &ci.id).await?);
    assert_eq!(
        store.find_token("aa11").await?,
        None,
        "a revoked token is not found"
    );
    assert_eq!(store.find_token("bb22").await?, Some(bot));

    let listed = store.list_tokens("ws").await?;
    let revoked = listed
        .iter()
        .find(|t| t.id == ci.id)
        .expect("revoked tokens are still listed");
    let revoked_at = revoked.revoked_at.expect("revoked_at set");
    assert!(
        store.revoke_token("ws", &ci.id).await?,
        "revoking again is fine"
    );
    let again = store.list_tokens("ws").await?;
    assert_eq!(
        again
            .iter()
            .find(|t| t.id == ci.id)
            .and_then(|t| t.revoked_at),
        Some(revoked_at)
    );
    assert!(!store.revoke_token("ws", "no-such-token").await?);
    Ok(())
}

async fn list_touch_and_duplicates(store: Store) -> TestResult {
    let old = token("ws", "old", "h1", 100);
    let new = token("ws", "new", "h2", 200);
    store.insert_token(&old).await?;
    store.insert_token(&new).await?;
    store
        .insert_token(&token("other", "theirs", "h3", 300))
        .await?;
    let names: Vec<String> = store
        .list_tokens("ws")
        .await?
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["new", "old"], "newest first");

    store.touch_token(&old.id, 12_345).await?;
    assert_eq!(
        store.find_token("h1").await?.and_then(|t| t.last_used_at),
        Some(12_345)
    );
    store.touch_token("no-such-token", 1).await?;

    let same_hash = token("ws", "copy", "h1", 400);
    let err = store
        .insert_token(&same_hash)
        .await
        .expect_err("hashes are unique");
    assert!(matches!(err, Error::AlreadyExists(_)), "{err:?}");
    assert_eq!(err.to_string(), "a token with this secret already exists");
    let same_id = TokenRow {
        hash: "h9".to_string(),
        ..old.clone()
    };
    let err = store
        .insert_token(&same_id)
        .await
        .expect_err("ids are unique");
    assert_eq!(
        err.to_string(),
        format!("token \"{}\" already exists", old.id)
    );
    assert_eq!(store.list_tokens("ws").await?.len(), 2);
    Ok(())
}
