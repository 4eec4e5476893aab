//! `{"op":"subscribe"}`, with its options (`max_rate`, `delta`, `meta`,
//! `trades`, `priority`) and `resume`: entitlement first, then the
//! connection's subscription limit, then the `subscribed` reply and one
//! snapshot queued before any update of the new symbols.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rustc_hash::FxHashMap;
use tickgate_feeds::{FeedState, Symbol};

use super::{Session, invalid_symbols, symbols_error};
use crate::auth::Grant;
use crate::fanout::Delivery;
use crate::fanout::subscriptions;
use crate::protocol::{self, ErrorCode, RequestId, SubscribeOptions};
use crate::telemetry;

impl Session<'_> {
    pub(super) fn subscribe(
        &self,
        id: Option<&RequestId>,
        texts: &[String],
        options: &SubscribeOptions,
    ) {
        // Only called once a grant is held (see `Session::request`).
        let Some(grant) = &self.grant else { return };
        let mut list = protocol::parse_symbols(texts);
        let mut replies = Vec::with_capacity(5);
        if !list.invalid.is_empty() {
            replies.push(invalid_symbols(id, &list.invalid));
        }
        // Entitlement first: a refused symbol never reaches the store, the
        // subscriber sets or this connection's outbox.
        let (entitled, refused): (Vec<Symbol>, Vec<Symbol>) = list
            .valid
            .into_iter()
            .partition(|symbol| grant.entitlement.allows(symbol));
        list.valid = entitled;
        if !refused.is_empty() {
            telemetry::bad_request(ErrorCode::NotEntitled.as_str());
            replies.push(symbols_error(
                id,
                ErrorCode::NotEntitled,
                "your token does not entitle you to these symbols",
                &refused,
            ));
        }
        let configured = self.limits.max_subscriptions;
        let limit = grant
            .max_subscriptions
            .map_or(configured, |own| own.min(configured));
        // Seqs are comparable only within one epoch: a resume from another
        // (a restarted gateway counts seq afresh) or naming none gets full
        // quotes, or a changed value could be left out as "unchanged".
        let epoch = self.store.epoch();
        let same_epoch = options.epoch.as_deref() == Some(epoch);
        let resume: FxHashMap<Symbol, u64> = if same_epoch {
            options
                .resume
                .iter()
                .filter_map(|(text, seq)| Symbol::parse(text).ok().map(|symbol| (symbol, *seq)))
                .collect()
        } else {
            FxHashMap::default()
        };
        let delivery = delivery_for(options, grant, self.limits.max_update_rate_hz);
        // The replies are queued under the lock that records the
        // subscriptions: the writer drains control frames before building an
        // update, so the snapshot precedes any update of these symbols.
        let answer = |result: &subscriptions::Subscribed| {
            if !result.over_limit.is_empty() {
                let refused: Vec<&str> = result.over_limit.iter().map(|s| s.as_str()).collect();
                telemetry::bad_request(ErrorCode::TooManySubscriptions.as_str());
                let message = format!(
                    "at most {limit} subscriptions per connection; these symbols were not subscribed"
                );
                replies.push(protocol::error(
                    id,
                    ErrorCode::TooManySubscriptions,
                    &message,
                    &refused,
                ));
            }
            if !result.table_full.is_empty() {
                let refused: Vec<&str> = result.table_full.iter().map(|s| s.as_str()).collect();
                let message = "the gateway's symbol table is full; only symbols it already knows can be subscribed";
                replies.push(protocol::error(
                    id,
                    ErrorCode::InvalidSymbol,
                    message,
                    &refused,
                ));
            }
            if !result.symbols.is_empty() {
                replies.push(protocol::subscribed(
                    id,
                    &result.symbols,
                    &result.no_data,
                    epoch,
                ));
                replies.push(if options.resume.is_empty() {
                    protocol::snapshot(&result.snapshot)
                } else if same_epoch {
                    protocol::snapshot_resumed(&result.snapshot, result.unchanged)
                } else {
                    protocol::snapshot_not_resumed(&result.snapshot)
                });
            }
            replies
        };
        let result = self.track_subscriptions(|| {
            subscriptions::subscribe(
                self.store,
                &self.mailbox,
                &list.valid,
                limit,
                delivery,
                &resume,
                answer,
            )
        });
        telemetry::symbols(self.store.symbol_count());
        if !result.symbols.is_empty() {
            self.mailbox
                .push_control(self.troubled_feeds(&result.symbols));
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
