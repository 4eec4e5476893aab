//! `{"op":"unsubscribe"}`: drops the named symbols; symbols the connection
//! does not hold are fine, malformed ones are named in an error.

use super::{Session, invalid_symbols};
use crate::fanout::subscriptions;
use crate::protocol::{self, RequestId};

impl Session<'_> {
    pub(super) fn unsubscribe(&self, id: Option<&RequestId>, symbols: &[String]) {
        let list = protocol::parse_symbols(symbols);
        self.track_subscriptions(|| {
            subscriptions::unsubscribe(self.store, &self.mailbox, &list.valid)
        });
        let mut replies = Vec::with_capacity(2);
        if !list.invalid.is_empty() {
            replies.push(invalid_symbols(id, &list.invalid));
        }
        if !list.valid.is_empty() {
            replies.push(protocol::unsubscribed(id, &list.valid));
        }
        self.mailbox.push_control(replies);
    }
}
