//! Signing keys of the development identity provider: generated at start with aws-lc-rs, one per
//! algorithm family, each with a `kid`, its public JWK (as Keycloak publishes it) and the ability
//! to sign a JWT signing input.
//!
//! The RSA key signs both RS256 and PS256 tokens; it is published twice in the JWKS (one entry
//! per algorithm, distinct kids), because a JWK names one `alg` and verifiers must hold tokens to
//! it. The `enc` key mirrors Keycloak's RSA-OAEP key: published, never used for signing.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};
use std::fmt;

/// The algorithms the development IdP signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningAlg {
    RS256,
    PS256,
    ES256,
    EdDSA,
}

impl SigningAlg {
    /// The JOSE name (`RS256`, `EdDSA`…).
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::RS256 => "RS256",
            SigningAlg::PS256 => "PS256",
            SigningAlg::ES256 => "ES256",
            SigningAlg::EdDSA => "EdDSA",
        }
    }

    /// Every algorithm, in the order the JWKS lists them.
    pub const ALL: [SigningAlg; 4] = [
        SigningAlg::RS256,
        SigningAlg::PS256,
        SigningAlg::ES256,
        SigningAlg::EdDSA,
    ];
}

/// Why a key could not be generated or used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(pub &'static str);

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for KeyError {}

/// The private half of a key.
enum KeyMaterial {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// One signing key: its kid, the algorithm it is published for, and its private material.
pub struct SigningKey {
    kid: String,
    alg: SigningAlg,
    material: std::sync::Arc<KeyMaterial>,
    /// PKCS#8 DER of the private key (for [`SigningKey::encoding_key`]).
    pkcs8: Vec<u8>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// A random URL-safe identifier of `bytes` random bytes.
pub fn random_id(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    // SystemRandom only fails when the OS has no entropy source; an all-zero id is still unique
    // enough for a development IdP because ids also carry a counter where it matters.
    let _ = SystemRandom::new().fill(&mut buffer);
    URL_SAFE_NO_PAD.encode(buffer)
}

impl SigningKey {
    /// Generates a fresh key for `alg` (RSA 2048 for RS256/PS256, P-256, Ed25519).
    pub fn generate(alg: SigningAlg) -> Result<Self, KeyError> {
        let (material, pkcs8) = match alg {
            SigningAlg::RS256 | SigningAlg::PS256 => {
                let pair = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .map_err(|_| KeyError("RSA key generation failed"))?;
                let der = pair
                    .as_der()
                    .map_err(|_| KeyError("RSA key export failed"))?;
                let pkcs8 = der.as_ref().to_vec();
                (KeyMaterial::Rsa(pair), pkcs8)
            }
            SigningAlg::ES256 => {
                let document = EcdsaKeyPair::generate_pkcs8(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    &SystemRandom::new(),
                )
                .map_err(|_| KeyError("EC key generation failed"))?;
                let pair =
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, document.as_ref())
                        .map_err(|_| KeyError("EC key import failed"))?;
                (KeyMaterial::Ec(pair), document.as_ref().to_vec())
            }
            SigningAlg::EdDSA => {
                let pair = Ed25519KeyPair::generate()
                    .map_err(|_| KeyError("Ed25519 key generation failed"))?;
                let document = pair
                    .to_pkcs8v1()
                    .map_err(|_| KeyError("Ed25519 key export failed"))?;
                let pkcs8 = document.as_ref().to_vec();
                (KeyMaterial::Ed(pair), pkcs8)
            }
        };
        Ok(SigningKey {
            kid: random_id(16),
            alg,
            material: std::sync::Arc::new(material),
            pkcs8,
        })
    }

