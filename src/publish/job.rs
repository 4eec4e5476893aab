//! One unit of NATS work the publish loop waits for. At most one runs at a
//! time, so a symbol's quotes reach the stream in `seq` order.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::time::Duration;

use async_nats::jetstream;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tickgate_feeds::Symbol;
use tokio::time::{Instant, timeout, timeout_at};

use super::book::Outgoing;

/// A running job.
pub(super) type Job = Pin<Box<dyn Future<Output = JobDone> + Send>>;

/// How a job ended.
pub(super) enum JobDone {
    /// A batch finished: how many were acknowledged, which symbols failed.
    Published {
        acked: u64,
        failed: Vec<Symbol>,
        /// The first failure: `send` or `ack`, and what went wrong.
        error: Option<(&'static str, String)>,
    },
    /// The stream was checked (and created when missing: `Ok(true)`).
    Stream(Result<bool, String>),
}

/// Publishes every quote of the batch, then awaits all acknowledgements
/// together. Each publish has `deadline` from the moment it is sent, for its
/// send and its acknowledgement: a NATS server that stops answering costs
/// the batch one deadline, not one per quote in flight. After the first send
/// error (or a send that cannot finish in time) the rest of the batch is not
/// sent; every symbol not acknowledged comes back in `failed`.
pub(super) async fn publish_batch(
    context: jetstream::Context,
    batch: Vec<Outgoing>,
    deadline: Duration,
) -> JobDone {
    let mut acks = FuturesUnordered::new();
    let mut failed = Vec::new();
    let mut error = None;
    for (symbol, subject, payload) in batch {
        if error.is_some() {
            failed.push(symbol);
            continue;
        }
        let sent_at = Instant::now();
        match timeout(deadline, context.publish(subject, payload)).await {
            Ok(Ok(ack)) => acks.push(async move {
                let acked = timeout_at(sent_at + deadline, ack.into_future()).await;
                (symbol, acked)
            }),
            Ok(Err(e)) => {
                error = Some(("send", e.to_string()));
                failed.push(symbol);
            }
            Err(_) => {
                error = Some(("send", format!("not sent within {deadline:?}")));
                failed.push(symbol);
            }
        }
    }
    let mut acked = 0;
    while let Some((symbol, outcome)) = acks.next().await {
        match outcome {
            Ok(Ok(_)) => acked += 1,
            Ok(Err(e)) => {
                error.get_or_insert(("ack", e.to_string()));
                failed.push(symbol);
            }
            Err(_) => {
                error.get_or_insert(("ack", format!("not acknowledged within {deadline:?}")));
                failed.push(symbol);
            }
        }
    }
    JobDone::Published {
        acked,
        failed,
        error,
    }
}
