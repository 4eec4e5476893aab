//! `{"op":"ping"}`: answered with a `pong` carrying the gateway's time.

use tickgate_feeds::now_micros;

use super::Session;
use crate::protocol::{self, RequestId};

impl Session<'_> {
    /// Queues the `pong`. Its `ts` is wall-clock time in microseconds, the
    /// one reading of a clock in the session: a monotonic `Instant` cannot
    /// say what time it is.
    pub(super) fn ping(&self, id: Option<&RequestId>) {
        self.mailbox
            .push_control([protocol::pong(id, now_micros())]);
    }
}
