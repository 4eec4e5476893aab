//! Everything one client connection decides, with no socket and no clock.
//!
//! A [`Session`] takes each inbound frame with the time it arrived
//! ([`Session::handle`]), applies the protocol's rules (request parsing,
//! authentication and token refresh, entitlements, the subscription and
//! request-rate limits) and queues its replies in the connection's
//! [`Mailbox`]. What it hands back is what the driver must do: nothing, or
//! close with a [`CloseReason`]. The driver (`connection`) moves frames
//! between the socket and the session, and asks [`Session::deadline`] when
//! it must call [`Session::on_deadline`] (first-message timeout, token
//! expiry).
//!
//! One file per client operation: [`subscribe`] (with `resume`),
//! [`unsubscribe`], [`priority`], [`auth`], [`ping`]; [`close`] holds why a
//! connection ends and the close frame that says so.

mod auth;
mod close;
mod ping;
mod priority;
mod subscribe;
mod unsubscribe;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tickgate_feeds::Symbol;

pub use self::close::{CloseReason, SLOW_CONSUMER_CLOSE};
pub use self::subscribe::SUBSCRIBE_SLICE;
use crate::auth::{Authenticator, Grant};
use crate::board::FeedBoard;
use crate::config::Config;
use crate::fanout::Mailbox;
use crate::fanout::store::SnapshotStore;
use crate::fanout::subscriptions;
use crate::limits::{RateVerdict, RequestRate, SymbolBudget};
use crate::protocol::{self, ErrorCode, Request, RequestId};
use crate::telemetry;

/// One frame received from the client, as the session sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound<'a> {
    /// A text frame: one JSON request.
    Text(&'a str),
    /// A binary frame: refused, the protocol is JSON text.
    Binary,
    /// A WebSocket ping (the WebSocket layer answers it).
    Ping,
    /// A WebSocket pong, or any other control frame: proof of liveness only.
    Pong,
    /// The client's close frame.
    Close,
}

/// What the driver must do after the session has handled an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Keep serving; any replies are already in the mailbox.
    Continue,
    /// End the connection; [`Session::take_last_words`] holds the error frame
    /// to send before the close frame, if any.
    Close(CloseReason),
}

/// The settings a session applies, copied from the configuration when the
/// connection opens.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionLimits {
    /// `limits.max_subscriptions_per_connection` (a token's own
    /// `max_subscriptions` may lower it).
    pub max_subscriptions: usize,
    /// `limits.max_interest`: distinct symbols no feed has published that
    /// the gateway waits for, over all connections.
    pub max_interest: usize,
    /// `connection.max_update_rate_hz`: ceiling on updates per second per
    /// symbol; 0 = none.
    pub max_update_rate_hz: f64,
    /// `limits.max_requests_per_second`: sustained frames per second; 0 =
    /// no limit.
    pub max_requests_per_second: f64,
    /// `limits.request_burst`: frames accepted at once before the rate
    /// applies.
    pub request_burst: u32,
    /// `limits.max_rate_limited`: refused frames within the strike window
    /// that close the connection.
    pub max_rate_limited: u32,
    /// `limits.max_symbols_per_second`: symbols `subscribe`/`unsubscribe`
    /// may name per second, sustained; 0 = no limit.
    pub max_symbols_per_second: f64,
    /// `limits.symbol_burst`: symbols named at once before that rate applies.
    pub symbol_burst: u32,
    /// `auth.first_message_timeout_ms`: time an unauthenticated connection
    /// has to send `{"op":"auth"}`.
    pub first_message_timeout: Duration,
}

impl SessionLimits {
    /// The limits of `config`; the one place a session reads configuration.
    pub fn from_config(config: &Config) -> Self {
        Self {
            max_subscriptions: config.limits.max_subscriptions_per_connection.get(),
            max_interest: config.limits.max_interest.get(),
            max_update_rate_hz: config.connection.max_update_rate_hz,
            max_requests_per_second: config.limits.max_requests_per_second,
            request_burst: config.limits.request_burst.get(),
            max_rate_limited: config.limits.max_rate_limited.get(),
            max_symbols_per_second: config.limits.max_symbols_per_second,
            symbol_burst: config.limits.symbol_burst.get(),
            first_message_timeout: config.auth.first_message_timeout,
        }
    }
}

/// One connection's protocol state: its grant (`None` until a first `auth`
/// message when the upgrade carried no token), the moment it must end
/// (first-message timeout or token expiry), its request rate, and the
/// handles it acts on.
pub struct Session<'a> {
    store: &'a SnapshotStore,
    feeds: &'a FeedBoard,
    /// Token verification; `None` when authentication is off.
    authenticator: Option<&'a Authenticator>,
    mailbox: Arc<Mailbox>,
    limits: SessionLimits,
    grant: Option<Grant>,
    deadline: Option<Instant>,
    rate: RequestRate,
    /// Symbols `subscribe` and `unsubscribe` may still name.
    symbols: SymbolBudget,
    /// An error frame to send just before a policy close (1008).
    last_words: Option<String>,
    /// The rest of a subscribe too large for one slice; the driver calls
    /// [`Session::continue_request`] until it is done.
    unfinished: Option<subscribe::Unfinished>,
    /// When the session opened: monotonic and wall-clock (since the Unix
    /// epoch) readings of the same moment.
    opened: (Instant, Duration),
}

