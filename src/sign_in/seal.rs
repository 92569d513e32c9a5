//! Authenticated encryption of cookie payloads: AES-256-GCM under rotating keys, with the
//! payload's purpose bound as additional data so that a value sealed for one cookie never opens
//! as another.
//!
//! A sealed value is base64url without padding of
//! `version (1) | key id (4) | nonce (12) | ciphertext and tag`, where the key id is the first
//! four bytes of SHA-256 of the key. The first configured key seals; every key opens, chosen by
//! its id.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::{digest, rand};
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use std::fmt;

/// The format version written as the first byte of every sealed value.
const FORMAT_VERSION: u8 = 1;
/// The length of a key in bytes (AES-256).
const KEY_LEN: usize = 32;
/// The length of a key id in bytes.
const KEY_ID_LEN: usize = 4;
/// The length of the AES-GCM authentication tag in bytes.
const TAG_LEN: usize = 16;
/// The length of everything but the ciphertext.
const OVERHEAD: usize = 1 + KEY_ID_LEN + NONCE_LEN + TAG_LEN;
/// The longest sealed text `open` looks at.
const MAX_SEALED_LEN: usize = 64 * 1024;

/// Decodes standard-alphabet base64, padded or not.
const STANDARD_INDIFFERENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
/// Decodes URL-safe-alphabet base64, padded or not.
const URL_SAFE_INDIFFERENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a list of configured keys is refused. Messages name a key by its index, never its bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealKeyError {
    /// The list is empty.
    #[error("no keys: at least one 32-byte key is needed")]
    NoKeys,
    /// A key is not base64 in either alphabet.
    #[error("keys[{index}]: not valid base64")]
    NotBase64 {
        /// The position of the key in the list.
        index: usize,
    },
    /// A key does not decode to 32 bytes.
    #[error("keys[{index}]: decodes to {length} bytes, 32 are needed")]
    WrongLength {
        /// The position of the key in the list.
        index: usize,
        /// How many bytes it decodes to.
        length: usize,
    },
    /// A key repeats an earlier one.
    #[error("keys[{index}]: the same key as keys[{earlier}]")]
    Duplicate {
        /// The position of the repeated key.
        index: usize,
        /// The position of its first occurrence.
        earlier: usize,
    },
    /// Two different keys share a key id, so `open` could not tell them apart.
    #[error("keys[{index}]: its key id collides with keys[{earlier}]; generate another key")]
    KeyIdCollision {
        /// The position of the later key.
        index: usize,
        /// The position of the key it collides with.
        earlier: usize,
    },
    /// The cipher refused the key.
    #[error("keys[{index}]: refused by the cipher")]
    Refused {
        /// The position of the key in the list.
        index: usize,
    },
}

/// One key ready to seal and open, with its id.
struct SealKey {
    id: [u8; KEY_ID_LEN],
    cipher: LessSafeKey,
}

/// The configured cookie keys: the first seals, all open. `Debug` shows only key ids.
pub struct SealKeys {
    keys: Vec<SealKey>,
}

impl fmt::Debug for SealKeys {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<String> = self.keys.iter().map(|key| hex(&key.id)).collect();
        formatter
            .debug_struct("SealKeys")
            .field("key_ids", &ids)
            .finish()
    }
}

impl SealKeys {
    /// Builds the keys from their base64 text (standard or URL-safe alphabet, padded or not,
    /// surrounding whitespace ignored); each must decode to 32 bytes, at least one is needed and
    /// none may repeat. The first is the one that seals.
    pub fn from_base64(keys: &[String]) -> Result<SealKeys, SealKeyError> {
        if keys.is_empty() {
            return Err(SealKeyError::NoKeys);
        }
        let mut seen: Vec<([u8; KEY_ID_LEN], Vec<u8>)> = Vec::with_capacity(keys.len());
        let mut built = Vec::with_capacity(keys.len());
        for (index, text) in keys.iter().enumerate() {
            let bytes = decode_key_text(text.trim()).ok_or(SealKeyError::NotBase64 { index })?;
            if bytes.len() != KEY_LEN {
                return Err(SealKeyError::WrongLength {
                    index,
                    length: bytes.len(),
                });
            }
            let id = key_id(&bytes);
            for (earlier, (earlier_id, earlier_bytes)) in seen.iter().enumerate() {
                if *earlier_bytes == bytes {
                    return Err(SealKeyError::Duplicate { index, earlier });
                }
                if *earlier_id == id {
                    return Err(SealKeyError::KeyIdCollision { index, earlier });
                }
            }
            let unbound = UnboundKey::new(&AES_256_GCM, &bytes)
                .map_err(|_| SealKeyError::Refused { index })?;
            built.push(SealKey {
                id,
                cipher: LessSafeKey::new(unbound),
            });
            seen.push((id, bytes));
        }
        Ok(SealKeys { keys: built })
    }

