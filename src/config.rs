//! Gateway configuration: defaults (docs/config.md), the TOML file, and the
//! checks that turn it into values the rest of the code can trust.
//!
//! Settings are typed at load: a key such as `idle_timeout_ms` is read into
//! `idle_timeout: Duration` (a `0` that means "off" into `None`), addresses
//! into `SocketAddr`, so the running code never converts units. The TOML
//! keys stay as documented in `docs/config.md`.
//!
//! Unknown keys are errors. Every problem found is reported at once, each
//! naming its key; the binary then exits with status 64.

mod auth;
mod file;
mod publish;
mod sections;
mod validate;

use self::file::ConfigFile;

use std::path::Path;

use tickgate_feeds::FeedConfig;

pub(crate) use self::publish::nats_problems as publish_problems;
pub use self::publish::{PublishConfig, StreamStorage};
pub use self::sections::{
    ConnectionConfig, LimitsConfig, LogConfig, LogFormat, RebalanceConfig, ServerConfig,
    ShutdownConfig, SimulatorConfig, SlowConsumerConfig, TlsConfig,
};
pub use self::validate::ConfigError;
pub use auth::{AuthConfig, AuthMode, Pattern};

/// Everything a gateway needs to run. Every section and key is optional in
/// the file; missing ones take the defaults shown in `docs/config.md`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    pub server: ServerConfig,
    pub limits: LimitsConfig,
    pub connection: ConnectionConfig,
    pub simulator: SimulatorConfig,
    pub shutdown: ShutdownConfig,
    pub log: LogConfig,
    pub tls: TlsConfig,
    /// Client authentication and entitlements (docs/security.md).
    pub auth: AuthConfig,
    /// The slow-consumer ladder: notices, rate lowering and the final close.
    pub slow_consumer: SlowConsumerConfig,
    /// Optional shedding of connections after scale-out.
    pub rebalance: RebalanceConfig,
    /// Upstream feeds (`[[feeds]]` tables, see docs/feeds.md). When empty,
    /// the `[simulator]` feed runs.
    pub feeds: Vec<FeedConfig>,
    /// `tickgate publish`: NATS JetStream stream, settings and credentials
    /// (docs/nats.md). The gateway itself ignores it.
    pub publish: PublishConfig,
}

