//! A token's claims as the JSON text it carried, with an index of the top-level members.
//!
//! Verifying a token reads a dozen members (`exp`, `iss`, `aud`, roles, groups, `scope`…) and
//! the identity headers read one or two more; building a whole `serde_json::Value` for that
//! (every key, string and number of the payload allocated, then freed) was the largest cost of
//! a verification after the signature. Here one validating pass records where each top-level
//! member's value lies in the text, and readers take [`RawJson`] views of single members. The
//! whole document is parsed only for what needs it (a claim-path rule, a JSON transform
//! condition, a decision trace), once, on first use.
//!
//! Duplicate member names resolve to the last one, as they do in `serde_json::Value` (RFC 7519
//! §4 allows either that or a refusal).

use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;
use std::sync::OnceLock;

/// Verified claims: the JSON object's text and where its top-level members are.
pub struct Claims {
    text: Box<str>,
    members: Vec<Member>,
    /// For each of the [`KNOWN_CLAIMS`], 1 + its index in `members` (0: absent).
    known: [u32; KNOWN_CLAIMS],
    document: OnceLock<Value>,
}

/// One top-level member: its name (a span of the text, or decoded when it had escapes) and
/// the span of its value.
struct Member {
    name: MemberName,
    value: (u32, u32),
}

enum MemberName {
    Span(u32, u32),
    Decoded(Box<str>),
}

/// A claim as [`Claims::lookup`] finds it.
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimValue<'a> {
    /// A top-level string, read from the text.
    Text(Cow<'a, str>),
    /// Any other value, from the parsed document.
    Parsed(&'a Value),
}

/// Why a payload is not a claims set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsError {
    #[error("its payload is not JSON")]
    NotJson,
    #[error("its payload is not a JSON object")]
    NotObject,
}

impl Claims {
    /// Validates `text` as one JSON object and indexes its top-level members.
    pub fn parse(text: String) -> Result<Claims, ClaimsError> {
        let text = text.into_boxed_str();
        if u32::try_from(text.len()).is_err() {
            // Spans are 32-bit; no token or introspection answer comes near 4 GiB.
            return Err(ClaimsError::NotJson);
        }
        let mut members = Vec::with_capacity(24);
        let mut known = [0u32; KNOWN_CLAIMS];
        let base = text.as_ptr() as usize;
        let span = |part: &str| ((part.as_ptr() as usize - base) as u32, part.len() as u32);
        let mut deserializer = serde_json::Deserializer::from_str(&text);
        let indexed = deserializer
            .deserialize_map(MemberVisits(
                &mut |name: Cow<'_, str>, value: RawJson<'_>| {
                    if let Some(slot) = known_slot(&name) {
                        // 1-based; 0 is "absent". A later duplicate overwrites: the last one wins.
                        known[slot] = members.len() as u32 + 1;
                    }
                    members.push(Member {
                        name: match name {
                            Cow::Borrowed(name) => {
                                let (start, len) = span(name);
                                MemberName::Span(start, len)
                            }
                            Cow::Owned(name) => MemberName::Decoded(name.into_boxed_str()),
                        },
                        value: span(value.0),
                    });
                },
            ))
            .and_then(|()| deserializer.end());
        if indexed.is_err() {
            let other_json = !text.trim_start().starts_with('{')
                && serde_json::from_str::<serde::de::IgnoredAny>(&text).is_ok();
            return Err(match other_json {
                true => ClaimsError::NotObject,
                false => ClaimsError::NotJson,
            });
        }
        // The index pass neither decodes strings nor limits nesting, and so would let through
        // what a full parse refuses: a lone UTF-16 surrogate (`"\ud800"`), or nesting deeper
        // than serde_json's 128 levels. Text with a `\u` escape (rare: issuers write non-ASCII
        // as UTF-8) or with more than 128 brackets in all is parsed whole now, and kept, so
        // that what is accepted always has a document.
        let document = OnceLock::new();
        if opening_brackets(text.as_bytes()) > 128 || text.contains("\\u") {
            let parsed = serde_json::from_str(&text).map_err(|_| ClaimsError::NotJson)?;
            let _ = document.set(parsed);
        }
        Ok(Claims {
            text,
            members,
            known,
            document,
        })
    }

