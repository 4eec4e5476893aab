//! Binance spot `bookTicker` and `trade` streams, raw or inside the
//! combined-stream wrapper `{"stream":…,"data":…}`. Decimals are strings.
//! A bookTicker has no event type or time (the gateway stamps receive time);
//! a trade's `T` is its time in milliseconds. Unknown and removed fields
//! (such as `b`/`a` on old trades) are ignored, as are other event types and
//! subscription replies.
//!
//! Symbols become `BASE-QUOTE`: `BTCUSDT` → `BTC-USDT`, splitting off the
//! longest suffix found in [`QUOTE_ASSETS`].

use simd_json::prelude::*;
use simd_json::tape::{Object, Value};

use crate::model::{Symbol, SymbolError, Tick, TickKind};
use crate::parse::{
    Decoded, Decoder, JsonScratch, Notice, ParseError, decimal, millis_to_micros, text, unsigned,
};

/// Quote assets recognised when splitting a Binance symbol, longest first
/// so `BTCFDUSD` is `BTC-FDUSD`, not `BTCFD-USD`.
pub const QUOTE_ASSETS: [&str; 24] = [
    "FDUSD", "USDT", "USDC", "TUSD", "BUSD", "USDP", "EURI", "USD", "DAI", "EUR", "GBP", "TRY",
    "BRL", "JPY", "AUD", "MXN", "ARS", "ZAR", "PLN", "BTC", "ETH", "BNB", "XRP", "TRX",
];

/// Decoder for Binance spot frames.
#[derive(Debug)]
pub struct BinanceDecoder {
    scratch: JsonScratch,
    max_message_bytes: usize,
}

impl BinanceDecoder {
    pub fn new(max_message_bytes: usize) -> Self {
        Self {
            scratch: JsonScratch::default(),
            max_message_bytes,
        }
    }
}

impl Decoder for BinanceDecoder {
    fn decode(&mut self, buf: &mut [u8], out: &mut Decoded) {
        let max = self.max_message_bytes;
        self.scratch.decode_bounded(buf, max, out, |root, out| {
            if let Err(error) = message_into(root, out) {
                out.rejects.push(error);
            }
        });
    }
}

fn message_into(root: Value<'_, '_>, out: &mut Decoded) -> Result<(), ParseError> {
    let obj = root
        .as_object()
        .ok_or(ParseError::WrongType { field: "message" })?;
    let obj = match obj.get("data") {
        Some(data) if obj.get("stream").is_some() => data
            .as_object()
            .ok_or(ParseError::WrongType { field: "data" })?,
        _ => obj,
    };
    if let Some(error) = obj.get("error").and_then(|e| e.as_object()) {
        let code = error.get("code").and_then(|c| c.as_i64());
        let message = text(&error, "msg")?.unwrap_or("unspecified error");
        out.notices.push(Notice::UpstreamError {
            code,
            message: message.to_string(),
        });
        return Ok(());
    }
    match text(&obj, "e")? {
        Some("trade") => out.ticks.push(trade(&obj)?),
        Some("bookTicker") => out.ticks.push(book_ticker(&obj)?),
        // A raw bookTicker has no event type: recognise it by its fields.
        None if obj.get("u").is_some() && obj.get("b").is_some() => {
            out.ticks.push(book_ticker(&obj)?);
        }
        None if obj.get("result").is_some() => {
            out.notices.push(Notice::Status("subscribed".into()));
        }
        _ => {}
    }
    Ok(())
}

fn book_ticker(obj: &Object<'_, '_>) -> Result<Tick, ParseError> {
    Ok(Tick {
        symbol: Some(symbol(obj)?),
        kind: TickKind::Quote,
        bid: decimal(obj, "b")?,
        bid_size: decimal(obj, "B")?,
        ask: decimal(obj, "a")?,
        ask_size: decimal(obj, "A")?,
        ..Tick::default()
    })
}

fn trade(obj: &Object<'_, '_>) -> Result<Tick, ParseError> {
    let millis = unsigned(obj, "T")?.or(unsigned(obj, "E")?);
    let ts = match millis {
        Some(ms) => Some(millis_to_micros(ms).ok_or(ParseError::BadTimestamp { field: "T" })?),
        None => None,
    };
    Ok(Tick {
        symbol: Some(symbol(obj)?),
        kind: TickKind::Trade,
        last: decimal(obj, "p")?,
        last_size: decimal(obj, "q")?,
        ts,
        ..Tick::default()
    })
}

fn symbol(obj: &Object<'_, '_>) -> Result<Symbol, ParseError> {
    let raw = text(obj, "s")?.ok_or(ParseError::MissingSymbol)?;
    normalize_symbol(raw)
}

