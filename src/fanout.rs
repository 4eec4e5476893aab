//! The fan-out core: latest quote per symbol, who wants which symbol, and
//! what each connection still owes its client.
//!
//! ```text
//! ingest ─► apply ─► store (quote + JSON, once per tick)
//!                 └► subscriptions ─► mailbox/outbox (dirty set, trades) ─► connection writer
//! ```
//!
//! - [`store`]: latest quote per symbol behind arc-swap, encoded once; only
//!   symbols feeds have published take a slot.
//! - [`interest`]: symbols clients wait for that no feed has published yet,
//!   bounded per connection and in total, handed over to the new slot when
//!   a feed publishes the symbol.
//! - [`subscriptions`]: symbol → interested connections, and the subscribe
//!   rules that keep "snapshot before update" true.
//! - [`outbox`]: per-connection conflation, at most one pending entry per
//!   subscribed symbol; [`delivery`] is its policy (rate caps, delta, meta,
//!   priority), [`trades`] its bounded trade queue, [`encode`] the data
//!   frames it writes.
//! - [`mailbox`]: an outbox shared between the ingest task and one
//!   connection, with its wake-ups and counters.
//! - [`apply`]: one feed batch into the store and onto the outboxes.
//! - [`venue`]: halts and resumptions (the per-symbol trading status and
//!   its `trading` messages), trade corrections and cancels (a bounded
//!   history of recent trades per symbol, revising `last`).
//!
//! Everything here is synchronous: no `async`, no clock reads (time is a
//! parameter), no metrics calls (functions return counts; callers record
//! them once per batch), no sockets. See docs/architecture.md.

pub mod apply;
pub mod delivery;
pub mod drain;
pub mod encode;
pub mod interest;
pub mod mailbox;
pub mod outbox;
pub mod store;
pub mod subscriptions;
pub mod trades;
pub mod venue;

pub use apply::{ApplyReport, Fanout, REJECT_REASONS};
pub use delivery::{Delivery, Priority};
pub use drain::Drain;
pub use mailbox::{ConnStats, Kick, Mailbox};
pub use outbox::{ConnId, Outbox, SubIndex};
pub use store::{FeedId, NO_FEED, Slot, Snapshot, SnapshotStore, StoreFull, SymbolId};
pub use venue::{VENUE_EVENT_KINDS, VENUE_EVENT_OUTCOMES, VenueReport};
