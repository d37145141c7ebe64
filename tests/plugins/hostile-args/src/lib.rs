//! Loops one read-only host call, ignoring every answer, with an argument
//! of the size its input names: `["tasks.get", 4194304]`, `["kv.get", n]`
//! or `["kv.list-keys", n]`. Granted only `tasks:read` and `kv`, it may
//! still make the host copy, log and store what it passes, which is what
//! the host must bound.

use warden_sdk::{Context, Report, kv, tasks};

#[warden_sdk::playbook(capabilities = ["tasks:read", "kv"], concurrent)]
fn run(ctx: &Context) -> Result<Report, String> {
    let (call, bytes): (String, usize) = ctx.input()?;
    // Built once, at exactly its size, so that the guest needs little more
    // memory than the argument itself.
    let arg = "x".repeat(bytes);
    loop {
        let _ = match call.as_str() {
            "tasks.get" => tasks::get(&arg).map(|_| ()),
            "kv.get" => kv::get(&arg).map(|_| ()),
            "kv.list-keys" => kv::list_keys(&arg).map(|_| ()),
            other => return Err(format!("unknown call \"{other}\"")),
        };
    }
}
