//! `plugins`: the index of accepted plugin versions.

use serde_json::json;
use warden_store::plugins::PluginRow;
use warden_store::{Error, Store};

use crate::common::{TestResult, raw_execute};

conformance!(
    upsert_keeps_added_at_and_takes_new_source,
    list_orders_by_name_then_age,
    corrupt_meta_is_reported
);

fn plugin(digest: &str, name: &str, version: &str, added_at: i64) -> PluginRow {
    PluginRow {
        digest: digest.to_string(),
        name: name.to_string(),
        version: version.to_string(),
        kind: "playbook".to_string(),
        meta: json!({"name": name, "version": version, "capabilities": ["tasks:read"]}),
        size: 1234,
        source: "bundled".to_string(),
        source_path: None,
        added_at,
    }
}

async fn upsert_keeps_added_at_and_takes_new_source(store: Store) -> TestResult {
    let first = plugin("sha256:aa", "restart", "1.0.0", 1000);
    store.upsert_plugin(&first).await?;
    assert_eq!(store.get_plugin("sha256:aa").await?, Some(first.clone()));

    let again = PluginRow {
        source: "directory".to_string(),
        source_path: Some("/plugins/restart.wasm".to_string()),
        added_at: 5000,
        ..first.clone()
    };
    store.upsert_plugin(&again).await?;
    let got = store.get_plugin("sha256:aa").await?.expect("still there");
    assert_eq!(got.added_at, 1000, "the first acceptance time is kept");
    assert_eq!(got.source, "directory");
    assert_eq!(got.source_path.as_deref(), Some("/plugins/restart.wasm"));
    assert_eq!(got.meta, first.meta);
    assert_eq!(store.list_plugins().await?.len(), 1);
    assert_eq!(store.get_plugin("sha256:missing").await?, None);
    Ok(())
}

async fn list_orders_by_name_then_age(store: Store) -> TestResult {
    store
        .upsert_plugin(&plugin("sha256:03", "restart", "2.0.0", 300))
        .await?;
    store
        .upsert_plugin(&plugin("sha256:01", "restart", "1.0.0", 100))
        .await?;
    store
        .upsert_plugin(&plugin("sha256:02", "cleanup", "1.0.0", 200))
        .await?;
    store
        .upsert_plugin(&plugin("sha256:04", "Zeta", "1.0.0", 50))
        .await?;
    let listed: Vec<(String, String)> = store
        .list_plugins()
        .await?
        .into_iter()
        .map(|p| (p.name, p.version))
        .collect();
    // Byte order on both dialects: upper case sorts first.
    assert_eq!(
        listed,
        [
            ("Zeta", "1.0.0"),
            ("cleanup", "1.0.0"),
            ("restart", "1.0.0"),
            ("restart", "2.0.0")
        ]
        .map(|(n, v)| (n.to_string(), v.to_string()))
    );
    Ok(())
}

async fn corrupt_meta_is_reported(store: Store) -> TestResult {
    store
        .upsert_plugin(&plugin("sha256:bad", "broken", "1.0.0", 1))
        .await?;
    raw_execute("UPDATE plugins SET meta = '{not json' WHERE digest = 'sha256:bad'").await?;
    let err = store
        .get_plugin("sha256:bad")
        .await
        .expect_err("meta does not parse");
    assert!(
        matches!(
            err,
            Error::Corrupt {
                column: "plugins.meta",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("stored plugins.meta is not valid JSON: "),
        "{err}"
    );
    Ok(())
}