    /// Encrypts `plaintext` under the first key with a fresh random nonce, binding `purpose`
    /// as additional data. Should the system's random source or the cipher ever fail, the
    /// result is the empty string, which no `open` accepts.
    pub fn seal(&self, purpose: &str, plaintext: &[u8]) -> String {
        let Some(key) = self.keys.first() else {
            return String::new();
        };
        let mut nonce_bytes = [0u8; NONCE_LEN];
        if rand::fill(&mut nonce_bytes).is_err() {
            return String::new();
        }
        let mut output = Vec::with_capacity(OVERHEAD + plaintext.len());
        output.push(FORMAT_VERSION);
        output.extend_from_slice(&key.id);
        output.extend_from_slice(&nonce_bytes);
        let mut in_out = plaintext.to_vec();
        let nonce = Nonce::assume_unique_for_key(nonce_bytes);
        if key
            .cipher
            .seal_in_place_append_tag(nonce, Aad::from(purpose.as_bytes()), &mut in_out)
            .is_err()
        {
            return String::new();
        }
        output.extend_from_slice(&in_out);
        URL_SAFE_NO_PAD.encode(output)
    }

    /// Decrypts a value `seal` produced for the same `purpose` under any configured key; None
    /// for anything else (bad base64, another version, an unknown key, too short or too long
    /// input, a failed tag).
    pub fn open(&self, purpose: &str, sealed: &str) -> Option<Vec<u8>> {
        if sealed.len() > MAX_SEALED_LEN {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if bytes.len() < OVERHEAD {
            return None;
        }
        let (version, rest) = bytes.split_first()?;
        if *version != FORMAT_VERSION {
            return None;
        }
        let (id, rest) = rest.split_at_checked(KEY_ID_LEN)?;
        let (nonce_bytes, ciphertext) = rest.split_at_checked(NONCE_LEN)?;
        let key = self.keys.iter().find(|key| key.id == id)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce_bytes).ok()?;
        let mut in_out = ciphertext.to_vec();
        let plaintext = key
            .cipher
            .open_in_place(nonce, Aad::from(purpose.as_bytes()), &mut in_out)
            .ok()?;
        Some(plaintext.to_vec())
    }
}

/// A new random 32-byte key as standard base64. Should the system's random source fail, the
/// result is the empty string, which `SealKeys::from_base64` refuses (no weak key is returned).
pub fn generate_key_base64() -> String {
    let mut key = [0u8; KEY_LEN];
    if rand::fill(&mut key).is_err() {
        return String::new();
    }
    base64::engine::general_purpose::STANDARD.encode(key)
}

/// Decodes key text in whichever alphabet it uses.
fn decode_key_text(text: &str) -> Option<Vec<u8>> {
    let url_safe = text.contains(['-', '_']);
    let engine = if url_safe {
        &URL_SAFE_INDIFFERENT
    } else {
        &STANDARD_INDIFFERENT
    };
    engine.decode(text).ok()
}

/// The first four bytes of SHA-256 of the key.
fn key_id(key: &[u8]) -> [u8; KEY_ID_LEN] {
    let hash = digest::digest(&digest::SHA256, key);
    let mut id = [0u8; KEY_ID_LEN];
    for (slot, byte) in id.iter_mut().zip(hash.as_ref()) {
        *slot = *byte;
    }
    id
}

