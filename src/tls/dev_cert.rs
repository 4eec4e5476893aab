//! `tickgate dev-cert`: a development CA and a `localhost` server
//! certificate signed by it, so `wss://localhost` works in minutes.
//!
//! The CA is name-constrained to `localhost` and the loopback addresses: a
//! browser that trusts it trusts nothing else, even if `ca-key.pem` leaks.
//! Running the command again reuses the CA in the directory (so a CA already
//! trusted stays trusted) and issues a fresh server certificate.

use std::io::Write;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DnType, ExtendedKeyUsagePurpose,
    GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose, NameConstraints,
};
use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// Names the server certificate is valid for.
pub const SERVER_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];
/// Validity of the development CA.
const CA_DAYS: i64 = 3_650;
/// Validity of the server certificate: under the 398 days browsers accept.
const SERVER_DAYS: i64 = 397;
const CA_COMMON_NAME: &str = "tickgate development CA";

/// What [`write`] produced.
#[derive(Debug, Clone)]
pub struct DevCertFiles {
    /// The CA certificate to trust.
    pub ca: PathBuf,
    /// The CA's private key (0600).
    pub ca_key: PathBuf,
    /// The server certificate chain.
    pub server: PathBuf,
    /// The server's private key (0600).
    pub server_key: PathBuf,
    /// Whether an existing CA in the directory was reused.
    pub ca_reused: bool,
    /// End of the server certificate's validity, seconds since the epoch.
    pub server_not_after: i64,
}

/// Why development certificates could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DevCertError {
    /// A file or the directory could not be read, created or written.
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Only one of `ca.pem` and `ca-key.pem` exists.
    #[error(
        "{} exists without {}: remove it or pass --new-ca",
        .present.display(),
        .absent.display()
    )]
    HalfCa { present: PathBuf, absent: PathBuf },
    /// The CA in the directory cannot sign a certificate that verifies.
    #[error("cannot issue with the CA in {}: {reason}; pass --new-ca to replace it", .path.display())]
    ForeignCa { path: PathBuf, reason: String },
    /// rcgen refused to build a certificate.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
}

/// Writes `ca.pem`, `ca-key.pem`, `server.pem` and `server-key.pem` into
/// `dir` (created if needed). An existing CA there is reused unless
/// `new_ca` is set.
pub fn write(dir: &Path, new_ca: bool) -> Result<DevCertFiles, DevCertError> {
    std::fs::create_dir_all(dir).map_err(|source| io_error(dir, source))?;
    let files = DevCertFiles {
        ca: dir.join("ca.pem"),
        ca_key: dir.join("ca-key.pem"),
        server: dir.join("server.pem"),
        server_key: dir.join("server-key.pem"),
        ca_reused: false,
        server_not_after: 0,
    };
    let now = time::OffsetDateTime::now_utc();
    let (issuer, ca_pem, ca_reused) = match (new_ca, files.ca.exists(), files.ca_key.exists()) {
        (false, true, true) => {
            let (issuer, ca_pem) = existing_ca(&files)?;
            (issuer, ca_pem, true)
        }
        (false, true, false) | (false, false, true) => {
            let (present, absent) = if files.ca.exists() {
                (files.ca.clone(), files.ca_key.clone())
            } else {
                (files.ca_key.clone(), files.ca.clone())
            };
            return Err(DevCertError::HalfCa { present, absent });
        }
        _ => {
            let key = KeyPair::generate()?;
            let mut params = ca_params();
            params.not_before = now - time::Duration::hours(1);
            params.not_after = now + time::Duration::days(CA_DAYS);
            let ca_pem = params.self_signed(&key)?.pem();
            write_file(&files.ca, ca_pem.as_bytes(), false)?;
            write_file(&files.ca_key, key.serialize_pem().as_bytes(), true)?;
            (Issuer::new(params, key), ca_pem, false)
        }
    };

    let server_key = KeyPair::generate()?;
    let mut params = CertificateParams::new(
        SERVER_NAMES
            .iter()
            .map(|n| (*n).to_owned())
            .collect::<Vec<_>>(),
    )?;
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(SERVER_DAYS);
    let server = params.signed_by(&server_key, &issuer)?;
    if ca_reused {
        verify_against_ca(&files.ca, &ca_pem, server.der())?;
    }
    write_file(&files.server, server.pem().as_bytes(), false)?;
    write_file(
        &files.server_key,
        server_key.serialize_pem().as_bytes(),
        true,
    )?;
    Ok(DevCertFiles {
        ca_reused,
        server_not_after: params.not_after.unix_timestamp(),
        ..files
    })
}

/// The CA's fixed subject and constraints. A reused CA is rebuilt from these
/// plus its key, which is all an issuer needs.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, CA_COMMON_NAME);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "tickgate development");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.name_constraints = Some(NameConstraints {
        permitted_subtrees: vec![
            GeneralSubtree::DnsName("localhost".into()),
            GeneralSubtree::IpAddress(CidrSubnet::from_v4_prefix([127, 0, 0, 0], 8)),
            GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(
                IpAddr::V6(Ipv6Addr::LOCALHOST),
                128,
            )),
        ],
        excluded_subtrees: Vec::new(),
    });
    params
}

