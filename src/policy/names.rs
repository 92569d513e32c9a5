//! Name sets that copy no names: the roles, groups and scopes of a verified token are held as
//! spans of its claims text (or, for the rare string that had JSON escapes, of a side buffer of
//! decoded strings), in hash tables keyed by the text they point at. Indexing a token then
//! allocates only the tables; a lookup is one hash and one comparison, as with owned strings.

use foldhash::fast::FixedState;
use hashbrown::HashTable;
use std::hash::{BuildHasher, Hash};

/// Marks a span of the decoded buffer rather than of the claims text.
const DECODED: u32 = 1 << 31;

/// Where a name lies: `len` bytes from `start` in the claims text, or in the decoded buffer
/// when `start` has its top bit set.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    start: u32,
    len: u32,
}

impl Span {
    /// The part of this span's string from byte `offset`, `len` bytes long.
    pub fn part(self, offset: usize, len: usize) -> Span {
        Span {
            start: self.start + offset as u32,
            len: len as u32,
        }
    }
}

/// The two texts spans point into.
#[derive(Clone, Copy)]
pub struct Texts<'a> {
    pub claims: &'a str,
    pub decoded: &'a str,
}

impl<'a> Texts<'a> {
    pub fn get(self, span: Span) -> &'a str {
        let (source, start) = match span.start & DECODED {
            0 => (self.claims, span.start),
            _ => (self.decoded, span.start & !DECODED),
        };
        source
            .get(start as usize..(start + span.len) as usize)
            .unwrap_or_default()
    }
}

/// The span of `name`: where it lies in `claims` when it is a slice of it, else appended to
/// `decoded`. Texts beyond 2 GiB are not spanned (claims are at most a token's size).
pub fn locate(claims: &str, decoded: &mut String, name: &str) -> Span {
    let base = claims.as_ptr() as usize;
    let at = name.as_ptr() as usize;
    if at >= base && at + name.len() <= base + claims.len() {
        return Span {
            start: (at - base) as u32,
            len: name.len() as u32,
        };
    }
    let start = decoded.len() as u32 | DECODED;
    decoded.push_str(name);
    Span {
        start,
        len: name.len() as u32,
    }
}

fn hash_of(key: impl Hash) -> u64 {
    FixedState::default().hash_one(key)
}

/// A set of names.
#[derive(Debug, Default)]
pub struct NameSet {
    table: HashTable<Span>,
}

impl NameSet {
    /// Adds the name at `span` unless the set holds it already.
    pub fn insert(&mut self, texts: Texts<'_>, span: Span) {
        let name = texts.get(span);
        let hash = hash_of(name);
        if self.table.find(hash, |s| texts.get(*s) == name).is_none() {
            self.table
                .insert_unique(hash, span, |s| hash_of(texts.get(*s)));
        }
    }

    pub fn contains(&self, texts: Texts<'_>, name: &str) -> bool {
        self.table
            .find(hash_of(name), |s| texts.get(*s) == name)
            .is_some()
    }
}

/// A set of (client, role) pairs.
#[derive(Debug, Default)]
pub struct PairSet {
    table: HashTable<(Span, Span)>,
}

impl PairSet {
    pub fn insert(&mut self, texts: Texts<'_>, first: Span, second: Span) {
        let key = (texts.get(first), texts.get(second));
        let hash = hash_of(key);
        let same = |(a, b): &(Span, Span)| (texts.get(*a), texts.get(*b)) == key;
        if self.table.find(hash, same).is_none() {
            self.table.insert_unique(hash, (first, second), |(a, b)| {
                hash_of((texts.get(*a), texts.get(*b)))
            });
        }
    }

    pub fn contains(&self, texts: Texts<'_>, first: &str, second: &str) -> bool {
        let key = (first, second);
        self.table
            .find(hash_of(key), |(a, b)| (texts.get(*a), texts.get(*b)) == key)
            .is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_the_text_and_decoded_ones_resolve_alike() {
        let claims = r#"{"roles": ["reader", "admin"]}"#;
        let mut decoded = String::new();
        let at = claims.find("reader").unwrap();
        let reader = locate(claims, &mut decoded, &claims[at..at + 6]);
        let escaped = locate(claims, &mut decoded, "wr\"ter");
        assert!(
            decoded == "wr\"ter",
            "only the name from elsewhere is copied"
        );
        let texts = Texts {
            claims,
            decoded: &decoded,
        };
        assert_eq!(
            (texts.get(reader), texts.get(escaped)),
            ("reader", "wr\"ter")
        );
        assert_eq!(texts.get(reader.part(1, 3)), "ead");
        let mut set = NameSet::default();
        for span in [reader, escaped, reader] {
            set.insert(texts, span);
        }
        assert_eq!(set.table.len(), 2, "duplicates are kept once");
        assert!(set.contains(texts, "reader") && set.contains(texts, "wr\"ter"));
        assert!(!set.contains(texts, "admin") && !set.contains(texts, "read"));
        let mut pairs = PairSet::default();
        pairs.insert(texts, reader, escaped);
        assert!(pairs.contains(texts, "reader", "wr\"ter"));
        assert!(!pairs.contains(texts, "wr\"ter", "reader"));
    }
}
