//! Throughput: the stand-in is the baseline of the gateway's latency bench,
//! so it must not be the slow party.

use std::time::Instant;

use futures::StreamExt as _;
use warden_test_upstream::Options;

use crate::{chat_body, chat_url, start_with};

/// 4000 plain completions, 32 at a time, recording off as benches run it.
/// The rate is printed (`--nocapture`); in an optimized build it must be at
/// least 3000 requests per second, a floor well under what loopback allows
/// so that a busy machine does not fail it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sustains_thousands_of_requests_per_second() {
    let u = start_with(Options {
        record: false,
        ..Options::default()
    })
    .await;
    let c = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let url = chat_url(&u);
    let body = chat_body("How fast can a stand-in answer?");
    const N: usize = 4000;
    let started = Instant::now();
    let ok = futures::stream::iter(0..N)
        .map(|_| {
            let req = c.post(&url).json(&body).send();
            async move {
                match req.await {
                    Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
                    Err(_) => false,
                }
            }
        })
        .buffer_unordered(32)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await;
    let rate = N as f64 / started.elapsed().as_secs_f64();
    println!(
        "{N} requests in {:?}: {rate:.0} requests/s",
        started.elapsed()
    );
    assert_eq!(ok, N);
    assert_eq!(u.handle().request_count(), N as u64);
    assert!(u.handle().requests().is_empty());
    if !cfg!(debug_assertions) {
        assert!(rate >= 3000.0, "{rate:.0} requests/s");
    }
}
