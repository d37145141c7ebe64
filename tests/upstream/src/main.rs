//! `warden-test-upstream`: serves the stand-in until killed, for users in
//! another process (the Python client test, a bench). Prints
//! `listening on http://127.0.0.1:<port>` on stdout first, one flushed
//! line; the OpenAI base URL is that plus `/v1`.

use std::io::Write as _;
use std::process::ExitCode;

use warden_test_upstream::{Options, Upstream};

const USAGE: &str = "usage: warden-test-upstream [--port N] [--name NAME] [--models a,b] [--api-key KEY] [--chunks N] [--chunk-delay-ms N] [--no-record]

  --port N            port on 127.0.0.1 (default 0: any free one)
  --name NAME         names the upstream in its replies (default stand-in)
  --models a,b        the models GET /v1/models lists (default stand-in-small)
  --api-key KEY       require Authorization: Bearer KEY
  --chunks N          content chunks (words) per reply (default 5)
  --chunk-delay-ms N  delay between stream events (default 0)
  --no-record         do not keep requests (for benches; counts still kept)";

/// Parses the command line into options, or says what is wrong with it.
fn parse(args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let mut options = Options::default();
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg, None),
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--no-record" => {
                options.record = false;
                continue;
            }
            _ => {}
        }
        let Some(value) = inline.or_else(|| args.next()) else {
            return Err(format!("{flag} needs a value"));
        };
        let number = |max: u64| match value.parse::<u64>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(format!(
                "{flag}: \"{value}\" is not a number from 0 to {max}"
            )),
        };
        match flag.as_str() {
            "--port" => options.port = number(u16::MAX.into())? as u16,
            "--name" => options.name = value,
            "--models" => {
                options.models = value
                    .split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect();
            }
            "--api-key" => options.api_key = Some(value),
            "--chunks" => options.chunks = number(u32::MAX.into())? as u32,
            "--chunk-delay-ms" => options.chunk_delay_ms = number(u64::MAX)?,
            other => return Err(format!("unknown flag \"{other}\" (see --help)")),
        }
    }
    Ok(Some(options))
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(problem) => {
            eprintln!("{problem}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let upstream = match Upstream::start(options).await {
        Ok(u) => u,
        Err(e) => {
            eprintln!("cannot listen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    // A reader that went away is no reason to stop serving.
    let _ = writeln!(out, "listening on http://{}", upstream.addr());
    let _ = out.flush();
    drop(out);
    // Until killed; Ctrl-C stops it cleanly. Without a signal handler,
    // only killing stops it.
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
    upstream.shutdown().await;
    ExitCode::SUCCESS
}
