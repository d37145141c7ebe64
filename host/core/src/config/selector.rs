//! Which version of a plugin a workspace uses (a pin).

/// Which version of a plugin a workspace uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// The highest live version.
    Latest,
    /// Exactly this version.
    Version(semver::Version),
    /// The highest live version matching a requirement such as `^1.2`.
    Req(semver::VersionReq),
    /// Exactly this build.
    Digest(String),
}

impl Selector {
    /// Parses `latest`, `1.2.0`, `^1.2`, `sha256:<64 hex>`.
    pub fn parse(s: &str) -> Result<Selector, String> {
        let s = s.trim();
        if s == "latest" {
            return Ok(Selector::Latest);
        }
        if let Some(hex) = s.strip_prefix("sha256:") {
            if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Ok(Selector::Digest(format!(
                    "sha256:{}",
                    hex.to_ascii_lowercase()
                )));
            }
            return Err(format!(
                "invalid digest \"{s}\": expected sha256: and 64 hex digits"
            ));
        }
        if let Ok(v) = semver::Version::parse(s) {
            return Ok(Selector::Version(v));
        }
        semver::VersionReq::parse(s).map(Selector::Req).map_err(|_| {
            format!("invalid version selector \"{s}\": use latest, a version such as 1.2.0, a requirement such as ^1.2, or sha256:<digest>")
        })
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selector::Latest => f.write_str("latest"),
            Selector::Version(v) => write!(f, "{v}"),
            Selector::Req(r) => write!(f, "{r}"),
            Selector::Digest(d) => f.write_str(d),
        }
    }
}