/// `btcusdt` / `BTCUSDT` → `BTC-USDT`; no known quote asset → upper case.
pub fn normalize_symbol(raw: &str) -> Result<Symbol, ParseError> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_alphanumeric()) {
        let error = Symbol::parse(raw)
            .err()
            .unwrap_or(SymbolError::BadCharacter);
        return Err(ParseError::InvalidSymbol(error));
    }
    let upper = raw.to_ascii_uppercase();
    let split = QUOTE_ASSETS
        .iter()
        .find(|quote| upper.len() > quote.len() && upper.ends_with(*quote))
        .map(|quote| format!("{}-{quote}", &upper[..upper.len() - quote.len()]));
    Symbol::parse(split.as_deref().unwrap_or(&upper)).map_err(ParseError::InvalidSymbol)
}

/// The Binance stream names for a symbol in either naming (`BTC-USDT` or
/// `btcusdt`).
pub fn stream_symbol(symbol: &str) -> String {
    symbol.replace('-', "").to_ascii_lowercase()
}

/// One `SUBSCRIBE` request for the bookTicker and trade streams of `symbols`.
pub(crate) fn handshake(symbols: &[String]) -> Vec<String> {
    let params: Vec<String> = symbols
        .iter()
        .map(|s| stream_symbol(s))
        .flat_map(|s| [format!("{s}@bookTicker"), format!("{s}@trade")])
        .collect();
    vec![serde_json::json!({"method": "SUBSCRIBE", "params": params, "id": 1}).to_string()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(input: &str) -> Decoded {
        let mut out = Decoded::default();
        BinanceDecoder::new(1 << 20).decode(&mut input.as_bytes().to_vec(), &mut out);
        out
    }

    fn name(raw: &str) -> String {
        normalize_symbol(raw)
            .map(|s| s.to_string())
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn symbols_split_on_the_longest_quote_asset() {
        assert_eq!(name("btcusdt"), "BTC-USDT");
        assert_eq!(name("BNBBTC"), "BNB-BTC");
        assert_eq!(name("BTCFDUSD"), "BTC-FDUSD");
        assert_eq!(name("ETHEUR"), "ETH-EUR");
        assert_eq!(name("USDCUSDT"), "USDC-USDT");
        assert_eq!(name("ABCXYZ"), "ABCXYZ");
        assert_eq!(name("USDT"), "USDT", "no base left: kept whole");
        assert!(normalize_symbol("BTC USDT").is_err());
        assert!(normalize_symbol("").is_err());
    }

    #[test]
    fn raw_and_combined_book_tickers_normalize_the_same() {
        let raw = decode(
            r#"{"u":400900217,"s":"SOLUSDT","b":"142.10","B":"31.5","a":"142.12","A":"40"}"#,
        );
        let combined = decode(
            r#"{"stream":"solusdt@bookTicker","data":{"u":400900217,"s":"SOLUSDT","b":"142.10","B":"31.5","a":"142.12","A":"40"}}"#,
        );
        assert_eq!(raw.ticks, combined.ticks);
        let t = raw.ticks[0];
        assert_eq!(t.symbol.map(|s| s.to_string()).as_deref(), Some("SOL-USDT"));
        assert_eq!(
            (t.kind, t.bid, t.bid_size),
            (TickKind::Quote, Some(142.10), Some(31.5))
        );
        assert_eq!((t.ask, t.ask_size, t.ts), (Some(142.12), Some(40.0), None));
    }

    #[test]
    fn trades_ignore_removed_fields_and_use_trade_time() {
        let out = decode(
            r#"{"stream":"ethbtc@trade","data":{"e":"trade","E":1700000000999,"s":"ETHBTC","t":5,"p":"0.0521","q":"3.5","b":88,"a":50,"T":1700000000998,"m":true,"M":true}}"#,
        );
        let t = out.ticks[0];
        assert_eq!(t.symbol.map(|s| s.to_string()).as_deref(), Some("ETH-BTC"));
        assert_eq!(
            (t.kind, t.last, t.last_size),
            (TickKind::Trade, Some(0.0521), Some(3.5))
        );
        assert_eq!(t.ts, Some(1_700_000_000_998_000));
    }

    #[test]
    fn replies_errors_and_unknown_events_are_not_ticks() {
        let out = decode(r#"{"result":null,"id":1}"#);
        assert_eq!(out.notices, [Notice::Status("subscribed".into())]);
        let out = decode(r#"{"error":{"code":2,"msg":"Invalid request"},"id":1}"#);
        assert!(matches!(
            out.notices[0],
            Notice::UpstreamError { code: Some(2), .. }
        ));
        let out = decode(r#"{"e":"kline","s":"BTCUSDT"}"#);
        assert!(out.ticks.is_empty() && out.rejects.is_empty());
        let out = decode(r#"{"stream":"x","data":5}"#);
        assert_eq!(out.rejects, [ParseError::WrongType { field: "data" }]);
        let out = decode(r#"{"e":"trade","s":"BTCUSDT","p":"abc"}"#);
        assert_eq!(out.rejects, [ParseError::BadNumber { field: "p" }]);
    }

    #[test]
    fn handshake_subscribes_book_ticker_and_trade_streams() {
        assert_eq!(
            handshake(&["BTC-USDT".into()]),
            [r#"{"id":1,"method":"SUBSCRIBE","params":["btcusdt@bookTicker","btcusdt@trade"]}"#]
        );
    }
}
