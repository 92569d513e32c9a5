//! Criterion benches of token verification, as ratios within one run:
//! - per algorithm, the full check with the cache off (split, decode, key lookup, signature,
//!   claims) against the bare signature verification of the same crypto library on the same
//!   token (target: at most 1.25x);
//! - per algorithm, the signature alone with the key parsed once (the aws-lc-rs floor the full
//!   check is read against; jsonwebtoken's own `crypto::verify` rebuilds the key every call);
//! - the steps around the signature: the token's syntax check, splitting and decoding it, the
//!   claim checks, indexing the claims (`Identity::from_claims`), and an insert into a full
//!   verified-token cache;
//! - a verified-token cache hit (target: under 1 µs).
//!
//! The benches use the gateway's allocator (mimalloc), as allocation is part of decoding.
//!
//! Run: `cargo bench --bench verify`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use jsonwebtoken::{Algorithm, DecodingKey};
use portcullis::dev::identity_provider::{DevIdp, SigningAlg};
use portcullis::oidc::cache::TokenCache;
use portcullis::oidc::credential::{token_text, Source};
use portcullis::oidc::keys::KeySet;
use portcullis::oidc::verify::{check_claims, split, verify_signature, ClaimRules};
use portcullis::policy::{Claims, Identity};
use std::hint::black_box;
use std::sync::Arc;

/// The gateway's allocator (src/main.rs), so that allocation costs read as they do in it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn algorithm(alg: SigningAlg) -> Algorithm {
    match alg {
        SigningAlg::RS256 => Algorithm::RS256,
        SigningAlg::PS256 => Algorithm::PS256,
        SigningAlg::ES256 => Algorithm::ES256,
        SigningAlg::EdDSA => Algorithm::EdDSA,
    }
}

fn verification(c: &mut Criterion) {
    let idp = DevIdp::start(&["acme"]).expect("dev idp");
    let jwks = idp.jwks_json("acme").expect("jwks");
    let (keys, _) = KeySet::from_jwks(jwks.as_bytes()).expect("keys");
    let rules = ClaimRules {
        issuer: idp.issuer("acme"),
        audiences: vec!["orders-api".into()],
        authorized_parties: Vec::new(),
        token_types: Some(vec!["Bearer".into()]),
        clock_skew_seconds: 30,
    };
    let allowed = [
        Algorithm::RS256,
        Algorithm::PS256,
        Algorithm::ES256,
        Algorithm::EdDSA,
    ];
    for alg in [
        SigningAlg::RS256,
        SigningAlg::PS256,
        SigningAlg::ES256,
        SigningAlg::EdDSA,
    ] {
        let token = idp
            .token("acme")
            .alg(alg)
            .realm_roles(&["reader", "writer"])
            .groups(&["/engineering/backend"])
            .mint()
            .expect("token");
        // Read the clock per token: a long run must not see later tokens issued "in the future".
        let now = portcullis::oidc::provider::unix_now();
        let kid = idp.current_kid("acme", alg).expect("kid");
        let jwk: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&jwks).expect("jwk set");
        let raw_key = DecodingKey::from_jwk(jwk.find(&kid).expect("jwk")).expect("key");
        let (message, signature) = token.rsplit_once('.').expect("parts");
        let mut group = c.benchmark_group(format!("verify {}", alg.as_str()));
        group.bench_function("bare signature (jsonwebtoken::crypto::verify)", |b| {
            b.iter(|| {
                let ok = jsonwebtoken::crypto::verify(
                    signature,
                    message.as_bytes(),
                    &raw_key,
                    algorithm(alg),
                );
                black_box(ok.expect("verify"))
            })
        });
        let parsed = keys
            .keys
            .iter()
            .find(|k| k.kid.as_deref() == Some(kid.as_str()))
            .and_then(|k| k.parsed.get(algorithm(alg)))
            .expect("parsed key");
        group.bench_function("signature alone, key parsed once (aws-lc-rs)", |b| {
            b.iter(|| {
                black_box(portcullis::oidc::parsed_keys::verify(
                    parsed,
                    message.as_bytes(),
                    black_box(signature),
                ))
            })
        });
        if alg == SigningAlg::RS256 {
            // The steps around the signature, one by one.
            group.bench_function("token syntax (RFC 6750 b64token)", |b| {
                b.iter(|| {
                    black_box(token_text(
                        black_box(token.as_bytes()),
                        Source::Authorization,
                        16_384,
                    ))
                    .expect("a b64token")
                })
            });
            group.bench_function("split: header and payload decoded", |b| {
                b.iter(|| black_box(split(black_box(&token)).expect("split")))
            });
            let parts = split(&token).expect("split");
            group.bench_function("claim checks", |b| {
                b.iter(|| check_claims(black_box(&parts.claims), &rules, now).expect("claims"))
            });
        }
        group.bench_function("portcullis full check, cache off", |b| {
            b.iter(|| {
                let parts = split(black_box(&token)).expect("split");
                verify_signature(&parts, &keys, &allowed).expect("signature");
                check_claims(&parts.claims, &rules, now).expect("claims");
                black_box(parts.claims)
            })
        });
        group.finish();
    }

    let now = portcullis::oidc::provider::unix_now();
    let cache = TokenCache::new(10_000, 300);
    let token = idp.token("acme").mint().expect("token");
    let claims = Arc::new(Identity::from_claims(split(&token).expect("split").claims));
    cache.insert(cache.hash(&token), &token, claims, None, now + 300, now);
    let payload = split(&token).expect("split").claims.text().to_owned();
    let parsed = || Claims::parse(payload.clone()).expect("claims");
    c.bench_function("claims indexed (Identity::from_claims)", |b| {
        // The claims are parsed outside the timed part: the gateway moves them in from `split`.
        b.iter_batched(
            parsed,
            |claims| black_box(Identity::from_claims(claims)),
            BatchSize::SmallInput,
        )
    });
    let full = TokenCache::new(10_000, 300);
    let identity = Arc::new(Identity::from_claims(parsed()));
    let tokens: Vec<String> = (0..20_000).map(|i| format!("{token}{i}")).collect();
    for t in &tokens[..10_000] {
        full.insert(full.hash(t), t, identity.clone(), None, now + 300, now);
    }
    let mut next = 10_000;
    c.bench_function("token-cache insert into a full cache", |b| {
        b.iter(|| {
            let t = &tokens[next % tokens.len()];
            next += 1;
            full.insert(full.hash(t), t, identity.clone(), None, now + 300, now);
        })
    });
    c.bench_function("verified-token cache hit", |b| {
        b.iter(|| {
            let hash = cache.hash(black_box(&token));
            black_box(cache.get(hash, &token, now).expect("hit"))
        })
    });
}

criterion_group!(benches, verification);
criterion_main!(benches);
