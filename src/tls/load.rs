//! Reading PEM files into what rustls serves: the certificate chain and
//! private key (RSA, ECDSA or Ed25519; PKCS#8, PKCS#1 or SEC1), and the
//! client CA bundle for mutual TLS. Every error names the file at fault.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls::{InconsistentKeys, RootCertStore};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why TLS material could not be loaded. Each variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file does not exist.
    #[error("TLS file {} does not exist", .path.display())]
    Missing { path: PathBuf },
    /// The file exists but cannot be read (permissions, a directory, I/O).
    #[error("cannot read TLS file {}: {source}", .path.display())]
    Unreadable { path: PathBuf, source: io::Error },
    /// The certificate file holds no `CERTIFICATE` PEM block.
    #[error("{} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)", .path.display())]
    NoCertificate { path: PathBuf },
    /// The key file holds no private key PEM block.
    #[error("{} holds no private key (expected -----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY)", .path.display())]
    NoKey { path: PathBuf },
    /// A PEM block is malformed (bad base64, missing END line).
    #[error("{} is not valid PEM: {reason}", .path.display())]
    BadPem { path: PathBuf, reason: String },
    /// The key parses as PEM but rustls cannot sign with it.
    #[error("{}: unsupported or damaged private key: {reason}", .path.display())]
    BadKey { path: PathBuf, reason: String },
    /// The first certificate cannot be parsed.
    #[error("{}: unusable certificate: {reason}", .path.display())]
    BadCertificate { path: PathBuf, reason: String },
    /// The private key is not the one the certificate was issued for.
    #[error("private key {} does not match the certificate in {}", .key.display(), .cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    /// The client CA bundle cannot be used to verify client certificates.
    #[error("client CA bundle {}: {reason}", .path.display())]
    ClientCa { path: PathBuf, reason: String },
    /// `tls.cert` or `tls.key` is not set.
    #[error("TLS needs both tls.cert and tls.key")]
    NotConfigured,
    /// rustls refused the settings (should not happen with tickgate's own).
    #[error("TLS settings refused: {0}")]
    Settings(#[from] rustls::Error),
    /// The certificate directory cannot be watched for changes.
    #[error("cannot watch {} for certificate changes: {reason}", .path.display())]
    Watch { path: PathBuf, reason: String },
}

/// Reads a file, telling "missing" apart from "unreadable".
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => TlsError::Missing {
            path: path.to_owned(),
        },
        _ => TlsError::Unreadable {
            path: path.to_owned(),
            source,
        },
    })
}

/// Every `CERTIFICATE` block of a PEM file, in order; at least one.
pub(crate) fn certificates(
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| bad_pem(path, &error))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(chain)
}

/// Loads a certificate chain and its private key from PEM bytes and checks
/// that they belong together.
pub(crate) fn certified_key(
    cert_path: &Path,
    cert_pem: &[u8],
    key_path: &Path,
    key_pem: &[u8],
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = certificates(cert_path, cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|error| match error {
        pem::Error::NoItemsFound => TlsError::NoKey {
            path: key_path.to_owned(),
        },
        other => bad_pem(key_path, &other),
    })?;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|error| TlsError::BadKey {
            path: key_path.to_owned(),
            reason: error.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // Unknown: the key type cannot expose its public half; rustls
        // itself accepts that.
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::KeyMismatch {
                cert: cert_path.to_owned(),
                key: key_path.to_owned(),
            })
        }
        Err(error) => Err(TlsError::BadCertificate {
            path: cert_path.to_owned(),
            reason: error.to_string(),
        }),
    }
}

/// The CAs whose client certificates are accepted (mutual TLS).
pub(crate) fn client_roots(path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let pem = read(path)?;
    let mut roots = RootCertStore::empty();
    for certificate in certificates(path, &pem)? {
        roots.add(certificate).map_err(|error| TlsError::ClientCa {
            path: path.to_owned(),
            reason: error.to_string(),
        })?;
    }
    Ok(Arc::new(roots))
}