fn existing_ca(files: &DevCertFiles) -> Result<(Issuer<'static, KeyPair>, String), DevCertError> {
    let ca_pem =
        std::fs::read_to_string(&files.ca).map_err(|source| io_error(&files.ca, source))?;
    let key_pem =
        std::fs::read_to_string(&files.ca_key).map_err(|source| io_error(&files.ca_key, source))?;
    let key = KeyPair::from_pem(&key_pem).map_err(|error| DevCertError::ForeignCa {
        path: files.ca_key.clone(),
        reason: error.to_string(),
    })?;
    Ok((Issuer::new(ca_params(), key), ca_pem))
}

/// Proves a certificate issued by a reused CA chains to `ca.pem` for every
/// server name (the CA may not be one `dev-cert` made).
fn verify_against_ca(
    ca_path: &Path,
    ca_pem: &str,
    server: &CertificateDer<'_>,
) -> Result<(), DevCertError> {
    let foreign = |reason: String| DevCertError::ForeignCa {
        path: ca_path.to_owned(),
        reason,
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    let ca = super::load::certificates(ca_path, ca_pem.as_bytes())
        .map_err(|error| foreign(error.to_string()))?;
    for certificate in ca {
        roots
            .add(certificate)
            .map_err(|error| foreign(error.to_string()))?;
    }
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|error| foreign(error.to_string()))?;
    for name in SERVER_NAMES {
        let name = ServerName::try_from(name).map_err(|error| foreign(error.to_string()))?;
        verifier
            .verify_server_cert(server, &[], &name, &[], UnixTime::now())
            .map_err(|error| foreign(error.to_string()))?;
    }
    Ok(())
}

/// Writes a file whole; keys are created readable by the owner only.
fn write_file(path: &Path, contents: &[u8], private: bool) -> Result<(), DevCertError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        if private {
            options.mode(0o600);
        }
        let mut file = options
            .open(path)
            .map_err(|source| io_error(path, source))?;
        if private {
            // An existing file keeps its old mode through open(): set it.
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(|source| io_error(path, source))?;
        }
        file.write_all(contents)
            .map_err(|source| io_error(path, source))
    }
    #[cfg(not(unix))]
    {
        let _ = private;
        let mut file = options
            .open(path)
            .map_err(|source| io_error(path, source))?;
        file.write_all(contents)
            .map_err(|source| io_error(path, source))
    }
}

fn io_error(path: &Path, source: std::io::Error) -> DevCertError {
    DevCertError::Io {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TlsConfig;
    use crate::tls::TlsServer;
    use crate::tls::x509::CertificateSummary;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("tickgate-dev-cert-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn serve(files: &DevCertFiles) -> TlsServer {
        TlsServer::new(&TlsConfig {
            cert: Some(files.server.clone()),
            key: Some(files.server_key.clone()),
            ..TlsConfig::default()
        })
        .expect("dev certificate loads")
    }

    #[test]
    fn writes_a_ca_and_a_server_certificate_that_load_and_verify() {
        let dir = scratch("fresh");
        let files = write(&dir, false).expect("written");
        assert!(!files.ca_reused);
        let server = serve(&files);
        let chain = server.current_chain();
        let ca_pem = std::fs::read_to_string(&files.ca).expect("ca.pem");
        verify_against_ca(&files.ca, &ca_pem, &chain[0]).expect("chains to ca.pem");
        let summary = CertificateSummary::parse(&chain[0]).expect("parses");
        assert!(summary.not_after - summary.not_before <= (SERVER_DAYS + 1) * 86_400);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for key in [&files.ca_key, &files.server_key] {
                let mode = std::fs::metadata(key).expect("key").permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{}", key.display());
            }
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_second_run_keeps_the_ca_and_issues_a_new_server_certificate() {
        let dir = scratch("again");
        let first = write(&dir, false).expect("first");
        let ca_before = std::fs::read(&first.ca).expect("ca");
        let server_before = std::fs::read(&first.server).expect("server");
        let second = write(&dir, false).expect("second");
        assert!(second.ca_reused);
        assert_eq!(std::fs::read(&second.ca).expect("ca"), ca_before);
        assert_ne!(
            std::fs::read(&second.server).expect("server"),
            server_before
        );
        let third = write(&dir, true).expect("new CA");
        assert!(!third.ca_reused);
        assert_ne!(std::fs::read(&third.ca).expect("ca"), ca_before);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_ca_without_its_key_is_refused() {
        let dir = scratch("half");
        let files = write(&dir, false).expect("written");
        std::fs::remove_file(&files.ca_key).expect("remove key");
        let error = write(&dir, false).expect_err("half a CA");
        assert!(matches!(error, DevCertError::HalfCa { .. }), "{error:?}");
        assert!(error.to_string().contains("ca-key.pem"), "{error}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_foreign_ca_is_refused_rather_than_used() {
        let dir = scratch("foreign");
        let files = write(&dir, false).expect("written");
        // Another CA's certificate beside our key: what we issue would not
        // chain to ca.pem.
        let other = write(&scratch("foreign-other"), false).expect("other");
        std::fs::copy(&other.ca, &files.ca).expect("copy");
        let error = write(&dir, false).expect_err("foreign CA");
        assert!(matches!(error, DevCertError::ForeignCa { .. }), "{error:?}");
        let _ = std::fs::remove_dir_all(dir);
        let _ = std::fs::remove_dir_all(scratch("foreign-other"));
    }
}
