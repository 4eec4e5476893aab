//! `{"op":"priority"}`: ranks subscribed symbols for the slow-consumer
//! ladder. Symbols the connection does not hold are named in a
//! `not_subscribed` error; the others take effect at once.

use tickgate_feeds::Symbol;

use super::{Session, invalid_symbols, symbols_error};
use crate::fanout::subscriptions;
use crate::protocol::{self, ErrorCode, Priority, RequestId};
use crate::telemetry;

impl Session<'_> {
    pub(super) fn set_priority(&self, id: Option<&RequestId>, classes: &[(Priority, Vec<String>)]) {
        let mut replies = Vec::with_capacity(3);
        let mut set: [Vec<Symbol>; 3] = Default::default();
        let mut missing = Vec::new();
        let mut invalid = Vec::new();
        for (priority, texts) in classes {
            let list = protocol::parse_symbols(texts);
            invalid.extend(list.invalid);
            for symbol in list.valid {
                // Subscribed or waited for: a symbol no feed has published
                // keeps its rank once it is.
                if subscriptions::set_priority(self.store, &self.mailbox, &symbol, *priority) {
                    set[*priority as usize].push(symbol);
                } else {
                    missing.push(symbol);
                }
            }
        }
        if !invalid.is_empty() {
            replies.push(invalid_symbols(id, &invalid));
        }
        if !missing.is_empty() {
            telemetry::bad_request(ErrorCode::NotSubscribed.as_str());
            replies.push(symbols_error(
                id,
                ErrorCode::NotSubscribed,
                "subscribe to these symbols before ranking them",
                &missing,
            ));
        }
        let [background, normal, visible] = &set;
        if !(background.is_empty() && normal.is_empty() && visible.is_empty()) {
            replies.push(protocol::priority(id, visible, normal, background));
        }
        self.mailbox.push_control(replies);
    }
}
