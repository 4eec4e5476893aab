//! The subject scheme: `<prefix>.<escaped symbol>` for quotes, and
//! `<prefix>.$hb` for the publisher heartbeat.

use crate::model::Symbol;

/// Last token of the publisher's heartbeat subject. `$` never appears in an
/// escaped symbol, so it cannot collide with one.
pub const HEARTBEAT_TOKEN: &str = "$hb";

/// Escapes a symbol into one NATS subject token: every byte other than
/// `A-Z a-z 0-9 - _ / : ^` becomes `%XX` (upper-case hex). Of the characters
/// a symbol may hold, only `.` is escaped (`BRK.B` → `BRK%2EB`); `*`, `>`,
/// whitespace and `%` itself would be too.
pub fn escape_symbol(symbol: &str) -> String {
    let mut token = String::with_capacity(symbol.len() + 4);
    for byte in symbol.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_/:^".contains(&byte) {
            token.push(char::from(byte));
        } else {
            token.push_str(&format!("%{byte:02X}"));
        }
    }
    token
}

/// Reverses [`escape_symbol`]; `None` for a token that is not a valid
/// escaped symbol.
pub fn unescape_token(token: &str) -> Option<Symbol> {
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = token.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Symbol::parse(std::str::from_utf8(&out).ok()?).ok()
}

/// `<prefix>.<escaped symbol>`.
pub fn subject_for(prefix: &str, symbol: &Symbol) -> String {
    format!("{prefix}.{}", escape_symbol(symbol.as_str()))
}

/// The symbol a quote subject names; `None` for other subjects (the
/// heartbeat, or anything not under `<prefix>.`).
pub fn symbol_of(prefix: &str, subject: &str) -> Option<Symbol> {
    let token = subject.strip_prefix(prefix)?.strip_prefix('.')?;
    if token.contains('.') {
        return None;
    }
    unescape_token(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(s: &str) -> Symbol {
        Symbol::parse(s).expect("valid symbol")
    }

    #[test]
    fn symbols_escape_into_one_token_and_back() {
        for (symbol, token) in [
            ("AAPL", "AAPL"),
            ("BRK.B", "BRK%2EB"),
            ("BTC-USD", "BTC-USD"),
            ("EUR/USD", "EUR/USD"),
            ("^SPX", "^SPX"),
            ("X:Y.Z", "X:Y%2EZ"),
            ("a_b", "a_b"),
        ] {
            assert_eq!(escape_symbol(symbol), token);
            assert_eq!(unescape_token(token), Some(sym(symbol)));
            assert_eq!(
                symbol_of("md.quote", &subject_for("md.quote", &sym(symbol))),
                Some(sym(symbol))
            );
        }
        assert_eq!(symbol_of("md.quote", "md.quote.$hb"), None);
        assert_eq!(symbol_of("md.quote", "md.quote.A.B"), None);
        assert_eq!(symbol_of("md.quote", "md.other.A"), None);
        assert_eq!(unescape_token("A%2"), None);
        assert_eq!(unescape_token("A%ZZ"), None);
        assert_eq!(unescape_token("A%20B"), None, "a space is no symbol");
    }
}
