//! A freshly started gateway exports every documented series whose labels
//! are known at 0, before anything happens: alerts and dashboards see a
//! zero rather than "no data".

mod common;

use common::*;
use tickgate::config::Config;
use tickgate::telemetry;

/// A gateway on ephemeral ports with two configured feeds, started without
/// running them: nothing connects, nothing ticks, no client comes.
async fn fresh_gateway() -> tickgate::Gateway {
    let text = r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[[feeds]]
name = "equities"
kind = "tcp"
address = "127.0.0.1:9"

[[feeds]]
name = "crypto"
kind = "sim"
"#;
    let config = Config::from_toml(text, "test").expect("valid config");
    gateway_without_feeds(config).await
}

/// The value of exactly this series (name plus labels as rendered), or
/// `None` when the exposition does not have it.
fn series(body: &str, key: &str) -> Option<f64> {
    body.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn a_fresh_gateway_exports_documented_series_at_zero_before_any_event() {
    let gateway = fresh_gateway().await;
    let (status, body) = http_get(gateway.admin_addr(), "/metrics").await;
    assert_eq!(status, 200);

    let mut expected = Vec::new();
    for reason in telemetry::CLOSE_REASONS {
        expected.push(format!(
            "tickgate_connections_closed_total{{reason=\"{reason}\"}}"
        ));
    }
    for reason in telemetry::REFUSE_REASONS {
        expected.push(format!(
            "tickgate_connections_refused_total{{reason=\"{reason}\"}}"
        ));
    }
    for code in telemetry::ERROR_CODES {
        expected.push(format!("tickgate_client_errors_total{{code=\"{code}\"}}"));
    }
    for feed in ["equities", "crypto"] {
        expected.push(format!("tickgate_feed_reconnects_total{{feed=\"{feed}\"}}"));
        expected.push(format!("tickgate_ticks_received_total{{feed=\"{feed}\"}}"));
        let reasons = telemetry::GATEWAY_REJECT_REASONS
            .iter()
            .chain(&tickgate_feeds::telemetry::REJECT_REASONS);
        for reason in reasons {
            expected.push(format!(
                "tickgate_ticks_rejected_total{{feed=\"{feed}\",reason=\"{reason}\"}}"
            ));
        }
    }
    expected.push("tickgate_connections_opened_total{transport=\"ws\"}".into());
    expected.push("tickgate_trades_lost_total".into());
    expected.push("tickgate_rate_limited_total".into());

    let missing: Vec<&String> = expected
        .iter()
        .filter(|key| series(&body, key) != Some(0.0))
        .collect();
    assert!(
        missing.is_empty(),
        "not exported at 0: {missing:#?}\n{body}"
    );
    gateway.shutdown(WAIT).await;
}

#[test]
fn every_close_reason_of_the_docs_is_registered() {
    let docs = include_str!("../docs/metrics.md");
    let row = docs
        .lines()
        .find(|line| line.starts_with("| `tickgate_connections_closed_total`"))
        .expect("documented");
    for reason in telemetry::CLOSE_REASONS {
        assert!(
            row.contains(&format!("`{reason}`")),
            "{reason} undocumented"
        );
    }
}

/// The metric names a module declares as `pub const NAME: &str = "…";`.
fn declared(source: &str) -> Vec<&str> {
    source
        .lines()
        .filter_map(|line| {
            line.trim()
                .strip_prefix("pub const ")?
                .split_once(": &str = \"")
        })
        .filter_map(|(_, rest)| rest.strip_suffix("\";"))
        .collect()
}

#[test]
fn each_metric_name_is_defined_once_across_the_two_crates() {
    let gateway = declared(include_str!("../src/telemetry.rs"));
    let feeds = declared(include_str!("../feeds/src/telemetry.rs"));
    assert!(gateway.contains(&"tickgate_connections_closed_total"));
    assert!(feeds.contains(&"tickgate_ticks_rejected_total"));
    let mut all: Vec<&str> = gateway.iter().chain(&feeds).copied().collect();
    let count = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(
        all.len(),
        count,
        "a name is defined twice: {gateway:?} {feeds:?}"
    );
}
