//! Connecting, migrating, pinging.

use warden_store::{Dialect, Store};

use crate::common::TestResult;

conformance!(migrations_apply_twice, ping_answers);

async fn migrations_apply_twice(store: Store) -> TestResult {
    // The harness migrated once already; a restart migrates again.
    store.migrate().await?;
    assert!(store.list_plugins().await?.is_empty());
    Ok(())
}

async fn ping_answers(store: Store) -> TestResult {
    store.ping().await?;
    assert!(matches!(
        store.dialect(),
        Dialect::Sqlite | Dialect::Postgres
    ));
    assert_eq!(
        store.dialect().name(),
        if store.dialect() == Dialect::Sqlite {
            "sqlite"
        } else {
            "postgres"
        }
    );
    Ok(())
}

#[tokio::test]
async fn sqlite_memory_database_works() -> TestResult {
    let store = Store::connect("sqlite::memory:").await?;
    store.migrate().await?;
    assert_eq!(store.dialect(), Dialect::Sqlite);
    let id = store
        .append_audit("system", None, "boot", "host", &serde_json::json!({}))
        .await?;
    // Another caller of the same store sees the same database.
    let other = store.clone();
    let listed = tokio::spawn(async move { other.list_audit(None, 10).await }).await??;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);
    store.close().await;
    Ok(())
}

#[tokio::test]
async fn sqlite_file_is_in_wal_mode() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("a").join("b").join("w.db");
    let store = Store::connect(&format!("sqlite://{}", path.display())).await?;
    store.migrate().await?;
    store
        .append_audit("system", None, "boot", "host", &serde_json::json!({}))
        .await?;
    // WAL mode keeps a -wal file beside the database while connections are open.
    let wal = path.with_file_name("w.db-wal");
    assert!(wal.exists(), "expected {} in WAL mode", wal.display());
    store.close().await;
    Ok(())
}

/// Issue 15: the durability level of SQLite is a choice the URL makes
/// for every connection of the pool. `NORMAL` (the default) keeps
/// commits across a crash of Warden (SPEC RL-4); `?synchronous=full`
/// syncs each commit before it is acknowledged, against a power loss.
#[tokio::test]
async fn sqlite_syncs_every_commit_when_the_url_asks() -> TestResult {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("w.db").display());
    let store = Store::connect(&format!("{url}?synchronous=full")).await?;
    store.migrate().await?;
    // Every connection of the pool, not only the first.
    let modes = futures_modes(&store, 8).await?;
    assert!(modes.iter().all(|m| m == "full"), "{modes:?}");
    store.close().await;

    let store = Store::connect(&url).await?;
    let modes = futures_modes(&store, 8).await?;
    assert!(modes.iter().all(|m| m == "normal"), "{modes:?}");
    store
        .append_audit("system", None, "boot", "host", &serde_json::json!({}))
        .await?;
    store.close().await;
    let memory = Store::connect("sqlite::memory:").await?;
    assert_eq!(memory.sync_mode().await?, "normal");

    let err = Store::connect(&format!("{url}?synchronous=sometimes"))
        .await
        .expect_err("an unknown level is refused");
    assert!(
        err.to_string()
            .contains("invalid synchronous \"sometimes\""),
        "{err}"
    );
    Ok(())
}

/// `sync_mode` from `n` connections held at once.
async fn futures_modes(store: &Store, n: usize) -> Result<Vec<String>, warden_store::Error> {
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.sync_mode().await })
        })
        .collect();
    let mut modes = Vec::new();
    for h in handles {
        modes.push(
            h.await
                .map_err(|e| warden_store::Error::Connect(e.to_string()))??,
        );
    }
    Ok(modes)
}

#[tokio::test]
async fn unreachable_postgres_is_a_connect_error() -> TestResult {
    let err = Store::connect("postgres://nobody@127.0.0.1:1/none")
        .await
        .expect_err("nothing listens on port 1");
    assert!(
        err.to_string()
            .starts_with("cannot connect to the database: "),
        "{err}"
    );
    assert!(err.is_transient());
    Ok(())
}
