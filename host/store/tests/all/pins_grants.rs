//! `pins` and `grants`: per-workspace choices of the operator.

use warden_store::Store;
use warden_store::grants::GrantRow;
use warden_store::pins::PinRow;

use crate::common::TestResult;

conformance!(pins_set_replace_list_delete, grants_set_replace_list_delete);

fn pin(workspace: &str, plugin: &str, selector: &str) -> PinRow {
    PinRow {
        workspace: workspace.to_string(),
        plugin: plugin.to_string(),
        selector: selector.to_string(),
        canary: None,
        canary_percent: 0,
        actor: "admin".to_string(),
        updated_at: 10,
    }
}

async fn pins_set_replace_list_delete(store: Store) -> TestResult {
    store.set_pin(&pin("ws", "restart", "1.0.0")).await?;
    store.set_pin(&pin("ws", "cleanup", "latest")).await?;
    store.set_pin(&pin("other", "restart", "2.0.0")).await?;

    let canary = PinRow {
        canary: Some("sha256:beef".to_string()),
        canary_percent: 10,
        actor: "ops".to_string(),
        updated_at: 20,
        ..pin("ws", "restart", "1.1.0")
    };
    store.set_pin(&canary).await?;
    assert_eq!(store.get_pin("ws", "restart").await?, Some(canary.clone()));
    assert_eq!(
        store.get_pin("other", "restart").await?.map(|p| p.selector),
        Some("2.0.0".to_string())
    );
    assert_eq!(store.get_pin("ws", "missing").await?, None);

    let listed: Vec<String> = store
        .list_pins("ws")
        .await?
        .into_iter()
        .map(|p| p.plugin)
        .collect();
    assert_eq!(listed, ["cleanup", "restart"]);

    assert!(store.delete_pin("ws", "restart").await?);
    assert!(
        !store.delete_pin("ws", "restart").await?,
        "nothing left to delete"
    );
    assert_eq!(store.get_pin("ws", "restart").await?, None);
    assert!(
        store.get_pin("other", "restart").await?.is_some(),
        "other workspaces keep theirs"
    );
    Ok(())
}

async fn grants_set_replace_list_delete(store: Store) -> TestResult {
    let grant = GrantRow {
        workspace: "ws".to_string(),
        plugin: "restart".to_string(),
        capabilities: vec!["tasks:read".to_string(), "tasks:write".to_string()],
        actor: "admin".to_string(),
        updated_at: 1,
    };
    store.set_grant(&grant).await?;
    assert_eq!(store.get_grant("ws", "restart").await?, Some(grant.clone()));

    let narrower = GrantRow {
        capabilities: vec!["kv".to_string()],
        updated_at: 2,
        ..grant.clone()
    };
    store.set_grant(&narrower).await?;
    assert_eq!(
        store.get_grant("ws", "restart").await?,
        Some(narrower.clone())
    );

    let empty = GrantRow {
        plugin: "audit".to_string(),
        capabilities: vec![],
        ..grant.clone()
    };
    store.set_grant(&empty).await?;
    let listed = store.list_grants("ws").await?;
    assert_eq!(listed, [empty, narrower]);
    assert!(store.list_grants("other").await?.is_empty());

    assert!(store.delete_grant("ws", "restart").await?);
    assert!(!store.delete_grant("ws", "restart").await?);
    assert_eq!(store.get_grant("ws", "restart").await?, None);
    Ok(())
}
