//! The `[publish]` section: where `tickgate publish` publishes to and how,
//! checked once at load so the publisher can trust every value.

use std::time::Duration;

use serde::Deserialize;
use tickgate_feeds::nats::{NatsSettings, SettingsProblem};

use super::millis;

/// The `[publish]` section: what `tickgate publish` publishes to, and how.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublishConfig {
    /// NATS servers, stream, subject prefix, credentials and TLS; the same
    /// table as a `kind = "nats"` feed's `nats`.
    pub nats: NatsSettings,
    /// Stream storage: `file` (survives a NATS restart) or `memory`.
    pub storage: StreamStorage,
    /// Stream replicas in a NATS cluster (1 to 5; 3 is the usual choice).
    pub replicas: usize,
    /// How often the publisher heartbeat goes out on `<prefix>.$hb`.
    #[serde(rename = "heartbeat_interval_ms", with = "millis")]
    pub heartbeat_interval: Duration,
    /// Time JetStream has to acknowledge a publish before it is retried.
    #[serde(rename = "publish_timeout_ms", with = "millis")]
    pub publish_timeout: Duration,
    /// Most quotes published (and awaiting acknowledgement) at once.
    pub max_in_flight: usize,
    /// Time allowed for one connection attempt to NATS.
    #[serde(rename = "connect_timeout_ms", with = "millis")]
    pub connect_timeout: Duration,
    /// First reconnect / retry delay; doubles per failure.
    #[serde(rename = "backoff_min_ms", with = "millis")]
    pub backoff_min: Duration,
    /// Cap of the reconnect / retry delay.
    #[serde(rename = "backoff_max_ms", with = "millis")]
    pub backoff_max: Duration,
    /// Active/standby: publish only while holding the lease in the
    /// `lease_bucket` key-value bucket, so two publishers can run and one
    /// takes over when the other stops (docs/nats.md).
    pub lease: bool,
    /// The JetStream key-value bucket that holds the lease.
    pub lease_bucket: String,
    /// How long a lease lasts unless renewed (it is renewed every third of
    /// it); the longest a standby waits after the active one died.
    #[serde(rename = "lease_ttl_ms", with = "millis")]
    pub lease_ttl: Duration,
}

/// Where the stream keeps its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamStorage {
    File,
    Memory,
}

impl Default for PublishConfig {
    fn default() -> Self {
        Self {
            nats: NatsSettings::default(),
            storage: StreamStorage::File,
            replicas: 1,
            heartbeat_interval: Duration::from_millis(1_000),
            publish_timeout: Duration::from_millis(2_000),
            max_in_flight: 1_024,
            connect_timeout: Duration::from_millis(5_000),
            backoff_min: Duration::from_millis(250),
            backoff_max: Duration::from_millis(5_000),
            lease: false,
            lease_bucket: "TICKGATE_PUBLISHER".to_owned(),
            lease_ttl: Duration::from_millis(3_000),
        }
    }
}

