//! The JetStream consumer that loads the last message of every subject,
//! then follows new ones.

use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::OrderedConfig;

use super::plan::NatsPlan;

/// An ordered consumer over `<prefix>.>` starting with the last message of
/// every subject; how many messages it has to deliver before it has caught
/// up with the stream as it was when created; and the stream's last
/// sequence then, which a message at or past it also shows caught up.
///
/// Both, because the count alone is not to be trusted: with messages
/// arriving while the consumer is created, nats-server 2.9 can go on
/// counting one message too many as pending for good (a load waiting for
/// zero would never end).
pub async fn open_last_per_subject(
    context: &async_nats::jetstream::Context,
    nats: &NatsPlan,
) -> Result<(async_nats::jetstream::consumer::pull::Ordered, u64, u64), String> {
    let mut stream = context
        .get_stream(&nats.stream)
        .await
        .map_err(|error| format!("stream {}: {error}", nats.stream))?;
    let last_sequence = stream
        .info()
        .await
        .map_err(|error| format!("stream {}: {error}", nats.stream))?
        .state
        .last_sequence;
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: nats.filter_subject(),
            deliver_policy: DeliverPolicy::LastPerSubject,
            ..OrderedConfig::default()
        })
        .await
        .map_err(|error| format!("creating a consumer on {}: {error}", nats.stream))?;
    let remaining = consumer.cached_info().num_pending;
    let messages = consumer
        .messages()
        .await
        .map_err(|error| format!("consuming {}: {error}", nats.stream))?;
    Ok((messages, remaining, last_sequence))
}
