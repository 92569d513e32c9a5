//! Immutable verification key sets built from a JWKS document or PEM public keys.
//!
//! Entries that cannot verify signatures — `use: enc` (Keycloak publishes an RSA-OAEP key),
//! unknown `kty`, unknown `alg`, bad parameters — are skipped and reported, never failing the
//! set. Each key carries the algorithms it may verify: its own `alg` when the JWK names one,
//! else its family's (RSA: RS*/PS*; EC by curve; OKP Ed25519: EdDSA). A token's algorithm must
//! be one of them, so an RSA public key can never be used as an HMAC secret.

use super::parsed_keys::ParsedKeys;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

/// One usable key.
pub struct VerificationKey {
    pub kid: Option<String>,
    pub key: DecodingKey,
    pub algorithms: Vec<Algorithm>,
    /// The key parsed once for each asymmetric algorithm (see [`super::parsed_keys`]).
    pub parsed: ParsedKeys,
}

impl VerificationKey {
    fn new(kid: Option<String>, key: DecodingKey, algorithms: Vec<Algorithm>) -> Self {
        let parsed = ParsedKeys::build(&key, &algorithms);
        VerificationKey {
            kid,
            key,
            algorithms,
            parsed,
        }
    }
}

/// A provider's keys at one point in time.
#[derive(Default)]
pub struct KeySet {
    pub keys: Vec<VerificationKey>,
}

/// Why an entry was skipped, for a log line.
pub type SkippedEntry = String;

/// Why a whole key source is unusable: a JWKS document that is not JSON or has no `keys`
/// array, or a PEM text without a public key. (Single unusable JWKS entries are skipped
/// instead, see [`UnusableKey`].)
#[derive(Debug, thiserror::Error)]
pub enum KeySetError {
    #[error("the JWKS is not valid JSON: {0}")]
    JwksNotJson(serde_json::Error),
    #[error("the JWKS has no `keys` array")]
    JwksWithoutKeys,
    #[error("the PEM holds no RSA, EC or Ed25519 public key")]
    PemWithoutPublicKey,
}

/// Why one JWKS entry cannot verify signatures; the entry is skipped and reported, the rest
/// of the set is kept.
#[derive(Debug, thiserror::Error)]
enum UnusableKey {
    /// `use` is something else than `sig` (Keycloak's `enc` key).
    #[error("`use: {0}` is not a signing key")]
    NotForSigning(String),
    #[error("unsupported EC curve {0:?}")]
    UnsupportedEcCurve(Option<String>),
    #[error("unsupported OKP curve {0:?}")]
    UnsupportedOkpCurve(Option<String>),
    /// `kty: oct`: HMAC secrets come only from `shared_secret`.
    #[error("symmetric keys are never taken from a JWKS")]
    Symmetric,
    #[error("unknown kty `{0}`")]
    UnknownKeyType(String),
    #[error("unknown or non-signing alg `{0}`")]
    UnknownAlgorithm(String),
    #[error("alg `{alg}` does not fit kty `{kty}`")]
    AlgorithmDoesNotFitKeyType { alg: String, kty: String },
    /// The entry does not deserialize as a JWK.
    #[error("bad parameters: {0}")]
    BadParameters(serde_json::Error),
    /// The JWK's key material is unusable.
    #[error("bad key: {0}")]
    BadKey(jsonwebtoken::errors::Error),
}

const RSA_ALGORITHMS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

impl KeySet {
    /// Parses a JWKS document, keeping every usable signing key.
    pub fn from_jwks(document: &[u8]) -> Result<(KeySet, Vec<SkippedEntry>), KeySetError> {
        let value: Value = serde_json::from_slice(document).map_err(KeySetError::JwksNotJson)?;
        let entries = value
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(KeySetError::JwksWithoutKeys)?;
        let mut set = KeySet::default();
        let mut skipped = Vec::new();
        for entry in entries {
            let kid = entry.get("kid").and_then(Value::as_str).map(str::to_owned);
            let label = kid.clone().unwrap_or_else(|| "(no kid)".into());
            match parse_entry(entry) {
                Ok((key, algorithms)) => set.keys.push(VerificationKey::new(kid, key, algorithms)),
                Err(reason) => skipped.push(format!("key {label}: {reason}")),
            }
        }
        Ok((set, skipped))
    }

