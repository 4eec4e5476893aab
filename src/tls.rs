//! The `wss` listener: TLS 1.2/1.3 with rustls (aws-lc-rs provider only),
//! in front of the same HTTP/WebSocket service as the plain listener.
//!
//! Owns the serving certificate. It sits behind one [`ArcSwap`] that every
//! new handshake reads, so a reload (file change or SIGHUP) reaches the next
//! handshake at once while open connections keep the session they have. A
//! reload that fails keeps the previous certificate.
//!
//! Each accepted TCP connection costs one task: the handshake runs there
//! under `tls.handshake_timeout_ms`, then the task becomes an ordinary
//! [`server::serve_http`] connection with transport `wss`. A peer that sends
//! garbage, plain HTTP or nothing at all costs that task, a debug line and
//! a count in `tickgate_tls_handshake_failures_total{reason}`.

pub mod dev_cert;
mod load;
pub mod x509;

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{AlertDescription, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

pub use self::load::TlsError;
use self::x509::{CertificateSummary, Validity};
use crate::config::TlsConfig;
use crate::reload::LastTried;
use crate::server::{self, Listener, Services};
use crate::shutdown::Shutdown;
use crate::telemetry;

/// ALPN: WebSocket upgrades are HTTP/1.1 requests.
const ALPN_HTTP_1_1: &[u8] = b"http/1.1";

/// A loaded TLS listener configuration: certificate store, rustls settings
/// and the files to reload from.
pub struct TlsServer {
    /// What new handshakes use; replaced when the client CA bundle changes.
    config: ArcSwap<ServerConfig>,
    certificate: Arc<CurrentCertificate>,
    provider: Arc<CryptoProvider>,
    cert_path: PathBuf,
    key_path: PathBuf,
    client_ca: Option<PathBuf>,
    handshake_timeout: Duration,
    /// What the files held when last tried.
    last_files: LastTried,
}

/// The certificate every new handshake is served.
#[derive(Debug)]
struct CurrentCertificate(ArcSwap<CertifiedKey>);

impl ResolvesServerCert for CurrentCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// Why a handshake failed: the closed label set of
/// `tickgate_tls_handshake_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// Not finished within `tls.handshake_timeout_ms`.
    Timeout,
    /// Not TLS, a TLS version or cipher we refuse, a malformed message.
    Protocol,
    /// A certificate was refused: ours by the client, or the client's by us.
    Certificate,
    /// The connection broke (reset, closed mid-handshake).
    Io,
}

impl HandshakeFailure {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Protocol => "protocol",
            Self::Certificate => "certificate",
            Self::Io => "io",
        }
    }

    /// Classifies the error tokio-rustls returns from a failed handshake.
    pub fn of(error: &io::Error) -> Self {
        let Some(tls) = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        else {
            return Self::Io;
        };
        match tls {
            rustls::Error::InvalidCertificate(_)
            | rustls::Error::NoCertificatesPresented
            | rustls::Error::InvalidCertRevocationList(_) => Self::Certificate,
            rustls::Error::AlertReceived(alert) if is_certificate_alert(*alert) => {
                Self::Certificate
            }
            _ => Self::Protocol,
        }
    }
}

fn is_certificate_alert(alert: AlertDescription) -> bool {
    matches!(
        alert,
        AlertDescription::BadCertificate
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateRequired
    )
}

impl TlsServer {
    /// Loads the certificate, key and (optional) client CA bundle named in
    /// `tls`. Warns when the certificate is expired or not yet valid.
    pub fn new(tls: &TlsConfig) -> Result<Self, TlsError> {
        let (Some(cert_path), Some(key_path)) = (&tls.cert, &tls.key) else {
            return Err(TlsError::NotConfigured);
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let cert_pem = load::read(cert_path);
        let key_pem = load::read(key_path);
        let client_ca_pem = tls.client_ca.as_deref().map(load::read);
        let last_files = LastTried::new(contents(&cert_pem, &key_pem, client_ca_pem.as_ref()));
        let certified = load::certified_key(cert_path, &cert_pem?, key_path, &key_pem?, &provider)?;
        warn_about_validity(&certified, cert_path);
        let certificate = Arc::new(CurrentCertificate(ArcSwap::from_pointee(certified)));
        let config = server_config(&provider, tls.client_ca.as_deref(), &certificate)?;

        let server = Self {
            config: ArcSwap::from_pointee(config),
            certificate,
            provider,
            cert_path: cert_path.clone(),
            key_path: key_path.clone(),
            client_ca: tls.client_ca.clone(),
            handshake_timeout: tls.handshake_timeout,
            last_files,
        };
        server.publish_expiry();
        Ok(server)
    }

    /// Re-reads the certificate and key files and serves them from the next
    /// handshake on. On failure the previous certificate stays in service.
    /// Logs and counts the outcome (`tickgate_tls_reloads_total{result}`).
    /// This is what SIGHUP does.
    pub fn reload(&self) -> Result<(), TlsError> {
        self.reload_files(true).unwrap_or(Ok(()))
    }

    /// What a change in the watched directory does: like [`Self::reload`],
    /// but nothing happens when the files hold what was last tried.
    pub(crate) fn reload_if_changed(&self) {
        let _ = self.reload_files(false);
    }

    /// The certificate chain new handshakes are served.
    pub fn current_chain(&self) -> Vec<rustls_pki_types::CertificateDer<'static>> {
        self.certificate.0.load().cert.clone()
    }

