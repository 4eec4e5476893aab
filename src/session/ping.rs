//! `{"op":"ping"}`: answered with a `pong` carrying the gateway's time.

use std::time::Instant;

use super::Session;
use crate::protocol::{self, RequestId};

impl Session<'_> {
    /// Queues the `pong`. Its `ts` is wall-clock time at `now` in
    /// microseconds since the Unix epoch.
    pub(super) fn ping(&self, id: Option<&RequestId>, now: Instant) {
        let ts = u64::try_from(self.unix_time(now).as_micros()).unwrap_or(u64::MAX);
        self.mailbox.push_control([protocol::pong(id, ts)]);
    }
}
