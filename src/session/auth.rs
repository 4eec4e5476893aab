//! `{"op":"auth"}`: a first token on a connection upgraded without one, or
//! a fresh token before the current one expires; and the deadline that ends
//! a connection which never authenticated or let its token expire.

use std::time::Instant;

use super::{CloseReason, Outcome, Session, symbols_error};
use crate::auth::Grant;
use crate::fanout::subscriptions;
use crate::protocol::{self, ErrorCode, RequestId};
use crate::telemetry;

impl Session<'_> {
    /// A failure closes an unauthenticated connection and leaves an
    /// authenticated one on its current token. Subscriptions the new token
    /// no longer covers are dropped and named in a `not_entitled` error.
    pub(super) fn authenticate(
        &mut self,
        id: Option<&RequestId>,
        token: &str,
        now: Instant,
    ) -> Outcome {
        let Some(authenticator) = self.authenticator else {
            self.mailbox.push_control([protocol::error(
                id,
                ErrorCode::BadRequest,
                "authentication is off on this gateway; no token is needed",
                &[],
            )]);
            return Outcome::Continue;
        };
        let grant = match authenticator.verify(token) {
            Ok(grant) => grant,
            Err(error) => {
                telemetry::auth_failure(error.kind());
                telemetry::bad_request(ErrorCode::Unauthorized.as_str());
                let message = format!("authentication failed: {error}");
                if self.grant.is_none() {
                    return self.close(
                        CloseReason::Unauthorized,
                        ErrorCode::Unauthorized,
                        &message,
                    );
                }
                self.mailbox.push_control([protocol::error(
                    id,
                    ErrorCode::Unauthorized,
                    &message,
                    &[],
                )]);
                return Outcome::Continue;
            }
        };
        let revoked = subscriptions::held_where(self.store, &self.mailbox, |symbol| {
            !grant.entitlement.allows(symbol)
        });
        let mut replies = Vec::with_capacity(2);
        if !revoked.is_empty() {
            self.track_subscriptions(|| {
                subscriptions::unsubscribe(self.store, &self.mailbox, &revoked)
            });
            replies.push(symbols_error(
                id,
                ErrorCode::NotEntitled,
                "the new token does not cover these symbols; they were unsubscribed",
                &revoked,
            ));
        }
        replies.push(self.adopt(grant, id, now));
        self.mailbox.push_control(replies);
        Outcome::Continue
    }

    /// Adopts a newly verified grant; returns the `authenticated` reply.
    fn adopt(&mut self, grant: Grant, id: Option<&RequestId>, now: Instant) -> String {
        self.deadline = grant.remaining(self.unix_time(now)).map(|left| now + left);
        let reply = protocol::authenticated(id, grant.subject.as_deref(), grant.expires_at);
        self.grant = Some(grant);
        reply
    }

    /// A frame other than a valid `{"op":"auth"}` on a connection still
    /// waiting for its first token (a request, JSON that does not parse, a
    /// binary frame, an empty token): closes at once with 1008
    /// `unauthorized`, rather than at the first-message timeout.
    pub(super) fn unauthenticated(&mut self) -> Outcome {
        telemetry::auth_failure("missing");
        self.close(
            CloseReason::Unauthorized,
            ErrorCode::Unauthorized,
            "authenticate first: send {\"op\":\"auth\",\"token\":\"<JWT>\"}",
        )
    }

    /// The deadline passed: the token expired, or no first `auth` came.
    pub(super) fn expired(&mut self) -> Outcome {
        if self.grant.is_some() {
            telemetry::auth_failure("expired");
            self.close(
                CloseReason::TokenExpired,
                ErrorCode::Unauthorized,
                "token expired",
            )
        } else {
            telemetry::auth_failure("missing");
            self.close(
                CloseReason::Unauthorized,
                ErrorCode::Unauthorized,
                "no {\"op\":\"auth\"} message in time",
            )
        }
    }
}
