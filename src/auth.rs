//! Client authentication and entitlements. Owns the `[auth]` settings, the
//! verification keys loaded from them, and the [`Grant`] a verified token
//! turns into; hands the grant to the connection, which asks it which
//! symbols may be subscribed and when the connection must end.
//!
//! Tokens are JWTs verified with `jsonwebtoken` against configured keys only:
//! an HS256 secret (file or environment variable), RS256/ES256 public keys in
//! PEM, or a JWKS file. Each key accepts exactly one algorithm, implied by the
//! key itself, so `alg: none` (not an algorithm `jsonwebtoken` knows) and
//! algorithm confusion (an RS256 public key used as an HS256 secret) are
//! refused before any signature check. Keys embedded in the token header
//! (`jwk`, `jku`) are never used.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tracing::{info, warn};

pub use crate::config::{AuthConfig, AuthMode};
use crate::reload::LastTried;
use crate::telemetry;

mod grant;
mod keys;

pub use crate::config::Pattern;
use grant::{Claims, SymbolsClaim};
pub use grant::{Entitlement, Grant, token_from_request};
use keys::{contents, header_names_unknown_alg, jwks_keys, key_files, map_error, read_all};

/// Longest token accepted anywhere (header, query, `auth` message).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Most symbol patterns one token may carry.
const MAX_PATTERNS: usize = 1024;
/// Shortest HS256 secret accepted (RFC 7518 §3.2: at least the hash size).
const MIN_SECRET_BYTES: usize = 32;

/// Why a token was refused. [`AuthError::kind`] is the metric label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token where one is required.
    #[error("missing token")]
    Missing,
    /// Not a JWT, too long, or claims of the wrong shape.
    #[error("malformed token")]
    Malformed,
    /// An algorithm no configured key accepts (including `none`).
    #[error("token algorithm not accepted")]
    Algorithm,
    /// No configured key matches the token's `kid` and algorithm.
    #[error("no key for this token")]
    UnknownKey,
    /// The signature does not verify.
    #[error("bad token signature")]
    Signature,
    /// `exp` is past (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// `iss` or `aud` is not one of the configured values, or missing.
    #[error("token issuer or audience not accepted")]
    Claims,
}

impl AuthError {
    /// Metric label (`tickgate_auth_failures_total{reason}`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::Algorithm => "algorithm",
            Self::UnknownKey => "unknown_key",
            Self::Signature => "signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::Claims => "claims",
        }
    }
}

/// Why the keys could not be loaded at start-up.
#[derive(Debug, thiserror::Error)]
#[error("auth: {0}")]
pub struct KeyError(String);

/// One verification key and the one algorithm it accepts.
struct VerifyKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// Verifies tokens against the configured keys. The keys can be reloaded
/// from their files while the gateway runs ([`Authenticator::reload`]).
pub struct Authenticator {
    keys: ArcSwap<Vec<VerifyKey>>,
    /// Where the keys come from, for reloads.
    sources: AuthConfig,
    /// What the key files held at the last load or reload attempt.
    last_files: LastTried,
    issuers: Vec<String>,
    audiences: Vec<String>,
    leeway: u64,
    default_symbols: Vec<String>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("keys", &self.keys.load().len())
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Loads the keys of `config`; `None` when authentication is off.
    pub fn from_config(config: &AuthConfig) -> Result<Option<Self>, KeyError> {
        if config.mode == AuthMode::Off {
            return Ok(None);
        }
        let last_files = LastTried::new(contents(&read_all(&key_files(config))));
        let keys = Self::load_keys(config)?;
        Ok(Some(Self {
            keys: ArcSwap::from_pointee(keys),
            sources: config.clone(),
            last_files,
            issuers: config.issuers.clone(),
            audiences: config.audiences.clone(),
            leeway: config.leeway_seconds,
            default_symbols: config.default_symbols.clone(),
        }))
    }

    /// The files the keys are read from (secret, PEM keys, JWKS).
    pub fn key_files(&self) -> Vec<PathBuf> {
        key_files(&self.sources)
    }

