//! `[auth]`: whether clients must present a token and which keys verify
//! it. Read and checked here; [`crate::auth`] loads the keys and verifies.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// `[auth]`: whether clients must present a token, and how it is verified.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `off` (every client sees every symbol) or `required`.
    pub mode: AuthMode,
    /// File holding the HS256 shared secret (trailing newline trimmed).
    pub hs256_secret_file: Option<PathBuf>,
    /// Environment variable holding the HS256 shared secret.
    pub hs256_secret_env: Option<String>,
    /// PEM public keys: RSA keys verify RS256, EC P-256 keys ES256.
    pub public_key_files: Vec<PathBuf>,
    /// A JWKS file (`{"keys":[...]}`); a key's `kid` selects it, its `alg`
    /// (or its type) the one algorithm it verifies.
    pub jwks_file: Option<PathBuf>,
    /// Reload the keys when a file in their directories changes (SIGHUP
    /// reloads them either way).
    pub watch: bool,
    /// Accepted `iss` values; empty = not checked.
    pub issuers: Vec<String>,
    /// Accepted `aud` values; empty = not checked.
    pub audiences: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_seconds: u64,
    /// Accept the token as a `token` query parameter on `/ws` (browsers
    /// cannot set headers on a WebSocket).
    pub query_token: bool,
    /// Accept an upgrade without a token and expect `{"op":"auth"}` as the
    /// first message instead.
    pub first_message: bool,
    /// Time an unauthenticated connection has to send that first message
    /// (`first_message_timeout_ms`).
    #[serde(rename = "first_message_timeout_ms", with = "crate::config::millis")]
    pub first_message_timeout: Duration,
    /// Symbol patterns granted to a token without a `symbols` claim.
    pub default_symbols: Vec<String>,
}

/// Authentication mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// No authentication; every client is entitled to everything.
    Off,
    /// Every connection needs a valid token.
    Required,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            mode: AuthMode::Off,
            hs256_secret_file: None,
            hs256_secret_env: None,
            public_key_files: Vec::new(),
            jwks_file: None,
            watch: true,
            issuers: Vec::new(),
            audiences: Vec::new(),
            leeway_seconds: 30,
            query_token: true,
            first_message: true,
            first_message_timeout: Duration::from_secs(5),
            default_symbols: Vec::new(),
        }
    }
}

impl AuthConfig {
    /// Problems of this section, each naming its key (file contents are
    /// checked at start-up, not here, so `--check-config` runs anywhere).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let has_key = self.hs256_secret_file.is_some()
            || self.hs256_secret_env.is_some()
            || !self.public_key_files.is_empty()
            || self.jwks_file.is_some();
        if self.mode == AuthMode::Required && !has_key {
            problems.push(
                "auth.mode = \"required\" needs a key: auth.hs256_secret_file, auth.hs256_secret_env, auth.public_key_files or auth.jwks_file".to_owned(),
            );
        }
        if self.hs256_secret_file.is_some() && self.hs256_secret_env.is_some() {
            problems.push(
                "auth.hs256_secret_file and auth.hs256_secret_env are exclusive: set one"
                    .to_owned(),
            );
        }
        if self.leeway_seconds > 300 {
            problems.push("auth.leeway_seconds must be at most 300".to_owned());
        }
        if !(Duration::from_millis(100)..=Duration::from_secs(60))
            .contains(&self.first_message_timeout)
        {
            problems.push("auth.first_message_timeout_ms must be between 100 and 60000".to_owned());
        }
        for pattern in &self.default_symbols {
            if Pattern::parse(pattern).is_none() {
                problems.push(format!(
                    "auth.default_symbols: {pattern:?} is not a symbol pattern (symbol characters and *)"
                ));
            }
        }
        problems
    }
}

/// A symbol pattern: symbol characters, where `*` matches any run of them
/// (`AAPL`, `BTC-*`, `*-USD`, `*`). Matching is case-sensitive, like symbols.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(String);

impl Pattern {
    /// A pattern from its text; `None` when it holds other characters or is
    /// empty or longer than 64 bytes.
    pub fn parse(text: &str) -> Option<Self> {
        let ok = !text.is_empty()
            && text.len() <= 64
            && text
                .bytes()
                .all(|b| b == b'*' || b.is_ascii_alphanumeric() || b".-_/:^".contains(&b));
        ok.then(|| Self(text.to_owned()))
    }

    /// Glob match with `*` only; linear in the input for each star.
    pub fn matches(&self, symbol: &str) -> bool {
        let (p, s) = (self.0.as_bytes(), symbol.as_bytes());
        let (mut pi, mut si) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while si < s.len() {
            if pi < p.len() && p[pi] == b'*' {
                star = Some((pi, si));
                pi += 1;
            } else if pi < p.len() && p[pi] == s[si] {
                pi += 1;
                si += 1;
            } else if let Some((star_p, star_s)) = star {
                pi = star_p + 1;
                si = star_s + 1;
                star = Some((star_p, star_s + 1));
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|&b| b == b'*')
    }
}