    /// The JSON text of the claims.
    pub fn text(&self) -> &str {
        match &*self.text {
            "" => "{}",
            text => text,
        }
    }

    /// The top-level member `name`, if present (the last one when the name repeats).
    pub fn get(&self, name: &str) -> Option<RawJson<'_>> {
        let member = match known_slot(name) {
            Some(slot) => {
                let position = (self.known[slot] as usize).checked_sub(1)?;
                self.members.get(position)?
            }
            None => self
                .members
                .iter()
                .rev()
                .find(|member| match &member.name {
                    MemberName::Span(start, len) => self.slice(*start, *len) == name,
                    MemberName::Decoded(decoded) => &**decoded == name,
                })?,
        };
        Some(RawJson(self.slice(member.value.0, member.value.1)))
    }

    /// The member at `path` (object keys from the top), if every step is an object member.
    pub fn pointer<S: AsRef<str>>(&self, path: &[S]) -> Option<RawJson<'_>> {
        let (first, rest) = path.split_first()?;
        rest.iter()
            .try_fold(self.get(first.as_ref())?, |raw, key| raw.get(key.as_ref()))
    }

    /// The claim at `path` for a per-request reader (an identity header, a rate-limit key):
    /// a top-level string straight from the text, anything else (nested, an array, a number)
    /// from the parsed document, which a cached identity then parses once, not per request.
    pub fn lookup<S: AsRef<str>>(&self, path: &[S]) -> Option<ClaimValue<'_>> {
        if let [name] = path {
            let raw = self.get(name.as_ref())?;
            if let Some(text) = raw.as_str() {
                return Some(ClaimValue::Text(text));
            }
        }
        path.iter()
            .try_fold(self.document(), |value, key| value.get(key.as_ref()))
            .map(ClaimValue::Parsed)
    }

    /// The whole claims set as a `serde_json::Value`, parsed on first use.
    pub fn document(&self) -> &Value {
        self.document
            .get_or_init(|| serde_json::from_str(&self.text).unwrap_or_default())
    }

    fn slice(&self, start: u32, len: u32) -> &str {
        &self.text[start as usize..(start + len) as usize]
    }
}

/// How many `[` and `{` the text holds (in strings too): a bound on its nesting depth, counted
/// in blocks that vectorize (`b | 0x20 == b'{'` holds for exactly those two bytes).
fn opening_brackets(text: &[u8]) -> usize {
    text.chunks(255)
        .map(|block| {
            let in_block: u8 = block.iter().map(|b| u8::from(b | 0x20 == b'{')).sum();
            usize::from(in_block)
        })
        .sum()
}

/// The claims the gateway itself reads on every verification, found without a scan.
const KNOWN_CLAIMS: usize = 14;

fn known_slot(name: &str) -> Option<usize> {
    Some(match name {
        "exp" => 0,
        "nbf" => 1,
        "iat" => 2,
        "iss" => 3,
        "aud" => 4,
        "azp" => 5,
        "typ" => 6,
        "sub" => 7,
        "scope" => 8,
        "groups" => 9,
        "realm_access" => 10,
        "resource_access" => 11,
        "client_id" => 12,
        "jti" => 13,
        _ => return None,
    })
}

impl From<Value> for Claims {
    /// Claims from an already parsed object (an introspection answer, a test); anything else
    /// becomes an empty claims set.
    fn from(value: Value) -> Claims {
        let object = if value.is_object() {
            value
        } else {
            Value::Object(Default::default())
        };
        let mut claims =
            Claims::parse(object.to_string()).expect("a serialized object is a JSON object");
        claims.document = OnceLock::from(object);
        claims
    }
}

