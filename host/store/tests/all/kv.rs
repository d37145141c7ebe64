//! `kv`: per-plugin, per-workspace state with a key limit.

use warden_store::{Error, Store};

use crate::common::TestResult;

conformance!(
    set_get_replace_delete,
    max_keys_limits_new_keys_only,
    list_by_prefix_in_byte_order
);

async fn set_get_replace_delete(store: Store) -> TestResult {
    assert_eq!(store.kv_get("ws", "p", "k").await?, None);
    store.kv_set("ws", "p", "k", b"one", 10).await?;
    assert_eq!(
        store.kv_get("ws", "p", "k").await?.as_deref(),
        Some(&b"one"[..])
    );
    let binary = [0u8, 255, 1, 0, 128];
    store.kv_set("ws", "p", "k", &binary, 10).await?;
    assert_eq!(
        store.kv_get("ws", "p", "k").await?.as_deref(),
        Some(&binary[..])
    );
    store.kv_set("ws", "p", "empty", b"", 10).await?;
    assert_eq!(store.kv_get("ws", "p", "empty").await?, Some(Vec::new()));

    // Keys are per workspace and per plugin.
    assert_eq!(store.kv_get("other", "p", "k").await?, None);
    assert_eq!(store.kv_get("ws", "q", "k").await?, None);

    assert!(store.kv_delete("ws", "p", "k").await?);
    assert!(!store.kv_delete("ws", "p", "k").await?);
    assert_eq!(store.kv_get("ws", "p", "k").await?, None);
    Ok(())
}

async fn max_keys_limits_new_keys_only(store: Store) -> TestResult {
    store.kv_set("ws", "p", "a", b"1", 2).await?;
    store.kv_set("ws", "p", "b", b"2", 2).await?;
    let err = store
        .kv_set("ws", "p", "c", b"3", 2)
        .await
        .expect_err("a third key is over the limit");
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    assert_eq!(err.to_string(), "kv holds 2 keys, the limit");
    assert_eq!(
        store.kv_get("ws", "p", "c").await?,
        None,
        "the refused key was not written"
    );

    // Replacing works at the limit; other plugins and workspaces have their own.
    store.kv_set("ws", "p", "a", b"1b", 2).await?;
    assert_eq!(
        store.kv_get("ws", "p", "a").await?.as_deref(),
        Some(&b"1b"[..])
    );
    store.kv_set("ws", "q", "c", b"3", 2).await?;
    store.kv_set("other", "p", "c", b"3", 2).await?;

    store.kv_delete("ws", "p", "b").await?;
    store.kv_set("ws", "p", "c", b"3", 2).await?;
    assert_eq!(store.kv_list("ws", "p", "", 100).await?, ["a", "c"]);
    Ok(())
}

async fn list_by_prefix_in_byte_order(store: Store) -> TestResult {
    for key in [
        "job/b", "job/a", "job/B", "jobs", "job%x", "job_y", "other", "job/c/d",
    ] {
        store.kv_set("ws", "p", key, key.as_bytes(), 100).await?;
    }
    store.kv_set("ws", "q", "job/z", b"", 100).await?;
    assert_eq!(
        store.kv_list("ws", "p", "job/", 100).await?,
        ["job/B", "job/a", "job/b", "job/c/d"]
    );
    // `%` and `_` are plain characters, not patterns.
    assert_eq!(store.kv_list("ws", "p", "job%", 100).await?, ["job%x"]);
    assert_eq!(store.kv_list("ws", "p", "job_", 100).await?, ["job_y"]);
    assert_eq!(
        store.kv_list("ws", "p", "job/", 2).await?,
        ["job/B", "job/a"]
    );
    assert_eq!(store.kv_list("ws", "p", "", 100).await?.len(), 8);
    assert!(store.kv_list("ws", "p", "zzz", 100).await?.is_empty());
    Ok(())
}