impl PublishConfig {
    /// Every problem, each naming its key (`publish.…`).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(errors) = self.nats.validate() {
            problems.extend(nats_problems(&errors));
        }
        let mut check = |ok: bool, problem: &str| {
            if !ok {
                problems.push(problem.to_owned());
            }
        };
        check(
            (1..=5).contains(&self.replicas),
            "publish.replicas must be between 1 and 5",
        );
        check(
            (ms(50)..=ms(60_000)).contains(&self.heartbeat_interval),
            "publish.heartbeat_interval_ms must be between 50 and 60000",
        );
        check(
            self.publish_timeout >= ms(100),
            "publish.publish_timeout_ms must be at least 100",
        );
        check(
            (1..=100_000).contains(&self.max_in_flight),
            "publish.max_in_flight must be between 1 and 100000",
        );
        check(
            (ms(300)..=ms(600_000)).contains(&self.lease_ttl),
            "publish.lease_ttl_ms must be between 300 and 600000",
        );
        check(
            !self.lease_bucket.is_empty()
                && self
                    .lease_bucket
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "publish.lease_bucket must be a non-empty name of letters, digits, '_' and '-'",
        );
        check(
            self.connect_timeout >= ms(100),
            "publish.connect_timeout_ms must be at least 100",
        );
        check(
            self.backoff_min >= ms(1) && self.backoff_min <= self.backoff_max,
            "publish.backoff_min_ms must be at least 1 and not exceed publish.backoff_max_ms",
        );
        problems
    }
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// The `nats` table's problems, each naming its key under `publish.`.
pub(crate) fn nats_problems(errors: &[SettingsProblem]) -> impl Iterator<Item = String> + '_ {
    errors
        .iter()
        .map(|(key, problem)| format!("publish.{key} {problem}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<PublishConfig, toml::de::Error> {
        toml::from_str(toml_text)
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(PublishConfig::default().problems(), Vec::<String>::new());
    }

    #[test]
    fn an_empty_section_means_the_defaults() {
        assert_eq!(parse("").expect("parses"), PublishConfig::default());
    }

    #[test]
    fn storage_is_spelled_in_lowercase() {
        let config = parse("storage = \"memory\"").expect("parses");
        assert_eq!(config.storage, StreamStorage::Memory);
        assert!(parse("storage = \"Memory\"").is_err());
        assert!(parse("storage = \"disk\"").is_err());
    }

    #[test]
    fn millisecond_keys_load_as_durations() {
        let config = parse("heartbeat_interval_ms = 200\npublish_timeout_ms = 1000\nconnect_timeout_ms = 750\nbackoff_min_ms = 50\nbackoff_max_ms = 300")
            .expect("parses");
        assert_eq!(config.heartbeat_interval, ms(200));
        assert_eq!(config.publish_timeout, ms(1_000));
        assert_eq!(config.connect_timeout, ms(750));
        assert_eq!(config.backoff_min, ms(50));
        assert_eq!(config.backoff_max, ms(300));
        assert!(parse("heartbeat_interval = 200").is_err());
        let lease =
            parse("lease = true\nlease_ttl_ms = 1500\nlease_bucket = \"PUB-A\"").expect("parses");
        assert!(lease.lease);
        assert_eq!(lease.lease_ttl, ms(1_500));
        assert_eq!(lease.lease_bucket, "PUB-A");
        assert!(parse("backoff_min_ms = -1").is_err());
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let error = parse("replica = 3").expect_err("unknown key");
        assert!(error.to_string().contains("replica"), "{error}");
    }

    #[test]
    fn every_bad_value_is_reported_at_once_naming_its_key() {
        let config = PublishConfig {
            replicas: 0,
            heartbeat_interval: ms(10),
            publish_timeout: ms(99),
            max_in_flight: 0,
            connect_timeout: ms(0),
            backoff_min: ms(0),
            lease_ttl: ms(299),
            lease_bucket: "no spaces".to_owned(),
            ..PublishConfig::default()
        };
        let problems = config.problems();
        let keys = [
            "publish.replicas",
            "publish.heartbeat_interval_ms",
            "publish.publish_timeout_ms",
            "publish.max_in_flight",
            "publish.lease_ttl_ms",
            "publish.lease_bucket",
            "publish.connect_timeout_ms",
            "publish.backoff_min_ms",
        ];
        assert_eq!(problems.len(), keys.len(), "{problems:?}");
        for (problem, key) in problems.iter().zip(keys) {
            assert!(problem.starts_with(key), "{problem} names {key}");
        }
    }

    #[test]
    fn bounds_are_inclusive() {
        let config = PublishConfig {
            replicas: 5,
            heartbeat_interval: ms(60_000),
            publish_timeout: ms(100),
            max_in_flight: 100_000,
            connect_timeout: ms(100),
            backoff_min: ms(5_000),
            backoff_max: ms(5_000),
            ..PublishConfig::default()
        };
        assert_eq!(config.problems(), Vec::<String>::new());
        let too_many = PublishConfig {
            replicas: 6,
            ..PublishConfig::default()
        };
        assert_eq!(
            too_many.problems(),
            ["publish.replicas must be between 1 and 5"]
        );
    }

    #[test]
    fn a_backoff_floor_above_its_cap_is_refused() {
        let config = PublishConfig {
            backoff_min: ms(6_000),
            backoff_max: ms(5_000),
            ..PublishConfig::default()
        };
        assert_eq!(
            config.problems(),
            ["publish.backoff_min_ms must be at least 1 and not exceed publish.backoff_max_ms"]
        );
    }

    #[test]
    fn nats_problems_are_named_under_publish() {
        let mut config = PublishConfig::default();
        config.nats.urls.clear();
        let problems = config.problems();
        assert!(
            problems.iter().any(|p| p.starts_with("publish.nats.urls ")),
            "{problems:?}"
        );
    }
}
