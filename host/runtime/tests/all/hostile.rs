//! Hostile plugins: each ends with its own precise error and never hurts
//! the host or a healthy neighbour (SPEC PL-3, PL-5, SE-4).

use std::sync::Arc;
use std::time::{Duration, Instant};

use warden_runtime::meta::Limits;
use warden_runtime::{ActionStatus, MemoryBackend, RunError};
use warden_test_artifacts as artifacts;

use crate::{Run, error_text, load, run, runtime};

#[tokio::test]
async fn infinite_loop_stops_at_its_deadline() {
    let rt = runtime();
    let plugin = load(&rt, artifacts::HOSTILE_LOOP);
    let backend = Arc::new(MemoryBackend::new());
    let started = Instant::now();
    let outcome = run(&rt, &plugin, &backend, Run::default()).await;
    assert_eq!(error_text(&outcome), "deadline of 500 ms exceeded");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn infinite_loop_stops_when_fuel_runs_out() {
    let rt = runtime();
    let plugin = load(&rt, artifacts::HOSTILE_LOOP);
    let backend = Arc::new(MemoryBackend::new());
    let limits = Limits {
        fuel: Some(1_000_000),
        ..Limits::default()
    };
    let outcome = run(
        &rt,
        &plugin,
        &backend,
        Run {
            limits,
            ..Run::default()
        },
    )
    .await;
    assert_eq!(error_text(&outcome), "fuel exhausted after 1000000");
    assert_eq!(outcome.usage.fuel, 1_000_000);
}

#[tokio::test]
async fn memory_bomb_hits_the_cap() {
    let rt = runtime();
    let plugin = load(&rt, artifacts::HOSTILE_MEMORY);
    let backend = Arc::new(MemoryBackend::new());
    let outcome = run(&rt, &plugin, &backend, Run::default()).await;
    assert_eq!(error_text(&outcome), "memory limit 64 MiB exceeded");
    assert!(outcome.usage.peak_memory_bytes <= 64 << 20);
    let limits = Limits {
        memory_mib: Some(16),
        ..Limits::default()
    };
    let small = run(
        &rt,
        &plugin,
        &backend,
        Run {
            limits,
            ..Run::default()
        },
    )
    .await;
    assert_eq!(error_text(&small), "memory limit 16 MiB exceeded");
}

#[tokio::test]
async fn deep_recursion_overflows_the_wasm_stack_only() {
    let rt = runtime();
    let plugin = load(&rt, artifacts::HOSTILE_RECURSION);
    let backend = Arc::new(MemoryBackend::new());
    let outcome = run(&rt, &plugin, &backend, Run::default()).await;
    assert_eq!(outcome.result.unwrap_err(), RunError::StackOverflow);
}

#[tokio::test]
async fn panic_is_reported_with_its_message() {
    let rt = runtime();
    let plugin = load(&rt, artifacts::HOSTILE_PANIC);
    let backend = Arc::new(MemoryBackend::new());
    let outcome = run(&rt, &plugin, &backend, Run::default()).await;
    let text = error_text(&outcome);
    assert!(text.starts_with("plugin panicked: "), "{text}");
    assert!(
        text.contains("boom: the hostile plugin panicked on purpose"),
        "{text}"
    );
}

#[tokio::test]
async fn oversized_output_is_refused() {
    let rt = runtime();
    let plugin = load(&rt, artifacts::HOSTILE_OUTPUT);
    let backend = Arc::new(MemoryBackend::new());
    let outcome = run(&rt, &plugin, &backend, Run::default()).await;
    match outcome.result {
        Err(RunError::OutputTooLarge { bytes, limit_kib }) => {
            assert!(bytes > 5 << 20, "{bytes}");
            assert_eq!(limit_kib, 1024);
        }
        other => panic!("expected OutputTooLarge, got {other:?}"),
    }
}

#[tokio::test]
async fn no_file_is_reachable() {
    let rt = runtime();
    let plugin = load(&rt, artifacts::HOSTILE_FILE);
    let backend = Arc::new(MemoryBackend::new());
    let secret = std::env::temp_dir().join("warden-hostile-file-secret.txt");
    std::fs::write(&secret, "top secret").unwrap();
    for path in ["/etc/passwd", secret.to_str().unwrap(), "relative.txt"] {
        let input = serde_json::to_string(path).unwrap();
        let outcome = run(
            &rt,
            &plugin,
            &backend,
            Run {
                input: &input,
                ..Run::default()
            },
        )
        .await;
        let text = error_text(&outcome);
        assert!(
            text.starts_with(&format!("plugin returned an error: cannot open {path}")),
            "{text}"
        );
        assert!(
            !text.contains("top secret") && !text.contains("root:"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn no_socket_can_be_opened() {
    let rt = runtime();
    let plugin = load(&rt, artifacts::HOSTILE_SOCKET);
    let backend = Arc::new(MemoryBackend::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let input = serde_json::to_string(&addr).unwrap();
    let outcome = run(
        &rt,
        &plugin,
        &backend,
        Run {
            input: &input,
            ..Run::default()
        },
    )
    .await;
    let text = error_text(&outcome);
    assert!(
        text.starts_with(&format!(
            "plugin returned an error: cannot connect to {addr}"
        )),
        "{text}"
    );
    let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
    assert!(accepted.is_err(), "the plugin reached the listener");
}

#[tokio::test]
async fn step_budget_ends_a_plugin_that_keeps_mutating() {
    let rt = runtime();
    let plugin = load(&rt, artifacts::HOSTILE_STEPS);
    let backend = Arc::new(MemoryBackend::new());
    backend.add_task("ws", "victim", "plan", "queued");
    let outcome = run(&rt, &plugin, &backend, Run::default()).await;
    assert_eq!(error_text(&outcome), "step budget 10 spent");
    let statuses: Vec<ActionStatus> = outcome.actions.iter().map(|a| a.status).collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == ActionStatus::Applied)
            .count(),
        10
    );
    assert_eq!(statuses.last(), Some(&ActionStatus::OverBudget));
    assert_eq!(statuses.len(), 11);
    assert!(outcome.usage.step_budget_hit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_neighbour_is_served_while_hostile_plugins_run() {
    let rt = Arc::new(runtime());
    let backend = Arc::new(MemoryBackend::new());
    let hostile: Vec<_> = [
        artifacts::HOSTILE_LOOP,
        artifacts::HOSTILE_MEMORY,
        artifacts::HOSTILE_RECURSION,
        artifacts::HOSTILE_PANIC,
    ]
    .into_iter()
    .map(|p| load(&rt, p))
    .collect();
    let healthy = load(&rt, artifacts::HEALTHY);

    let mut handles = Vec::new();
    for plugin in hostile {
        for _ in 0..3 {
            let (rt, backend, plugin) = (rt.clone(), backend.clone(), plugin.clone());
            handles.push(tokio::spawn(async move {
                run(&rt, &plugin, &backend, Run::default())
                    .await
                    .result
                    .is_err()
            }));
        }
    }
    // While they spin, allocate and overflow, the healthy plugin answers.
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let started = Instant::now();
        let outcome = run(&rt, &healthy, &backend, Run::default()).await;
        outcome
            .result
            .expect("healthy plugin failed next to hostile ones");
        slowest = slowest.max(started.elapsed());
    }
    assert!(
        slowest < Duration::from_millis(400),
        "healthy call took {slowest:?}"
    );
    for h in handles {
        assert!(h.await.unwrap(), "a hostile plugin succeeded");
    }
}