fn bad_pem(path: &Path, error: &pem::Error) -> TlsError {
    TlsError::BadPem {
        path: path.to_owned(),
        reason: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::x509::tlv;
    use rcgen::{CertificateParams, KeyPair, SignatureAlgorithm};

    /// A fresh directory under the system temp dir, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir()
                .join(format!("tickgate-tls-load-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("scratch dir");
            Self(dir)
        }

        fn write(&self, name: &str, contents: &str) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, contents).expect("write");
            path
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn provider() -> CryptoProvider {
        rustls::crypto::aws_lc_rs::default_provider()
    }

    fn cert_and_key(alg: &'static SignatureAlgorithm) -> (String, KeyPair) {
        let key = KeyPair::generate_for(alg).expect("key");
        let cert = CertificateParams::new(vec!["localhost".into()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        (cert.pem(), key)
    }

    /// The inner key of a PKCS#8 document: PKCS#1 for RSA, SEC1 for ECDSA.
    fn unwrap_pkcs8(pkcs8: &[u8]) -> Vec<u8> {
        let (_, info, _) = tlv(pkcs8).expect("PrivateKeyInfo");
        let (_, _version, rest) = tlv(info).expect("version");
        let (_, _algorithm, rest) = tlv(rest).expect("algorithm");
        let (tag, inner, _) = tlv(rest).expect("privateKey");
        assert_eq!(tag, 0x04, "OCTET STRING");
        inner.to_vec()
    }

    fn pem_block(label: &str, der: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
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
        let lines: Vec<&str> = text
            .as_bytes()
            .chunks(64)
            .map(|line| std::str::from_utf8(line).expect("ascii"))
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }

    fn load(scratch: &Scratch, cert: &str, key: &str) -> Result<CertifiedKey, TlsError> {
        let cert_path = scratch.write("cert.pem", cert);
        let key_path = scratch.write("key.pem", key);
        certified_key(
            &cert_path,
            &read(&cert_path)?,
            &key_path,
            &read(&key_path)?,
            &provider(),
        )
    }

    #[test]
    fn loads_ecdsa_ed25519_and_rsa_keys_in_every_encoding() {
        let scratch = Scratch::new("encodings");
        let (ecdsa_cert, ecdsa_key) = cert_and_key(&rcgen::PKCS_ECDSA_P256_SHA256);
        let (p384_cert, p384_key) = cert_and_key(&rcgen::PKCS_ECDSA_P384_SHA384);
        let (ed_cert, ed_key) = cert_and_key(&rcgen::PKCS_ED25519);
        let (rsa_cert, rsa_key) = cert_and_key(&rcgen::PKCS_RSA_SHA256);
        let cases = [
            ("ECDSA P-256 PKCS#8", &ecdsa_cert, ecdsa_key.serialize_pem()),
            (
                "ECDSA P-256 SEC1",
                &ecdsa_cert,
                pem_block("EC PRIVATE KEY", &unwrap_pkcs8(&ecdsa_key.serialize_der())),
            ),
            ("ECDSA P-384 PKCS#8", &p384_cert, p384_key.serialize_pem()),
            (
                "ECDSA P-384 SEC1",
                &p384_cert,
                pem_block("EC PRIVATE KEY", &unwrap_pkcs8(&p384_key.serialize_der())),
            ),
            ("Ed25519 PKCS#8", &ed_cert, ed_key.serialize_pem()),
            ("RSA PKCS#8", &rsa_cert, rsa_key.serialize_pem()),
            (
                "RSA PKCS#1",
                &rsa_cert,
                pem_block("RSA PRIVATE KEY", &unwrap_pkcs8(&rsa_key.serialize_der())),
            ),
        ];
        for (name, cert, key) in cases {
            let loaded = load(&scratch, cert, &key).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(loaded.cert.len(), 1, "{name}");
        }
    }

    #[test]
    fn a_missing_file_is_named() {
        let path = Path::new("/nonexistent/tickgate/server.pem");
        let error = read(path).expect_err("missing");
        assert!(matches!(error, TlsError::Missing { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            "TLS file /nonexistent/tickgate/server.pem does not exist"
        );
    }

    #[test]
    fn an_unreadable_file_is_named() {
        // A directory stands in for an unreadable file: permissions do not
        // stop root, which tests may run as.
        let scratch = Scratch::new("unreadable");
        let error = read(&scratch.0).expect_err("a directory");
        assert!(matches!(error, TlsError::Unreadable { .. }), "{error:?}");
        assert!(
            error.to_string().contains(&scratch.0.display().to_string()),
            "{error}"
        );
    }

    #[test]
    fn a_key_file_without_a_key_is_named() {
        let scratch = Scratch::new("nokey");
        let (cert, _) = cert_and_key(&rcgen::PKCS_ECDSA_P256_SHA256);
        // A classic mix-up: the certificate given as the key.
        let error = load(&scratch, &cert, &cert).expect_err("no key");
        assert!(matches!(error, TlsError::NoKey { .. }), "{error:?}");
        assert!(error.to_string().contains("key.pem"), "{error}");
        assert!(
            error.to_string().contains("holds no private key"),
            "{error}"
        );
    }

    #[test]
    fn a_certificate_file_without_a_certificate_is_named() {
        let scratch = Scratch::new("nocert");
        let (_, key) = cert_and_key(&rcgen::PKCS_ECDSA_P256_SHA256);
        let error =
            load(&scratch, &key.serialize_pem(), &key.serialize_pem()).expect_err("no cert");
        assert!(matches!(error, TlsError::NoCertificate { .. }), "{error:?}");
        assert!(error.to_string().contains("cert.pem"), "{error}");
    }

    #[test]
    fn broken_pem_is_named() {
        let scratch = Scratch::new("badpem");
        let (_, key) = cert_and_key(&rcgen::PKCS_ECDSA_P256_SHA256);
        let broken = "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n";
        let error = load(&scratch, broken, &key.serialize_pem()).expect_err("bad pem");
        assert!(matches!(error, TlsError::BadPem { .. }), "{error:?}");
        assert!(error.to_string().contains("cert.pem"), "{error}");
    }

    #[test]
    fn a_key_that_does_not_match_the_certificate_names_both_files() {
        let scratch = Scratch::new("mismatch");
        let (cert, _) = cert_and_key(&rcgen::PKCS_ECDSA_P256_SHA256);
        let other = KeyPair::generate().expect("key");
        let error = load(&scratch, &cert, &other.serialize_pem()).expect_err("mismatch");
        assert!(matches!(error, TlsError::KeyMismatch { .. }), "{error:?}");
        let message = error.to_string();
        assert!(
            message.contains("key.pem") && message.contains("cert.pem"),
            "{message}"
        );
    }

    #[test]
    fn a_client_ca_bundle_without_certificates_is_named() {
        let scratch = Scratch::new("clientca");
        let path = scratch.write("ca.pem", "nothing here\n");
        let error = client_roots(&path).expect_err("empty bundle");
        assert!(matches!(error, TlsError::NoCertificate { .. }), "{error:?}");
        assert!(error.to_string().contains("ca.pem"), "{error}");
    }
}
