//! The JetStream stream the publisher writes: `<prefix>.>`, one message per
//! subject, so it holds the last quote of every symbol. Creating it,
//! bringing it to our settings, and reading it back at start-up.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use futures_util::StreamExt;
use tickgate_feeds::nats::NatsPlan;
use tickgate_feeds::parse::JsonScratch;
use tickgate_feeds::{Quote, Symbol, TradingStatus, now_micros};
use tokio::time::timeout;
use tracing::info;

use crate::config::{PublishConfig, StreamStorage};

/// The stream the publisher writes: `<prefix>.>`, one message per subject.
fn stream_config(plan: &NatsPlan, config: &PublishConfig) -> stream::Config {
    stream::Config {
        name: plan.stream.clone(),
        description: Some("tickgate: last quote per symbol".into()),
        subjects: vec![plan.filter_subject()],
        max_messages_per_subject: 1,
        discard: stream::DiscardPolicy::Old,
        storage: match config.storage {
            StreamStorage::File => stream::StorageType::File,
            StreamStorage::Memory => stream::StorageType::Memory,
        },
        num_replicas: config.replicas,
        allow_direct: true,
        ..stream::Config::default()
    }
}

/// What an existing stream needs to match `wanted`: nothing (`Ok(None)`),
/// an update that keeps its other settings (`Ok(Some)`), or, for a storage
/// type that cannot change in place, an error naming both.
fn reconcile(
    have: &stream::Config,
    wanted: &stream::Config,
) -> Result<Option<stream::Config>, String> {
    if have.storage != wanted.storage {
        return Err(format!(
            "stream {} uses {:?} storage but publish.storage asks for {:?}; delete the stream or change the setting",
            wanted.name, have.storage, wanted.storage
        ));
    }
    if have.subjects == wanted.subjects
        && have.max_messages_per_subject == 1
        && have.num_replicas == wanted.num_replicas
    {
        return Ok(None);
    }
    let mut updated = have.clone();
    updated.subjects = wanted.subjects.clone();
    updated.max_messages_per_subject = 1;
    updated.num_replicas = wanted.num_replicas;
    Ok(Some(updated))
}

/// Creates the stream when missing (`Ok(true)`), or brings an existing one
/// to our settings (`Ok(false)`).
pub(super) async fn ensure_stream(
    context: &jetstream::Context,
    plan: &NatsPlan,
    config: &PublishConfig,
) -> Result<bool, String> {
    let wanted = stream_config(plan, config);
    match context.get_stream(&plan.stream).await {
        Ok(mut existing) => {
            let info = existing
                .info()
                .await
                .map_err(|e| format!("stream {} info: {e}", plan.stream))?;
            if let Some(updated) = reconcile(&info.config, &wanted)? {
                context
                    .update_stream(updated)
                    .await
                    .map_err(|e| format!("updating stream {}: {e}", plan.stream))?;
                info!(stream = %plan.stream, "stream settings updated");
            }
            Ok(false)
        }
        Err(error)
            if matches!(
                error.kind(),
                jetstream::context::GetStreamErrorKind::JetStream(ref e)
                    if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
            ) =>
        {
            context
                .create_stream(wanted)
                .await
                .map_err(|e| format!("creating stream {}: {e}", plan.stream))?;
            info!(stream = %plan.stream, "stream created");
            Ok(true)
        }
        Err(error) => Err(format!("stream {}: {error}", plan.stream)),
    }
}

/// The stream's last quote of every subject, and the trading status of
/// those that carried one.
pub(super) type Loaded = (HashMap<Symbol, Quote>, HashMap<Symbol, TradingStatus>);

