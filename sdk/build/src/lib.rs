//! Builds Warden plugin crates for `wasm32-wasip2`.
//!
//! Used by the build scripts that bundle plugins into the `warden` binary and
//! compile the test plugins, and by `warden-testkit` so that a plugin
//! author's `cargo test` can build the plugin under test. It runs a nested
//! `cargo build` with a target directory of its own, so that it never waits
//! on the lock of the build that called it.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The target every plugin is built for.
pub const TARGET: &str = "wasm32-wasip2";

/// Why a build failed.
#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// Builds every `cdylib` of the cargo workspace or package at `manifest_dir`
/// in release mode, with `target_dir` as cargo's target directory. Returns
/// the `.wasm` path of each crate, keyed by package name.
pub fn build(manifest_dir: &Path, target_dir: &Path) -> Result<BTreeMap<String, PathBuf>, Error> {
    ensure_target()?;
    let manifest = manifest_dir.join("Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--release")
        .arg("--target")
        .arg(TARGET)
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir)
        .arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if manifest_dir.join("Cargo.lock").exists() {
        cmd.arg("--locked");
    }
    scrub_env(&mut cmd);

    let mut child = cmd
        .spawn()
        .map_err(|e| Error(format!("cannot run cargo for {}: {e}", manifest.display())))?;
    let mut built = BTreeMap::new();
    if let Some(stdout) = child.stdout.take() {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if msg["reason"] != "compiler-artifact" {
                continue;
            }
            let name = msg["target"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let files = msg["filenames"].as_array().cloned().unwrap_or_default();
            for f in files.iter().filter_map(|f| f.as_str()) {
                if f.ends_with(".wasm") {
                    built.insert(name.replace('_', "-"), PathBuf::from(f));
                }
            }
        }
    }
    let status = child.wait().map_err(|e| {
        Error(format!(
            "cargo for {} did not finish: {e}",
            manifest.display()
        ))
    })?;
    if !status.success() {
        return Err(Error(format!(
            "building the plugins of {} for {TARGET} failed ({status}); see the compiler output above",
            manifest.display()
        )));
    }
    Ok(built)
}

/// The directory a build script should pass as `target_dir`: `wasm-plugins`
/// inside the outer build's target directory, shared by every build script.
pub fn target_dir_from_out_dir(out_dir: &Path) -> PathBuf {
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out, or one level
    // deeper when the outer build names a target triple.
    out_dir
        .ancestors()
        .find(|p| p.join("CACHEDIR.TAG").exists())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| out_dir.join("wasm-plugins-root"))
        .join("wasm-plugins")
}

/// Makes sure the `wasm32-wasip2` standard library is installed, installing
/// it with rustup when it is missing.
fn ensure_target() -> Result<(), Error> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(sysroot) = sysroot
        && sysroot.join("lib/rustlib").join(TARGET).exists()
    {
        return Ok(());
    }
    println!("cargo:warning=installing the {TARGET} target with rustup (needed to build plugins)");
    let ok = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(())
    } else {
        Err(Error(format!(
            "the {TARGET} target is not installed and rustup could not add it: run `rustup target add {TARGET}`"
        )))
    }
}

/// Removes what the outer cargo set for its own build, so that the nested
/// build of another target starts clean.
fn scrub_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let keep = matches!(key, "CARGO_HOME" | "CARGO_MAKEFLAGS" | "CARGO")
            || key.starts_with("CARGO_NET_")
            || key.starts_with("CARGO_HTTP_")
            || key.starts_with("CARGO_REGISTR");
        let outer = key.starts_with("CARGO_")
            || matches!(
                key,
                "RUSTFLAGS"
                    | "RUSTC"
                    | "RUSTDOC"
                    | "TARGET"
                    | "HOST"
                    | "OUT_DIR"
                    | "PROFILE"
                    | "OPT_LEVEL"
                    | "DEBUG"
                    | "NUM_JOBS"
                    | "RUSTC_WORKSPACE_WRAPPER"
                    | "RUSTC_LINKER"
            );
        if outer && !keep {
            cmd.env_remove(key);
        }
    }
}
