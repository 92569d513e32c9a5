//! End-to-end: `portcullis doctor` and `portcullis explain --fetch` against a real Keycloak
//! (26.x, the realms of tests/fixtures/keycloak/). Doctor finds nothing wrong with a correct
//! configuration (discovery, issuer, keys, clock, sign-in and introspection endpoints, the
//! gateway's client credentials, the upstream) and names a wrong client secret as Keycloak
//! answers it; explain verifies real tokens with Keycloak's keys and names the rule leaf that
//! refuses bob. The configured client is the fixture's `orders-service` (service accounts on),
//! so doctor checks the token it gets as the gateway would and compares Keycloak's clock (its
//! `iat`; Keycloak sends no `Date` header) with ours.
//!
//! Ignored by default (they need Keycloak): `scripts/test.sh` runs them, or by hand
//! `KEYCLOAK_URL=$(scripts/keycloak.sh url) cargo test --test e2e_doctor -- --ignored`.

mod common;
#[path = "e2e_keycloak/support.rs"]
#[allow(dead_code)] // shared with tests/e2e_keycloak.rs, which uses the rest
mod support;

use common::mocks;
use std::process::Command;
use support::*;

/// The gateway's sign-in client: Keycloak answers its introspection of user tokens (their
/// `aud` names it; Keycloak reports a token not meant for the asking client as inactive).
const GATEWAY_CLIENT: (&str, &str) = ("portcullis-gateway", "portcullis-gateway-secret");

fn write_config(
    dir: &tempfile::TempDir,
    keycloak: &Keycloak,
    upstream: std::net::SocketAddr,
    (client, secret): (&str, &str),
) -> std::path::PathBuf {
    let providers = provider(
        keycloak,
        "acme",
        &format!("    client: {{ id: {client}, secret: \"{secret}\" }}\n"),
    );
    let routes = format!(
        "{}{}",
        route("orders", "/orders", "{ providers: [acme], introspect: true, require: { realm_role: writer } }"),
        "  - name: console\n    match: { path_prefix: /console/ }\n    upstream: api\n    auth: { providers: [acme], sign_in: acme }\n"
    );
    let sign_in = "browser_sign_in:\n  session:\n    cookie: portcullis\n    keys: [\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"]\n    insecure_cookies: true\n";
    let text = gateway_config(upstream, &providers, &routes, sign_in)
        .replace("{port}", "0")
        .replace("{admin_port}", "0")
        .replace("{dir}", &dir.path().display().to_string());
    let path = dir.path().join("portcullis.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn run(args: &[&str], config: &std::path::Path) -> (i32, String) {
    let output = Command::new(common::binary())
        .args(args)
        .arg("-c")
        .arg(config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_ne!(
        output.status.code(),
        Some(2),
        "{}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), stdout)
}

#[tokio::test]
#[ignore = "needs a running Keycloak: scripts/keycloak.sh start, then KEYCLOAK_URL"]
async fn doctor_passes_a_correct_keycloak_configuration_and_names_a_wrong_secret() {
    let keycloak = Keycloak::from_env().await;
    let upstream = mocks::upstream("api");
    let dir = tempfile::tempdir().unwrap();
    let good = write_config(&dir, &keycloak, upstream.addr(), ORDERS_SERVICE);
    let (code, out) = run(&["doctor"], &good);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("[FAIL]"), "{out}");
    for expected in [
        "TLS certificate verified",
        "[ok  ] provider acme: issuer `",
        "allowed algorithms with a key: RS256",
        "encryption key(s) (`use: enc`) skipped",
        "[ok  ] provider acme: clock",
        "authorization and token endpoints present (browser sign-in)",
        "introspection endpoint present",
        "client `orders-service` authenticated; its client_credentials token passes every check",
        "[ok  ] upstream api 127.0.0.1:",
    ] {
        if expected == "TLS certificate verified" && keycloak.issuer("acme").starts_with("http://")
        {
            continue;
        }
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }
    let wrong = write_config(
        &dir,
        &keycloak,
        upstream.addr(),
        ("portcullis-gateway", "not-the-secret"),
    );
    let (code, out) = run(&["doctor"], &wrong);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("the provider refuses client `portcullis-gateway`'s credentials"),
        "{out}"
    );
    assert!(!out.contains("not-the-secret") && !out.contains(ORDERS_SERVICE.1));
}

#[tokio::test]
#[ignore = "needs a running Keycloak: scripts/keycloak.sh start, then KEYCLOAK_URL"]
async fn explain_verifies_keycloak_tokens_and_names_the_leaf_that_refuses() {
    let keycloak = Keycloak::from_env().await;
    let upstream = mocks::upstream("api");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&dir, &keycloak, upstream.addr(), GATEWAY_CLIENT);
    let alice = keycloak
        .user_tokens("acme", "web-app", "alice")
        .await
        .access;
    let bob = keycloak.user_tokens("acme", "web-app", "bob").await.access;
    let url = "http://gateway.test/orders/1";
    let (code, out) = run(
        &["explain", "--fetch", "--token", &alice, "GET", url],
        &config,
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("ok   signature: verified with a key from JWKS from discovery"),
        "{out}"
    );
    assert!(out.contains("ok   require: realm role \"writer\""), "{out}");
    assert!(out.contains("introspection"), "{out}");
    let (code, out) = run(
        &["explain", "--fetch", "--token", &bob, "GET", url],
        &config,
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL require: realm role \"writer\""), "{out}");
    assert!(out.contains("403 insufficient_scope"), "{out}");
    assert!(!out.contains(&alice) && !out.contains(&bob));
}
