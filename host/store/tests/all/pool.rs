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
