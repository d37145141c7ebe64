//! `warden-test-upstream --port 0 --name primary --models a,b --api-key k`:
//! serves the stand-in until killed; prints `listening on <url>` first.

use std::io::Write as _;

use warden_test_upstream::{Options, Upstream};

fn usage(problem: &str) -> ! {
    eprintln!(
        "{problem}\nusage: warden-test-upstream [--port N] [--name NAME] [--models a,b] [--api-key KEY] [--chunks N] [--chunk-delay-ms N]"
    );
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let mut options = Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let Some(value) = args.next() else {
            usage(&format!("{flag} needs a value"))
        };
        let number = |v: &str| {
            v.parse::<u64>()
                .unwrap_or_else(|_| usage(&format!("{flag}: not a number: {v}")))
        };
        match flag.as_str() {
            "--port" => {
                options.port =
                    u16::try_from(number(&value)).unwrap_or_else(|_| usage("--port: too large"))
            }
            "--name" => options.name = value,
            "--models" => options.models = value.split(',').map(str::to_string).collect(),
            "--api-key" => options.api_key = Some(value),
            "--chunks" => {
                options.chunks =
                    u32::try_from(number(&value)).unwrap_or_else(|_| usage("--chunks: too large"))
            }
            "--chunk-delay-ms" => options.chunk_delay_ms = number(&value),
            other => usage(&format!("unknown flag {other}")),
        }
    }
    let upstream = match Upstream::start(options).await {
        Ok(u) => u,
        Err(e) => {
            eprintln!("cannot listen: {e}");
            std::process::exit(1);
        }
    };
    println!("listening on {}", upstream.base_url());
    let _ = std::io::stdout().flush();
    std::future::pending::<()>().await;
}
