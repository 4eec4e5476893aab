//! The `nats` table as written in TOML (a `kind = "nats"` feed, and
//! `[publish]`); `crate::nats` validates it into a plan.

use std::path::PathBuf;

use serde::Deserialize;

/// The `nats` table of a `kind = "nats"` feed and of `[publish]`: where the
/// bus is, how to authenticate, and which stream and subjects to use. Both
/// sides must agree on `stream` and `subject_prefix`.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsSettings {
    /// Server URLs (`nats://`, `tls://`, or `host:port`); the client picks
    /// one and fails over to the others.
    pub urls: Vec<String>,
    /// JetStream stream holding the last quote of every symbol.
    pub stream: String,
    /// Subjects are `<subject_prefix>.<escaped symbol>`.
    pub subject_prefix: String,
    /// User name (with `password` or `password_env`).
    pub user: Option<String>,
    pub password: Option<String>,
    /// Environment variable holding the password.
    pub password_env: Option<String>,
    /// Authentication token.
    pub token: Option<String>,
    /// Environment variable holding the token.
    pub token_env: Option<String>,
    /// NKey seed (`SU…`).
    pub nkey_seed: Option<String>,
    /// Environment variable holding the NKey seed.
    pub nkey_seed_env: Option<String>,
    /// A `.creds` file (user JWT and NKey seed), as issued by `nsc`.
    pub creds_file: Option<PathBuf>,
    /// Extra PEM CA certificate(s) trusted for TLS to NATS.
    pub ca_file: Option<PathBuf>,
    /// Refuse to talk to NATS without TLS.
    pub tls_required: bool,
}

impl Default for NatsSettings {
    fn default() -> Self {
        Self {
            urls: vec!["nats://127.0.0.1:4222".into()],
            stream: "TICKGATE".into(),
            subject_prefix: "md.quote".into(),
            user: None,
            password: None,
            password_env: None,
            token: None,
            token_env: None,
            nkey_seed: None,
            nkey_seed_env: None,
            creds_file: None,
            ca_file: None,
            tls_required: false,
        }
    }
}

impl std::fmt::Debug for NatsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSettings")
            .field("urls", &self.urls)
            .field("stream", &self.stream)
            .field("subject_prefix", &self.subject_prefix)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("password_env", &self.password_env)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_env", &self.token_env)
            .field("nkey_seed", &self.nkey_seed.as_ref().map(|_| "<redacted>"))
            .field("nkey_seed_env", &self.nkey_seed_env)
            .field("creds_file", &self.creds_file)
            .field("ca_file", &self.ca_file)
            .field("tls_required", &self.tls_required)
            .finish()
    }
}
