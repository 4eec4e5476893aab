//! Reading verification keys: which files, their contents, JWKS parsing,
//! and how `jsonwebtoken` errors map onto [`AuthError`].

use std::path::PathBuf;

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};

use super::{AuthConfig, AuthError, VerifyKey};

/// The files the keys of `config` are read from.
pub(super) fn key_files(config: &AuthConfig) -> Vec<PathBuf> {
    config
        .hs256_secret_file
        .iter()
        .chain(&config.public_key_files)
        .chain(&config.jwks_file)
        .cloned()
        .collect()
}

pub(super) fn read_all(paths: &[PathBuf]) -> Vec<std::io::Result<Vec<u8>>> {
    paths.iter().map(std::fs::read).collect()
}

/// What the key files held, for [`LastTried`].
pub(super) fn contents(files: &[std::io::Result<Vec<u8>>]) -> impl Iterator<Item = Option<&[u8]>> {
    files.iter().map(|file| file.as_deref().ok())
}

pub(super) fn jwks_keys(text: &str) -> Result<Vec<VerifyKey>, String> {
    let set: JwkSet = serde_json::from_str(text).map_err(|e| format!("not a JWKS: {e}"))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        let implied = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
            AlgorithmParameters::OctetKey(_) => Algorithm::HS256,
            AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
            _ => return Err(format!("key {:?}: unsupported key type", jwk.common.key_id)),
        };
        let algorithm = match jwk.common.key_algorithm {
            Some(alg) => Algorithm::try_from(alg)
                .map_err(|_| format!("key {:?}: unsupported alg", jwk.common.key_id))?,
            None => implied,
        };
        let key =
            DecodingKey::from_jwk(jwk).map_err(|e| format!("key {:?}: {e}", jwk.common.key_id))?;
        if key.family() != algorithm.family() {
            return Err(format!(
                "key {:?}: alg {algorithm:?} does not fit the key type",
                jwk.common.key_id
            ));
        }
        keys.push(VerifyKey {
            kid: jwk.common.key_id.clone(),
            algorithm,
            key,
        });
    }
    Ok(keys)
}

pub(super) fn map_error(error: &jsonwebtoken::errors::Error) -> AuthError {
    use jsonwebtoken::errors::ErrorKind as K;
    match error.kind() {
        K::InvalidSignature => AuthError::Signature,
        K::ExpiredSignature => AuthError::Expired,
        K::ImmatureSignature => AuthError::NotYetValid,
        K::InvalidIssuer | K::InvalidAudience | K::InvalidSubject => AuthError::Claims,
        K::MissingRequiredClaim(claim) if claim == "iss" || claim == "aud" => AuthError::Claims,
        K::InvalidAlgorithm | K::MissingAlgorithm | K::UnsupportedAlgorithm => AuthError::Algorithm,
        K::InvalidEcdsaKey | K::InvalidRsaKey(_) | K::InvalidKeyFormat => AuthError::Signature,
        _ => AuthError::Malformed,
    }
}

/// Whether the token's header parses as JSON but names an algorithm that
/// `jsonwebtoken` does not know (`none`, `HS1`, …).
pub(super) fn header_names_unknown_alg(token: &str) -> bool {
    use base64::Engine as _;
    let Some(first) = token.split('.').next() else {
        return false;
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(first) else {
        return false;
    };
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .is_some_and(|v| v.get("alg").is_some_and(|alg| alg.is_string()))
}
