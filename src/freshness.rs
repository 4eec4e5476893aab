//! Freshness: what clients should believe about each symbol's data, owned
//! in one place. Holds each feed's state (`connecting`, `live`, `stale`,
//! `down`) and whether `/readyz` waits for it, which feed serves each
//! symbol (the primary or a backup: the feed whose tick was applied last),
//! what clients were last told about each symbol, and whether the replica
//! has ever been ready.
//!
//! It hands back [`Announcement`]s, each one `status` message to every
//! subscriber of its symbols; the ingest task sends them. Every change of
//! what a client should believe about a symbol yields exactly one
//! announcement for it, and nothing else does: a feed reconnecting goes
//! `down` → `connecting` → `live`, and clients hear `down` once and `live`
//! once (`connecting` reads as `down` to a client, see [`Status::of`]).
//!
//! Pure and synchronous: no `async`, no clock, no metrics. The feed board
//! ([`crate::board`]) keeps it behind its lock; the ingest task is its only
//! writer.

use tickgate_feeds::FeedState;

use crate::fanout::{FeedId, SymbolId};

/// What a client is told about a symbol's data: the `state` of a `status`
/// message. A closed set; a client that has heard nothing assumes `live`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Its feed is delivering.
    Live,
    /// Its feed is connected but silent past its staleness window.
    Stale,
    /// Its feed is disconnected or reconnecting: no data is coming.
    Down,
}

impl Status {
    /// What clients should believe about the symbols of a feed in `state`.
    /// A feed that is `connecting` delivers nothing yet, so its symbols are
    /// `down` until data flows: a reconnect is not a separate client state.
    pub fn of(state: FeedState) -> Self {
        match state {
            FeedState::Live => Self::Live,
            FeedState::Stale => Self::Stale,
            FeedState::Connecting | FeedState::Down => Self::Down,
        }
    }

    /// The `state` field of a `status` message.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Stale => "stale",
            Self::Down => "down",
        }
    }

    /// The feed state with the same name, for callers that speak
    /// [`FeedState`].
    pub fn feed_state(self) -> FeedState {
        match self {
            Self::Live => FeedState::Live,
            Self::Stale => FeedState::Stale,
            Self::Down => FeedState::Down,
        }
    }
}

/// One `status` message to send to every subscriber holding any of
/// `symbols` (each gets only the symbols it holds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// The feed that serves these symbols now.
    pub feed: FeedId,
    pub status: Status,
    /// Sorted, without duplicates.
    pub symbols: Vec<SymbolId>,
}

impl Announcement {
    /// Whether `symbol` is one of this announcement's symbols.
    pub fn covers(&self, symbol: SymbolId) -> bool {
        self.symbols.binary_search(&symbol).is_ok()
    }
}

/// A feed's state changed: what it was, and what to tell clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub previous: FeedState,
    /// `None` when no client should believe anything new.
    pub announcement: Option<Announcement>,
}

/// The freshness state machine: feeds by [`FeedId`], symbols by
/// [`SymbolId`]. Bounded by the number of feeds and the symbol table.
#[derive(Debug, Default)]
pub struct Freshness {
    feeds: Vec<Feed>,
    /// Indexed by symbol id; `None` until a feed's tick for it is applied.
    symbols: Vec<Option<Served>>,
    /// Latched once every required feed was live at the same time.
    ever_ready: bool,
}

#[derive(Debug, Clone, Copy)]
struct Feed {
    state: FeedState,
    /// `/readyz` waits for this feed before the replica's first readiness.
    required: bool,
    /// The feed has reported a state of its own (not just been named).
    reported: bool,
}

#[derive(Debug, Clone, Copy)]
struct Served {
    feed: FeedId,
    /// What subscribers of this symbol were last told (or assume).
    told: Status,
}

impl Freshness {
    /// Adds a feed in state `connecting`; returns its id (ids count up
    /// from 0 in the order feeds are added).
    pub fn add_feed(&mut self, required: bool) -> FeedId {
        self.feeds.push(Feed {
            state: FeedState::Connecting,
            required,
            reported: false,
        });
        self.update_ready();
        (self.feeds.len() - 1) as FeedId
    }