    /// The same key material published under another algorithm and kid (RS256 key → PS256).
    pub fn alias(&self, alg: SigningAlg) -> Self {
        SigningKey {
            kid: random_id(16),
            alg,
            material: self.material.clone(),
            pkcs8: self.pkcs8.clone(),
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// The public JWK, shaped like Keycloak's (`use: sig`).
    pub fn public_jwk(&self) -> Value {
        let mut jwk = self.public_params();
        if let Value::Object(map) = &mut jwk {
            map.insert("kid".into(), Value::String(self.kid.clone()));
            map.insert("alg".into(), Value::String(self.alg.as_str().into()));
            map.insert("use".into(), Value::String("sig".into()));
        }
        jwk
    }

    /// `kty` and the public parameters only.
    fn public_params(&self) -> Value {
        match self.material.as_ref() {
            KeyMaterial::Rsa(pair) => rsa_public_params(pair),
            KeyMaterial::Ec(pair) => {
                let point = pair.public_key().as_ref();
                // Uncompressed point: 0x04 || x (32) || y (32).
                let (x, y) = point
                    .get(1..)
                    .unwrap_or_default()
                    .split_at(32.min(point.len().saturating_sub(1)));
                json!({"kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)})
            }
            KeyMaterial::Ed(pair) => json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
            }),
        }
    }

    /// The public key as a PEM `PUBLIC KEY` (SubjectPublicKeyInfo) block, as Keycloak shows it in
    /// the realm's `public_key`; also the "secret" of the HS256 key-confusion attack.
    pub fn public_key_pem(&self) -> String {
        let der = match self.material.as_ref() {
            KeyMaterial::Rsa(pair) => pair.public_key().as_der().map(|d| d.as_ref().to_vec()),
            KeyMaterial::Ec(pair) => pair.public_key().as_der().map(|d| d.as_ref().to_vec()),
            KeyMaterial::Ed(pair) => pair.public_key().as_der().map(|d| d.as_ref().to_vec()),
        };
        pem_block("PUBLIC KEY", &der.unwrap_or_default())
    }

    /// A jsonwebtoken encoding key for this key (for benches and external tools).
    pub fn encoding_key(&self) -> Result<jsonwebtoken::EncodingKey, KeyError> {
        let pem = pem_block("PRIVATE KEY", &self.pkcs8);
        let key = match self.material.as_ref() {
            KeyMaterial::Rsa(_) => jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()),
            KeyMaterial::Ec(_) => jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()),
            KeyMaterial::Ed(_) => jsonwebtoken::EncodingKey::from_ed_pem(pem.as_bytes()),
        };
        key.map_err(|_| KeyError("the key does not convert to a jsonwebtoken EncodingKey"))
    }

    /// Signs `message` (the JWT signing input) with `alg`, which must suit the key's family.
    pub fn sign(&self, alg: SigningAlg, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        match (self.material.as_ref(), alg) {
            (KeyMaterial::Rsa(pair), SigningAlg::RS256 | SigningAlg::PS256) => {
                let padding: &'static dyn aws_lc_rs::signature::RsaEncoding =
                    if alg == SigningAlg::RS256 {
                        &aws_lc_rs::signature::RSA_PKCS1_SHA256
                    } else {
                        &aws_lc_rs::signature::RSA_PSS_SHA256
                    };
                let mut signature = vec![0u8; pair.public_modulus_len()];
                pair.sign(padding, &rng, message, &mut signature)
                    .map_err(|_| KeyError("RSA signing failed"))?;
                Ok(signature)
            }
            (KeyMaterial::Ec(pair), SigningAlg::ES256) => pair
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError("ECDSA signing failed")),
            (KeyMaterial::Ed(pair), SigningAlg::EdDSA) => Ok(pair.sign(message).as_ref().to_vec()),
            _ => Err(KeyError("the key cannot sign with this algorithm")),
        }
    }
}

fn rsa_public_params(pair: &RsaKeyPair) -> Value {
    let public = pair.public_key();
    json!({
        "kty": "RSA",
        "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
        "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
    })
}

/// Keycloak's RSA-OAEP encryption key: a JWK with `use: enc`, never used for signing.
pub struct EncryptionKey {
    jwk: Value,
}

impl EncryptionKey {
    pub fn generate() -> Result<Self, KeyError> {
        let pair = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .map_err(|_| KeyError("RSA key generation failed"))?;
        let mut jwk = rsa_public_params(&pair);
        if let Value::Object(map) = &mut jwk {
            map.insert("kid".into(), Value::String(random_id(16)));
            map.insert("alg".into(), Value::String("RSA-OAEP".into()));
            map.insert("use".into(), Value::String("enc".into()));
        }
        Ok(EncryptionKey { jwk })
    }

    pub fn public_jwk(&self) -> &Value {
        &self.jwk
    }
}

/// A PEM block with 64-column base64 lines.
pub fn pem_block(label: &str, der: &[u8]) -> String {
    let encoded = STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for chunk in encoded.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_signs_and_exports() {
        for alg in [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA] {
            let key = SigningKey::generate(alg).expect("key");
            let jwk = key.public_jwk();
            assert_eq!(jwk["use"], "sig");
            assert_eq!(jwk["alg"], alg.as_str());
            assert!(key.sign(alg, b"header.payload").is_ok());
            assert!(key.encoding_key().is_ok(), "{alg:?}");
            assert!(key
                .public_key_pem()
                .starts_with("-----BEGIN PUBLIC KEY-----"));
        }
    }

    #[test]
    fn ec_jwk_has_both_coordinates() {
        let key = SigningKey::generate(SigningAlg::ES256).expect("key");
        let jwk = key.public_jwk();
        assert_eq!(jwk["x"].as_str().map(str::len), Some(43));
        assert_eq!(jwk["y"].as_str().map(str::len), Some(43));
    }

    #[test]
    fn a_key_refuses_a_foreign_algorithm() {
        let key = SigningKey::generate(SigningAlg::EdDSA).expect("key");
        assert!(key.sign(SigningAlg::RS256, b"x").is_err());
    }
}