    /// Reads the key files again and verifies new tokens with what they
    /// hold from now on; returns the number of keys. On failure the
    /// previous keys stay in use. Logs and counts the outcome
    /// (`tickgate_auth_key_reloads_total{result}`). This is what SIGHUP does.
    pub fn reload(&self) -> Result<usize, KeyError> {
        self.reload_files(true)
            .unwrap_or_else(|| Ok(self.keys.load().len()))
    }

    /// What a change in a watched directory does: like [`Self::reload`],
    /// but nothing happens when the files hold what was last tried.
    pub(crate) fn reload_if_changed(&self) {
        let _ = self.reload_files(false);
    }

    /// `None` when `force` is off and the files are unchanged.
    fn reload_files(&self, force: bool) -> Option<Result<usize, KeyError>> {
        let files = read_all(&key_files(&self.sources));
        if !self.last_files.should_reload(contents(&files), force) {
            return None;
        }
        let outcome = Self::load_keys(&self.sources).map(|keys| {
            let count = keys.len();
            self.keys.store(Arc::new(keys));
            count
        });
        match &outcome {
            Ok(count) => {
                telemetry::auth_keys_reloaded(true);
                info!(
                    keys = count,
                    "JWT verification keys reloaded; new tokens are checked against them"
                );
            }
            Err(error) => {
                telemetry::auth_keys_reloaded(false);
                warn!(%error, "JWT key reload failed; still verifying with the previous keys");
            }
        }
        Some(outcome)
    }

