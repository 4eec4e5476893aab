//! The `wss` listener end to end: real TLS on 127.0.0.1 with certificates
//! made here, a rustls WebSocket client, certificate rotation and reload,
//! mutual TLS, and peers that misbehave during the handshake.

// Waiting for a child process or a port from plain (not async) helpers.
#![allow(clippy::disallowed_methods)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{WAIT, http_get, inject, quote_tick, quotes, test_config, wait_for_seq};
use futures_util::{SinkExt, StreamExt};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ProtocolVersion, RootCertStore, SupportedProtocolVersion};
use serde_json::Value;
use tickgate::config::Config;
use tickgate::tls::x509::CertificateSummary;
use tickgate::{FeedSetup, Gateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

const BIN: &str = env!("CARGO_BIN_EXE_tickgate");

type Wss = WebSocketStream<TlsStream<TcpStream>>;

fn init() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

// ---------------------------------------------------------------- test PKI

/// A CA made for one test, and a scratch directory for the files the
/// gateway serves.
struct Pki {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    ca: CertificateDer<'static>,
}

impl Pki {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tickgate-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let key = KeyPair::generate().expect("ca key");
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("tickgate test CA {name}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = params.self_signed(&key).expect("ca").der().clone();
        Self {
            dir,
            issuer: Issuer::new(params, key),
            ca,
        }
    }

    fn cert_path(&self) -> PathBuf {
        self.dir.join("server.pem")
    }

    fn key_path(&self) -> PathBuf {
        self.dir.join("server-key.pem")
    }

    /// A server certificate for localhost/127.0.0.1 with `serial`: (cert PEM, key PEM).
    fn server(&self, serial: u64) -> (String, String) {
        let key = KeyPair::generate().expect("server key");
        let mut params =
            CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).expect("params");
        params.serial_number = Some(SerialNumber::from(serial));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).expect("server cert");
        (cert.pem(), key.serialize_pem())
    }

    /// A client certificate for mutual TLS.
    fn client(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().expect("client key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, "dashboard");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).expect("client cert");
        (
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
    }

    /// Replaces a file the way secret updates do: write aside, then rename.
    fn replace(&self, path: &Path, contents: &str) {
        let aside = path.with_extension("tmp");
        std::fs::write(&aside, contents).expect("write aside");
        std::fs::rename(&aside, path).expect("rename into place");
    }

    /// Serves a certificate with `serial` (both files replaced atomically).
    fn install_server(&self, serial: u64) {
        let (cert, key) = self.server(serial);
        self.replace(&self.key_path(), &key);
        self.replace(&self.cert_path(), &cert);
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, contents).expect("write");
        path
    }

    fn ca_pem(&self) -> String {
        let body = base64(self.ca.as_ref());
        format!("-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n")
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn base64(der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::new();
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                text.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                text.push('=');
            }
        }
    }
    text.as_bytes()
        .chunks(64)
        .map(|line| String::from_utf8_lossy(line).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

// ------------------------------------------------------------- the gateway

fn tls_config(pki: &Pki) -> Config {
    let mut config = test_config();
    config.tls.listen = Some("127.0.0.1:0".parse().expect("addr"));
    config.tls.cert = Some(pki.cert_path());
    config.tls.key = Some(pki.key_path());
    config
}

async fn start(config: Config) -> Gateway {
    Gateway::start(config, FeedSetup::External)
        .await
        .expect("gateway starts")
}

fn tls_addr(gateway: &Gateway) -> SocketAddr {
    gateway.tls_addr().expect("TLS is configured")
}

/// Current value of one Prometheus series (0 when absent).
async fn metric(gateway: &Gateway, series: &str) -> f64 {
    let (status, body) = http_get(gateway.admin_addr(), "/metrics").await;
    assert_eq!(status, 200);
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// Waits until `series` exceeds `before`.
async fn wait_for_metric_above(gateway: &Gateway, series: &str, before: f64) -> f64 {
    let mut now = before;
    common::wait_until(&format!("{series} above {before}"), WAIT, async || {
        now = metric(gateway, series).await;
        now > before
    })
    .await;
    now
}

// -------------------------------------------------------------- the client

fn client_config(
    roots: &[CertificateDer<'static>],
    versions: &[&'static SupportedProtocolVersion],
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Arc<ClientConfig> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).expect("root");
    }
    let builder =
        ClientConfig::builder_with_protocol_versions(versions).with_root_certificates(store);
    let mut config = match identity {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).expect("identity"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

fn trusting(pki: &Pki) -> Arc<ClientConfig> {
    client_config(std::slice::from_ref(&pki.ca), rustls::ALL_VERSIONS, None)
}

async fn tls_connect(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("name");
    tokio::time::timeout(WAIT, TlsConnector::from(config).connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::other("handshake took too long"))?
}

/// Serial (hex) of the certificate a fresh handshake is served.
async fn served_serial(addr: SocketAddr, config: Arc<ClientConfig>) -> String {
    let tls = tls_connect(addr, config).await.expect("handshake");
    let der = &tls
        .get_ref()
        .1
        .peer_certificates()
        .expect("server certificate")[0];
    CertificateSummary::parse(der).expect("parses").serial_hex()
}

/// Polls fresh handshakes until the served serial is `serial`.
async fn wait_for_serial(addr: SocketAddr, config: &Arc<ClientConfig>, serial: &str) {
    common::wait_until(&format!("serial {serial} served"), WAIT, || async {
        served_serial(addr, Arc::clone(config)).await == serial
    })
    .await;
}

async fn wss_connect(addr: SocketAddr, config: Arc<ClientConfig>) -> Result<Wss, String> {
    let tls = tls_connect(addr, config)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let url = format!("wss://localhost:{}/ws", addr.port());
    let (ws, response) = tokio::time::timeout(WAIT, tokio_tungstenite::client_async(url, tls))
        .await
        .map_err(|_| "WebSocket handshake took too long".to_owned())?
        .map_err(|e| format!("WebSocket: {e}"))?;
    assert_eq!(response.status(), 101);
    Ok(ws)
}

async fn send(ws: &mut Wss, text: &str) {
    ws.send(Message::text(text.to_owned())).await.expect("send");
}

/// Next JSON frame that is not a heartbeat, within [`WAIT`].
async fn next_json(ws: &mut Wss) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("a frame within the wait")
            .expect("stream open")
            .expect("no websocket error");
        if let Message::Text(text) = frame {
            let value: Value = serde_json::from_str(text.as_str()).expect("JSON");
            if value["type"] != "heartbeat" {
                return value;
            }
        }
    }
}

/// Subscribes to AAPL and checks `subscribed` then `snapshot`.
async fn subscribe_aapl(ws: &mut Wss) {
    send(ws, r#"{"op":"subscribe","symbols":["AAPL"],"id":1}"#).await;
    let ack = next_json(ws).await;
    assert_eq!(ack["type"], "subscribed", "{ack}");
    assert_eq!(ack["id"], 1);
    let snapshot = next_json(ws).await;
    assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
    assert_eq!(quotes(&snapshot)[0].0, "AAPL");
}

/// Injects one AAPL tick and expects its update with `seq`.
async fn tick_reaches(gateway: &Gateway, ws: &mut Wss, seq: u64) {
    inject(gateway, vec![quote_tick("AAPL", 200.0 + seq as f64)]).await;
    let update = next_json(ws).await;
    assert_eq!(update["type"], "update", "{update}");
    assert_eq!(quotes(&update), vec![("AAPL".to_owned(), seq)]);
}

/// A gateway with one AAPL tick, and a wss client subscribed to it.
async fn gateway_with_subscriber(pki: &Pki, config: Config) -> (Gateway, Wss) {
    let gateway = start(config).await;
    inject(&gateway, vec![quote_tick("AAPL", 200.0)]).await;
    wait_for_seq(&gateway, "AAPL", 1).await;
    let mut ws = wss_connect(tls_addr(&gateway), trusting(pki))
        .await
        .expect("wss connects");
    subscribe_aapl(&mut ws).await;
    (gateway, ws)
}

// ------------------------------------------------------------------- tests

#[tokio::test]
async fn wss_client_trusting_the_ca_gets_subscribed_snapshot_and_updates() {
    init();
    let pki = Pki::new("basic");
    pki.install_server(0x1001);
    let gateway = start(tls_config(&pki)).await;
    inject(&gateway, vec![quote_tick("AAPL", 200.0)]).await;
    wait_for_seq(&gateway, "AAPL", 1).await;

    let tls = tls_connect(tls_addr(&gateway), trusting(&pki))
        .await
        .expect("handshake");
    let session = tls.get_ref().1;
    assert_eq!(session.protocol_version(), Some(ProtocolVersion::TLSv1_3));
    assert_eq!(session.alpn_protocol(), Some(&b"http/1.1"[..]));
    drop(tls);

    let mut ws = wss_connect(tls_addr(&gateway), trusting(&pki))
        .await
        .expect("wss connects");
    subscribe_aapl(&mut ws).await;
    tick_reaches(&gateway, &mut ws, 2).await;
    tick_reaches(&gateway, &mut ws, 3).await;

    // The plain listener keeps working beside the TLS one.
    let (status, _) = http_get(gateway.client_addr(), "/").await;
    assert_eq!(status, 200);
    assert!(gateway.shutdown(WAIT).await);
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_ca_is_refused() {
    init();
    let pki = Pki::new("untrusted");
    pki.install_server(0x2001);
    let stranger = Pki::new("untrusted-other");
    let gateway = start(tls_config(&pki)).await;
    let series = r#"tickgate_tls_handshake_failures_total{reason="certificate"}"#;
    let before = metric(&gateway, series).await;

    let error = wss_connect(tls_addr(&gateway), trusting(&stranger))
        .await
        .expect_err("an unknown CA must fail");
    assert!(error.contains("TLS"), "{error}");
    // The client's alert reaches the server and is counted.
    wait_for_metric_above(&gateway, series, before).await;
    assert!(gateway.shutdown(WAIT).await);
}

#[tokio::test]
async fn tls_1_2_is_accepted_and_a_tls_1_1_hello_is_refused() {
    init();
    let pki = Pki::new("versions");
    pki.install_server(0x3001);
    let gateway = start(tls_config(&pki)).await;
    let addr = tls_addr(&gateway);

    let tls12 = client_config(
        std::slice::from_ref(&pki.ca),
        &[&rustls::version::TLS12],
        None,
    );
    let tls = tls_connect(addr, Arc::clone(&tls12))
        .await
        .expect("TLS 1.2");
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(ProtocolVersion::TLSv1_2)
    );
    drop(tls);
    let mut ws = wss_connect(addr, tls12).await.expect("wss over TLS 1.2");
    send(&mut ws, r#"{"op":"ping","id":7}"#).await;
    assert_eq!(next_json(&mut ws).await["type"], "pong");

    // rustls clients cannot speak TLS 1.1: send ClientHellos by hand. The
    // same hello offering TLS 1.2 gets a ServerHello, so the version alone
    // is what the server refuses.
    let first_reply = |version: u16| async move {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(&client_hello(version))
            .await
            .expect("send hello");
        let mut reply = vec![0u8; 7];
        tokio::time::timeout(WAIT, tcp.read_exact(&mut reply))
            .await
            .expect("the server answers")
            .expect("a record header and more");
        reply
    };
    let reply = first_reply(0x0303).await;
    assert_eq!(reply[..3], [22, 3, 3], "a TLS 1.2 ServerHello: {reply:?}");
    assert_eq!(reply[5], 2, "ServerHello: {reply:?}");

    let series = r#"tickgate_tls_handshake_failures_total{reason="protocol"}"#;
    let before = metric(&gateway, series).await;
    let reply = first_reply(0x0302).await;
    // No ServerHello (22): a fatal (2) alert record (21), protocol_version (70).
    assert_eq!(reply[0], 21, "reply {reply:?}");
    assert_eq!(reply[5..], [2, 70], "reply {reply:?}");
    wait_for_metric_above(&gateway, series, before).await;
    assert!(gateway.shutdown(WAIT).await);
}

/// A hand-built ClientHello offering `version` (0x0302 = TLS 1.1, 0x0303 =
/// TLS 1.2) with suites and extensions a TLS 1.2 server accepts.
fn client_hello(version: u16) -> Vec<u8> {
    let mut hello = version.to_be_bytes().to_vec(); // client_version
    hello.extend_from_slice(&[0x5a; 32]); // random
    hello.push(0); // no session id
    // ECDHE-ECDSA-AES128-GCM-SHA256, ECDHE-ECDSA-AES128-SHA, AES128-SHA.
    let suites: &[u8] = &[0xc0, 0x2b, 0xc0, 0x09, 0x00, 0x2f];
    hello.extend_from_slice(&(suites.len() as u16).to_be_bytes());
    hello.extend_from_slice(suites);
    hello.extend_from_slice(&[0x01, 0x00]); // compression: null
    let extensions: &[u8] = &[
        0x00, 0x0a, 0x00, 0x04, 0x00, 0x02, 0x00, 0x17, // supported_groups: secp256r1
        0x00, 0x0b, 0x00, 0x02, 0x01, 0x00, // ec_point_formats: uncompressed
        0x00, 0x0d, 0x00, 0x04, 0x00, 0x02, 0x04,
        0x03, // signature_algorithms: ecdsa_secp256r1_sha256
    ];
    hello.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    hello.extend_from_slice(extensions);
    let mut handshake = vec![0x01]; // ClientHello
    handshake.extend_from_slice(&(hello.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x02]; // handshake record, TLS 1.1
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

#[tokio::test]
async fn rotated_files_reach_new_handshakes_while_open_connections_keep_receiving() {
    init();
    let pki = Pki::new("rotate");
    pki.install_server(0x4001);
    let (gateway, mut ws) = gateway_with_subscriber(&pki, tls_config(&pki)).await;
    let addr = tls_addr(&gateway);
    let client = trusting(&pki);
    assert_eq!(served_serial(addr, Arc::clone(&client)).await, "4001");
    let series = r#"tickgate_tls_reloads_total{result="success"}"#;
    let before = metric(&gateway, series).await;

    pki.install_server(0x4002);
    wait_for_serial(addr, &client, "4002").await;
    assert!(metric(&gateway, series).await > before);
    // The connection opened under the old certificate is untouched.
    tick_reaches(&gateway, &mut ws, 2).await;

    // Kubernetes-style: the file names are symlinks through `..data`, and
    // a rotation swaps that one symlink.
    let data = pki.dir.join("..2026_11_24_a");
    std::fs::create_dir_all(&data).expect("data dir");
    let (cert, key) = pki.server(0x4003);
    std::fs::write(data.join("tls.crt"), cert).expect("cert");
    std::fs::write(data.join("tls.key"), key).expect("key");
    std::os::unix::fs::symlink("..2026_11_24_a", pki.dir.join("..data")).expect("..data");
    for (link, target) in [("server.pem", "tls.crt"), ("server-key.pem", "tls.key")] {
        let aside = pki.dir.join(format!("{link}.link"));
        std::os::unix::fs::symlink(format!("..data/{target}"), &aside).expect("symlink");
        std::fs::rename(&aside, pki.dir.join(link)).expect("swap in symlink");
    }
    wait_for_serial(addr, &client, "4003").await;
    let next = pki.dir.join("..2026_11_24_b");
    std::fs::create_dir_all(&next).expect("data dir");
    let (cert, key) = pki.server(0x4004);
    std::fs::write(next.join("tls.crt"), cert).expect("cert");
    std::fs::write(next.join("tls.key"), key).expect("key");
    let aside = pki.dir.join("..data_tmp");
    std::os::unix::fs::symlink("..2026_11_24_b", &aside).expect("symlink");
    std::fs::rename(&aside, pki.dir.join("..data")).expect("swap ..data");
    wait_for_serial(addr, &client, "4004").await;
    tick_reaches(&gateway, &mut ws, 3).await;
    assert!(gateway.shutdown(WAIT).await);
}

#[tokio::test]
async fn a_bad_rotation_keeps_serving_the_old_certificate_and_counts_a_failure() {
    init();
    let pki = Pki::new("badrotate");
    pki.install_server(0x5001);
    let (gateway, mut ws) = gateway_with_subscriber(&pki, tls_config(&pki)).await;
    let addr = tls_addr(&gateway);
    let client = trusting(&pki);
    let series = r#"tickgate_tls_reloads_total{result="failure"}"#;

    // A new certificate whose key never arrives: key mismatch.
    let before = metric(&gateway, series).await;
    let (cert, _) = pki.server(0x5002);
    pki.replace(&pki.cert_path(), &cert);
    wait_for_metric_above(&gateway, series, before).await;
    // (The counter is process-wide: give our own watcher time to act too.
    // A negative check: nothing to wait for but time.)
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(served_serial(addr, Arc::clone(&client)).await, "5001");

    // Not PEM at all.
    let before = metric(&gateway, series).await;
    pki.replace(&pki.cert_path(), "this is not a certificate\n");
    wait_for_metric_above(&gateway, series, before).await;
    // (The counter is process-wide: give our own watcher time to act too.
    // A negative check: nothing to wait for but time.)
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(served_serial(addr, Arc::clone(&client)).await, "5001");
    tick_reaches(&gateway, &mut ws, 2).await;

    // A good pair afterwards is picked up.
    pki.install_server(0x5003);
    wait_for_serial(addr, &client, "5003").await;
    assert!(gateway.shutdown(WAIT).await);
}

#[tokio::test]
async fn the_reload_sighup_triggers_swaps_the_certificate_and_refuses_bad_files() {
    init();
    let pki = Pki::new("reload");
    pki.install_server(0x6001);
    let mut config = tls_config(&pki);
    config.tls.watch = false;
    let (gateway, mut ws) = gateway_with_subscriber(&pki, config).await;
    let addr = tls_addr(&gateway);
    let client = trusting(&pki);
    let tls = gateway.tls().expect("TLS on");

    pki.install_server(0x6002);
    // A negative check: give a (wrongly) running watcher time to act.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        served_serial(addr, Arc::clone(&client)).await,
        "6001",
        "watch is off: nothing changes until a reload"
    );
    tls.reload().expect("good files reload");
    assert_eq!(served_serial(addr, Arc::clone(&client)).await, "6002");

    let (_, stray_key) = pki.server(0x6003);
    pki.replace(&pki.key_path(), &stray_key);
    let error = tls.reload().expect_err("mismatched key");
    assert!(error.to_string().contains("does not match"), "{error}");
    std::fs::remove_file(pki.cert_path()).expect("remove cert");
    let error = tls.reload().expect_err("missing file");
    assert!(error.to_string().contains("server.pem"), "{error}");
    assert_eq!(served_serial(addr, Arc::clone(&client)).await, "6002");
    tick_reaches(&gateway, &mut ws, 2).await;
    assert!(gateway.shutdown(WAIT).await);
}

#[tokio::test]
async fn the_binary_reloads_its_certificate_on_sighup() {
    init();
    let pki = Pki::new("sighup");
    pki.install_server(0x7001);
    let config_file = pki.write(
        "tickgate.toml",
        &format!(
            "[tls]\nlisten = \"127.0.0.1:0\"\ncert = \"{}\"\nkey = \"{}\"\nwatch = false\n",
            pki.cert_path().display(),
            pki.key_path().display()
        ),
    );
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .arg("--config")
        .arg(&config_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary starts");
    let guard = KillOnDrop(&mut child);
    let addr = listening_tls_addr(guard.0);
    let client = trusting(&pki);
    assert_eq!(served_serial(addr, Arc::clone(&client)).await, "7001");

    pki.install_server(0x7002);
    assert_eq!(served_serial(addr, Arc::clone(&client)).await, "7001");
    signal(guard.0, "-HUP");
    wait_for_serial(addr, &client, "7002").await;

    signal(guard.0, "-TERM");
    let status = wait_exit(guard.0).await;
    assert!(status.success(), "{status:?}");
}

struct KillOnDrop<'a>(&'a mut Child);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn listening_tls_addr(child: &mut Child) -> SocketAddr {
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("listening line");
    let event: Value = serde_json::from_str(&line).expect("listening line is JSON");
    assert_eq!(event["event"], "listening");
    event["tls"]
        .as_str()
        .expect("tls address in the listening line")
        .parse()
        .expect("addr")
}

fn signal(child: &Child, which: &str) {
    let status = Command::new("kill")
        .args([which, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

async fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let mut status = None;
    common::wait_until("the process exits", WAIT, || {
        status = child.try_wait().expect("wait");
        std::future::ready(status.is_some())
    })
    .await;
    status.expect("exited")
}

#[tokio::test]
async fn mutual_tls_admits_clients_with_a_certificate_from_the_ca_and_refuses_others() {
    init();
    let pki = Pki::new("mtls");
    pki.install_server(0x8001);
    let clients = Pki::new("mtls-clients");
    let strangers = Pki::new("mtls-strangers");
    let mut config = tls_config(&pki);
    config.tls.client_ca = Some(clients.write("client-ca.pem", &clients.ca_pem()));
    let gateway = start(config).await;
    inject(&gateway, vec![quote_tick("AAPL", 200.0)]).await;
    wait_for_seq(&gateway, "AAPL", 1).await;
    let addr = tls_addr(&gateway);
    let roots = std::slice::from_ref(&pki.ca);

    let admitted = client_config(roots, rustls::ALL_VERSIONS, Some(clients.client()));
    let mut ws = wss_connect(addr, admitted)
        .await
        .expect("a client certificate from the CA");
    subscribe_aapl(&mut ws).await;
    tick_reaches(&gateway, &mut ws, 2).await;

    let series = r#"tickgate_tls_handshake_failures_total{reason="certificate"}"#;
    let before = metric(&gateway, series).await;
    for (who, identity) in [
        ("no certificate", None),
        ("another CA", Some(strangers.client())),
    ] {
        for versions in [
            &[&rustls::version::TLS13][..],
            &[&rustls::version::TLS12][..],
        ] {
            let identity = identity
                .as_ref()
                .map(|(chain, key)| (chain.clone(), key.clone_key()));
            let config = client_config(roots, versions, identity);
            let refused = wss_connect(addr, config).await;
            assert!(refused.is_err(), "{who} over {versions:?} must be refused");
        }
    }
    wait_for_metric_above(&gateway, series, before).await;
    tick_reaches(&gateway, &mut ws, 3).await;
    assert!(gateway.shutdown(WAIT).await);
}

#[tokio::test]
async fn a_rotated_client_ca_bundle_decides_from_the_next_handshake() {
    init();
    let pki = Pki::new("ca-rotation");
    pki.install_server(0x9001);
    let old_clients = Pki::new("ca-rotation-old");
    let new_clients = Pki::new("ca-rotation-new");
    let bundle = pki.write("client-ca.pem", &old_clients.ca_pem());
    let mut config = tls_config(&pki);
    config.tls.client_ca = Some(bundle.clone());
    let gateway = start(config).await;
    inject(&gateway, vec![quote_tick("AAPL", 200.0)]).await;
    wait_for_seq(&gateway, "AAPL", 1).await;
    let addr = tls_addr(&gateway);
    let roots = std::slice::from_ref(&pki.ca);
    let identity = |who: &Pki| client_config(roots, rustls::ALL_VERSIONS, Some(who.client()));
    let mut open = wss_connect(addr, identity(&old_clients))
        .await
        .expect("a client of the old CA");
    subscribe_aapl(&mut open).await;
    assert!(wss_connect(addr, identity(&new_clients)).await.is_err());

    // Overlap: both CAs in the bundle.
    pki.replace(&bundle, &(old_clients.ca_pem() + &new_clients.ca_pem()));
    admitted_within(addr, identity(&new_clients), true).await;
    assert!(wss_connect(addr, identity(&old_clients)).await.is_ok());

    // The old CA retired: its clients are refused from the next handshake,
    // and the connection already open keeps its session.
    pki.replace(&bundle, &new_clients.ca_pem());
    admitted_within(addr, identity(&old_clients), false).await;
    assert!(wss_connect(addr, identity(&new_clients)).await.is_ok());
    tick_reaches(&gateway, &mut open, 2).await;

    // A bundle without a certificate keeps the last good one.
    let failures = r#"tickgate_tls_reloads_total{result="failure"}"#;
    let before = metric(&gateway, failures).await;
    pki.replace(&bundle, "no certificate here\n");
    wait_for_metric_above(&gateway, failures, before).await;
    assert!(wss_connect(addr, identity(&new_clients)).await.is_ok());
    assert!(wss_connect(addr, identity(&old_clients)).await.is_err());
    assert!(gateway.shutdown(WAIT).await);
}

/// Polls until a handshake with `config` is admitted (or refused) as `want`.
async fn admitted_within(addr: SocketAddr, config: Arc<ClientConfig>, want: bool) {
    let what = if want { "admitted" } else { "refused" };
    common::wait_until(&format!("handshake {what}"), WAIT, || async {
        wss_connect(addr, Arc::clone(&config)).await.is_ok() == want
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_plain_http_and_stalled_handshakes_do_not_disturb_a_connected_client() {
    init();
    let pki = Pki::new("abuse");
    pki.install_server(0x9001);
    let mut config = tls_config(&pki);
    let timeout = Duration::from_millis(800);
    config.tls.handshake_timeout = timeout;
    let (gateway, mut ws) = gateway_with_subscriber(&pki, config).await;
    let addr = tls_addr(&gateway);
    let timeouts = r#"tickgate_tls_handshake_failures_total{reason="timeout"}"#;
    let timeouts_before = metric(&gateway, timeouts).await;

    // Stalled: a TCP connection that sends half a record header, then nothing.
    let mut stalled = Vec::new();
    for _ in 0..20 {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(&[0x16, 0x03]).await.expect("partial header");
        stalled.push(tcp);
    }
    let stalled_since = Instant::now();
    // Garbage and plain HTTP: answered with an alert and closed at once.
    for payload in [
        vec![0xde; 16 * 1024],
        b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\r\n".to_vec(),
    ] {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        let _ = tcp.write_all(&payload).await;
        let mut reply = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(2), tcp.read_to_end(&mut reply)).await;
        assert!(read.is_ok(), "a non-TLS peer is closed promptly");
        assert_ne!(reply.first(), Some(&b'H'), "no HTTP is spoken before TLS");
    }

    // Meanwhile the subscriber keeps getting every update, promptly.
    for seq in 2..=8 {
        let sent = Instant::now();
        tick_reaches(&gateway, &mut ws, seq).await;
        assert!(
            sent.elapsed() < Duration::from_secs(1),
            "update {seq} took {:?}",
            sent.elapsed()
        );
        // Spreads the updates over the stalled handshakes' lifetime.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The stalled peers are dropped after the handshake timeout.
    for mut tcp in stalled {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(WAIT, tcp.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0) | Err(_))),
            "stalled peer dropped: {read:?}"
        );
    }
    let waited = stalled_since.elapsed();
    assert!(
        waited >= timeout.mul_f64(0.9),
        "dropped after {waited:?}, before the timeout"
    );
    wait_for_metric_above(&gateway, timeouts, timeouts_before + 19.0).await;
    tick_reaches(&gateway, &mut ws, 9).await;
    assert!(gateway.shutdown(WAIT).await);
}

#[tokio::test]
async fn dev_cert_output_serves_wss_to_a_client_that_trusts_ca_pem() {
    init();
    let pki = Pki::new("devcert");
    let out = pki.dir.join("certs");
    let output = Command::new(BIN)
        .args(["dev-cert", "--out"])
        .arg(&out)
        .output()
        .expect("dev-cert runs");
    assert!(output.status.success(), "{output:?}");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.contains("--tls-cert"), "{printed}");
    for file in ["ca.pem", "ca-key.pem", "server.pem", "server-key.pem"] {
        assert!(out.join(file).exists(), "{file} written");
    }

    let mut config = test_config();
    config.tls.listen = Some("127.0.0.1:0".parse().expect("addr"));
    config.tls.cert = Some(out.join("server.pem"));
    config.tls.key = Some(out.join("server-key.pem"));
    let gateway = start(config).await;
    inject(&gateway, vec![quote_tick("AAPL", 200.0)]).await;
    wait_for_seq(&gateway, "AAPL", 1).await;
    let ca_pem = std::fs::read(out.join("ca.pem")).expect("ca.pem");
    let ca: Vec<CertificateDer<'static>> =
        rustls::pki_types::pem::PemObject::pem_slice_iter(&ca_pem)
            .collect::<Result<_, _>>()
            .expect("ca.pem is PEM");
    let client = client_config(&ca, rustls::ALL_VERSIONS, None);
    let mut ws = wss_connect(tls_addr(&gateway), client)
        .await
        .expect("wss with the dev certificate");
    subscribe_aapl(&mut ws).await;
    tick_reaches(&gateway, &mut ws, 2).await;
    assert!(gateway.shutdown(WAIT).await);
}

#[tokio::test]
async fn start_up_names_the_tls_file_at_fault() {
    init();
    let pki = Pki::new("startup");
    pki.install_server(0xa001);

    let mut config = tls_config(&pki);
    config.tls.cert = Some(pki.dir.join("absent.pem"));
    let error = Gateway::start(config, FeedSetup::External)
        .await
        .err()
        .expect("missing certificate");
    assert!(error.to_string().contains("absent.pem"), "{error}");

    let (_, stray_key) = pki.server(0xa002);
    let stray = pki.write("stray-key.pem", &stray_key);
    let mut config = tls_config(&pki);
    config.tls.key = Some(stray.clone());
    let error = Gateway::start(config, FeedSetup::External)
        .await
        .err()
        .expect("mismatched key");
    assert!(error.to_string().contains("does not match"), "{error}");

    // The binary says the same and exits with status 64.
    let output = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(["--tls-listen", "127.0.0.1:0", "--tls-cert"])
        .arg(pki.cert_path())
        .arg("--tls-key")
        .arg(&stray)
        .output()
        .expect("binary runs");
    assert_eq!(output.status.code(), Some(64), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("stray-key.pem") && stderr.contains("server.pem"),
        "{stderr}"
    );
}

/// Resident memory of a process in bytes (Linux).
fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Resident memory the gateway process adds per idle client, plain `ws`
/// against `wss`, each in a fresh process. Prints the figures recorded in
/// docs/tls.md. Run with:
/// `cargo test --test tls -- --ignored memory_per_connection --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, not a check: prints per-connection memory"]
async fn memory_per_connection_plain_and_tls() {
    init();
    const WARM_UP: usize = 20;
    const CLIENTS: usize = 400;
    let pki = Pki::new("memory");
    pki.install_server(0xb001);
    for tls in [false, true, false, true] {
        let mut child = Command::new(BIN)
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args([
                "--sim-rate",
                "0",
                "--tls-listen",
                "127.0.0.1:0",
                "--tls-cert",
            ])
            .arg(pki.cert_path())
            .arg("--tls-key")
            .arg(pki.key_path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("binary starts");
        let guard = KillOnDrop(&mut child);
        let stdout = guard.0.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("line");
        let event: Value = serde_json::from_str(&line).expect("JSON");
        let addr: SocketAddr = event[if tls { "tls" } else { "client" }]
            .as_str()
            .expect("addr")
            .parse()
            .expect("addr");
        let admin: SocketAddr = event["admin"]
            .as_str()
            .expect("admin")
            .parse()
            .expect("addr");
        // Every connection counted open on the gateway's side: nothing of
        // its setup is still under way when RSS is read.
        let all_open = |n: usize| {
            common::wait_until("every connection counted open", WAIT, move || async move {
                let series = |t: &str| format!("tickgate_connections{{transport=\"{t}\"}}");
                let open = common::metric_value(admin, &series("ws")).await
                    + common::metric_value(admin, &series("wss")).await;
                open as usize == n
            })
        };
        let pid = guard.0.id();
        let client = trusting(&pki);
        let mut plain = Vec::new();
        let mut secure = Vec::new();
        let mut baseline = 0;
        for i in 0..WARM_UP + CLIENTS {
            if i == WARM_UP {
                // Allocator arenas and lazy statics are warm now.
                all_open(WARM_UP).await;
                baseline = rss_of(pid);
            }
            if tls {
                let mut ws = wss_connect(addr, Arc::clone(&client)).await.expect("wss");
                send(&mut ws, r#"{"op":"ping","id":1}"#).await;
                assert_eq!(next_json(&mut ws).await["type"], "pong");
                secure.push(ws);
            } else {
                let tcp = TcpStream::connect(addr).await.expect("tcp");
                let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), tcp)
                    .await
                    .expect("ws");
                ws.send(Message::text(r#"{"op":"ping","id":1}"#))
                    .await
                    .expect("send");
                let _ = ws.next().await;
                plain.push(ws);
            }
        }
        all_open(WARM_UP + CLIENTS).await;
        let grown = rss_of(pid).saturating_sub(baseline);
        eprintln!(
            "{}: {CLIENTS} idle clients add {:.1} MiB to the gateway: {:.1} KiB per connection",
            if tls { "wss" } else { "ws " },
            grown as f64 / 1_048_576.0,
            grown as f64 / 1024.0 / CLIENTS as f64
        );
        drop(plain);
        drop(secure);
        signal(guard.0, "-TERM");
        let _ = wait_exit(guard.0).await;
    }
}
