//! What a verified token allows: the claims tickgate reads, the [`Grant`]
//! they turn into, symbol entitlements and their patterns, and where a
//! token is found in an upgrade request.

use std::time::Duration;

use serde::Deserialize;
use tickgate_feeds::Symbol;

use crate::config::Pattern;

/// The claims tickgate reads; others are ignored.
#[derive(Debug, Deserialize)]
pub(super) struct Claims {
    pub(super) exp: u64,
    #[serde(default)]
    pub(super) sub: Option<String>,
    #[serde(default)]
    pub(super) symbols: Option<SymbolsClaim>,
    #[serde(default)]
    pub(super) max_subscriptions: Option<usize>,
    #[serde(default)]
    pub(super) max_rate: Option<f64>,
}

/// `symbols`: an array of patterns, or one space-separated string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum SymbolsClaim {
    List(Vec<String>),
    Spaced(String),
}

/// What a verified token allows one connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    /// `sub`, for logs.
    pub subject: Option<String>,
    /// `exp`, seconds since the Unix epoch.
    pub expires_at: u64,
    pub(super) leeway: u64,
    /// Which symbols may be subscribed.
    pub entitlement: Entitlement,
    /// `max_subscriptions` claim: the connection's own subscription limit
    /// (the configured limit still applies when it is lower).
    pub max_subscriptions: Option<usize>,
    /// `max_rate` claim: ceiling on updates per second per symbol.
    pub max_rate: Option<f64>,
}

impl Grant {
    /// Everything, for gateways with authentication off.
    pub fn unrestricted() -> Self {
        Self {
            subject: None,
            expires_at: u64::MAX,
            leeway: 0,
            entitlement: Entitlement::Everything,
            max_subscriptions: None,
            max_rate: None,
        }
    }

    /// Time left at `unix_now` (time since the Unix epoch) until the
    /// connection must end, leeway included; `None` for a grant that never
    /// expires.
    pub fn remaining(&self, unix_now: Duration) -> Option<Duration> {
        if self.expires_at == u64::MAX {
            return None;
        }
        let end = self.expires_at.saturating_add(self.leeway);
        Some(Duration::from_secs(end).saturating_sub(unix_now))
    }
}

/// Which symbols a client may see.
#[derive(Debug, Clone, PartialEq)]
pub enum Entitlement {
    /// Every symbol (authentication off).
    Everything,
    /// Symbols matching at least one pattern.
    Patterns(Vec<Pattern>),
}

impl Entitlement {
    /// Whether `symbol` may be subscribed.
    pub fn allows(&self, symbol: &Symbol) -> bool {
        match self {
            Self::Everything => true,
            Self::Patterns(patterns) => patterns.iter().any(|p| p.matches(symbol.as_str())),
        }
    }
}

/// The bearer token of an upgrade request: the `Authorization: Bearer`
/// header, else (when allowed) the `token` query parameter.
pub fn token_from_request(
    authorization: Option<&[u8]>,
    query: Option<&str>,
    query_allowed: bool,
) -> Option<String> {
    // A present but unusable header is an (empty, refused) token, never
    // "no token": it must not fall through to first-message auth.
    if let Some(value) = authorization {
        let text = std::str::from_utf8(value).unwrap_or_default().trim();
        let token = match text.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => "",
        };
        return Some(token.to_owned());
    }
    if !query_allowed {
        return None;
    }
    query?.split('&').find_map(|pair| {
        let value = pair.strip_prefix("token=")?;
        // JWTs are base64url and dots; nothing to percent-decode.
        Some(value.to_owned())
    })
}
