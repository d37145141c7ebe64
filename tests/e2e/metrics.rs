//! `/metrics` (SPEC OB-4) on a real server: a scrape taken while requests
//! are in flight carries the documented families with the state of the
//! moment, and `promtool check metrics` (Debian's `prometheus` package)
//! accepts it. Under CI=true promtool must be there (`.ci/run` installs
//! it); elsewhere its absence skips that part, loudly.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use warden_server::alerts::Severity;

use crate::TestServer;

fn promtool() -> Option<std::path::PathBuf> {
    let found = std::process::Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("promtool".into());
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("promtool is not installed; .ci/run installs Debian's prometheus package");
    }
    eprintln!(
        "SKIPPED: promtool check metrics — promtool is not installed (apt-get install prometheus)"
    );
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_under_load_passes_promtool() {
    let s = TestServer::start(
        "[[gateway.providers]]\nname = \"primary\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodels = [\"small\"]\n\
         [workspaces.m.plugins.hostile-loop]\nlimits = { deadline_ms = 50 }\n",
    )
    .await;
    crate::install(
        &s.plugin_dir(),
        warden_test_artifacts::HOSTILE_LOOP,
        "hostile-loop.wasm",
    );
    s.wait_for_plugin("hostile-loop", "1.0.0", Duration::from_secs(10))
        .await;
    // Unauthenticated: refused like any API call.
    let r = s
        .client
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    for i in 0..5 {
        let (status, t) = s
            .post(
                "/v1/workspaces/m/tasks",
                &json!({ "title": format!("t{i}"), "pipeline": ["work"] }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{t}");
    }
    let (status, claimed) = s
        .post(
            "/v1/workspaces/m/tasks/claim",
            &json!({ "worker_id": "w", "max": 3 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // One of the three stages ends: a stage duration to report.
    let first = &claimed["claims"][0];
    let (status, done) = s
        .post(
            &format!(
                "/v1/workspaces/m/tasks/{}/complete",
                first["task_id"].as_str().unwrap()
            ),
            &json!({ "token": first["token"] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    // Plugin calls: one that succeeds, one that hits its deadline.
    let run = s.run("m", "diagnose-system", &json!({})).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let run = s
        .run("m", "hostile-loop", &json!({ "mode": "apply" }))
        .await;
    assert_eq!(run["status"], "failed", "{run}");
    let (status, _) = s.get("/v1/no-such-route").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    s.put(
        "/v1/breakers/provider:primary",
        &json!({ "state": "open", "reason": "test" }),
    )
    .await;
    // A model call, as the gateway's writer books it.
    s.app()
        .store
        .record_gateway_calls(&[warden_store::gateway::GatewayCallRow {
            id: warden_store::new_id(),
            workspace: "m".to_string(),
            mode: "code".to_string(),
            requested_model: "auto".to_string(),
            provider: Some("primary".to_string()),
            model: Some("small".to_string()),
            status: "ok".to_string(),
            http_status: 200,
            attempts: 1,
            prompt_tokens: 120,
            completion_tokens: 30,
            cost_micros: 2_500,
            created_at: warden_store::now_ms(),
            ..Default::default()
        }])
        .await
        .unwrap();
    s.app()
        .alerts
        .raise(
            Some("m"),
            "backlog",
            Severity::Warning,
            "backlog:m",
            "backlog",
            json!({}),
        )
        .await
        .unwrap();

    // Load: requests in flight while the scrape is taken.
    let load = {
        let url = s.url.clone();
        let client = s.client.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let mut n = 0;
            while started.elapsed() < Duration::from_secs(2) {
                let _ = client
                    .get(format!("{url}/v1/workspaces/m/status"))
                    .bearer_auth(crate::ADMIN)
                    .send()
                    .await;
                n += 1;
            }
            n
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = s
        .client
        .get(format!("{}/metrics", s.url))
        .bearer_auth(crate::ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        r.headers()
    );
    let text = r.text().await.unwrap();
    let requests = load.await.unwrap();
    assert!(requests > 10, "load: {requests} requests");

    for line in [
        "warden_tasks{workspace=\"m\",state=\"queued\"} 2",
        "warden_tasks{workspace=\"m\",state=\"running\"} 2",
        "warden_tasks{workspace=\"m\",state=\"done\"} 1",
        "warden_stage_duration_seconds_count{workspace=\"m\",stage=\"work\",outcome=\"completed\"} 1",
        "warden_stage_duration_seconds_bucket{workspace=\"m\",stage=\"work\",outcome=\"completed\",le=\"+Inf\"} 1",
        "warden_plugin_calls_total{plugin=\"diagnose-system\",world=\"playbook\",outcome=\"ok\"} 1",
        "warden_plugin_calls_total{plugin=\"hostile-loop\",world=\"playbook\",outcome=\"deadline\"} 1",
        "warden_plugin_limit_hits_total{plugin=\"hostile-loop\",world=\"playbook\",limit=\"deadline\"} 1",
        "warden_plugin_call_duration_seconds_count{plugin=\"diagnose-system\",world=\"playbook\"} 1",
        "warden_alerts_open{rule=\"backlog\",severity=\"warning\"} 1",
        "warden_breaker_state{name=\"provider:primary\"} 2",
        "warden_alert_notifications{sink=\"file\",status=\"pending\"}",
        "# TYPE warden_http_request_duration_seconds histogram",
        "# TYPE warden_gateway_tokens_total counter",
        "warden_gateway_tokens_total{workspace=\"m\",provider=\"primary\",model=\"small\",kind=\"prompt\"} 120",
        "warden_gateway_cost_usd_total{workspace=\"m\",provider=\"primary\",model=\"small\"} 0.0025",
        "warden_http_requests_total{method=\"POST\",route=\"/v1/workspaces/{ws}/tasks\",status=\"201\"} 5",
        "warden_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1",
        "warden_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/workspaces/{ws}/status\",le=\"+Inf\"}",
    ] {
        assert!(text.contains(line), "missing {line}:\n{text}");
    }

    if let Some(promtool) = promtool() {
        use std::io::Write as _;
        let mut child = std::process::Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics: {}{}\n{text}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // A scraper that asks for OpenMetrics (Prometheus does) gets it: the
    // same families, counters named without `_total` in their metadata,
    // `# EOF` at the end, and the reference parser accepts it.
    let r = s
        .client
        .get(format!("{}/metrics", s.url))
        .bearer_auth(crate::ADMIN)
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let open = r.text().await.unwrap();
    assert!(open.ends_with("# EOF\n"), "{open}");
    for line in [
        "# TYPE warden_http_requests counter",
        "# TYPE warden_tasks gauge",
        "warden_tasks{workspace=\"m\",state=\"done\"} 1",
        "# TYPE warden_stage_duration_seconds histogram",
    ] {
        assert!(open.contains(line), "missing {line}:\n{open}");
    }
    if let Some(python) = crate::required(
        "the OpenMetrics parser of the Python prometheus-client",
        crate::python_tool("promenv", "prometheus-client", "bin/python", |p| {
            crate::imports(p, "prometheus_client.openmetrics.parser")
        }),
    ) {
        use std::io::Write as _;
        let mut child = std::process::Command::new(python)
            .args([
                "-c",
                "import sys\nfrom prometheus_client.openmetrics.parser import text_string_to_metric_families as parse\nprint(len(list(parse(sys.stdin.read()))))",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(open.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "the OpenMetrics parser refused the exposition: {}\n{open}",
            String::from_utf8_lossy(&out.stderr)
        );
        let families: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        assert!(families >= 10, "{families} families parsed");
    }
}

/// The distinct values of `label` on the samples of the families whose
/// names start with `prefix`.
fn label_values(text: &str, prefix: &str, label: &str) -> std::collections::BTreeSet<String> {
    let key = format!("{label}=\"");
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| {
            let at = l.find(&key)? + key.len();
            let end = l[at..].find('"')?;
            Some(l[at..at + end].to_string())
        })
        .collect()
}

/// Regression (issue 15, item 4): every request with a made-up method, or
/// to a made-up path, added a label value to the HTTP families, so
/// anonymous clients could grow `/metrics` (and the memory behind it)
/// without bound. Known methods are recorded by name, every other one as
/// `OTHER`, and every path that matches no route as `unmatched`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_methods_and_paths_cannot_grow_the_http_labels() {
    use futures::StreamExt as _;

    let s = TestServer::start("").await;
    let sent = futures::stream::iter(0..2_000)
        .map(|i| {
            let client = s.client.clone();
            let url = s.url.clone();
            async move {
                let method = reqwest::Method::from_bytes(format!("MADEUP{i}").as_bytes()).unwrap();
                let path = if i % 2 == 0 {
                    format!("/no-such-path-{i}")
                } else {
                    "/health".to_string()
                };
                client
                    .request(method, format!("{url}{path}"))
                    .send()
                    .await
                    .map(|r| r.status())
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let answered = sent.iter().filter(|r| r.is_ok()).count();
    assert_eq!(answered, 2_000, "{:?}", sent.iter().find(|r| r.is_err()));

    let r = s
        .client
        .get(format!("{}/metrics", s.url))
        .bearer_auth(crate::ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    let methods = label_values(&text, "warden_http_", "method");
    assert!(
        methods.len() <= 10,
        "{} method label values: {:?}",
        methods.len(),
        methods.iter().take(20).collect::<Vec<_>>()
    );
    assert!(methods.contains("OTHER"), "{methods:?}");
    let routes = label_values(&text, "warden_http_", "route");
    eprintln!("after 2,000 made-up requests: methods {methods:?}, routes {routes:?}");
    assert!(
        routes.iter().all(|r| !r.starts_with("/no-such-path")),
        "made-up paths became route labels: {routes:?}"
    );
    assert!(routes.contains("unmatched"), "{routes:?}");
    assert!(routes.len() <= 3, "{routes:?}");
    // The 1,000 requests of each kind were all counted, under one series.
    assert!(
        text.lines()
            .any(|l| l.starts_with("warden_http_requests_total{")
                && l.contains("method=\"OTHER\"")
                && l.contains("route=\"unmatched\"")
                && l.ends_with(" 1000")),
        "{text}"
    );
}