impl Config {
    /// Reads and validates a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Unreadable {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: origin.to_owned(),
            reason: e.to_string().trim_end().to_owned(),
        })?;
        let (config, mut problems) = file.into_config();
        if let Err(ConfigError::Invalid(more)) = config.validate() {
            for problem in more {
                if !problems.contains(&problem) {
                    problems.push(problem);
                }
            }
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

/// A duration written in whole milliseconds (keys ending in `_ms`).
pub(crate) mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// A duration in whole milliseconds where `0` turns the feature off.
pub(crate) mod millis_or_off {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let ms = u64::deserialize(d)?;
        Ok((ms > 0).then(|| Duration::from_millis(ms)))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::validate::{MAX_MESSAGE_BYTES_RANGE, SHED_PER_SECOND_RANGE, TRADE_BUFFER_RANGE};
    use super::*;

    #[test]
    fn empty_file_gives_the_documented_defaults() {
        let config = Config::from_toml("", "test").expect("valid");
        assert_eq!(config, Config::default());
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.server.admin_listen.to_string(), "127.0.0.1:9090");
        assert_eq!(config.limits.max_subscriptions_per_connection.get(), 1000);
    }

    #[test]
    fn the_example_config_is_valid_and_matches_the_defaults() {
        let text = include_str!("../config/tickgate.example.toml");
        assert_eq!(
            Config::from_toml(text, "example").expect("valid"),
            Config::default()
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let cases = [
            ("[server]\nlisten = \"nowhere\"", "listen"),
            ("[server]\nlistne = \"127.0.0.1:1\"", "listne"),
            ("[nonsense]\n", "nonsense"),
            ("[limits]\nmax_connections = -1", "max_connections"),
            ("[limits]\nmax_connections = \"many\"", "max_connections"),
            ("[log]\nformat = \"xml\"", "format"),
            ("this is not toml", "test"),
        ];
        for (text, key) in cases {
            let err = Config::from_toml(text, "test").expect_err(text).to_string();
            assert!(err.contains(key), "{text:?} -> {err}");
        }
    }

    #[test]
    fn all_semantic_problems_are_reported_together() {
        let text = "[limits]\nmax_connections = 0\nmax_message_bytes = 10\n[connection]\nidle_timeout_ms = 100\nping_interval_ms = 200\nnotsent_lowat_bytes = 10\n[simulator]\nticks_per_second = -5.0";
        let Err(ConfigError::Invalid(problems)) = Config::from_toml(text, "test") else {
            panic!("expected Invalid");
        };
        let all = problems.join("\n");
        for key in [
            "limits.max_connections",
            "limits.max_message_bytes",
            "connection.idle_timeout_ms",
            "connection.notsent_lowat_bytes",
            "simulator.ticks_per_second",
        ] {
            assert!(all.contains(key), "{key} missing from {all}");
        }
    }

    #[test]
    fn millisecond_keys_load_as_durations_and_zero_turns_a_step_off() {
        let text = "[connection]\nidle_timeout_ms = 61500\nmin_write_interval_ms = 0\n[slow_consumer]\nnotice_after_ms = 0\nclose_after_ms = 0\n[shutdown]\ndrain_window_ms = 250\n[auth]\nfirst_message_timeout_ms = 750";
        let config = Config::from_toml(text, "test").expect("valid");
        assert_eq!(
            config.connection.idle_timeout,
            Duration::from_millis(61_500)
        );
        assert_eq!(config.connection.min_write_interval, Duration::ZERO);
        assert_eq!(config.slow_consumer.notice_after, None);
        assert_eq!(config.slow_consumer.close_after, None);
        assert_eq!(config.shutdown.drain_window, Duration::from_millis(250));
        assert_eq!(
            config.auth.first_message_timeout,
            Duration::from_millis(750)
        );
        let err = Config::from_toml("[connection]\nidle_timeout_ms = -1", "test")
            .expect_err("negative")
            .to_string();
        assert!(err.contains("idle_timeout_ms"), "{err}");
    }

    #[test]
    fn zero_counts_are_reported_with_every_other_problem() {
        let text = "[limits]\nmax_connections = 0\nmax_symbols = 0\nmax_interest = 0\nrequest_burst = 0\nmax_rate_limited = 0\nmax_subscriptions_per_connection = 0\n[connection]\nslow_consumer_ms = 1\ntrade_buffer = 0\n[rebalance]\nshed_per_second = 0";
        let Err(ConfigError::Invalid(problems)) = Config::from_toml(text, "test") else {
            panic!("expected Invalid");
        };
        assert_eq!(
            problems,
            [
                "limits.max_connections must be at least 1",
                "limits.max_subscriptions_per_connection must be at least 1",
                "limits.max_symbols must be between 1 and 10000000",
                "limits.max_interest must be between 1 and 10000000",
                TRADE_BUFFER_RANGE,
                "limits.request_burst must be at least 1",
                "limits.max_rate_limited must be at least 1",
                SHED_PER_SECOND_RANGE,
                "connection.slow_consumer_ms must be at least 10",
            ]
        );
        let text = "[limits]\nmax_message_bytes = 0";
        let Err(ConfigError::Invalid(problems)) = Config::from_toml(text, "test") else {
            panic!("expected Invalid");
        };
        assert_eq!(problems, [MAX_MESSAGE_BYTES_RANGE], "reported once");
    }

    #[test]
    fn the_recovery_window_may_grow_but_never_shrink_below_its_base() {
        let text = "[slow_consumer]\nrecover_after_ms = 3000\nmax_recover_after_ms = 3000";
        let config = Config::from_toml(text, "test").expect("valid: doubling off");
        assert_eq!(
            config.slow_consumer.max_recover_after,
            Duration::from_secs(3)
        );
        for text in [
            "[slow_consumer]\nrecover_after_ms = 3000\nmax_recover_after_ms = 2999",
            "[slow_consumer]\nmax_recover_after_ms = 3600001",
        ] {
            let Err(ConfigError::Invalid(problems)) = Config::from_toml(text, "test") else {
                panic!("expected Invalid: {text}");
            };
            assert!(
                problems[0].contains("slow_consumer.max_recover_after_ms must be between"),
                "{problems:?}"
            );
        }
    }

    #[test]
    fn zero_socket_buffer_settings_leave_the_kernel_defaults() {
        let text = "[connection]\nsend_buffer_bytes = 0\nnotsent_lowat_bytes = 0";
        let config = Config::from_toml(text, "test").expect("valid");
        assert_eq!(config.connection.send_buffer_bytes, 0);
        assert_eq!(config.connection.notsent_lowat_bytes, 0);
        let text = "[connection]\nsend_buffer_bytes = 100";
        let Err(ConfigError::Invalid(problems)) = Config::from_toml(text, "test") else {
            panic!("expected Invalid");
        };
        assert!(
            problems[0].contains("connection.send_buffer_bytes must be 0"),
            "{problems:?}"
        );
    }

    #[test]
    fn tls_is_off_by_default_and_on_with_a_certificate_and_key() {
        assert_eq!(Config::default().tls.listen_addr(), None);
        let config =
            Config::from_toml("[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"", "test").expect("valid");
        assert_eq!(
            config.tls.listen_addr(),
            Some("127.0.0.1:8443".parse().expect("addr"))
        );
        let config = Config::from_toml(
            "[tls]\nlisten = \"0.0.0.0:443\"\ncert = \"c.pem\"\nkey = \"k.pem\"\nclient_ca = \"ca.pem\"",
            "test",
        )
        .expect("valid");
        assert_eq!(
            config.tls.listen_addr(),
            Some("0.0.0.0:443".parse().expect("addr"))
        );
    }

    #[test]
    fn tls_settings_that_cannot_work_are_named() {
        let cases = [
            ("[tls]\ncert = \"c.pem\"", "tls.cert and tls.key"),
            ("[tls]\nkey = \"k.pem\"", "tls.cert and tls.key"),
            ("[tls]\nlisten = \"127.0.0.1:8443\"", "tls.listen needs"),
            ("[tls]\nclient_ca = \"ca.pem\"", "tls.client_ca needs"),
            (
                "[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\nhandshake_timeout_ms = 5",
                "tls.handshake_timeout_ms",
            ),
            (
                "[tls]\nlisten = \"127.0.0.1:8080\"\ncert = \"c.pem\"\nkey = \"k.pem\"",
                "tls.listen must differ",
            ),
            ("[tls]\ncertificate = \"c.pem\"", "certificate"),
        ];
        for (text, expected) in cases {
            let err = Config::from_toml(text, "test").expect_err(text).to_string();
            assert!(err.contains(expected), "{text:?} -> {err}");
        }
    }

    #[test]
    fn missing_file_is_a_clear_error() {
        let err = Config::load(Path::new("/nonexistent/tickgate.toml")).expect_err("missing");
        assert!(
            err.to_string().contains("/nonexistent/tickgate.toml"),
            "{err}"
        );
    }
}