    /// PEM public keys (RSA, EC or Ed25519), or an HMAC secret.
    pub fn from_pem(pem: &str) -> Result<KeySet, KeySetError> {
        let bytes = pem.as_bytes();
        type Parser = fn(&[u8]) -> jsonwebtoken::errors::Result<DecodingKey>;
        let attempts: [(Parser, Vec<Algorithm>); 3] = [
            (DecodingKey::from_rsa_pem, RSA_ALGORITHMS.to_vec()),
            (
                DecodingKey::from_ec_pem,
                vec![Algorithm::ES256, Algorithm::ES384],
            ),
            (DecodingKey::from_ed_pem, vec![Algorithm::EdDSA]),
        ];
        for (parse, algorithms) in attempts {
            if let Ok(key) = parse(bytes) {
                return Ok(KeySet {
                    keys: vec![VerificationKey::new(None, key, algorithms)],
                });
            }
        }
        Err(KeySetError::PemWithoutPublicKey)
    }

    /// An HMAC key for HS256/384/512 (only with an explicitly configured shared secret).
    pub fn add_shared_secret(&mut self, secret: &[u8]) {
        if let Ok(key) = DecodingKey::from_secret(secret) {
            let algorithms = vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
            self.keys.push(VerificationKey::new(None, key, algorithms));
        }
    }

    /// The key for a token: by `kid` when it has one; without `kid`, the only key able to
    /// verify `algorithm`, if exactly one is.
    pub fn find(&self, kid: Option<&str>, algorithm: Algorithm) -> KeyLookup<'_> {
        match kid {
            Some(kid) => match self.keys.iter().find(|k| k.kid.as_deref() == Some(kid)) {
                Some(key) if key.algorithms.contains(&algorithm) => KeyLookup::Found(key),
                Some(_) => KeyLookup::AlgorithmMismatch,
                None => {
                    // Keys without kid (PEM, shared secret) still verify tokens that name one.
                    let mut anonymous = self
                        .keys
                        .iter()
                        .filter(|k| k.kid.is_none() && k.algorithms.contains(&algorithm));
                    match (anonymous.next(), anonymous.next()) {
                        (Some(key), None) => KeyLookup::Found(key),
                        _ => KeyLookup::UnknownKid,
                    }
                }
            },
            None => {
                let mut candidates = self
                    .keys
                    .iter()
                    .filter(|k| k.algorithms.contains(&algorithm));
                match (candidates.next(), candidates.next()) {
                    (Some(key), None) => KeyLookup::Found(key),
                    (None, _) => KeyLookup::AlgorithmMismatch,
                    (Some(_), Some(_)) => KeyLookup::UnknownKid,
                }
            }
        }
    }

    pub fn contains_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| (&k.kid, &k.algorithms)))
            .finish()
    }
}

/// The outcome of [`KeySet::find`].
pub enum KeyLookup<'a> {
    Found(&'a VerificationKey),
    UnknownKid,
    /// The key exists but may not verify this algorithm (alg/kty confusion).
    AlgorithmMismatch,
}