    /// The feed's own state, if the feed exists.
    pub fn feed_state(&self, feed: FeedId) -> Option<FeedState> {
        self.feeds.get(feed as usize).map(|f| f.state)
    }

    /// Whether `/readyz` waits for this feed at start-up.
    pub fn is_required(&self, feed: FeedId) -> bool {
        self.feeds.get(feed as usize).is_some_and(|f| f.required)
    }

    /// What clients should believe about symbols served by `feed` (a new
    /// subscriber is told this unless it is `live`).
    pub fn status_of_feed(&self, feed: FeedId) -> Option<Status> {
        self.feed_state(feed).map(Status::of)
    }

    /// What subscribers of `symbol` were last told, if any feed serves it.
    pub fn status_of_symbol(&self, symbol: SymbolId) -> Option<(FeedId, Status)> {
        self.symbols
            .get(symbol as usize)
            .copied()
            .flatten()
            .map(|s| (s.feed, s.told))
    }

    /// Feed `feed` reports `state`. Announces the new status to every
    /// symbol it serves whose clients believe otherwise.
    pub fn set_state(&mut self, feed: FeedId, state: FeedState) -> Option<Transition> {
        let entry = self.feeds.get_mut(feed as usize)?;
        entry.reported = true;
        let previous = std::mem::replace(&mut entry.state, state);
        self.update_ready();
        let status = Status::of(state);
        let symbols = self.retell(status, |s| s.feed == feed);
        Some(Transition {
            previous,
            announcement: announcement(feed, status, symbols),
        })
    }

    /// Feed `feed` delivered ticks that were applied; `moved` are the
    /// symbols that came from another feed (or from none) before. A moved
    /// symbol takes the status of its new feed, and clients hear it if they
    /// believed otherwise (failover to a live backup, fail-back).
    ///
    /// A feed that delivers without ever reporting a state (an embedder's
    /// injected batches) is taken to be live.
    pub fn delivered(&mut self, feed: FeedId, moved: &[SymbolId]) -> Option<Announcement> {
        let entry = self.feeds.get_mut(feed as usize)?;
        if !entry.reported && entry.state != FeedState::Live {
            entry.state = FeedState::Live;
            self.update_ready();
        }
        let status = self.status_of_feed(feed)?;
        let mut symbols = Vec::new();
        for &symbol in moved {
            let index = symbol as usize;
            if self.symbols.len() <= index {
                self.symbols.resize(index + 1, None);
            }
            // A symbol's first data: nobody was told anything about it, so
            // it takes its feed's status silently. From a feed that is
            // live, that is what clients assume; from one still
            // `connecting` (a NATS snapshot load before it reports live),
            // `live` follows when the feed reports it.
            let told = self.symbols[index].map_or(status, |s| s.told);
            self.symbols[index] = Some(Served { feed, told: status });
            if told != status {
                symbols.push(symbol);
            }
        }
        symbols.sort_unstable();
        symbols.dedup();
        announcement(feed, status, symbols)
    }

    /// Why the feeds keep the replica from being ready: before it was
    /// ever ready, the first required feed that is not live. Once every
    /// required feed has been live together, feeds no longer gate
    /// readiness: a shared upstream failing later is told to clients
    /// through status messages and metrics, not by taking every replica
    /// out of its Service at once.
    pub fn not_ready(&self) -> Option<(FeedId, FeedState)> {
        if self.ever_ready {
            return None;
        }
        self.feeds
            .iter()
            .enumerate()
            .find(|(_, f)| f.required && f.state != FeedState::Live)
            .map(|(id, f)| (id as FeedId, f.state))
    }

    fn update_ready(&mut self) {
        let required_live = self
            .feeds
            .iter()
            .all(|f| !f.required || f.state == FeedState::Live);
        // A replica with no required feed is not latched here: it has
        // nothing to wait for.
        if required_live && self.feeds.iter().any(|f| f.required) {
            self.ever_ready = true;
        }
    }