impl<'a> Session<'a> {
    /// A session opened at `now`, which is `unix_now` (time since the Unix
    /// epoch) on the wall clock. `grant` is what the upgrade's token allows;
    /// `None` means the first message must be `{"op":"auth"}`.
    #[allow(clippy::too_many_arguments)] // one handle per owner, by design
    pub fn new(
        store: &'a SnapshotStore,
        feeds: &'a FeedBoard,
        authenticator: Option<&'a Authenticator>,
        mailbox: Arc<Mailbox>,
        limits: SessionLimits,
        grant: Option<Grant>,
        now: Instant,
        unix_now: Duration,
    ) -> Self {
        let deadline = match &grant {
            Some(grant) => grant.remaining(unix_now).map(|left| now + left),
            None => Some(now + limits.first_message_timeout),
        };
        let rate = RequestRate::new(
            limits.max_requests_per_second,
            limits.request_burst,
            limits.max_rate_limited,
            now,
        );
        let symbols = SymbolBudget::new(limits.max_symbols_per_second, limits.symbol_burst, now);
        Self {
            store,
            feeds,
            authenticator,
            mailbox,
            limits,
            grant,
            deadline,
            rate,
            symbols,
            last_words: None,
            unfinished: None,
            opened: (now, unix_now),
        }
    }

    /// Wall-clock time at `now`, counted from the wall-clock reading the
    /// session was opened with: the session reads no clock of its own.
    fn unix_time(&self, now: Instant) -> Duration {
        let (opened, unix) = self.opened;
        unix + now.saturating_duration_since(opened)
    }

    /// Handles one frame received at `now`: queues the replies, returns
    /// whether the connection goes on.
    pub fn handle(&mut self, frame: Inbound<'_>, now: Instant) -> Outcome {
        if frame == Inbound::Close {
            return Outcome::Close(CloseReason::ClientClosed);
        }
        match self.rate.check(now) {
            RateVerdict::Allow => {}
            RateVerdict::Refuse => {
                telemetry::rate_limited();
                if matches!(frame, Inbound::Text(_) | Inbound::Binary) {
                    telemetry::bad_request(ErrorCode::RateLimited.as_str());
                    self.mailbox.push_control([protocol::error(
                        None,
                        ErrorCode::RateLimited,
                        "too many requests; this one was ignored, slow down",
                        &[],
                    )]);
                }
                return Outcome::Continue;
            }
            RateVerdict::Close => {
                telemetry::rate_limited();
                return self.close(
                    CloseReason::RateLimited,
                    ErrorCode::RateLimited,
                    "too many requests; closing",
                );
            }
        }
        match frame {
            Inbound::Text(text) => self.request(text, now),
            Inbound::Binary if self.grant.is_none() => self.unauthenticated(),
            Inbound::Binary => {
                telemetry::bad_request(ErrorCode::BadRequest.as_str());
                self.mailbox.push_control([protocol::error(
                    None,
                    ErrorCode::BadRequest,
                    "binary frames are not supported; send JSON text frames",
                    &[],
                )]);
                Outcome::Continue
            }
            // Pings are answered by the WebSocket layer; pongs only prove liveness.
            Inbound::Ping | Inbound::Pong => Outcome::Continue,
            Inbound::Close => Outcome::Close(CloseReason::ClientClosed),
        }
    }

    /// When the driver must call [`Session::on_deadline`]: the end of the
    /// first-message window, or the expiry of the current token. `None`:
    /// never.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The deadline may have passed at `now`: closes a connection that never
    /// authenticated or whose token expired without a refresh.
    pub fn on_deadline(&mut self, now: Instant) -> Outcome {
        match self.deadline {
            Some(at) if now >= at => self.expired(),
            _ => Outcome::Continue,
        }
    }

    /// The error frame owed before the close frame of a policy close.
    pub fn take_last_words(&mut self) -> Option<String> {
        self.last_words.take()
    }

    /// Whether a request is only partly handled: a subscribe of more than
    /// [`SUBSCRIBE_SLICE`] symbols is handled a slice at a time, and the
    /// driver lets other tasks run between slices.
    pub fn has_unfinished_request(&self) -> bool {
        self.unfinished.is_some()
    }

    /// Handles the next slice of the unfinished request, if any.
    pub fn continue_request(&mut self) {
        self.subscribe_slice();
    }

    /// Drops every subscription and all interest of the ending connection,
    /// and what is left of an unfinished request.
    pub fn end(&mut self) {
        self.unfinished = None;
        self.track_subscriptions(|| subscriptions::unsubscribe_all(self.store, &self.mailbox));
    }