fn parse_entry(entry: &Value) -> Result<(DecodingKey, Vec<Algorithm>), UnusableKey> {
    match entry.get("use").and_then(Value::as_str) {
        None | Some("sig") => {}
        Some(other) => return Err(UnusableKey::NotForSigning(other.to_owned())),
    }
    let kty = entry.get("kty").and_then(Value::as_str).unwrap_or_default();
    let family: Vec<Algorithm> = match kty {
        "RSA" => RSA_ALGORITHMS.to_vec(),
        "EC" => match entry.get("crv").and_then(Value::as_str) {
            Some("P-256") => vec![Algorithm::ES256],
            Some("P-384") => vec![Algorithm::ES384],
            other => return Err(UnusableKey::UnsupportedEcCurve(other.map(str::to_owned))),
        },
        "OKP" => match entry.get("crv").and_then(Value::as_str) {
            Some("Ed25519") => vec![Algorithm::EdDSA],
            other => return Err(UnusableKey::UnsupportedOkpCurve(other.map(str::to_owned))),
        },
        "oct" => return Err(UnusableKey::Symmetric),
        other => return Err(UnusableKey::UnknownKeyType(other.to_owned())),
    };
    let algorithms = match entry.get("alg").and_then(Value::as_str) {
        None => family,
        Some(alg) => {
            let algorithm: Algorithm = alg
                .parse()
                .map_err(|_| UnusableKey::UnknownAlgorithm(alg.to_owned()))?;
            if !family.contains(&algorithm) {
                return Err(UnusableKey::AlgorithmDoesNotFitKeyType {
                    alg: alg.to_owned(),
                    kty: kty.to_owned(),
                });
            }
            vec![algorithm]
        }
    };
    let jwk: Jwk = serde_json::from_value(entry.clone()).map_err(UnusableKey::BadParameters)?;
    let key = DecodingKey::from_jwk(&jwk).map_err(UnusableKey::BadKey)?;
    Ok((key, algorithms))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA_N: &str = "u1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0_IzW7yWR7QkrmBL7jTKEn5u-qKhbwKfBstIs-bMY2Zkp18gnTxKLxoS2tFczGkPLPgizskuemMghRniWaoLcyehkd3qqGElvW_VDL5AaWTg0nLVkjRo9z-40RQzuVaE8AkAFmxZzow3x-VJYKdjykkJ0iT9wCS0DRTXu269V264Vf_3jvredZiKRkgwlL9xNAwxXFg0x_XFw005UWVRIkdgcKWTjpBP2dPwVZ4WWC-9aGVd-Gyn1o0CLelf4rEjGoXbAAEgAqeGUxrcIlbjXfbcmw";

    fn jwks(entries: serde_json::Value) -> Vec<u8> {
        serde_json::json!({ "keys": entries })
            .to_string()
            .into_bytes()
    }

    #[test]
    fn keycloak_jwks_keeps_the_signing_key_and_skips_the_enc_key() {
        let document = jwks(serde_json::json!([
            { "kid": "sig-1", "kty": "RSA", "alg": "RS256", "use": "sig", "n": RSA_N, "e": "AQAB" },
            { "kid": "enc-1", "kty": "RSA", "alg": "RSA-OAEP", "use": "enc", "n": RSA_N, "e": "AQAB" },
        ]));
        let (set, skipped) = KeySet::from_jwks(&document).unwrap();
        assert_eq!(set.len(), 1);
        assert!(set.contains_kid("sig-1"));
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].contains("enc-1") && skipped[0].contains("use: enc"));
    }

    #[test]
    fn junk_entries_are_skipped_not_fatal() {
        let document = jwks(serde_json::json!([
            { "kid": "a", "kty": "XYZ" },
            { "kid": "b", "kty": "RSA", "alg": "HS256", "n": RSA_N, "e": "AQAB" },
            { "kid": "c", "kty": "RSA", "n": 42 },
            { "kid": "d", "kty": "oct", "k": "c2VjcmV0" },
            { "kid": "e", "kty": "EC", "crv": "P-521", "x": "", "y": "" },
            { "kid": "ok", "kty": "RSA", "n": RSA_N, "e": "AQAB" },
        ]));
        let (set, skipped) = KeySet::from_jwks(&document).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(skipped.len(), 5);
        let KeyLookup::Found(key) = set.find(Some("ok"), Algorithm::PS256) else {
            panic!()
        };
        assert_eq!(key.algorithms.len(), 6);
    }

    #[test]
    fn malformed_documents_are_errors() {
        assert!(KeySet::from_jwks(b"not json")
            .unwrap_err()
            .to_string()
            .contains("not valid JSON"));
        assert!(KeySet::from_jwks(b"{}")
            .unwrap_err()
            .to_string()
            .contains("no `keys`"));
    }

    #[test]
    fn key_set_error_explains_an_unusable_pem() {
        assert_eq!(
            KeySet::from_pem("not a key").unwrap_err().to_string(),
            "the PEM holds no RSA, EC or Ed25519 public key"
        );
    }

    #[test]
    fn unusable_key_explains_the_skip() {
        let error = parse_entry(&serde_json::json!({ "kid": "x", "kty": "EC", "crv": "P-521" }))
            .err()
            .unwrap();
        assert_eq!(error.to_string(), r#"unsupported EC curve Some("P-521")"#);
    }

    #[test]
    fn algorithm_must_fit_the_key() {
        let document = jwks(serde_json::json!([
            { "kid": "r", "kty": "RSA", "alg": "RS256", "n": RSA_N, "e": "AQAB" }
        ]));
        let (set, _) = KeySet::from_jwks(&document).unwrap();
        assert!(matches!(
            set.find(Some("r"), Algorithm::RS256),
            KeyLookup::Found(_)
        ));
        assert!(matches!(
            set.find(Some("r"), Algorithm::HS256),
            KeyLookup::AlgorithmMismatch
        ));
        assert!(matches!(
            set.find(Some("r"), Algorithm::PS256),
            KeyLookup::AlgorithmMismatch
        ));
        assert!(matches!(
            set.find(Some("zz"), Algorithm::RS256),
            KeyLookup::UnknownKid
        ));
        assert!(matches!(
            set.find(None, Algorithm::RS256),
            KeyLookup::Found(_)
        ));
        assert!(matches!(
            set.find(None, Algorithm::ES256),
            KeyLookup::AlgorithmMismatch
        ));
    }
}
