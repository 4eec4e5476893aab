//! Authentication, entitlements and connection limits against a running
//! gateway with real WebSocket clients: tokens in the header, the query and a
//! first message; every kind of bad token refused with 401; entitlements
//! checked on the wire; expiry, refresh, `Origin`, per-IP and request-rate
//! limits.

mod common;
mod security;

use std::time::Duration;

use common::*;
use jsonwebtoken::Algorithm;
use security::*;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

fn install_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

async fn metric(gateway: &tickgate::Gateway, line_prefix: &str) -> f64 {
    let (_, body) = http_get(gateway.admin_addr(), "/metrics").await;
    body.lines()
        .filter(|l| l.starts_with(line_prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn upgrade_without_a_token_is_refused_with_401_and_a_clear_body() {
    install_crypto();
    let keys = Keys::new();
    let gateway = gateway_without_feeds(keys.config(test_config())).await;
    let (status, body) = http_raw(
        gateway.client_addr(),
        "GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await;
    assert_eq!(status, 401);
    assert!(body.contains("missing token"), "{body}");
    assert!(body.contains("Authorization: Bearer"), "{body}");
    assert!(metric(&gateway, "tickgate_auth_failures_total{reason=\"missing\"}").await >= 1.0);
    gateway.shutdown(WAIT).await;
}

#[tokio::test]
async fn valid_tokens_of_every_key_kind_open_the_connection() {
    install_crypto();
    let keys = Keys::new();
    let mut config = keys.config(test_config());
    config.auth.jwks_file = Some(keys.dir.join("jwks.json"));
    let gateway = gateway_without_feeds(config).await;
    let addr = gateway.client_addr();
    let all = claims(&["*"], 60);
    for token in [
        keys.sign(Algorithm::HS256, None, &all),
        keys.sign(Algorithm::ES256, None, &all),
        keys.sign(Algorithm::RS256, None, &all),
        keys.sign(Algorithm::ES256, Some("ec-1"), &all),
    ] {
        let mut client = connect_bearer(addr, &token).await.expect("accepted");
        client.assert_usable().await;
    }
    // Browsers: the token in the query.
    let token = keys.token(&["*"], 60);
    let mut client = connect_with(addr, &format!("?token={token}"), &[])
        .await
        .expect("query token accepted");
    client.assert_usable().await;
    gateway.shutdown(WAIT).await;
}

#[tokio::test]
async fn query_tokens_are_refused_when_not_allowed() {
    install_crypto();
    let keys = Keys::new();
    let mut config = keys.config(test_config());
    config.auth.query_token = false;
    let gateway = gateway_without_feeds(config).await;
    let token = keys.token(&["*"], 60);
    let refused = connect_with(gateway.client_addr(), &format!("?token={token}"), &[]).await;
    assert_eq!(refused.err(), Some(401));
    gateway.shutdown(WAIT).await;
}

#[tokio::test]
async fn every_kind_of_bad_token_is_refused_with_401_and_counted_by_reason() {
    install_crypto();
    let keys = Keys::new();
    let mut config = keys.config(test_config());
    config.auth.jwks_file = Some(keys.dir.join("jwks.json"));
    let gateway = gateway_without_feeds(config).await;
    let addr = gateway.client_addr();
    let good = claims(&["*"], 60);
    let with = |patch: serde_json::Value| {
        let mut c = good.clone();
        for (k, v) in patch.as_object().expect("object") {
            c[k] = v.clone();
        }
        c
    };
    let ec_public = keys.ec.public_key_pem();
    let cases: Vec<(&str, String)> = vec![
        (
            "expired",
            keys.sign(Algorithm::HS256, None, &with(json!({"exp": now() - 5}))),
        ),
        (
            "not_yet_valid",
            keys.sign(Algorithm::HS256, None, &with(json!({"nbf": now() + 120}))),
        ),
        (
            "claims",
            keys.sign(
                Algorithm::HS256,
                None,
                &with(json!({"iss": "https://evil.test/"})),
            ),
        ),
        (
            "claims",
            keys.sign(
                Algorithm::HS256,
                None,
                &with(json!({"aud": "someone-else"})),
            ),
        ),
        ("claims", {
            let mut c = good.clone();
            c.as_object_mut().expect("object").remove("iss");
            keys.sign(Algorithm::HS256, None, &c)
        }),
        ("malformed", {
            let mut c = good.clone();
            c.as_object_mut().expect("object").remove("exp");
            keys.sign(Algorithm::HS256, None, &c)
        }),
        (
            "malformed",
            keys.sign(Algorithm::HS256, None, &with(json!({"symbols": 42}))),
        ),
        (
            "malformed",
            keys.sign(Algorithm::HS256, None, &with(json!({"symbols": ["A B"]}))),
        ),
        (
            "signature",
            hs256_with(b"another-secret-of-at-least-32-bytes-xxxxx", &good),
        ),
        ("signature", {
            let token = keys.sign(Algorithm::ES256, None, &good);
            let mut parts: Vec<&str> = token.split('.').collect();
            let other = keys.sign(Algorithm::ES256, None, &with(json!({"sub": "x"})));
            let sig = other.rsplit('.').next().expect("sig").to_owned();
            parts[2] = &sig;
            parts.join(".")
        }),
        // alg "none" with and without a signature part.
        (
            "algorithm",
            unsigned(&json!({"alg":"none","typ":"JWT"}), &good, ""),
        ),
        ("algorithm", unsigned(&json!({"alg":"None"}), &good, "x")),
        // Algorithm confusion: the EC public key used as an HS256 secret
        // is simply a wrong HS256 signature; an RS384 header has no key.
        ("signature", hs256_with(ec_public.as_bytes(), &good)),
        (
            "algorithm",
            unsigned(&json!({"alg":"RS384"}), &good, "AAAA"),
        ),
        (
            "algorithm",
            unsigned(&json!({"alg":"EdDSA"}), &good, "AAAA"),
        ),
        ("malformed", "not-a-jwt".into()),
        ("malformed", "a.b.c".into()),
        ("malformed", "....".into()),
        ("malformed", "x".repeat(9000)),
        // An embedded key in the header is never trusted.
        ("signature", {
            let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
            header.jku = Some("https://evil.test/jwks.json".into());
            jsonwebtoken::encode(
                &header,
                &good,
                &jsonwebtoken::EncodingKey::from_secret(b"attacker-secret-32-bytes-long-xxxxxxx"),
            )
            .expect("sign")
        }),
    ];
    for (reason, token) in &cases {
        let label = format!("tickgate_auth_failures_total{{reason=\"{reason}\"}}");
        let before = metric(&gateway, &label).await;
        let refused = connect_bearer(addr, token).await;
        assert_eq!(refused.err(), Some(401), "{reason}: {token:.80}");
        let after = metric(&gateway, &label).await;
        assert!(after > before, "{reason} not counted for {token:.80}");
    }
    // A Basic credential or an empty bearer is a missing token.
    for value in ["Basic dXNlcjpwYXNz", "Bearer ", "Bearer"] {
        let refused = connect_with(addr, "", &[("authorization", value)]).await;
        assert_eq!(refused.err(), Some(401), "{value}");
    }
    let mut fine = connect_bearer(addr, &keys.token(&["*"], 60))
        .await
        .expect("a good token still works");
    fine.assert_usable().await;
    gateway.shutdown(WAIT).await;
}

#[tokio::test]
async fn a_jwks_key_is_chosen_by_kid_and_an_unknown_kid_is_refused() {
    install_crypto();
    let keys = Keys::new();
    let mut config = test_config();
    config.auth.mode = tickgate::config::AuthMode::Required;
    config.auth.jwks_file = Some(keys.dir.join("jwks.json"));
    config.auth.first_message = false;
    let gateway = gateway_without_feeds(config).await;
    let addr = gateway.client_addr();
    let good = claims(&["*"], 60);
    let mut client = connect_bearer(addr, &keys.sign(Algorithm::ES256, Some("ec-1"), &good))
        .await
        .expect("known kid");
    client.assert_usable().await;
    for token in [
        keys.sign(Algorithm::ES256, Some("no-such-kid"), &good),
        keys.sign(Algorithm::HS256, None, &good),
        keys.sign(Algorithm::RS256, Some("ec-1"), &good),
    ] {
        assert_eq!(connect_bearer(addr, &token).await.err(), Some(401));
    }
    assert!(
        metric(
            &gateway,
            "tickgate_auth_failures_total{reason=\"unknown_key\"}"
        )
        .await
            >= 1.0
    );
    gateway.shutdown(WAIT).await;
}

/// Replaces `path` the way a Secret update or `mv` does: write aside, rename.
fn replace_file(path: &std::path::Path, contents: &str) {
    let aside = path.with_extension("new");
    std::fs::write(&aside, contents).expect("write");
    std::fs::rename(&aside, path).expect("rename");
}

/// Polls until a connection with `token` opens (`true`) or is refused
/// (`false`), for up to [`WAIT`].
async fn wait_for_acceptance(addr: std::net::SocketAddr, token: &str, accepted: bool) {
    let what = if accepted { "accepted" } else { "refused" };
    wait_until(&format!("the token is {what}"), WAIT, || async {
        connect_bearer(addr, token).await.is_ok() == accepted
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_jwks_file_is_picked_up_and_a_broken_one_keeps_the_old_keys() {
    install_crypto();
    let keys = Keys::new();
    let next = Keys::new();
    let jwks = keys.dir.join("jwks.json");
    let mut config = test_config();
    config.auth.mode = tickgate::config::AuthMode::Required;
    config.auth.jwks_file = Some(jwks.clone());
    config.auth.first_message = false;
    let gateway = gateway_without_feeds(config).await;
    let addr = gateway.client_addr();
    let good = claims(&["*"], 60);
    let old_token = keys.sign(Algorithm::ES256, Some("ec-1"), &good);
    let new_token = next.sign(Algorithm::ES256, Some("ec-2"), &good);
    let mut open = connect_bearer(addr, &old_token).await.expect("old key");
    assert_eq!(connect_bearer(addr, &new_token).await.err(), Some(401));

    // The issuer publishes its next key beside the current one.
    let successes = r#"tickgate_auth_key_reloads_total{result="success"}"#;
    let before = metric(&gateway, successes).await;
    let both = json!({"keys":[keys.ec_jwk("ec-1"), next.ec_jwk("ec-2")]});
    replace_file(&jwks, &both.to_string());
    wait_for_acceptance(addr, &new_token, true).await;
    assert!(
        connect_bearer(addr, &old_token).await.is_ok(),
        "the old key still verifies"
    );
    assert!(metric(&gateway, successes).await > before);
    open.assert_usable().await;

    // A broken file: the keys in use stay, the failure is counted.
    let failures = r#"tickgate_auth_key_reloads_total{result="failure"}"#;
    replace_file(&jwks, "{\"keys\": [ not json");
    wait_until("a failed reload is counted", WAIT, || async {
        metric(&gateway, failures).await >= 1.0
    })
    .await;
    assert!(connect_bearer(addr, &new_token).await.is_ok());
    assert!(connect_bearer(addr, &old_token).await.is_ok());

    // The old key retired: its tokens are refused, the new one's are not.
    replace_file(&jwks, &json!({"keys":[next.ec_jwk("ec-2")]}).to_string());
    wait_for_acceptance(addr, &old_token, false).await;
    assert!(connect_bearer(addr, &new_token).await.is_ok());
    open.assert_usable().await;
    gateway.shutdown(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_reloads_its_jwt_keys_on_sighup() {
    install_crypto();
    let keys = Keys::new();
    let next = Keys::new();
    let jwks = keys.dir.join("jwks.json");
    let config_file = keys.dir.join("tickgate.toml");
    std::fs::write(
        &config_file,
        format!(
            "[auth]\nmode = \"required\"\njwks_file = \"{}\"\nwatch = false\nfirst_message = false\n",
            jwks.display()
        ),
    )
    .expect("config");
    let config_arg = config_file.to_string_lossy().into_owned();
    let (mut child, addr, _) = spawn_binary(&["--config", &config_arg, "--sim-rate", "10"]);
    let good = claims(&["*"], 60);
    let new_token = next.sign(Algorithm::ES256, Some("ec-2"), &good);
    assert!(
        connect_bearer(addr, &keys.sign(Algorithm::ES256, Some("ec-1"), &good))
            .await
            .is_ok()
    );
    assert_eq!(connect_bearer(addr, &new_token).await.err(), Some(401));

    replace_file(&jwks, &json!({"keys":[next.ec_jwk("ec-2")]}).to_string());
    // watch = false: nothing changes until the signal. A negative check:
    // give a (wrongly) running watcher time to act before looking.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(connect_bearer(addr, &new_token).await.err(), Some(401));
    let status = std::process::Command::new("kill")
        .args(["-HUP", &child.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    wait_for_acceptance(addr, &new_token, true).await;
    assert!(
        child.0.try_wait().expect("wait").is_none(),
        "SIGHUP does not stop it"
    );
}

#[tokio::test]
async fn reload_reads_rotated_pem_keys_and_refuses_a_file_that_is_not_a_key() {
    install_crypto();
    let keys = Keys::new();
    let next = Keys::new();
    let mut config = keys.config(test_config());
    config.auth.watch = false;
    let authenticator = tickgate::auth::Authenticator::from_config(&config.auth)
        .expect("keys")
        .expect("auth on");
    let old_token = keys.sign(Algorithm::ES256, None, &claims(&["*"], 60));
    let new_token = next.sign(Algorithm::ES256, None, &claims(&["*"], 60));
    let verifies = |token: &str| authenticator.verify(token).is_ok();
    assert!(verifies(&old_token));
    assert!(!verifies(&new_token));
    std::fs::write(keys.dir.join("ec.pem"), next.ec.public_key_pem()).expect("pem");
    assert_eq!(
        authenticator.reload().expect("reload"),
        3,
        "secret, EC and RSA keys"
    );
    assert!(verifies(&new_token));
    assert!(!verifies(&old_token));
    std::fs::write(keys.dir.join("ec.pem"), "not a key").expect("garbage");
    let error = authenticator.reload().expect_err("not a key");
    assert!(error.to_string().contains("ec.pem"), "{error}");
    assert!(verifies(&new_token), "the previous keys stay in use");
}

#[tokio::test]
async fn no_byte_of_an_unentitled_symbol_reaches_the_client() {
    install_crypto();
    let keys = Keys::new();
    let gateway = gateway_without_feeds(keys.config(test_config())).await;
    inject(
        &gateway,
        vec![quote_tick("AAPL", 230.0), quote_tick("MSFT", 410.0)],
    )
    .await;
    wait_for_seq(&gateway, "MSFT", 1).await;
    let mut client = connect_bearer(gateway.client_addr(), &keys.token(&["AAPL"], 60))
        .await
        .expect("accepted");
    client
        .send(r#"{"op":"subscribe","symbols":["AAPL","MSFT"],"id":1}"#)
        .await;
    // MSFT ticks hot while AAPL ticks now and then.
    let hot = async {
        for i in 0..400 {
            let mut ticks = vec![quote_tick("MSFT", 410.0 + f64::from(i))];
            if i % 20 == 0 {
                ticks.push(quote_tick("AAPL", 230.0 + f64::from(i)));
            }
            inject(&gateway, ticks).await;
            // Paces the feed over the watch below, not a wait for an event.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    let watch = async {
        let mut frames = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
        while let Ok(Some(Ok(message))) =
            tokio::time::timeout_at(deadline, futures_util::StreamExt::next(&mut client.ws)).await
        {
            if let Message::Text(text) = message {
                frames.push(text.as_str().to_owned());
            }
        }
        frames
    };
    let ((), frames) = tokio::join!(hot, watch);
    let mut errors = 0;
    let mut aapl_updates = 0;
    for frame in &frames {
        let value: serde_json::Value = serde_json::from_str(frame).expect("json");
        if value["type"] == "error" {
            assert_eq!(value["code"], "not_entitled", "{frame}");
            assert_eq!(value["symbols"], json!(["MSFT"]), "{frame}");
            assert_eq!(value["id"], 1);
            errors += 1;
            continue;
        }
        assert!(!frame.contains("MSFT"), "MSFT leaked in {frame}");
        if value["type"] == "update" {
            aapl_updates += 1;
        }
        if value["type"] == "subscribed" {
            assert_eq!(value["symbols"], json!(["AAPL"]));
        }
    }
    assert_eq!(errors, 1, "exactly one error names MSFT: {frames:?}");
    assert!(aapl_updates > 0, "AAPL updates still flow: {frames:?}");
    assert_eq!(subscriber_count(&gateway, "MSFT"), 0);
    gateway.shutdown(WAIT).await;
}

#[tokio::test]
async fn patterns_and_the_tokens_own_subscription_limit_apply() {
    install_crypto();
    let keys = Keys::new();
    let gateway = gateway_without_feeds(keys.config(test_config())).await;
    let mut c = claims(&["BTC-*", "AAPL"], 60);
    c["max_subscriptions"] = json!(2);
    let token = keys.sign(Algorithm::HS256, None, &c);
    let mut client = connect_bearer(gateway.client_addr(), &token)
        .await
        .expect("ok");
    client
        .send(r#"{"op":"subscribe","symbols":["BTC-USD","ETH-USD","BTC-EUR","BTC-GBP"],"id":"x"}"#)
        .await;
    let first = client.next_json().await;
    assert_eq!(first["code"], "not_entitled");
    assert_eq!(first["symbols"], json!(["ETH-USD"]));
    let second = client.next_json().await;
    assert_eq!(second["code"], "too_many_subscriptions");
    assert_eq!(second["symbols"], json!(["BTC-GBP"]));
    let subscribed = client.next_json().await;
    assert_eq!(subscribed["symbols"], json!(["BTC-USD", "BTC-EUR"]));
    gateway.shutdown(WAIT).await;
}

#[tokio::test]
async fn an_expiring_token_ends_the_connection_with_notice_and_1008() {
    install_crypto();
    let keys = Keys::new();
    let gateway = gateway_without_feeds(keys.config(test_config())).await;
    let mut client = connect_bearer(gateway.client_addr(), &keys.token(&["*"], 2))
        .await
        .expect("ok");
    client.assert_usable().await;
    let started = std::time::Instant::now();
    let error = client.next_of_type("error").await;
    assert_eq!(
        error,
        json!({"type":"error","code":"unauthorized","message":"token expired"})
    );
    let frame = client.expect_close().await.expect("close frame");
    assert_eq!(frame.code, CloseCode::Policy);
    assert!(started.elapsed() < Duration::from_secs(4));
    gateway.shutdown(WAIT).await;
}

#[tokio::test]
async fn an_auth_message_refreshes_the_token_in_time() {
    install_crypto();
    let keys = Keys::new();
    let gateway = gateway_without_feeds(keys.config(test_config())).await;
    let mut client = connect_bearer(gateway.client_addr(), &keys.token(&["*"], 2))
        .await
        .expect("ok");
    let fresh = keys.token(&["*"], 600);
    client
        .send_json(json!({"op":"auth","token":fresh,"id":5}))
        .await;
    let reply = client.next_json().await;
    assert_eq!(reply["type"], "authenticated");
    assert_eq!(reply["id"], 5);
    assert_eq!(reply["sub"], "trader-1");
    assert!(reply["exp"].as_i64().expect("exp") > now() + 500);
    // A bad refresh is refused but the connection keeps its token.
    client
        .send(r#"{"op":"auth","token":"garbage","id":6}"#)
        .await;
    let refused = client.next_json().await;
    assert_eq!(refused["code"], "unauthorized");
    assert_eq!(refused["id"], 6);
    // The behaviour under test: the connection outlives its first
    // token's 2 s because the refresh replaced it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    client.assert_usable().await;
    gateway.shutdown(WAIT).await;
}

#[tokio::test]
async fn a_refresh_with_fewer_entitlements_drops_those_subscriptions() {
    install_crypto();
    let keys = Keys::new();
    let gateway = gateway_without_feeds(keys.config(test_config())).await;
    let mut client = connect_bearer(gateway.client_addr(), &keys.token(&["*"], 60))
        .await
        .expect("ok");
    client
        .send(r#"{"op":"subscribe","symbols":["AAPL","MSFT"]}"#)
        .await;
    client.next_of_type("snapshot").await;
    client
        .send_json(json!({"op":"auth","token":keys.token(&["AAPL"], 60)}))
        .await;
    let dropped = client.next_json().await;
    assert_eq!(dropped["code"], "not_entitled");
    assert_eq!(dropped["symbols"], json!(["MSFT"]));
    assert_eq!(client.next_json().await["type"], "authenticated");
    inject(
        &gateway,
        vec![quote_tick("MSFT", 1.0), quote_tick("AAPL", 2.0)],
    )
    .await;
    let update = client.next_of_type("update").await;
    assert_eq!(
        quotes(&update)
            .iter()
            .map(|q| q.0.as_str())
            .collect::<Vec<_>>(),
        ["AAPL"]
    );
    gateway.shutdown(WAIT).await;
}

#[tokio::test]
async fn a_first_auth_message_authenticates_an_upgrade_without_a_token() {
    install_crypto();
    let keys = Keys::new();
    let mut config = keys.config(test_config());
    config.auth.first_message = true;
    config.auth.first_message_timeout = Duration::from_millis(500);
    let gateway = gateway_without_feeds(config).await;
    let addr = gateway.client_addr();

    let mut client = connect_with(addr, "", &[]).await.expect("upgrade allowed");
    client
        .send_json(json!({"op":"auth","token":keys.token(&["*"], 60)}))
        .await;
    assert_eq!(client.next_json().await["type"], "authenticated");
    client.assert_usable().await;

    // A bad first token: error, then 1008.
    let mut client = connect_with(addr, "", &[]).await.expect("upgrade allowed");
    client.send(r#"{"op":"auth","token":"a.b.c"}"#).await;
    let error = client.next_json().await;
    assert_eq!(error["code"], "unauthorized");
    assert_eq!(
        client.expect_close().await.expect("close").code,
        CloseCode::Policy
    );

    // Anything else first: error, then 1008.
    let mut client = connect_with(addr, "", &[]).await.expect("upgrade allowed");
    client
        .send(r#"{"op":"subscribe","symbols":["AAPL"]}"#)
        .await;
    assert_eq!(client.next_json().await["code"], "unauthorized");
    assert_eq!(
        client.expect_close().await.expect("close").code,
        CloseCode::Policy
    );

    // Silence: closed after the first-message timeout.
    let mut client = connect_with(addr, "", &[]).await.expect("upgrade allowed");
    assert_eq!(client.next_json().await["code"], "unauthorized");
    assert_eq!(
        client.expect_close().await.expect("close").code,
        CloseCode::Policy
    );
    gateway.shutdown(WAIT).await;
}

#[tokio::test]
async fn an_auth_message_with_auth_off_is_a_harmless_bad_request() {
    let gateway = gateway_without_feeds(test_config()).await;
    let mut client = Client::connect(gateway.client_addr()).await;
    client.send(r#"{"op":"auth","token":"t","id":1}"#).await;
    let reply = client.next_json().await;
    assert_eq!(reply["code"], "bad_request");
    client.assert_usable().await;
    gateway.shutdown(WAIT).await;
}

#[tokio::test]
async fn origins_outside_the_allowed_list_get_403() {
    let mut config = test_config();
    config.limits.allowed_origins = vec!["https://md.tickgate.test".into()];
    let gateway = gateway_without_feeds(config).await;
    let addr = gateway.client_addr();
    let refused = connect_with(addr, "", &[("origin", "https://evil.test")]).await;
    assert_eq!(refused.err(), Some(403));
    let mut allowed = connect_with(addr, "", &[("origin", "https://md.tickgate.test")])
        .await
        .expect("listed origin");
    allowed.assert_usable().await;
    let mut no_origin = connect_with(addr, "", &[]).await.expect("no Origin header");
    no_origin.assert_usable().await;
    assert!(
        metric(
            &gateway,
            "tickgate_connections_refused_total{reason=\"origin\"}"
        )
        .await
            >= 1.0
    );
    gateway.shutdown(WAIT).await;
}

#[tokio::test]
async fn connections_per_ip_are_limited_and_the_proxy_header_is_honoured_only_when_configured() {
    let mut config = test_config();
    config.limits.max_connections_per_ip = 2;
    let gateway = gateway_without_feeds(config).await;
    let addr = gateway.client_addr();
    let first = Client::connect(addr).await;
    let _second = Client::connect(addr).await;
    // Not configured: a forged header does not buy a new address.
    let refused = connect_with(addr, "", &[("x-forwarded-for", "203.0.113.9")]).await;
    assert_eq!(refused.err(), Some(429));
    drop(first);
    // The slot comes back when the connection ends.
    let mut freed = None;
    wait_until("the slot is freed", WAIT, async || {
        match connect_with(addr, "", &[]).await {
            Ok(client) => freed = Some(client),
            Err(status) => assert_eq!(status, 429),
        }
        freed.is_some()
    })
    .await;
    freed.expect("freed").assert_usable().await;
    gateway.shutdown(WAIT).await;

    let mut config = test_config();
    config.limits.max_connections_per_ip = 1;
    config.limits.client_ip_header = Some("X-Forwarded-For".into());
    let gateway = gateway_without_feeds(config).await;
    let addr = gateway.client_addr();
    let _a = connect_with(
        addr,
        "",
        &[("x-forwarded-for", "198.51.100.1, 203.0.113.1")],
    )
    .await
    .expect("first client behind the proxy");
    let _b = connect_with(addr, "", &[("x-forwarded-for", "203.0.113.2")])
        .await
        .expect("another client behind the proxy");
    let again = connect_with(addr, "", &[("x-forwarded-for", "203.0.113.1")]).await;
    assert_eq!(again.err(), Some(429));
    gateway.shutdown(WAIT).await;
}

#[tokio::test]
async fn a_request_flood_gets_rate_limited_then_closed_with_1008() {
    let mut config = test_config();
    config.limits.max_requests_per_second = 10.0;
    config.limits.request_burst = std::num::NonZeroU32::new(5).expect("positive");
    config.limits.max_rate_limited = std::num::NonZeroU32::new(10).expect("positive");
    let gateway = gateway_without_feeds(config).await;
    let mut client = Client::connect(gateway.client_addr()).await;
    for i in 0..30 {
        let sent = futures_util::SinkExt::send(
            &mut client.ws,
            Message::text(format!(r#"{{"op":"ping","id":{i}}}"#)),
        )
        .await;
        if sent.is_err() {
            break;
        }
    }
    let mut pongs = 0;
    let mut limited = 0;
    let close = loop {
        match tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut client.ws))
            .await
            .expect("frames")
        {
            Some(Ok(Message::Text(text))) => {
                let value: serde_json::Value = serde_json::from_str(text.as_str()).expect("json");
                match value["type"].as_str() {
                    Some("pong") => pongs += 1,
                    Some("error") if value["code"] == "rate_limited" => limited += 1,
                    _ => {}
                }
            }
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(close.expect("frame").code, CloseCode::Policy);
    assert!((5..=7).contains(&pongs), "{pongs} pongs");
    assert!(limited >= 9, "{limited} rate_limited errors");
    // Others are unaffected.
    let mut other = Client::connect(gateway.client_addr()).await;
    other.assert_usable().await;
    gateway.shutdown(WAIT).await;
}
