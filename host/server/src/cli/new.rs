//! `warden plugin new <playbook|gate|router> <name>`: writes a plugin crate
//! that builds wherever it is written.
//!
//! Copying `examples/playbook-template` left its SDK dependency as a path
//! relative to the repository (`../../sdk/sdk`), which breaks as soon as
//! the copy lives anywhere else. The crate written here names the SDK by
//! the absolute path of the one this binary was built from (or `--sdk`),
//! carries the template's `Cargo.lock` (versions known to build with this
//! SDK) and its own `[workspace]`, so `cargo build --release --target
//! wasm32-wasip2` works in any directory.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// The SDK directory (holding `sdk/` and `testkit/`) of the checkout this
/// binary was built from.
const BUILT_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../sdk");

/// The playbook template of `examples/`, which the test kit's tests build
/// and run: `warden plugin new playbook` writes the same code.
const PLAYBOOK_LIB: &str = include_str!("../../../../examples/playbook-template/src/lib.rs");
const PLAYBOOK_TEST: &str =
    include_str!("../../../../examples/playbook-template/tests/playbook.rs");
const GATE_LIB: &str = include_str!("../../templates/gate/lib.rs");
const GATE_TEST: &str = include_str!("../../templates/gate/test.rs");
const ROUTER_LIB: &str = include_str!("../../templates/router/lib.rs");
const ROUTER_TEST: &str = include_str!("../../templates/router/test.rs");
/// The template's lock file: the versions its dependencies were built and
/// tested with, so a new crate does not pick newer ones.
const LOCK: &str = include_str!("../../../../examples/playbook-template/Cargo.lock");
/// The template's package name, as its code and lock file spell it.
const TEMPLATE_NAME: &str = "my-playbook";

/// Which kind of plugin to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// A playbook: diagnoses and repairs (`#[warden_sdk::playbook]`).
    Playbook,
    /// A quality gate: judges a stage's result (`#[warden_sdk::gate]`).
    Gate,
    /// A routing policy: picks providers and models (`#[warden_sdk::router]`).
    Router,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Playbook => "a playbook",
            Kind::Gate => "a quality gate",
            Kind::Router => "a routing policy",
        }
    }

    /// The package description, which becomes the plugin's.
    fn description(self) -> &'static str {
        match self {
            Kind::Playbook => "Reports tasks that have made no progress for a while",
            Kind::Gate => "Rejects a change that adds more TODO comments than allowed",
            Kind::Router => "A local provider first, then the cheapest one that fits",
        }
    }

    fn guide(self) -> &'static str {
        match self {
            Kind::Playbook => "docs/playbook-authoring.md",
            Kind::Gate => "docs/gate-authoring.md",
            Kind::Router => "docs/router-authoring.md",
        }
    }
}

/// The SDK directory to depend on: `--sdk` (or `WARDEN_SDK`), else the one
/// this binary was built from. Either must hold `sdk/Cargo.toml` and
/// `testkit/Cargo.toml`.
fn sdk_dir(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let (dir, from) = match given {
        Some(dir) => (dir.to_path_buf(), "--sdk"),
        None => (PathBuf::from(BUILT_SDK), "this binary's build"),
    };
    let canonical = dir
        .canonicalize()
        .ok()
        .filter(|d| d.join("sdk/Cargo.toml").is_file() && d.join("testkit/Cargo.toml").is_file());
    match canonical {
        Some(d) => Ok(d),
        None if given.is_some() => bail!(
            "no Warden SDK at \"{}\" ({from}): expected the sdk directory of a Warden checkout, holding sdk/ and testkit/",
            dir.display()
        ),
        None => bail!(
            "the Warden SDK this binary was built from (\"{}\") is not there any more: pass --sdk <the sdk directory of a Warden checkout>",
            dir.display()
        ),
    }
}

fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// A TOML basic string holding `s`.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The files of the crate, by path relative to its directory.
fn render(kind: Kind, name: &str, sdk: &Path) -> Vec<(&'static str, String)> {
    let lib = name.replace('-', "_");
    let (code, test, test_file) = match kind {
        Kind::Playbook => (PLAYBOOK_LIB, PLAYBOOK_TEST, "tests/playbook.rs"),
        Kind::Gate => (GATE_LIB, GATE_TEST, "tests/gate.rs"),
        Kind::Router => (ROUTER_LIB, ROUTER_TEST, "tests/router.rs"),
    };
    let personalize = |text: &str| text.replace(TEMPLATE_NAME, name).replace("{{name}}", name);
    let sdk_sdk = toml_string(&sdk.join("sdk").display().to_string());
    let sdk_testkit = toml_string(&sdk.join("testkit").display().to_string());
    let manifest = format!(
        r#"# {describe}, written by `warden plugin new`. Build it with
#
#     cargo build --release --target wasm32-wasip2
#
# and copy target/wasm32-wasip2/release/{lib}.wasm into Warden's plugin
# directory. `cargo test` builds it and runs it against a fake host. The
# guide is {guide} in the Warden repository.
[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
description = "{description}"
publish = false

[lib]
crate-type = ["cdylib"]

# The SDK of the Warden checkout `warden` was built from; point both paths
# elsewhere to build against another.
[dependencies]
warden-sdk = {{ path = {sdk_sdk} }}

[dev-dependencies]
warden-testkit = {{ path = {sdk_testkit} }}
tokio = {{ version = "1", features = ["macros", "rt-multi-thread"] }}

[profile.release]
opt-level = "s"
strip = "debuginfo"
codegen-units = 1

# Its own workspace: it is built for wasm32-wasip2, on its own.
[workspace]
"#,
        describe = capitalized(kind.describe()),
        description = kind.description(),
        guide = kind.guide(),
    );
    let lock = LOCK.replace(
        &format!("name = \"{TEMPLATE_NAME}\"\n"),
        &format!("name = \"{name}\"\n"),
    );
    vec![
        ("Cargo.toml", manifest),
        ("Cargo.lock", lock),
        (".gitignore", "/target\n".to_string()),
        ("src/lib.rs", personalize(code)),
        (test_file, personalize(test)),
    ]
}

/// Writes the crate of `kind` named `name` into `dir` (default `./<name>`),
/// which must be missing or empty.
pub fn run(
    kind: Kind,
    name: &str,
    dir: Option<PathBuf>,
    sdk: Option<PathBuf>,
) -> anyhow::Result<()> {
    crate::validate::plugin(name).map_err(anyhow::Error::msg)?;
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    let occupied = match std::fs::read_dir(&dir) {
        Ok(mut entries) => entries.next().is_some(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => bail!("cannot use \"{}\": {e}", dir.display()),
    };
    if occupied {
        bail!(
            "directory \"{}\" exists and is not empty: choose another with --dir",
            dir.display()
        );
    }
    let sdk = sdk_dir(sdk.as_deref())?;
    for (rel, text) in render(kind, name, &sdk) {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create \"{}\"", parent.display()))?;
        }
        std::fs::write(&path, text)
            .with_context(|| format!("cannot write \"{}\"", path.display()))?;
    }
    let lib = name.replace('-', "_");
    println!(
        "wrote {} \"{name}\" in {} (SDK: {})\n\nnext:\n  cd {}\n  cargo build --release --target wasm32-wasip2\n  cp target/wasm32-wasip2/release/{lib}.wasm <warden's plugin directory>\n  cargo test    # runs it against a fake host\n\nthe guide is {} in the Warden repository",
        kind.describe(),
        dir.display(),
        sdk.display(),
        dir.display(),
        kind.guide()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crate_names_the_sdk_by_an_absolute_path_and_the_plugin_everywhere() {
        let sdk = sdk_dir(None).unwrap();
        assert!(sdk.is_absolute());
        for kind in [Kind::Playbook, Kind::Gate, Kind::Router] {
            let files = render(kind, "team-thing", &sdk);
            let manifest = &files[0].1;
            let parsed: toml::Table = toml::from_str(manifest).unwrap();
            let dep = parsed["dependencies"]["warden-sdk"]["path"]
                .as_str()
                .unwrap();
            assert_eq!(Path::new(dep), sdk.join("sdk"));
            assert!(parsed.contains_key("workspace"), "{manifest}");
            assert_eq!(parsed["package"]["name"].as_str(), Some("team-thing"));
            for (path, text) in &files {
                assert!(!text.contains("{{name}}"), "{path}");
                assert!(!text.contains(TEMPLATE_NAME), "{path}: {text}");
            }
        }
    }

    #[test]
    fn a_missing_sdk_is_named() {
        let e = sdk_dir(Some(Path::new("/nonexistent/sdk"))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no Warden SDK at \"/nonexistent/sdk\" (--sdk): expected the sdk directory of a Warden checkout, holding sdk/ and testkit/"
        );
    }
}