    /// The certificate, key and client CA files, watched for changes.
    pub fn files(&self) -> Vec<PathBuf> {
        [
            Some(&self.cert_path),
            Some(&self.key_path),
            self.client_ca.as_ref(),
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect()
    }

    /// `None` when `force` is off and the files are unchanged.
    fn reload_files(&self, force: bool) -> Option<Result<(), TlsError>> {
        let cert_pem = load::read(&self.cert_path);
        let key_pem = load::read(&self.key_path);
        let client_ca_pem = self.client_ca.as_deref().map(load::read);
        if !self
            .last_files
            .should_reload(contents(&cert_pem, &key_pem, client_ca_pem.as_ref()), force)
        {
            return None;
        }
        let outcome = cert_pem.and_then(|cert_pem| {
            let certified = load::certified_key(
                &self.cert_path,
                &cert_pem,
                &self.key_path,
                &key_pem?,
                &self.provider,
            )?;
            // A new client CA bundle needs a new server config; build it
            // before swapping anything, so a bad bundle changes nothing.
            let config = match &self.client_ca {
                Some(ca) => Some(server_config(&self.provider, Some(ca), &self.certificate)?),
                None => None,
            };
            warn_about_validity(&certified, &self.cert_path);
            self.certificate.0.store(Arc::new(certified));
            if let Some(config) = config {
                self.config.store(Arc::new(config));
            }
            Ok(())
        });
        match &outcome {
            Ok(()) => {
                telemetry::tls_reloaded(true);
                self.publish_expiry();
                let summary = self.summary();
                info!(
                    cert = %self.cert_path.display(),
                    serial = summary.as_ref().map(CertificateSummary::serial_hex).unwrap_or_default(),
                    not_after = summary.map(|s| x509::utc_timestamp(s.not_after)).unwrap_or_default(),
                    "TLS certificate reloaded; new handshakes use it"
                );
            }
            Err(error) => {
                telemetry::tls_reloaded(false);
                warn!(%error, "TLS certificate reload failed; still serving the previous certificate");
            }
        }
        Some(outcome)
    }

    fn summary(&self) -> Option<CertificateSummary> {
        let current = self.certificate.0.load();
        CertificateSummary::parse(current.cert.first()?)
    }

    fn publish_expiry(&self) {
        if let Some(summary) = self.summary() {
            telemetry::tls_certificate_expiry(summary.not_after);
        }
    }

    /// Accepts TCP connections until draining starts; each gets its own task
    /// for the handshake and then the HTTP/WebSocket service.
    pub async fn accept_loop(self: Arc<Self>, listener: TcpListener, services: Services) {
        loop {
            let (stream, peer) = tokio::select! {
                () = services.shutdown.draining() => return,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: back off
                        // briefly rather than spinning.
                        warn!(%error, "TLS accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let connection = Arc::clone(&self).serve(stream, peer, services.clone());
            services.shutdown.spawn(connection);
        }
    }

    async fn serve(self: Arc<Self>, stream: TcpStream, peer: SocketAddr, services: Services) {
        let handshake = tokio::time::timeout(
            self.handshake_timeout,
            TlsAcceptor::from(self.config.load_full()).accept(stream),
        );
        let outcome = tokio::select! {
            () = services.shutdown.stopped() => return,
            outcome = handshake => outcome,
        };
        let failure = match outcome {
            Ok(Ok(tls)) => {
                drop(self);
                let transport = Listener::Client { transport: "wss" };
                return server::serve_http(tls, peer, transport, services).await;
            }
            Ok(Err(error)) => {
                let failure = HandshakeFailure::of(&error);
                debug!(%peer, %error, reason = failure.as_str(), "TLS handshake failed");
                failure
            }
            Err(_elapsed) => {
                debug!(%peer, timeout = ?self.handshake_timeout, "TLS handshake timed out");
                HandshakeFailure::Timeout
            }
        };
        telemetry::tls_handshake_failed(failure.as_str());
    }
}

/// Starts the reload triggers of a running TLS listener: SIGHUP always, and
/// changes in the directories of the certificate and key when `watch` is on.
pub(crate) fn spawn_reloaders(
    server: &Arc<TlsServer>,
    watch_files: bool,
    shutdown: &Shutdown,
) -> Result<(), TlsError> {
    if watch_files {
        let files = server.files();
        let watched = Arc::clone(server);
        crate::reload::watch_directories(
            &files,
            "TLS certificate",
            shutdown,
            Arc::new(move || watched.reload_if_changed()),
        )
        .map_err(|(path, error)| TlsError::Watch {
            path,
            reason: error.to_string(),
        })?;
    }
    let signalled = Arc::clone(server);
    crate::reload::on_sighup(
        "TLS certificate",
        shutdown,
        Arc::new(move || {
            let _ = signalled.reload();
        }),
    );
    Ok(())
}

/// What the certificate, key and client CA files held, for [`LastTried`].
fn contents<'a>(
    cert: &'a Result<Vec<u8>, TlsError>,
    key: &'a Result<Vec<u8>, TlsError>,
    client_ca: Option<&'a Result<Vec<u8>, TlsError>>,
) -> impl Iterator<Item = Option<&'a [u8]>> {
    [Some(cert), Some(key), client_ca]
        .into_iter()
        .flatten()
        .map(|file| file.as_deref().ok())
}

/// The rustls server config: TLS 1.3 and 1.2, ALPN http/1.1, the current
/// certificate, and client certificates checked against `client_ca` when set.
fn server_config(
    provider: &Arc<CryptoProvider>,
    client_ca: Option<&Path>,
    certificate: &Arc<CurrentCertificate>,
) -> Result<ServerConfig, TlsError> {
    let builder = ServerConfig::builder_with_provider(Arc::clone(provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match client_ca {
        Some(ca_path) => {
            let roots = load::client_roots(ca_path)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, Arc::clone(provider))
                .build()
                .map_err(|error| TlsError::ClientCa {
                    path: ca_path.to_owned(),
                    reason: error.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::clone(certificate) as _);
    config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
    Ok(config)
}

fn warn_about_validity(certified: &CertifiedKey, path: &Path) {
    let Some(summary) = certified
        .cert
        .first()
        .and_then(|der| CertificateSummary::parse(der))
    else {
        return;
    };
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    match summary.validity_at(now) {
        Validity::Valid => {}
        Validity::Expired => warn!(
            cert = %path.display(),
            not_after = x509::utc_timestamp(summary.not_after),
            "the TLS certificate has expired; clients will refuse it"
        ),
        Validity::NotYetValid => warn!(
            cert = %path.display(),
            not_before = x509::utc_timestamp(summary.not_before),
            "the TLS certificate is not valid yet; clients will refuse it"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair};

    #[test]
    fn an_expired_certificate_still_loads_with_a_warning() {
        let dir = std::env::temp_dir().join(format!("tickgate-tls-expired-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(vec!["localhost".into()]).expect("params");
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let cert = params.self_signed(&key).expect("cert");
        let (cert_path, key_path) = (dir.join("old.pem"), dir.join("old-key.pem"));
        std::fs::write(&cert_path, cert.pem()).expect("cert");
        std::fs::write(&key_path, key.serialize_pem()).expect("key");
        let server = TlsServer::new(&TlsConfig {
            cert: Some(cert_path),
            key: Some(key_path),
            ..TlsConfig::default()
        })
        .expect("an expired certificate is served; clients decide");
        let summary = server.summary().expect("summary");
        assert_eq!(
            x509::utc_timestamp(summary.not_after),
            "2021-01-01T00:00:00Z"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn handshake_failures_fall_into_the_documented_reasons() {
        let wrap = |error: rustls::Error| io::Error::new(io::ErrorKind::InvalidData, error);
        let cases = [
            (
                wrap(rustls::Error::AlertReceived(AlertDescription::UnknownCA)),
                HandshakeFailure::Certificate,
            ),
            (
                wrap(rustls::Error::NoCertificatesPresented),
                HandshakeFailure::Certificate,
            ),
            (
                wrap(rustls::Error::InvalidMessage(
                    rustls::InvalidMessage::InvalidContentType,
                )),
                HandshakeFailure::Protocol,
            ),
            (
                io::Error::from(io::ErrorKind::UnexpectedEof),
                HandshakeFailure::Io,
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(HandshakeFailure::of(&error), expected, "{error}");
        }
    }
}
