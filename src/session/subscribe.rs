//! `{"op":"subscribe"}`, with its options (`max_rate`, `delta`, `meta`,
//! `trades`, `priority`) and `resume`: entitlement first, then the
//! connection's subscription limit, then the `subscribed` reply and one
//! snapshot queued before any update of the new symbols.
//!
//! A request is handled in slices of at most [`SUBSCRIBE_SLICE`] symbols:
//! each slice takes the locks the fan-out needs for a bounded time, is
//! answered with its own `subscribed` and `snapshot`, and the driver lets
//! the fan-out and other connections run before the next one
//! ([`Session::continue_request`]). Refusals of the whole request (over the
//! limit, interest table full) are gathered and sent once, just before the
//! last slice's `subscribed`.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rustc_hash::FxHashMap;
use tickgate_feeds::{FeedState, Symbol};

use super::{Session, invalid_symbols, symbols_error};
use crate::auth::Grant;
use crate::fanout::Delivery;
use crate::fanout::drain::FeedLiveness;
use crate::fanout::subscriptions::{self, SubscribeLimits};
use crate::protocol::{self, ErrorCode, RequestId, SubscribeOptions};
use crate::telemetry;

/// Most symbols of one subscribe handled at once, under the locks the
/// fan-out needs (the interest book, the connection's outbox).
pub const SUBSCRIBE_SLICE: usize = 512;

/// What is left of a subscribe larger than one slice.
pub(super) struct Unfinished {
    id: Option<RequestId>,
    /// Valid, entitled symbols of the request; `next` is the first not yet
    /// handled.
    symbols: Vec<Symbol>,
    next: usize,
    limits: SubscribeLimits,
    delivery: Delivery,
    resume: FxHashMap<Symbol, u64>,
    resumed: bool,
    /// The resume named this gateway's epoch, so its seqs were compared.
    same_epoch: bool,
    over_limit: Vec<Symbol>,
    interest_full: Vec<Symbol>,
}

impl Session<'_> {
    pub(super) fn subscribe(
        &mut self,
        id: Option<&RequestId>,
        texts: &[String],
        options: &SubscribeOptions,
    ) {
        // Only called once a grant is held (see `Session::request`).
        let Some(grant) = &self.grant else { return };
        let list = protocol::parse_symbols(texts);
        let mut replies = Vec::with_capacity(2);
        if !list.invalid.is_empty() {
            telemetry::symbols_refused("invalid", list.invalid.len());
            replies.push(invalid_symbols(id, &list.invalid));
        }
        // Entitlement first: a refused symbol never reaches the store, the
        // interest book, the subscriber sets or this connection's outbox.
        let (entitled, refused): (Vec<Symbol>, Vec<Symbol>) = list
            .valid
            .into_iter()
            .partition(|symbol| grant.entitlement.allows(symbol));
        if !refused.is_empty() {
            telemetry::bad_request(ErrorCode::NotEntitled.as_str());
            telemetry::symbols_refused("not_entitled", refused.len());
            replies.push(symbols_error(
                id,
                ErrorCode::NotEntitled,
                "your token does not entitle you to these symbols",
                &refused,
            ));
        }
        self.mailbox.push_control(replies);
        let configured = self.limits.max_subscriptions;
        let per_connection = grant
            .max_subscriptions
            .map_or(configured, |own| own.min(configured));
        // Seqs are comparable only within one epoch: a resume from another
        // (a restarted gateway counts seq afresh) or naming none gets full
        // quotes, or a changed value could be left out as "unchanged".
        let same_epoch = options.epoch.as_deref() == Some(self.store.epoch());
        let resume: FxHashMap<Symbol, u64> = if same_epoch {
            options
                .resume
                .iter()
                .filter_map(|(text, seq)| Symbol::parse(text).ok().map(|symbol| (symbol, *seq)))
                .collect()
        } else {
            FxHashMap::default()
        };
        self.unfinished = Some(Unfinished {
            id: id.cloned(),
            symbols: entitled,
            next: 0,
            limits: SubscribeLimits {
                per_connection,
                interest: self.limits.max_interest,
            },
            delivery: delivery_for(options, grant, self.limits.max_update_rate_hz),
            resume,
            resumed: !options.resume.is_empty(),
            same_epoch,
            over_limit: Vec::new(),
            interest_full: Vec::new(),
        });
        self.subscribe_slice();
    }

    /// Handles the next [`SUBSCRIBE_SLICE`] symbols of the unfinished
    /// subscribe and queues their replies.
    pub(super) fn subscribe_slice(&mut self) {
        let Some(mut request) = self.unfinished.take() else {
            return;
        };
        let end = request
            .symbols
            .len()
            .min(request.next.saturating_add(SUBSCRIBE_SLICE));
        let last = end == request.symbols.len();
        let Unfinished {
            id,
            symbols,
            next,
            limits,
            delivery,
            resume,
            resumed,
            same_epoch,
            over_limit,
            interest_full,
        } = &mut request;
        let slice = &symbols[*next..end];
        let epoch = self.store.epoch();
        let id = id.as_ref();
        // The replies are queued under the lock that records the
        // subscriptions: the writer drains control frames before building an
        // update, so the snapshot precedes any update of these symbols.
        let answer = |result: &subscriptions::Subscribed| {
            over_limit.extend_from_slice(&result.over_limit);
            interest_full.extend_from_slice(&result.interest_full);
            let mut replies = Vec::with_capacity(4);
            if last {
                replies.extend(refusals(
                    id,
                    limits.per_connection,
                    over_limit,
                    interest_full,
                ));
            }
            if !result.symbols.is_empty() {
                replies.push(protocol::subscribed(
                    id,
                    &result.symbols,
                    &result.no_data,
                    epoch,
                ));
                replies.push(if !*resumed {
                    protocol::snapshot(&result.snapshot)
                } else if *same_epoch {
                    protocol::snapshot_resumed(&result.snapshot, result.unchanged)
                } else {
                    protocol::snapshot_not_resumed(&result.snapshot)
                });
            }
            replies
        };
        let slice = subscriptions::Request {
            symbols: slice,
            limits: *limits,
            delivery: *delivery,
            resume,
        };
        let feeds_not_live = || self.feeds.feeds_not_live();
        let result = self.track_subscriptions(|| {
            subscriptions::subscribe_with(
                self.store,
                &self.mailbox,
                slice,
                &mut FeedLiveness::new(&feeds_not_live),
                answer,
            )
        });
        if !result.symbols.is_empty() {
            self.mailbox
                .push_control(self.troubled_feeds(&result.symbols));
        }
        *next = end;
        if !last {
            self.unfinished = Some(request);
        }
    }

    /// Status frames for subscribed symbols whose feed is stale or down
    /// right now, so a new subscriber learns it at once, not at the next
    /// change.
    fn troubled_feeds(&self, symbols: &[Symbol]) -> Vec<String> {
        let mut by_feed: BTreeMap<u32, Vec<Symbol>> = BTreeMap::new();
        for symbol in symbols {
            if let Some(slot) = self.store.get(symbol) {
                by_feed
                    .entry(slot.feed.load(Ordering::Relaxed))
                    .or_default()
                    .push(*symbol);
            }
        }
        by_feed
            .into_iter()
            .filter_map(|(feed, symbols)| {
                let (name, feed_state) = self.feeds.state_of(feed)?;
                matches!(feed_state, FeedState::Stale | FeedState::Down)
                    .then(|| protocol::status(&name, feed_state.as_str(), &symbols))
            })
            .collect()
    }
}