    /// Reads every configured key; fails on the first unusable file.
    fn load_keys(config: &AuthConfig) -> Result<Vec<VerifyKey>, KeyError> {
        let mut keys = Vec::new();
        let secret = match (&config.hs256_secret_file, &config.hs256_secret_env) {
            (Some(path), _) => Some(std::fs::read(path).map_err(|e| {
                KeyError(format!(
                    "cannot read auth.hs256_secret_file {}: {e}",
                    path.display()
                ))
            })?),
            (None, Some(var)) => Some(
                std::env::var(var)
                    .map_err(|_| KeyError(format!("auth.hs256_secret_env: ${var} is not set")))?
                    .into_bytes(),
            ),
            (None, None) => None,
        };
        if let Some(mut secret) = secret {
            while secret.last().is_some_and(|b| b.is_ascii_whitespace()) {
                secret.pop();
            }
            if secret.len() < MIN_SECRET_BYTES {
                return Err(KeyError(format!(
                    "the HS256 secret must be at least {MIN_SECRET_BYTES} bytes"
                )));
            }
            keys.push(VerifyKey {
                kid: None,
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(&secret),
            });
        }
        for path in &config.public_key_files {
            let pem = std::fs::read(path)
                .map_err(|e| KeyError(format!("cannot read {}: {e}", path.display())))?;
            let (algorithm, key) = if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
                (Algorithm::RS256, key)
            } else if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
                (Algorithm::ES256, key)
            } else {
                return Err(KeyError(format!(
                    "{} is not a PEM RSA or EC public key",
                    path.display()
                )));
            };
            keys.push(VerifyKey {
                kid: None,
                algorithm,
                key,
            });
        }
        if let Some(path) = &config.jwks_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| KeyError(format!("cannot read {}: {e}", path.display())))?;
            keys.extend(
                jwks_keys(&text).map_err(|e| KeyError(format!("{}: {e}", path.display())))?,
            );
        }
        if keys.is_empty() {
            return Err(KeyError("no verification key configured".into()));
        }
        Ok(keys)
    }

    /// Verifies `token` now.
    pub fn verify(&self, token: &str) -> Result<Grant, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            if header_names_unknown_alg(token) {
                AuthError::Algorithm
            } else {
                AuthError::Malformed
            }
        })?;
        let keys = self.keys.load();
        if !keys.iter().any(|k| k.algorithm == header.alg) {
            return Err(AuthError::Algorithm);
        }
        let candidates: Vec<&VerifyKey> = keys
            .iter()
            .filter(|k| k.algorithm == header.alg)
            .filter(|k| match (&header.kid, &k.kid) {
                (Some(wanted), Some(kid)) => wanted == kid,
                // A keyed token may use an unnamed key; an unkeyed token any key.
                _ => true,
            })
            .collect();
        if candidates.is_empty() {
            return Err(AuthError::UnknownKey);
        }
        let validation = self.validation(header.alg);
        let mut last = AuthError::Signature;
        for candidate in candidates {
            match jsonwebtoken::decode::<Claims>(token, &candidate.key, &validation) {
                Ok(data) => return self.grant(data.claims),
                Err(error) => {
                    last = map_error(&error);
                    if last != AuthError::Signature {
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.leeway = self.leeway;
        validation.validate_nbf = true;
        validation.validate_exp = true;
        let mut required = vec!["exp"];
        if self.issuers.is_empty() {
            validation.iss = None;
        } else {
            validation.set_issuer(&self.issuers);
            required.push("iss");
        }
        if self.audiences.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.audiences);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        validation
    }

    fn grant(&self, claims: Claims) -> Result<Grant, AuthError> {
        let texts = match claims.symbols {
            None => self.default_symbols.clone(),
            Some(SymbolsClaim::List(list)) => list,
            Some(SymbolsClaim::Spaced(text)) => {
                text.split_whitespace().map(str::to_owned).collect()
            }
        };
        if texts.len() > MAX_PATTERNS {
            return Err(AuthError::Malformed);
        }
        let patterns = texts
            .iter()
            .map(|t| Pattern::parse(t))
            .collect::<Option<Vec<_>>>()
            .ok_or(AuthError::Malformed)?;
        if claims.max_rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
            return Err(AuthError::Malformed);
        }
        Ok(Grant {
            subject: claims.sub,
            expires_at: claims.exp,
            leeway: self.leeway,
            entitlement: Entitlement::Patterns(patterns),
            max_subscriptions: claims.max_subscriptions,
            max_rate: claims.max_rate,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_exact_prefix_suffix_and_everything() {
        let p = |t: &str| Pattern::parse(t).expect("pattern");
        assert!(p("AAPL").matches("AAPL"));
        assert!(!p("AAPL").matches("AAPLX"));
        assert!(!p("AAPL").matches("aapl"));
        assert!(p("BTC-*").matches("BTC-USD"));
        assert!(p("BTC-*").matches("BTC-"));
        assert!(!p("BTC-*").matches("ETH-BTC"));
        assert!(p("*-USD").matches("ETH-USD"));
        assert!(!p("*-USD").matches("ETH-USDT"));
        assert!(p("*").matches("ANYTHING"));
        assert!(p("B*-U*D").matches("BTC-USD"));
        assert!(p("**").matches("X"));
        assert!(Pattern::parse("").is_none());
        assert!(Pattern::parse("A B").is_none());
        assert!(Pattern::parse("A?").is_none());
    }

    #[test]
    fn bearer_header_wins_over_query_and_query_needs_permission() {
        assert_eq!(
            token_from_request(Some(b"Bearer abc.def.ghi"), Some("token=x"), true),
            Some("abc.def.ghi".into())
        );
        assert_eq!(
            token_from_request(Some(b"bearer  t "), None, true),
            Some("t".into())
        );
        // A present but unusable header is an empty (refused) token.
        assert_eq!(
            token_from_request(Some(b"Basic dXNlcg=="), None, true),
            Some(String::new())
        );
        assert_eq!(
            token_from_request(Some(b"Bearer"), None, true),
            Some(String::new())
        );
        assert_eq!(
            token_from_request(None, Some("a=1&token=q.r.s"), true),
            Some("q.r.s".into())
        );
        assert_eq!(token_from_request(None, Some("token=q.r.s"), false), None);
        assert_eq!(token_from_request(None, None, true), None);
    }

    #[test]
    fn required_mode_needs_a_key_and_limits_are_named() {
        let config = AuthConfig {
            mode: AuthMode::Required,
            leeway_seconds: 1000,
            default_symbols: vec!["A B".into()],
            ..AuthConfig::default()
        };
        let all = config.problems().join("\n");
        for key in ["needs a key", "auth.leeway_seconds", "auth.default_symbols"] {
            assert!(all.contains(key), "{key} missing in {all}");
        }
        assert!(AuthConfig::default().problems().is_empty());
    }
}
