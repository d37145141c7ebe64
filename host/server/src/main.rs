//! The `warden` binary.

use clap::Parser as _;
use warden_server::cli::{Cli, Command};

/// mimalloc instead of the system allocator: the server allocates and frees
/// many small objects per request (rows, JSON), and glibc's malloc spent
/// about a fifth of its CPU on them under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_tracing(json: bool, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprint!("{}", report(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// An error as anyhow shows it at the end of `main`, the message and its
/// causes, but never the stack trace it captured under `RUST_BACKTRACE=1`:
/// a user is told what was wrong, not where in Warden it was noticed.
fn report(e: &anyhow::Error) -> String {
    let mut out = format!("Error: {e}\n");
    let causes: Vec<String> = e.chain().skip(1).map(|c| c.to_string()).collect();
    match causes.as_slice() {
        [] => {}
        [one] => out.push_str(&format!("\nCaused by:\n    {one}\n")),
        many => {
            out.push_str("\nCaused by:\n");
            for (i, c) in many.iter().enumerate() {
                out.push_str(&format!("    {i}: {c}\n"));
            }
        }
    }
    out
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config, listen } => {
            init_tracing(cli.log_json, "info,sqlx=warn,cranelift=warn,wasmtime=warn");
            let mut config = warden_server::Config::load(config.as_deref())?;
            if let Some(addr) = listen {
                config.listen = addr;
            }
            let server = warden_server::start(config).await?;
            server.run_until_signal().await;
            Ok(())
        }
        Command::Demo {
            listen,
            dir,
            workers,
            task_every_ms,
        } => {
            // The demo prints its own progress; the server's info lines
            // (one per request) would drown it.
            init_tracing(cli.log_json, "warn,sqlx=warn,cranelift=warn,wasmtime=warn");
            let options = warden_server::demo::Options {
                workers: workers.clamp(1, 64),
                new_task_every: std::time::Duration::from_millis(task_every_ms.max(50)),
                ..Default::default()
            };
            warden_server::demo::run(listen, dir, options).await
        }
        other => warden_server::cli::run(other).await,
    }
}

#[cfg(test)]
mod tests {
    use super::report;

    #[test]
    fn an_error_is_reported_with_its_causes_as_anyhow_would() {
        let one = anyhow::anyhow!("no such file").context("cannot read warden.toml");
        assert_eq!(
            report(&one),
            "Error: cannot read warden.toml\n\nCaused by:\n    no such file\n"
        );
        let two = one.context("cannot start");
        assert_eq!(
            report(&two),
            "Error: cannot start\n\nCaused by:\n    0: cannot read warden.toml\n    1: no such file\n"
        );
        assert_eq!(report(&anyhow::anyhow!("plain")), "Error: plain\n");
    }
}