    /// Applies one text request.
    fn request(&mut self, text: &str, now: Instant) -> Outcome {
        let request = match protocol::parse_request(text) {
            Ok(request) => request,
            Err(_) if self.grant.is_none() => return self.unauthenticated(),
            Err(error) => {
                telemetry::bad_request(error.code.as_str());
                self.mailbox.push_control([error.to_frame()]);
                return Outcome::Continue;
            }
        };
        if let Request::Auth { id, token } = &request {
            return self.authenticate(id.as_ref(), token, now);
        }
        if self.grant.is_none() {
            return self.unauthenticated();
        }
        if let Request::Subscribe { id, symbols, .. } | Request::Unsubscribe { id, symbols } =
            &request
            && let Err(available) = self.symbols.take(symbols.len(), now)
        {
            return self.over_symbol_budget(id.as_ref(), symbols.len(), available, now);
        }
        match request {
            Request::Auth { .. } => {}
            Request::Ping { id } => self.ping(id.as_ref(), now),
            Request::Ack { frames } => {
                if self.ack(frames) {
                    self.rate.refund();
                }
            }
            Request::Subscribe {
                id,
                symbols,
                options,
            } => self.subscribe(id.as_ref(), &symbols, &options),
            Request::Priority { id, classes } => self.set_priority(id.as_ref(), &classes),
            Request::Unsubscribe { id, symbols } => self.unsubscribe(id.as_ref(), &symbols),
        }
        Outcome::Continue
    }

    /// `{"op":"ack"}`: the client has read `frames` messages in all. The
    /// writer may send again if it was holding data back for the window.
    /// Returns whether the count moved forward: such an acknowledgement is
    /// bounded by what the gateway sent, so it takes no request token.
    fn ack(&mut self, frames: u64) -> bool {
        match self.mailbox.acks.ack(frames) {
            Ok(advanced) => {
                self.mailbox.wake_writer();
                advanced
            }
            Err(sent) => {
                telemetry::bad_request(ErrorCode::BadRequest.as_str());
                self.mailbox.push_control([protocol::error(
                    None,
                    ErrorCode::BadRequest,
                    &format!("\"frames\" acknowledges {frames} messages but only {sent} were sent"),
                    &[],
                )]);
                false
            }
        }
    }

    /// Refuses a whole `subscribe`/`unsubscribe` that names more symbols
    /// than the connection's symbol budget holds now; a strike like any
    /// other refusal, so a client that keeps trying is closed.
    fn over_symbol_budget(
        &mut self,
        id: Option<&RequestId>,
        named: usize,
        available: usize,
        now: Instant,
    ) -> Outcome {
        telemetry::rate_limited();
        telemetry::symbols_refused("symbol_budget", named);
        if self.rate.strike(now) == RateVerdict::Close {
            return self.close(
                CloseReason::RateLimited,
                ErrorCode::RateLimited,
                "too many symbols requested; closing",
            );
        }
        telemetry::bad_request(ErrorCode::RateLimited.as_str());
        let message = format!(
            "this request names {named} symbols but the connection may name {available} more \
             now (limits.max_symbols_per_second {}, symbol_burst {}); nothing was done, \
             retry later or in smaller requests",
            self.limits.max_symbols_per_second, self.limits.symbol_burst
        );
        self.mailbox
            .push_control([protocol::error(id, ErrorCode::RateLimited, &message, &[])]);
        Outcome::Continue
    }

    /// Ends the connection with `reason`, sending `code`/`message` first.
    fn close(&mut self, reason: CloseReason, code: ErrorCode, message: &str) -> Outcome {
        self.last_words = Some(protocol::error(None, code, message, &[]));
        Outcome::Close(reason)
    }

    /// Runs `change` and moves the subscription gauge by what it did to this
    /// connection's subscription count: the one place the gauge changes.
    /// Symbols waited for count as held: the hand-over to a subscription
    /// leaves the count as it was.
    fn track_subscriptions<R>(&self, change: impl FnOnce() -> R) -> R {
        let before = subscriptions::held(self.store, &self.mailbox);
        let result = change();
        let after = subscriptions::held(self.store, &self.mailbox);
        if after > before {
            telemetry::subscriptions_added(after - before);
        } else if before > after {
            telemetry::subscriptions_removed(before - after);
        }
        result
    }
}

/// An error reply naming `symbols`.
fn symbols_error(
    id: Option<&RequestId>,
    code: ErrorCode,
    message: &str,
    symbols: &[Symbol],
) -> String {
    let names: Vec<&str> = symbols.iter().map(Symbol::as_str).collect();
    protocol::error(id, code, message, &names)
}

/// The `invalid_symbol` reply naming the refused texts.
fn invalid_symbols(id: Option<&RequestId>, invalid: &[String]) -> String {
    telemetry::bad_request(ErrorCode::InvalidSymbol.as_str());
    let refused: Vec<&str> = invalid.iter().map(String::as_str).collect();
    protocol::error(
        id,
        ErrorCode::InvalidSymbol,
        "symbols are 1 to 32 characters of A-Z a-z 0-9 . - _ / : ^",
        &refused,
    )
}

#[cfg(test)]
mod tests;
