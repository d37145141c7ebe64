use std::io::Write;

use warden_sdk::{Context, Report};

#[warden_sdk::playbook]
fn run(ctx: &Context) -> Result<Report, String> {
    let addr: String = ctx.input().map_err(|e| e.to_string())?;
    match std::net::TcpStream::connect(&addr) {
        Ok(mut stream) => {
            let _ = stream.write_all(b"escaped");
            Ok(Report::new(format!("connected to {addr}")))
        }
        Err(e) => Err(format!("cannot connect to {addr}: {e}")),
    }
}
