//! The `warden` binary.

use clap::Parser as _;
use warden_server::cli::{Cli, Command};

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,sqlx=warn,cranelift=warn,wasmtime=warn")
    });
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
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, listen } => {
            init_tracing(cli.log_json);
            let mut config = warden_server::Config::load(config.as_deref())?;
            if let Some(addr) = listen {
                config.listen = addr;
            }
            let server = warden_server::start(config).await?;
            server.run_until_signal().await;
            Ok(())
        }
        other => warden_server::cli::run_client(other).await,
    }
}
