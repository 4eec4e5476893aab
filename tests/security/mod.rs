//! Helpers shared by the authentication and hostile-client suites: signing
//! keys written to a private directory, token minting (valid and forged),
//! and a WebSocket client that can send headers.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256, RsaKeySize};
use serde_json::{Value, json};
use tickgate::config::{AuthMode, Config};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::common::Client;

pub const SECRET: &str = "a-test-secret-of-at-least-32-bytes-0123456789";
pub const ISSUER: &str = "https://auth.tickgate.test/";
pub const AUDIENCE: &str = "tickgate";

/// Signing keys of one test, with their public halves on disk.
pub struct Keys {
    pub dir: PathBuf,
    pub ec: KeyPair,
    pub rsa: KeyPair,
}

static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

impl Keys {
    /// Fresh EC P-256 and RSA-2048 keys; `secret`, `ec.pem`, `rsa.pem` and
    /// `jwks.json` (the EC key as `kid` "ec-1") in a private directory.
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "tickgate-auth-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("key dir");
        let ec = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("ec key");
        let rsa = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048).expect("rsa key");
        std::fs::write(dir.join("secret"), format!("{SECRET}\n")).expect("secret");
        std::fs::write(dir.join("ec.pem"), ec.public_key_pem()).expect("ec pem");
        std::fs::write(dir.join("rsa.pem"), rsa.public_key_pem()).expect("rsa pem");
        let keys = Self { dir, ec, rsa };
        let jwks = json!({"keys":[keys.ec_jwk("ec-1")]});
        std::fs::write(keys.dir.join("jwks.json"), jwks.to_string()).expect("jwks");
        keys
    }

    /// The public half of the EC key as a JWK named `kid`.
    pub fn ec_jwk(&self, kid: &str) -> Value {
        let raw = self.ec.public_key_raw();
        // Uncompressed point: 0x04 || x || y.
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        json!({"kty":"EC","crv":"P-256","kid":kid,"alg":"ES256","use":"sig",
            "x": b64(&raw[1..33]), "y": b64(&raw[33..65])})
    }

    /// A config with auth required: HS256 secret file, both PEM keys,
    /// issuer and audience checked, no leeway, no first-message auth.
    pub fn config(&self, mut config: Config) -> Config {
        config.auth.mode = AuthMode::Required;
        config.auth.hs256_secret_file = Some(self.dir.join("secret"));
        config.auth.public_key_files = vec![self.dir.join("ec.pem"), self.dir.join("rsa.pem")];
        config.auth.issuers = vec![ISSUER.into()];
        config.auth.audiences = vec![AUDIENCE.into()];
        config.auth.leeway_seconds = 0;
        config.auth.first_message = false;
        config
    }

    /// Signs `claims` with `alg` (HS256: the secret; ES256: the EC key;
    /// RS256: the RSA key), with an optional `kid`.
    pub fn sign(&self, alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
        let key = match alg {
            Algorithm::HS256 => EncodingKey::from_secret(SECRET.as_bytes()),
            Algorithm::ES256 => {
                EncodingKey::from_ec_pem(self.ec.serialize_pem().as_bytes()).expect("ec")
            }
            Algorithm::RS256 => {
                EncodingKey::from_rsa_pem(self.rsa.serialize_pem().as_bytes()).expect("rsa")
            }
            other => panic!("no test key for {other:?}"),
        };
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &key).expect("sign")
    }

    /// A valid HS256 token for `symbols`, valid for `ttl` seconds.
    pub fn token(&self, symbols: &[&str], ttl: i64) -> String {
        self.sign(Algorithm::HS256, None, &claims(symbols, ttl))
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Claims with the test issuer and audience.
pub fn claims(symbols: &[&str], ttl: i64) -> Value {
    json!({"sub":"trader-1","iss":ISSUER,"aud":AUDIENCE,"exp":now() + ttl,"symbols":symbols})
}

/// A token with an arbitrary header and claims and a junk signature.
pub fn unsigned(header: &Value, claims: &Value, signature: &str) -> String {
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.{signature}", b64(header), b64(claims))
}

/// An HS256 token signed with an arbitrary secret (algorithm confusion).
pub fn hs256_with(secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("sign")
}

/// Opens `/ws{query}` with extra headers; `Err(status)` when refused.
pub async fn connect_with(
    addr: SocketAddr,
    query: &str,
    headers: &[(&'static str, &str)],
) -> Result<Client, u16> {
    let mut request = format!("ws://{addr}/ws{query}")
        .into_client_request()
        .expect("request");
    for (name, value) in headers {
        request
            .headers_mut()
            .insert(*name, HeaderValue::from_str(value).expect("header value"));
    }
    let stream = TcpStream::connect(addr).await.expect("tcp connect");
    match tokio_tungstenite::client_async(request, stream).await {
        Ok((ws, _)) => Ok(Client { ws }),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(other) => panic!("handshake failed without a status: {other}"),
    }
}

/// Opens `/ws` with `Authorization: Bearer <token>`.
pub async fn connect_bearer(addr: SocketAddr, token: &str) -> Result<Client, u16> {
    connect_with(addr, "", &[("authorization", &format!("Bearer {token}"))]).await
}
