//! Public keys parsed once, when a key set is built, so that verifying a token is the signature
//! check alone. `jsonwebtoken::crypto::verify` rebuilds the key on every call (a boxed verifier,
//! a copy of the key bytes, and for RSA a fresh `EVP_PKEY` from the modulus and exponent);
//! an aws-lc-rs [`ParsedPublicKey`] keeps the `EVP_PKEY`. The verification parameters are
//! jsonwebtoken's own (RSA 2048-8192 bits, fixed-length ECDSA signatures), so the same tokens
//! verify. HMAC secrets keep jsonwebtoken's path.

use aws_lc_rs::signature::{self as sig, ParsedPublicKey, RsaPublicKeyComponents};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey};

/// The largest signature accepted (RSA-8192: 1024 bytes), decoded on the stack.
const MAX_SIGNATURE_BYTES: usize = 1024;

/// One key, parsed for each algorithm it may verify.
#[derive(Default)]
pub struct ParsedKeys {
    by_algorithm: Vec<(Algorithm, ParsedPublicKey)>,
}

impl ParsedKeys {
    /// Parses `key` for every asymmetric algorithm of `algorithms` (a key the parameters
    /// refuse, such as RSA below 2048 bits, gets no entry and fails verification as before).
    pub fn build(key: &DecodingKey, algorithms: &[Algorithm]) -> ParsedKeys {
        let by_algorithm = algorithms
            .iter()
            .filter_map(|&algorithm| parse(key, algorithm).map(|parsed| (algorithm, parsed)))
            .collect();
        ParsedKeys { by_algorithm }
    }

    /// The parsed key for `algorithm`, if there is one.
    pub fn get(&self, algorithm: Algorithm) -> Option<&ParsedPublicKey> {
        self.by_algorithm
            .iter()
            .find(|(a, _)| *a == algorithm)
            .map(|(_, parsed)| parsed)
    }
}

fn rsa_parameters(algorithm: Algorithm) -> Option<&'static sig::RsaParameters> {
    Some(match algorithm {
        Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

fn parse(key: &DecodingKey, algorithm: Algorithm) -> Option<ParsedPublicKey> {
    use jsonwebtoken::DecodingKeyKind;
    if let Some(params) = rsa_parameters(algorithm) {
        return match key.kind() {
            DecodingKeyKind::RsaModulusExponent { n, e } => RsaPublicKeyComponents { n, e }
                .to_parsed_public_key(params)
                .ok(),
            DecodingKeyKind::SecretOrDer(der) => ParsedPublicKey::new(params, der).ok(),
        };
    }
    let params: &'static dyn sig::VerificationAlgorithm = match algorithm {
        Algorithm::ES256 => &sig::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &sig::ED25519,
        _ => return None,
    };
    match key.kind() {
        DecodingKeyKind::SecretOrDer(point) => ParsedPublicKey::new(params, point).ok(),
        DecodingKeyKind::RsaModulusExponent { .. } => None,
    }
}

/// Whether `signature` (base64url, unpadded) signs `message` under `key`.
pub fn verify(key: &ParsedPublicKey, message: &[u8], signature: &str) -> bool {
    let mut decoded = [0u8; MAX_SIGNATURE_BYTES];
    let engine = &base64::engine::general_purpose::URL_SAFE_NO_PAD;
    match engine.decode_slice(signature, &mut decoded) {
        Ok(length) => key.verify_sig(message, &decoded[..length]).is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use crate::dev::identity_provider::{DevIdp, SigningAlg};
    use crate::oidc::keys::KeySet;
    use crate::oidc::verify::{split, verify_signature};
    use jsonwebtoken::Algorithm;

    fn tampered(token: &str) -> String {
        let (rest, signature) = token.rsplit_once('.').unwrap();
        let mut bytes = signature.as_bytes().to_vec();
        bytes[4] = if bytes[4] == b'A' { b'B' } else { b'A' };
        format!("{rest}.{}", String::from_utf8(bytes).unwrap())
    }

    #[test]
    fn every_asymmetric_algorithm_verifies_through_its_parsed_key() {
        let idp = DevIdp::start(&["acme"]).unwrap();
        let (keys, _) = KeySet::from_jwks(idp.jwks_json("acme").unwrap().as_bytes()).unwrap();
        let all = [
            Algorithm::RS256,
            Algorithm::PS256,
            Algorithm::ES256,
            Algorithm::EdDSA,
        ];
        for (alg, algorithm) in [
            (SigningAlg::RS256, Algorithm::RS256),
            (SigningAlg::PS256, Algorithm::PS256),
            (SigningAlg::ES256, Algorithm::ES256),
            (SigningAlg::EdDSA, Algorithm::EdDSA),
        ] {
            let token = idp.token("acme").alg(alg).mint().unwrap();
            let parts = split(&token).unwrap();
            let key = keys
                .keys
                .iter()
                .find(|k| k.kid == parts.header.kid)
                .unwrap();
            assert!(
                key.parsed.get(algorithm).is_some(),
                "{alg:?} has no parsed key"
            );
            assert!(verify_signature(&parts, &keys, &all).is_ok(), "{alg:?}");
            let bad = tampered(&token);
            let parts = split(&bad).unwrap();
            assert!(
                verify_signature(&parts, &keys, &all).is_err(),
                "{alg:?} tampered"
            );
        }
    }

    #[test]
    fn a_shared_secret_still_verifies_through_jsonwebtoken() {
        let mut keys = KeySet::default();
        keys.add_shared_secret(b"a-long-enough-shared-secret-for-hs256");
        let claims = serde_json::json!({"sub": "x", "exp": 4_000_000_000u64});
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(b"a-long-enough-shared-secret-for-hs256")
                .unwrap(),
        )
        .unwrap();
        let parts = split(&token).unwrap();
        assert!(verify_signature(&parts, &keys, &[Algorithm::HS256]).is_ok());
        let bad = tampered(&token);
        assert!(verify_signature(&split(&bad).unwrap(), &keys, &[Algorithm::HS256]).is_err());
    }
}