impl fmt::Debug for Claims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Claims")
            .field("members", &self.members.len())
            .finish_non_exhaustive()
    }
}

impl Default for Claims {
    /// The empty claims set (an anonymous caller's), made without allocating.
    fn default() -> Claims {
        Claims {
            text: Box::default(),
            members: Vec::new(),
            known: [0; KNOWN_CLAIMS],
            document: OnceLock::from(Value::Object(serde_json::Map::new())),
        }
    }
}

/// A view of one JSON value inside validated claims text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawJson<'a>(&'a str);

impl<'a> RawJson<'a> {
    /// The value's JSON text.
    pub fn text(self) -> &'a str {
        self.0
    }

    /// A JSON string's content (borrowed unless it has escapes).
    pub fn as_str(self) -> Option<Cow<'a, str>> {
        let inner = self.0.strip_prefix('"')?.strip_suffix('"')?;
        if inner.contains('\\') {
            serde_json::from_str::<String>(self.0).ok().map(Cow::Owned)
        } else {
            Some(Cow::Borrowed(inner))
        }
    }

    /// A JSON number as a finite `f64`.
    pub fn as_f64(self) -> Option<f64> {
        let first = *self.0.as_bytes().first()?;
        if first != b'-' && !first.is_ascii_digit() {
            return None;
        }
        self.0.parse::<f64>().ok().filter(|n| n.is_finite())
    }

    /// A JSON number that is a non-negative integer (as `serde_json::Value::as_u64` reads it).
    pub fn as_u64(self) -> Option<u64> {
        self.0.parse::<u64>().ok()
    }

    /// Calls `visit` with each string of a JSON array; other elements, or a value that is not
    /// an array, give nothing.
    pub fn for_each_str(self, mut visit: impl FnMut(Cow<'a, str>)) {
        if !self.0.starts_with('[') {
            return;
        }
        let mut deserializer = serde_json::Deserializer::from_str(self.0);
        let _ = deserializer.deserialize_seq(Strings(&mut visit));
    }

    /// The member `name` of a JSON object (the last one when the name repeats).
    pub fn get(self, name: &str) -> Option<RawJson<'a>> {
        let mut found = None;
        self.for_each_member(|key, value| {
            if key == name {
                found = Some(value);
            }
        });
        found
    }

    /// Calls `visit` with each member of a JSON object, in order; nothing for anything else.
    pub fn for_each_member(self, mut visit: impl FnMut(Cow<'a, str>, RawJson<'a>)) {
        if !self.0.starts_with('{') {
            return;
        }
        let mut deserializer = serde_json::Deserializer::from_str(self.0);
        let _ = deserializer.deserialize_map(MemberVisits(&mut visit));
    }
}

/// Visits an object's members as (name, raw value) without collecting them.
struct MemberVisits<'v, F>(&'v mut F);

impl<'de, F: FnMut(Cow<'de, str>, RawJson<'de>)> Visitor<'de> for MemberVisits<'_, F> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some((MemberKey(name), value)) =
            map.next_entry::<MemberKey<'de>, &'de RawValue>()?
        {
            (self.0)(name, RawJson(value.get()));
        }
        Ok(())
    }
}

/// A member name, borrowed from the text when it has no escapes.
struct MemberKey<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for MemberKey<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = MemberKey<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, name: &'de str) -> Result<MemberKey<'de>, E> {
                Ok(MemberKey(Cow::Borrowed(name)))
            }
            fn visit_str<E>(self, name: &str) -> Result<MemberKey<'de>, E> {
                Ok(MemberKey(Cow::Owned(name.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Visits the strings of a JSON array without collecting them.
struct Strings<'v, F>(&'v mut F);

impl<'de, F: FnMut(Cow<'de, str>)> Visitor<'de> for Strings<'_, F> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        while let Some(item) = items.next_element::<&'de RawValue>()? {
            if let Some(text) = RawJson(item.get()).as_str() {
                (self.0)(text);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