    /// Sets `told = status` on every served symbol matching `pick` that
    /// believed otherwise; returns those symbols, sorted.
    fn retell(&mut self, status: Status, pick: impl Fn(&Served) -> bool) -> Vec<SymbolId> {
        let mut symbols = Vec::new();
        for (id, served) in self.symbols.iter_mut().enumerate() {
            let Some(served) = served else { continue };
            if pick(served) && served.told != status {
                served.told = status;
                symbols.push(id as SymbolId);
            }
        }
        symbols
    }
}

fn announcement(feed: FeedId, status: Status, symbols: Vec<SymbolId>) -> Option<Announcement> {
    (!symbols.is_empty()).then_some(Announcement {
        feed,
        status,
        symbols,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const AAPL: SymbolId = 0;
    const MSFT: SymbolId = 1;

    fn said(a: Option<Announcement>) -> Option<(FeedId, &'static str, Vec<SymbolId>)> {
        a.map(|a| (a.feed, a.status.as_str(), a.symbols))
    }

    fn state(
        f: &mut Freshness,
        feed: FeedId,
        to: FeedState,
    ) -> Option<(FeedId, &'static str, Vec<SymbolId>)> {
        said(f.set_state(feed, to).and_then(|t| t.announcement))
    }

    /// One feed, live, serving AAPL and MSFT.
    fn serving() -> (Freshness, FeedId) {
        let mut f = Freshness::default();
        let feed = f.add_feed(true);
        assert_eq!(state(&mut f, feed, FeedState::Live), None);
        assert_eq!(
            f.delivered(feed, &[AAPL, MSFT]),
            None,
            "new symbols are live"
        );
        (f, feed)
    }

    #[test]
    fn a_reconnect_announces_down_once_then_live_once() {
        let (mut f, feed) = serving();
        assert_eq!(
            state(&mut f, feed, FeedState::Down),
            Some((feed, "down", vec![AAPL, MSFT]))
        );
        assert_eq!(state(&mut f, feed, FeedState::Connecting), None);
        assert_eq!(state(&mut f, feed, FeedState::Down), None);
        assert_eq!(state(&mut f, feed, FeedState::Connecting), None);
        assert_eq!(
            state(&mut f, feed, FeedState::Live),
            Some((feed, "live", vec![AAPL, MSFT]))
        );
        assert_eq!(f.delivered(feed, &[]), None);
        assert_eq!(state(&mut f, feed, FeedState::Live), None);
    }

    #[test]
    fn connecting_straight_from_live_reads_as_down() {
        let (mut f, feed) = serving();
        assert_eq!(
            state(&mut f, feed, FeedState::Connecting),
            Some((feed, "down", vec![AAPL, MSFT]))
        );
        assert_eq!(
            state(&mut f, feed, FeedState::Live),
            Some((feed, "live", vec![AAPL, MSFT]))
        );
    }

    #[test]
    fn stale_then_live_then_stale_then_down() {
        let (mut f, feed) = serving();
        assert_eq!(
            state(&mut f, feed, FeedState::Stale),
            Some((feed, "stale", vec![AAPL, MSFT]))
        );
        assert_eq!(state(&mut f, feed, FeedState::Stale), None);
        assert_eq!(
            state(&mut f, feed, FeedState::Live),
            Some((feed, "live", vec![AAPL, MSFT]))
        );
        assert_eq!(
            state(&mut f, feed, FeedState::Stale),
            Some((feed, "stale", vec![AAPL, MSFT]))
        );
        assert_eq!(
            state(&mut f, feed, FeedState::Down),
            Some((feed, "down", vec![AAPL, MSFT]))
        );
    }

    #[test]
    fn a_feed_state_reaches_only_the_symbols_it_serves() {
        let mut f = Freshness::default();
        let a = f.add_feed(false);
        let b = f.add_feed(false);
        state(&mut f, a, FeedState::Live);
        state(&mut f, b, FeedState::Live);
        f.delivered(a, &[AAPL]);
        f.delivered(b, &[MSFT]);
        assert_eq!(
            state(&mut f, b, FeedState::Down),
            Some((b, "down", vec![MSFT]))
        );
        assert_eq!(f.status_of_symbol(AAPL), Some((a, Status::Live)));
        assert_eq!(f.status_of_symbol(MSFT), Some((b, Status::Down)));
    }

    #[test]
    fn failover_to_a_live_backup_announces_live_and_fail_back_is_silent() {
        let mut f = Freshness::default();
        let primary = f.add_feed(true);
        let backup = f.add_feed(false);
        state(&mut f, primary, FeedState::Live);
        state(&mut f, backup, FeedState::Live);
        f.delivered(primary, &[AAPL, MSFT]);
        assert_eq!(
            state(&mut f, primary, FeedState::Down),
            Some((primary, "down", vec![AAPL, MSFT]))
        );
        // The backup's ticks pass the failover gate: AAPL moves, and its
        // clients hear it is live again, now from the backup.
        assert_eq!(
            said(f.delivered(backup, &[AAPL])),
            Some((backup, "live", vec![AAPL]))
        );
        assert_eq!(f.delivered(backup, &[]), None, "once per move");
        // The primary returns: MSFT (still on it) hears live; AAPL, live on
        // the backup, hears nothing, and nothing when it moves back either.
        assert_eq!(
            state(&mut f, primary, FeedState::Live),
            Some((primary, "live", vec![MSFT]))
        );
        assert_eq!(f.delivered(primary, &[AAPL]), None);
        assert_eq!(f.status_of_symbol(AAPL), Some((primary, Status::Live)));
        // The backup going down now concerns nobody.
        assert_eq!(state(&mut f, backup, FeedState::Down), None);
    }

    #[test]
    fn fail_back_to_a_primary_that_is_not_live_announces_its_state() {
        let mut f = Freshness::default();
        let primary = f.add_feed(true);
        let backup = f.add_feed(false);
        state(&mut f, primary, FeedState::Live);
        state(&mut f, backup, FeedState::Live);
        f.delivered(backup, &[AAPL]);
        state(&mut f, primary, FeedState::Stale);
        assert_eq!(
            said(f.delivered(primary, &[AAPL])),
            Some((primary, "stale", vec![AAPL]))
        );
    }

    #[test]
    fn failover_to_a_backup_that_is_down_tells_nothing_new() {
        let mut f = Freshness::default();
        let primary = f.add_feed(false);
        let backup = f.add_feed(false);
        state(&mut f, primary, FeedState::Live);
        state(&mut f, backup, FeedState::Stale);
        f.delivered(primary, &[AAPL]);
        assert_eq!(
            state(&mut f, primary, FeedState::Down),
            Some((primary, "down", vec![AAPL]))
        );
        assert_eq!(
            said(f.delivered(backup, &[AAPL])),
            Some((backup, "stale", vec![AAPL]))
        );
        assert_eq!(
            state(&mut f, backup, FeedState::Down),
            Some((backup, "down", vec![AAPL]))
        );
    }

    #[test]
    fn a_new_subscriber_sees_the_current_status_of_the_serving_feed() {
        let (mut f, feed) = serving();
        assert_eq!(f.status_of_feed(feed), Some(Status::Live));
        state(&mut f, feed, FeedState::Down);
        state(&mut f, feed, FeedState::Connecting);
        assert_eq!(
            f.status_of_feed(feed),
            Some(Status::Down),
            "connecting reads as down"
        );
        assert_eq!(
            f.status_of_feed(feed).map(Status::feed_state),
            Some(FeedState::Down)
        );
        state(&mut f, feed, FeedState::Stale);
        assert_eq!(f.status_of_feed(feed), Some(Status::Stale));
        assert_eq!(f.status_of_feed(7), None);
    }

    #[test]
    fn first_data_from_a_feed_still_connecting_is_silent_and_live_follows() {
        let mut f = Freshness::default();
        let feed = f.add_feed(true);
        state(&mut f, feed, FeedState::Connecting);
        assert_eq!(f.delivered(feed, &[AAPL]), None, "a snapshot load");
        assert_eq!(f.status_of_symbol(AAPL), Some((feed, Status::Down)));
        assert_eq!(
            state(&mut f, feed, FeedState::Live),
            Some((feed, "live", vec![AAPL]))
        );
    }

    #[test]
    fn a_feed_that_never_reports_a_state_is_live_once_it_delivers() {
        let mut f = Freshness::default();
        let feed = f.add_feed(false);
        assert_eq!(f.delivered(feed, &[AAPL]), None);
        assert_eq!(f.feed_state(feed), Some(FeedState::Live));
        assert_eq!(f.status_of_symbol(AAPL), Some((feed, Status::Live)));
    }

    #[test]
    fn a_required_feed_gates_only_the_first_readiness() {
        let mut f = Freshness::default();
        let optional = f.add_feed(false);
        let required = f.add_feed(true);
        assert_eq!(f.not_ready(), Some((required, FeedState::Connecting)));
        state(&mut f, optional, FeedState::Live);
        state(&mut f, required, FeedState::Down);
        assert_eq!(f.not_ready(), Some((required, FeedState::Down)));
        state(&mut f, required, FeedState::Live);
        assert_eq!(f.not_ready(), None);
        for later in [FeedState::Stale, FeedState::Down, FeedState::Connecting] {
            state(&mut f, required, later);
            assert_eq!(f.not_ready(), None, "ready once, {later:?} later");
        }
    }

    #[test]
    fn without_required_feeds_nothing_gates_readiness() {
        let mut f = Freshness::default();
        f.add_feed(false);
        assert_eq!(f.not_ready(), None);
    }

    #[derive(Debug, Clone)]
    enum Event {
        State(FeedId, FeedState),
        Delivered(FeedId, Vec<SymbolId>),
    }

    fn event() -> impl Strategy<Value = Event> {
        let state = prop_oneof![
            Just(FeedState::Connecting),
            Just(FeedState::Live),
            Just(FeedState::Stale),
            Just(FeedState::Down),
        ];
        prop_oneof![
            (0..3u32, state).prop_map(|(feed, state)| Event::State(feed, state)),
            (0..3u32, proptest::collection::vec(0..6u32, 0..4))
                .prop_map(|(feed, symbols)| Event::Delivered(feed, symbols)),
        ]
    }

    proptest! {
        /// Whatever the feeds do, each symbol's status is the state of the
        /// feed serving it, a client that was told about a symbol believes
        /// that status, and it hears every change exactly once: never the
        /// same status twice in a row.
        #[test]
        fn clients_always_end_up_believing_the_serving_feed_and_hear_each_change_once(
            events in proptest::collection::vec(event(), 0..60)
        ) {
            let mut f = Freshness::default();
            for _ in 0..3 {
                f.add_feed(false);
            }
            // What a client subscribed to every symbol was told (`None`:
            // nothing yet).
            let mut belief: [Option<Status>; 6] = [None; 6];
            for event in events {
                let news = match event {
                    Event::State(feed, state) => {
                        f.set_state(feed, state).and_then(|t| t.announcement)
                    }
                    Event::Delivered(feed, symbols) => {
                        let mut moved: Vec<SymbolId> = symbols
                            .into_iter()
                            .filter(|&s| f.status_of_symbol(s).is_none_or(|(on, _)| on != feed))
                            .collect();
                        moved.sort_unstable();
                        moved.dedup();
                        f.delivered(feed, &moved)
                    }
                };
                if let Some(news) = news {
                    for symbol in news.symbols {
                        let told = &mut belief[symbol as usize];
                        prop_assert_ne!(*told, Some(news.status), "announced twice");
                        *told = Some(news.status);
                    }
                }
                for symbol in 0..6u32 {
                    let Some((feed, told)) = f.status_of_symbol(symbol) else {
                        continue;
                    };
                    prop_assert_eq!(Some(told), f.status_of_feed(feed));
                    // Once told anything, a client is told every change.
                    if let Some(belief) = belief[symbol as usize] {
                        prop_assert_eq!(told, belief);
                    }
                }
            }
        }
    }

    #[test]
    fn unknown_feeds_are_ignored() {
        let mut f = Freshness::default();
        assert_eq!(f.set_state(3, FeedState::Live), None);
        assert_eq!(f.delivered(3, &[AAPL]), None);
        assert_eq!(f.status_of_symbol(AAPL), None);
    }
}
