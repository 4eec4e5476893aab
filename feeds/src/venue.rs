//! Venue formats: the public market-data WebSocket messages of Polygon
//! (Massive) stocks, Alpaca stocks, Coinbase Exchange and Binance spot, each
//! normalized into [`Tick`](crate::Tick)s, plus the subscribe/auth messages
//! each venue expects after connecting.
//!
//! # Symbol naming
//!
//! - Equities keep the venue's ticker as-is: `AAPL`, `BRK.B`.
//! - Crypto is `BASE-QUOTE` in upper case: Coinbase `BTC-USD` is already in
//!   that form; Binance `btcusdt` becomes `BTC-USDT` by splitting off the
//!   longest quote asset in [`binance::QUOTE_ASSETS`]. A Binance symbol with
//!   no known quote asset is kept upper-case without a dash.
//!
//! Parsers are pure ([`Decoder`]); the runner does the I/O.

pub mod alpaca;
pub mod binance;
pub mod coinbase;
pub mod polygon;

use std::fmt;

use serde::Deserialize;

use crate::parse::Decoder;

/// A supported venue format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Venue {
    Polygon,
    Alpaca,
    Coinbase,
    Binance,
}

/// Credentials a venue handshake may need. Never logged.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// API key (Polygon `params`, Alpaca `key`).
    pub key: Option<String>,
    /// API secret (Alpaca `secret`).
    pub secret: Option<String>,
    /// Environment variable holding the key (used when `key` is absent).
    pub key_env: Option<String>,
    /// Environment variable holding the secret (used when `secret` is absent).
    pub secret_env: Option<String>,
}

impl Credentials {
    /// Fills `key`/`secret` from their `*_env` variables where absent.
    pub fn resolved(mut self) -> Self {
        let from_env = |name: &Option<String>| name.as_ref().and_then(|n| std::env::var(n).ok());
        if self.key.is_none() {
            self.key = from_env(&self.key_env);
        }
        if self.secret.is_none() {
            self.secret = from_env(&self.secret_env);
        }
        self
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("key_env", &self.key_env)
            .field("secret_env", &self.secret_env)
            .finish()
    }
}

/// Why a venue handshake cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The venue needs a credential the config does not give.
    #[error("{venue} needs `{field}` in the feed's credentials")]
    MissingCredential {
        venue: &'static str,
        field: &'static str,
    },
    /// No symbols to subscribe to.
    #[error("{venue} needs a non-empty `symbols` list to subscribe to")]
    NoSymbols { venue: &'static str },
}

impl Venue {
    /// Every venue, for docs and config errors.
    pub const ALL: [Venue; 4] = [Self::Polygon, Self::Alpaca, Self::Coinbase, Self::Binance];

    /// The lowercase name used in config (`kind = "coinbase"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Polygon => "polygon",
            Self::Alpaca => "alpaca",
            Self::Coinbase => "coinbase",
            Self::Binance => "binance",
        }
    }

    /// Looks a venue up by its config name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == name)
    }

    /// The venue's public endpoint, used when the config gives no `url`.
    pub fn default_url(self) -> &'static str {
        match self {
            Self::Polygon => "wss://socket.polygon.io/stocks",
            Self::Alpaca => "wss://stream.data.alpaca.markets/v2/iex",
            Self::Coinbase => "wss://ws-feed.exchange.coinbase.com",
            Self::Binance => "wss://stream.binance.com:9443/ws",
        }
    }

    /// A fresh decoder for one feed of this venue.
    pub fn decoder(self, max_message_bytes: usize) -> Box<dyn Decoder> {
        match self {
            Self::Polygon => Box::new(polygon::PolygonDecoder::new(max_message_bytes)),
            Self::Alpaca => Box::new(alpaca::AlpacaDecoder::new(max_message_bytes)),
            Self::Coinbase => Box::new(coinbase::CoinbaseDecoder::new(max_message_bytes)),
            Self::Binance => Box::new(binance::BinanceDecoder::new(max_message_bytes)),
        }
    }

    /// The text messages to send, in order, right after connecting:
    /// authentication (where the venue needs it), then the subscription to
    /// quotes and trades of `symbols` (tickgate names or venue names).
    pub fn handshake(
        self,
        symbols: &[String],
        credentials: &Credentials,
    ) -> Result<Vec<String>, HandshakeError> {
        if symbols.is_empty() {
            return Err(HandshakeError::NoSymbols {
                venue: self.as_str(),
            });
        }
        let need = |field: &'static str, value: &Option<String>| {
            value.clone().ok_or(HandshakeError::MissingCredential {
                venue: self.as_str(),
                field,
            })
        };
        Ok(match self {
            Self::Polygon => polygon::handshake(&need("key", &credentials.key)?, symbols),
            Self::Alpaca => alpaca::handshake(
                &need("key", &credentials.key)?,
                &need("secret", &credentials.secret)?,
                symbols,
            ),
            Self::Coinbase => coinbase::handshake(symbols),
            Self::Binance => binance::handshake(symbols),
        })
    }
}

impl fmt::Display for Venue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshakes_name_what_is_missing() {
        let none = Credentials::default();
        let syms = vec!["AAPL".to_string()];
        assert_eq!(
            Venue::Polygon.handshake(&syms, &none),
            Err(HandshakeError::MissingCredential {
                venue: "polygon",
                field: "key"
            })
        );
        assert_eq!(
            Venue::Coinbase.handshake(&[], &none),
            Err(HandshakeError::NoSymbols { venue: "coinbase" })
        );
        assert!(Venue::Coinbase.handshake(&syms, &none).is_ok());
    }

    #[test]
    fn credentials_never_print() {
        let creds = Credentials {
            key: Some("k-123".into()),
            secret: Some("s-456".into()),
            ..Credentials::default()
        };
        let shown = format!("{creds:?}");
        assert!(
            !shown.contains("k-123") && !shown.contains("s-456"),
            "{shown}"
        );
    }
}
