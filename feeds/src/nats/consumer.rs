//! The JetStream consumer that loads the last message of every subject,
//! then follows new ones.

use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::OrderedConfig;

use super::plan::NatsPlan;

/// An ordered consumer over `<prefix>.>` starting with the last message of
/// every subject, and how many messages it has to deliver before it has
/// caught up with the stream as it was when created.
pub async fn open_last_per_subject(
    context: &async_nats::jetstream::Context,
    nats: &NatsPlan,
) -> Result<(async_nats::jetstream::consumer::pull::Ordered, u64), String> {
    let stream = context
        .get_stream(&nats.stream)
        .await
        .map_err(|error| format!("stream {}: {error}", nats.stream))?;
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
    Ok((messages, remaining))
}
