//! Validation at load (SPEC LC-2, PL-4, PL-6).

use warden_runtime::LoadError;
use warden_runtime::meta::{Capability, PluginKind};
use warden_test_artifacts as artifacts;

use crate::{load, runtime};

#[test]
fn metadata_digest_and_imports_come_from_the_wasm() {
    let rt = runtime();
    let bytes = std::fs::read(artifacts::HEALTHY).unwrap();
    let plugin = rt.load(&bytes).unwrap();
    let meta = plugin.meta();
    assert_eq!(meta.name, "healthy");
    assert_eq!(meta.version.to_string(), "1.0.0");
    assert_eq!(meta.kind, PluginKind::Playbook);
    assert_eq!(
        meta.capabilities.names(),
        vec!["health:read", "tasks:read", "kv"]
    );
    assert!(meta.concurrent);
    assert_eq!(plugin.digest(), warden_runtime::digest_of(&bytes));
    assert!(plugin.digest().starts_with("sha256:") && plugin.digest().len() == 71);
    // Only the functions it calls are imported, so only their
    // capabilities are required.
    let required = plugin.required_capabilities();
    assert_eq!(required.names(), vec!["health:read", "tasks:read", "kv"]);
    let imported: Vec<String> = plugin.imports().iter().map(ToString::to_string).collect();
    assert!(
        imported.contains(&"warden:plugin/tasks#list".to_string()),
        "{imported:?}"
    );
    assert!(
        !imported.iter().any(|i| i.ends_with("#requeue")),
        "{imported:?}"
    );
}

#[test]
fn an_import_beyond_the_requested_capabilities_is_refused() {
    let rt = runtime();
    let err = rt
        .load(&std::fs::read(artifacts::HOSTILE_UNDECLARED).unwrap())
        .unwrap_err();
    assert_eq!(
        err,
        LoadError::UndeclaredCapability {
            import: "warden:plugin/tasks#requeue".into(),
            capability: Capability::TasksWrite,
        }
    );
    assert_eq!(
        err.to_string(),
        "imports warden:plugin/tasks#requeue, which needs capability \"tasks:write\", but its metadata does not request it"
    );
}

#[test]
fn bad_files_are_refused_with_their_reason() {
    let rt = runtime();
    let garbage = rt.load(b"this is not wasm at all").unwrap_err();
    assert!(matches!(garbage, LoadError::NotWasm(_)), "{garbage}");

    // The smallest valid core module: header only.
    let core = rt.load(b"\0asm\x01\0\0\0").unwrap_err();
    assert_eq!(core, LoadError::CoreModule);
    assert!(core.to_string().contains("--target wasm32-wasip2"));

    let full = std::fs::read(artifacts::NOOP).unwrap();
    let truncated = rt.load(&full[..full.len() / 2]).unwrap_err();
    assert!(
        matches!(
            truncated,
            LoadError::Invalid(_) | LoadError::NoMetadata | LoadError::Compile(_)
        ),
        "{truncated}"
    );

    let no_meta = rt
        .load(&std::fs::read(artifacts::NO_METADATA).unwrap())
        .unwrap_err();
    assert_eq!(no_meta, LoadError::NoMetadata);

    let other = rt
        .load(&std::fs::read(artifacts::UNKNOWN_WORLD).unwrap())
        .unwrap_err();
    match &other {
        LoadError::WrongWorld { world, detail } => {
            assert_eq!(*world, "playbook");
            assert!(detail.contains("run"), "{detail}");
        }
        e => panic!("expected WrongWorld, got {e}"),
    }
}

#[test]
fn compiled_artifacts_are_cached_by_digest() {
    let dir = tempfile::tempdir().unwrap();
    let config = warden_runtime::RuntimeConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let rt = warden_runtime::Runtime::new(config.clone()).unwrap();
    let first = load(&rt, artifacts::NOOP);
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
    assert_eq!(entries.len(), 1);
    let name = entries[0].file_name().to_string_lossy().to_string();
    assert!(
        name.starts_with(first.digest().trim_start_matches("sha256:")),
        "{name}"
    );

    // A second runtime with the same settings loads from the cache.
    let rt2 = warden_runtime::Runtime::new(config).unwrap();
    let second = load(&rt2, artifacts::NOOP);
    assert_eq!(first.digest(), second.digest());

    // A corrupt cache entry is discarded and rebuilt, not trusted.
    std::fs::write(entries[0].path(), b"garbage").unwrap();
    let rt3 = warden_runtime::Runtime::new(rt2.config().clone()).unwrap();
    let third = load(&rt3, artifacts::NOOP);
    assert_eq!(third.digest(), first.digest());
    assert!(std::fs::metadata(entries[0].path()).unwrap().len() > 1000);
}

/// Regression (issue 15, item 8): a cache entry damaged after it was
/// written (a crash before the disk had all of it, a flipped bit) can
/// still parse as an artifact, and was deserialized and run as it was.
/// Each entry now carries the sha256 of its artifact: a damaged one is
/// discarded and compiled again.
#[test]
fn a_damaged_cache_entry_is_compiled_again() {
    let dir = tempfile::tempdir().unwrap();
    let config = warden_runtime::RuntimeConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let rt = warden_runtime::Runtime::new(config.clone()).unwrap();
    load(&rt, artifacts::NOOP);
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
    assert_eq!(entries.len(), 1);
    let path = entries[0].path();
    let good = std::fs::read(&path).unwrap();
    let mut damaged = good.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0xff;
    std::fs::write(&path, &damaged).unwrap();

    let rt2 = warden_runtime::Runtime::new(config).unwrap();
    load(&rt2, artifacts::NOOP);
    assert!(
        std::fs::read(&path).unwrap() == good,
        "the damaged entry was kept instead of being compiled again"
    );
}