/// Lowercase hexadecimal of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(texts: &[&String]) -> SealKeys {
        let owned: Vec<String> = texts.iter().map(|text| (*text).clone()).collect();
        SealKeys::from_base64(&owned).expect("valid keys")
    }

    fn random_bytes(length: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; length];
        rand::fill(&mut bytes).expect("random bytes");
        bytes
    }

    #[test]
    fn round_trip() {
        let key = generate_key_base64();
        let keys = keys(&[&key]);
        for plaintext in [
            &b""[..],
            b"x",
            b"{\"p\":\"corp\",\"a\":\"token\"}",
            &[0u8; 5000],
        ] {
            let sealed = keys.seal("session", plaintext);
            assert_eq!(keys.open("session", &sealed).as_deref(), Some(plaintext));
        }
        assert_ne!(keys.seal("session", b"same"), keys.seal("session", b"same"));
    }

    #[test]
    fn tampering_any_byte_fails() {
        let key = generate_key_base64();
        let keys = keys(&[&key]);
        let sealed = keys.seal("session", b"the payload");
        let bytes = URL_SAFE_NO_PAD.decode(&sealed).expect("base64url");
        for index in 0..bytes.len() {
            let mut tampered = bytes.clone();
            tampered[index] ^= 0x01;
            let text = URL_SAFE_NO_PAD.encode(&tampered);
            assert_eq!(keys.open("session", &text), None, "byte {index}");
        }
        assert_eq!(keys.open("session", &sealed[..sealed.len() - 1]), None);
        assert_eq!(keys.open("session", &format!("{sealed}A")), None);
    }

    #[test]
    fn a_wrong_purpose_fails() {
        let key = generate_key_base64();
        let keys = keys(&[&key]);
        let sealed = keys.seal("session", b"payload");
        assert_eq!(keys.open("login-state", &sealed), None);
        assert_eq!(keys.open("", &sealed), None);
        assert!(keys.open("session", &sealed).is_some());
    }

    #[test]
    fn rotation_opens_with_every_key_and_seals_with_the_first_only() {
        let (old, new) = (generate_key_base64(), generate_key_base64());
        let sealed_by_old = keys(&[&old]).seal("session", b"old");
        let rotated = keys(&[&new, &old]);
        assert_eq!(
            rotated.open("session", &sealed_by_old).as_deref(),
            Some(&b"old"[..])
        );
        let sealed_by_rotated = rotated.seal("session", b"new");
        assert_eq!(
            keys(&[&new]).open("session", &sealed_by_rotated).as_deref(),
            Some(&b"new"[..])
        );
        assert_eq!(keys(&[&old]).open("session", &sealed_by_rotated), None);
        // Once the old key is removed, what it sealed no longer opens.
        assert_eq!(keys(&[&new]).open("session", &sealed_by_old), None);
    }

    #[test]
    fn keys_accept_both_alphabets_with_or_without_padding() {
        let raw = [0xfbu8; KEY_LEN];
        let standard = base64::engine::general_purpose::STANDARD.encode(raw);
        let url_safe = URL_SAFE_NO_PAD.encode(raw);
        assert!(standard.contains('+') && standard.ends_with('='));
        assert!(url_safe.contains('-'));
        let sealed = keys(&[&format!("  {standard}\n")]).seal("p", b"v");
        assert_eq!(
            keys(&[&url_safe]).open("p", &sealed).as_deref(),
            Some(&b"v"[..])
        );
        let unpadded = standard.trim_end_matches('=').to_owned();
        assert!(SealKeys::from_base64(&[unpadded]).is_ok());
    }

    #[test]
    fn bad_key_configs_give_the_right_errors() {
        let message = |config: &[String]| match SealKeys::from_base64(config) {
            Ok(_) => "accepted".to_owned(),
            Err(error) => error.to_string(),
        };
        let good = generate_key_base64();
        let short = base64::engine::general_purpose::STANDARD.encode([7u8; 16]);
        assert_eq!(message(&[]), "no keys: at least one 32-byte key is needed");
        assert_eq!(
            message(&[good.clone(), "not base64!".to_owned()]),
            "keys[1]: not valid base64"
        );
        assert_eq!(
            message(&[good.clone(), short.clone()]),
            "keys[1]: decodes to 16 bytes, 32 are needed"
        );
        assert_eq!(
            message(&[String::new()]),
            "keys[0]: decodes to 0 bytes, 32 are needed"
        );
        let other = generate_key_base64();
        assert_eq!(
            message(&[other, good.clone(), format!(" {good} ")]),
            "keys[2]: the same key as keys[1]"
        );
        assert_eq!(
            SealKeys::from_base64(&[short]).err(),
            Some(SealKeyError::WrongLength {
                index: 0,
                length: 16
            })
        );
    }

    #[test]
    fn debug_shows_no_key_material() {
        let raw = [0x42u8; KEY_LEN];
        let text = base64::engine::general_purpose::STANDARD.encode(raw);
        let shown = format!("{:?}", keys(&[&text]));
        assert!(shown.starts_with("SealKeys"));
        assert!(!shown.contains(&text) && !shown.contains("4242"));
        assert!(shown.contains(&hex(&key_id(&raw))));
    }

    #[test]
    fn random_garbage_never_panics_or_opens() {
        let key = generate_key_base64();
        let keys = keys(&[&key]);
        let characters =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/ .%\0\xff";
        for round in 0..3000 {
            let noise = random_bytes(1 + round % 200);
            let text: String = noise
                .iter()
                .map(|byte| char::from(characters[usize::from(*byte) % characters.len()]))
                .collect();
            assert_eq!(keys.open("session", &text), None);
            let lossy = String::from_utf8_lossy(&noise);
            assert_eq!(keys.open("session", &lossy), None);
            // Well-formed header with the right key id, so the tag check itself is exercised.
            let mut forged = vec![FORMAT_VERSION];
            forged.extend_from_slice(&keys.keys[0].id);
            forged.extend_from_slice(&noise);
            assert_eq!(keys.open("session", &URL_SAFE_NO_PAD.encode(&forged)), None);
        }
        let oversized = "A".repeat(MAX_SEALED_LEN + 4);
        assert_eq!(keys.open("session", &oversized), None);
    }
}
