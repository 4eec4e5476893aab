//! Which symbols a feed passes on: exact names and `*` globs.

use crate::model::Symbol;

/// Which symbols a feed passes on: empty = all; otherwise a symbol passes
/// when it matches any pattern (`*` = any run, `?` = one character).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SymbolFilter {
    patterns: Vec<String>,
}

impl SymbolFilter {
    /// Compiles `patterns`; returns the first pattern that is not a valid
    /// symbol with wildcards.
    pub fn new(patterns: &[String]) -> Result<Self, String> {
        for pattern in patterns {
            let plain = pattern.replace(['*', '?'], "A");
            if Symbol::parse(&plain).is_err() {
                return Err(pattern.clone());
            }
        }
        Ok(Self {
            patterns: patterns.to_vec(),
        })
    }

    /// Whether `symbol` passes.
    pub fn allows(&self, symbol: &str) -> bool {
        self.patterns.is_empty()
            || self
                .patterns
                .iter()
                .any(|p| glob_match(p.as_bytes(), symbol.as_bytes()))
    }

    /// True when every symbol passes.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

/// Iterative glob match with `*` and `?`, linear in practice.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}