/// The errors naming every symbol of a request refused for the
/// connection's limit or for a full interest table, counted once.
fn refusals(
    id: Option<&RequestId>,
    limit: usize,
    over_limit: &[Symbol],
    interest_full: &[Symbol],
) -> Vec<String> {
    let mut replies = Vec::with_capacity(2);
    if !over_limit.is_empty() {
        telemetry::bad_request(ErrorCode::TooManySubscriptions.as_str());
        telemetry::symbols_refused("over_limit", over_limit.len());
        let message = format!(
            "at most {limit} subscriptions per connection; these symbols were not subscribed"
        );
        replies.push(symbols_error(
            id,
            ErrorCode::TooManySubscriptions,
            &message,
            over_limit,
        ));
    }
    if !interest_full.is_empty() {
        telemetry::bad_request(ErrorCode::InvalidSymbol.as_str());
        telemetry::symbols_refused("interest_full", interest_full.len());
        let message = "no feed has published these symbols and the gateway already waits for as many such symbols as it may; subscribe again later";
        replies.push(symbols_error(
            id,
            ErrorCode::InvalidSymbol,
            message,
            interest_full,
        ));
    }
    replies
}

/// How a subscription with these options is delivered, within the
/// configured rate ceiling (`configured_hz`, 0 = none) and the token's
/// `max_rate`.
fn delivery_for(options: &SubscribeOptions, grant: &Grant, configured_hz: f64) -> Delivery {
    let ceiling = match grant.max_rate {
        Some(claim) if configured_hz > 0.0 => claim.min(configured_hz),
        Some(claim) => claim,
        None => configured_hz,
    };
    let rate = match (options.max_rate, ceiling > 0.0) {
        (Some(asked), true) => Some(asked.min(ceiling)),
        (Some(asked), false) => Some(asked),
        (None, true) => Some(ceiling),
        (None, false) => None,
    };
    Delivery {
        min_interval: rate.map(|hz| Duration::from_secs_f64(1.0 / hz)),
        delta: options.delta,
        meta: options.meta,
        trades: options.trades,
        priority: options.priority,
    }
}