/// Reads the last quote of every subject of the stream.
pub(super) async fn load_quotes(
    context: &jetstream::Context,
    plan: &NatsPlan,
) -> Result<Loaded, String> {
    let (mut messages, mut remaining, last_sequence) =
        tickgate_feeds::nats::open_last_per_subject(context, plan).await?;
    let mut quotes = HashMap::new();
    let mut trading = HashMap::new();
    let mut scratch = JsonScratch::default();
    let now = now_micros();
    while remaining > 0 {
        let message = match timeout(Duration::from_secs(10), messages.next()).await {
            Ok(Some(Ok(message))) => message,
            Ok(Some(Err(error))) => return Err(format!("loading: {error}")),
            Ok(None) => return Err("loading: the consumer ended".into()),
            Err(_) => return Err("loading: no message for 10 s".into()),
        };
        remaining = message.info().map_or(0, |info| {
            if info.stream_sequence >= last_sequence {
                0
            } else {
                info.pending
            }
        });
        let mut payload = message.payload.to_vec();
        let Ok((tick, status)) = tickgate_feeds::nats::decode_published(&mut scratch, &mut payload)
        else {
            continue;
        };
        let Some(symbol) = tick.symbol else { continue };
        if let Some(status) = status {
            trading.insert(symbol, status);
        }
        quotes
            .entry(symbol)
            .or_insert_with(|| Quote::new(symbol))
            .apply(&tick, now);
    }
    Ok((quotes, trading))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(prefix: &str) -> NatsPlan {
        let settings = tickgate_feeds::nats::NatsSettings {
            stream: "QUOTES".into(),
            subject_prefix: prefix.into(),
            ..tickgate_feeds::nats::NatsSettings::default()
        };
        settings.validate().expect("valid settings")
    }

    #[test]
    fn the_stream_keeps_one_quote_per_subject_under_the_prefix() {
        let config = stream_config(&plan("md.quote"), &PublishConfig::default());
        assert_eq!(config.name, "QUOTES");
        assert_eq!(config.subjects, ["md.quote.>"]);
        assert_eq!(config.max_messages_per_subject, 1);
        assert_eq!(config.discard, stream::DiscardPolicy::Old);
        assert_eq!(config.storage, stream::StorageType::File);
        assert_eq!(config.num_replicas, 1);
        assert!(config.allow_direct, "gateways read it with direct gets");
    }

    #[test]
    fn storage_and_replicas_come_from_the_settings() {
        let settings = PublishConfig {
            storage: StreamStorage::Memory,
            replicas: 3,
            ..PublishConfig::default()
        };
        let config = stream_config(&plan("md.quote"), &settings);
        assert_eq!(config.storage, stream::StorageType::Memory);
        assert_eq!(config.num_replicas, 3);
    }

    #[test]
    fn a_stream_with_our_settings_is_left_alone() {
        let wanted = stream_config(&plan("md.quote"), &PublishConfig::default());
        let have = stream::Config {
            max_age: Duration::from_secs(3600),
            ..wanted.clone()
        };
        assert_eq!(reconcile(&have, &wanted), Ok(None));
    }

    #[test]
    fn a_drifted_stream_is_updated_keeping_its_other_settings() {
        let wanted = stream_config(&plan("md.quote"), &PublishConfig::default());
        let have = stream::Config {
            subjects: vec!["old.>".into()],
            max_messages_per_subject: 10,
            num_replicas: 3,
            max_age: Duration::from_secs(3600),
            ..wanted.clone()
        };
        let updated = reconcile(&have, &wanted)
            .expect("storage matches")
            .expect("needs an update");
        assert_eq!(updated.subjects, ["md.quote.>"]);
        assert_eq!(updated.max_messages_per_subject, 1);
        assert_eq!(updated.num_replicas, 1);
        assert_eq!(updated.max_age, Duration::from_secs(3600));
    }

    #[test]
    fn a_storage_change_is_refused_naming_both() {
        let wanted = stream_config(&plan("md.quote"), &PublishConfig::default());
        let have = stream::Config {
            storage: stream::StorageType::Memory,
            ..wanted.clone()
        };
        let error = reconcile(&have, &wanted).expect_err("cannot change in place");
        assert!(
            error.contains("Memory") && error.contains("File"),
            "{error}"
        );
        assert!(error.contains("stream QUOTES"), "{error}");
    }
}
