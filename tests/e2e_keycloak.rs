//! End-to-end: the gateway in front of a real Keycloak (26.x, realms of tests/fixtures/keycloak/)
//! and a real Redis. Keycloak's own JWKS (with its `enc` key), its claim layout, its `aud: account`
//! default, its key rotation through the admin API and its unavailability.
//!
//! Ignored by default: they need a running Keycloak. `scripts/test.sh` starts one; by hand:
//!
//! ```sh
//! scripts/keycloak.sh start
//! KEYCLOAK_URL=$(scripts/keycloak.sh url) cargo test --test e2e_keycloak -- --ignored --test-threads=1
//! ```
//!
//! Run without KEYCLOAK_URL, they fail (they never pass silently). A failure prints the gateway
//! log and the tail of the Keycloak log.

mod common;
#[path = "e2e_keycloak/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::mocks::{self, echoed};
use common::{client, problem, GatewayProcess, RedisProcess};
use reqwest::StatusCode;
use serde_json::Value;
use support::*;

async fn get(gateway: &GatewayProcess, path: &str, token: &str) -> reqwest::Response {
    client()
        .get(gateway.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn status_of(gateway: &GatewayProcess, method: &str, path: &str, token: &str) -> u16 {
    client()
        .request(method.parse().unwrap(), gateway.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Asserts a 401 with `reason`; returns the problem body.
async fn refused(response: reqwest::Response, reason: &str) -> Value {
    assert_eq!(response.status(), 401, "expected 401 {reason}");
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("invalid_token"), "{challenge}");
    let body = problem(response).await;
    assert_eq!(body["reason"], reason, "{body}");
    body
}

async fn readyz(gateway: &GatewayProcess) -> (u16, String) {
    let response = client()
        .get(gateway.admin_url("/readyz"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

async fn wait_ready(gateway: &GatewayProcess) {
    let ready = eventually(Duration::from_secs(20), || async {
        readyz(gateway).await.0 == 200
    })
    .await;
    assert!(ready, "gateway not ready: {:?}", readyz(gateway).await);
}

async fn jwks_fetches(gateway: &GatewayProcess, provider: &str, result: &str) -> f64 {
    let text = metrics_text(gateway.admin_url("/metrics")).await;
    metric(
        &text,
        "portcullis_jwks_fetches_total",
        &[("provider", provider), ("result", result)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running Keycloak: run scripts/test.sh (or scripts/keycloak.sh start) and set KEYCLOAK_URL"]
async fn client_credentials_token_is_accepted_and_identity_reaches_the_upstream() {
    let _log = KeycloakLogOnFailure;
    let kc = Keycloak::from_env().await;
    eprintln!("Keycloak {} at {}", kc.version().await, kc.base);
    let api = mocks::upstream("api");
    let config = gateway_config(
        api.addr(),
        &provider(&kc, "acme", ""),
        &route(
            "echo",
            "/echo",
            "{ providers: [acme], require: { realm_role: reader } }",
        ),
        "",
    );
    let gateway = GatewayProcess::start(&config);
    wait_ready(&gateway).await;

    let token = kc.client_token("acme", ORDERS_SERVICE).await;
    let claims = claims(&token);
    let headers = echoed(get(&gateway, "/echo/_test/echo", &token).await).await;
    assert_eq!(headers["x-user-id"][0], claims["sub"]);
    assert_eq!(headers["x-client"][0], "orders-service");
    assert_eq!(headers["x-username"][0], "service-account-orders-service");
    assert_eq!(headers["x-issuer"][0], kc.issuer("acme").as_str());
    let roles = headers["x-roles"][0].as_str().unwrap();
    assert!(roles.split(',').any(|r| r == "reader"), "{roles}");
    assert!(
        headers.get("authorization").is_none(),
        "the token went upstream"
    );

    // Keycloak's JWKS holds its RSA-OAEP `enc` key too: skipped, not fatal.
    let metrics = metrics_text(gateway.admin_url("/metrics")).await;
    assert_eq!(
        metric(&metrics, "portcullis_jwks_keys", &[("provider", "acme")]),
        1.0,
        "only the RS256 signing key is usable:\n{metrics}"
    );
    assert_eq!(jwks_fetches(&gateway, "acme", "failure").await, 0.0);

    // No token, a garbage token: refused with the realm named in the challenge.
    let response = client()
        .get(gateway.url("/echo/_test/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(problem(response).await["reason"], "missing_token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running Keycloak: run scripts/test.sh (or scripts/keycloak.sh start) and set KEYCLOAK_URL"]
async fn password_grant_users_are_allowed_and_denied_by_roles_and_groups() {
    let _log = KeycloakLogOnFailure;
    let kc = Keycloak::from_env().await;
    let api = mocks::upstream("api");
    let routes = [
        route(
            "orders",
            "/orders",
            "{ providers: [acme], require: { realm_role: reader }, methods: { POST: { realm_role: writer } } }",
        ),
        route(
            "engineering",
            "/engineering",
            "{ providers: [acme], require: { group: /engineering } }",
        ),
        route(
            "admin",
            "/admin",
            "{ providers: [acme], require: { client_role: { client: orders-api, role: \"orders:admin\" } } }",
        ),
        route(
            "finance",
            "/finance",
            "{ providers: [acme], require: { all: [ { group: /finance }, { realm_role: reader } ] } }",
        ),
        route(
            "profile",
            "/profile",
            "{ providers: [acme], require: { all: [ { scope: email }, { claim: { path: email_verified, equals: true } } ] } }",
        ),
    ]
    .concat();
    let gateway = GatewayProcess::start(&gateway_config(
        api.addr(),
        &provider(&kc, "acme", ""),
        &routes,
        "",
    ));
    wait_ready(&gateway).await;

    let alice = kc.user_tokens("acme", "web-app", "alice").await.access;
    let bob = kc.user_tokens("acme", "web-app", "bob").await.access;
    let carol = kc.user_tokens("acme", "web-app", "carol").await.access;
    // alice: reader, writer, /engineering/backend, orders-api orders:admin
    // bob:   reader, /finance
    // carol: no role, /engineering
    let table: [(&str, &str, &str, [u16; 3]); 7] = [
        ("GET", "/orders/_test/echo", "read orders", [200, 200, 403]),
        (
            "POST",
            "/orders/_test/echo",
            "create orders",
            [200, 403, 403],
        ),
        (
            "GET",
            "/engineering/_test/echo",
            "group /engineering (and subgroups)",
            [200, 403, 200],
        ),
        (
            "GET",
            "/admin/_test/echo",
            "client role orders-api/orders:admin",
            [200, 403, 403],
        ),
        (
            "GET",
            "/finance/_test/echo",
            "group /finance and reader",
            [403, 200, 403],
        ),
        (
            "GET",
            "/profile/_test/echo",
            "scope email, verified",
            [200, 200, 200],
        ),
        (
            "DELETE",
            "/orders/_test/echo",
            "read orders",
            [200, 200, 403],
        ),
    ];
    let mut failures = Vec::new();
    for (method, path, what, expected) in table {
        for ((user, token), want) in [("alice", &alice), ("bob", &bob), ("carol", &carol)]
            .into_iter()
            .zip(expected)
        {
            let got = status_of(&gateway, method, path, token).await;
            if got != want {
                failures.push(format!(
                    "{user} {method} {path} ({what}): {got}, expected {want}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // A 403 is a problem naming the requirement, with the RFC 6750 challenge.
    let response = get(&gateway, "/finance/_test/echo", &alice).await;
    assert_eq!(response.status(), 403);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert_eq!(problem(response).await["reason"], "insufficient_scope");

    // Keycloak's group claim (full path) and roles reach the upstream.
    let headers = echoed(get(&gateway, "/engineering/_test/echo", &alice).await).await;
    assert_eq!(headers["x-groups"][0], "/engineering/backend");
    assert_eq!(headers["x-username"][0], "alice");
    assert_eq!(headers["x-client"][0], "web-app");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running Keycloak: run scripts/test.sh (or scripts/keycloak.sh start) and set KEYCLOAK_URL"]
async fn a_token_without_the_audience_mapper_gets_401_naming_the_fix() {
    let _log = KeycloakLogOnFailure;
    let kc = Keycloak::from_env().await;
    let api = mocks::upstream("api");
    let gateway = GatewayProcess::start(&gateway_config(
        api.addr(),
        &provider(&kc, "acme", ""),
        &route("echo", "/echo", "{ providers: [acme] }"),
        "",
    ));
    wait_ready(&gateway).await;

    // legacy-cli has no Audience mapper: Keycloak's default `aud` is `account`.
    let token = kc.user_tokens("acme", "legacy-cli", "carol").await.access;
    assert_eq!(claims(&token)["aud"], "account", "fixture changed?");
    let body = refused(
        get(&gateway, "/echo/_test/echo", &token).await,
        "audience_mismatch",
    )
    .await;
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("Audience mapper"), "{detail}");
    assert!(detail.contains("orders-api"), "{detail}");
    assert!(detail.contains("account"), "{detail}");

    // The same user through web-app, which has the mapper, is accepted.
    let token = kc.user_tokens("acme", "web-app", "carol").await.access;
    assert_eq!(
        get(&gateway, "/echo/_test/echo", &token).await.status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running Keycloak: run scripts/test.sh (or scripts/keycloak.sh start) and set KEYCLOAK_URL"]
async fn refresh_and_id_tokens_get_401() {
    let _log = KeycloakLogOnFailure;
    let kc = Keycloak::from_env().await;
    let api = mocks::upstream("api");
    let gateway = GatewayProcess::start(&gateway_config(
        api.addr(),
        &provider(&kc, "acme", ""),
        &route("typed", "/typed", "{ providers: [acme] }"),
        "",
    ));
    wait_ready(&gateway).await;

    let tokens = kc.user_tokens("acme", "web-app", "alice").await;
    assert_eq!(
        get(&gateway, "/typed/_test/echo", &tokens.access)
            .await
            .status(),
        200
    );
    assert_eq!(claims(&tokens.refresh)["typ"], "Refresh");
    assert_eq!(claims(&tokens.id)["typ"], "ID");
    // The refresh token is HS512 (signed with the realm's secret, never published): refused
    // before any signature work.
    let body = refused(
        get(&gateway, "/typed/_test/echo", &tokens.refresh).await,
        "algorithm_not_allowed",
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("HS512"), "{body}");
    // The ID token is RS256, signed by the realm key, with `aud` = the client (web-app): its
    // audience does not fit the API.
    refused(
        get(&gateway, "/typed/_test/echo", &tokens.id).await,
        "audience_mismatch",
    )
    .await;
    drop(gateway);

    // Even where the client is an accepted audience, `token_types: [Bearer]` refuses `typ: ID`.
    let gateway = GatewayProcess::start(&gateway_config(
        api.addr(),
        &format!(
            "  acme:\n    discovery: \"{}\"\n    audiences: [\"orders-api\", \"web-app\"]\n    token_types: [\"Bearer\"]\n",
            kc.discovery_url("acme")
        ),
        &route("typed", "/typed", "{ providers: [acme] }"),
        "",
    ));
    wait_ready(&gateway).await;
    let body = refused(
        get(&gateway, "/typed/_test/echo", &tokens.id).await,
        "wrong_token_type",
    )
    .await;
    eprintln!("ID token: {body}");
    refused(
        get(&gateway, "/typed/_test/echo", &tokens.refresh).await,
        "algorithm_not_allowed",
    )
    .await;
    assert_eq!(
        get(&gateway, "/typed/_test/echo", &tokens.access)
            .await
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running Keycloak: run scripts/test.sh (or scripts/keycloak.sh start) and set KEYCLOAK_URL"]
async fn a_second_realm_is_accepted_only_on_routes_that_list_it() {
    let _log = KeycloakLogOnFailure;
    let kc = Keycloak::from_env().await;
    let api = mocks::upstream("api");
    let providers = [provider(&kc, "acme", ""), provider(&kc, "partners", "")].concat();
    let routes = [
        route("acme-only", "/acme", "{ providers: [acme] }"),
        route("partners-only", "/partners", "{ providers: [partners] }"),
        route("both", "/both", "{ providers: [acme, partners] }"),
    ]
    .concat();
    let gateway = GatewayProcess::start(&gateway_config(api.addr(), &providers, &routes, ""));
    wait_ready(&gateway).await;

    let acme = kc.client_token("acme", ORDERS_SERVICE).await;
    let partner = kc.client_token("partners", PARTNER_SERVICE).await;
    assert_eq!(claims(&partner)["iss"], kc.issuer("partners").as_str());

    let headers = echoed(get(&gateway, "/both/_test/echo", &partner).await).await;
    assert_eq!(headers["x-issuer"][0], kc.issuer("partners").as_str());
    assert_eq!(headers["x-client"][0], "partner-service");
    assert_eq!(
        get(&gateway, "/partners/_test/echo", &partner)
            .await
            .status(),
        200
    );
    assert_eq!(get(&gateway, "/both/_test/echo", &acme).await.status(), 200);
    assert_eq!(get(&gateway, "/acme/_test/echo", &acme).await.status(), 200);
    refused(
        get(&gateway, "/acme/_test/echo", &partner).await,
        "provider_not_allowed",
    )
    .await;
    refused(
        get(&gateway, "/partners/_test/echo", &acme).await,
        "provider_not_allowed",
    )
    .await;
}

/// Counts of one load run: (kid, status) -> requests.
type Tally = Arc<Mutex<BTreeMap<(String, u16), u64>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running Keycloak: run scripts/test.sh (or scripts/keycloak.sh start) and set KEYCLOAK_URL"]
async fn key_rotation_under_load_drops_no_valid_token_and_fetches_once() {
    let _log = KeycloakLogOnFailure;
    let kc = Keycloak::from_env().await;
    let api = mocks::upstream("api");
    // Keycloak answers its JWKS with `Cache-Control: no-cache`: the gateway refreshes every
    // 30 s (its floor). The rotation below happens well within the first 30 s.
    let started = Instant::now();
    let gateway = GatewayProcess::start(&gateway_config(
        api.addr(),
        &provider(
            &kc,
            "acme",
            "    jwks: { refresh_interval: 30s, min_refetch_interval: 10s }\n",
        ),
        &route("echo", "/echo", "{ providers: [acme] }"),
        "",
    ));
    wait_ready(&gateway).await;
    let fetches_at_start = jwks_fetches(&gateway, "acme", "success").await;

    let (old_kid, old_component, _) = kc.active_rs256_key("acme").await;
    let old_token = kc.client_token("acme", ORDERS_SERVICE).await;
    assert_eq!(kid(&old_token), old_kid);
    assert_eq!(
        get(&gateway, "/echo/_test/echo", &old_token).await.status(),
        200
    );

    // The load: 4 clients, each alternating the old token and the newest token Keycloak issued
    // (a minter asks for a fresh client_credentials token continuously).
    let stop = Arc::new(AtomicBool::new(false));
    let newest = Arc::new(Mutex::new(old_token.clone()));
    let tally: Tally = Arc::default();
    let minter = {
        let (stop, newest) = (stop.clone(), newest.clone());
        let kc = Keycloak::from_env().await;
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let token = kc.client_token("acme", ORDERS_SERVICE).await;
                *newest.lock().unwrap() = token;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let url = gateway.url("/echo/_test/echo");
    let mut clients = Vec::new();
    for worker in 0..4 {
        let (stop, newest, tally, url) = (stop.clone(), newest.clone(), tally.clone(), url.clone());
        let old_token = old_token.clone();
        clients.push(tokio::spawn(async move {
            let http = client();
            let mut i = worker;
            while !stop.load(Ordering::Relaxed) {
                let token = if i % 2 == 0 {
                    old_token.clone()
                } else {
                    newest.lock().unwrap().clone()
                };
                i += 1;
                let status = match http.get(&url).bearer_auth(&token).send().await {
                    Ok(response) => response.status().as_u16(),
                    Err(_) => 0,
                };
                *tally
                    .lock()
                    .unwrap()
                    .entry((kid(&token), status))
                    .or_default() += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    kc.rotate_rs256_key("acme").await;
    let (new_kid, _, _) = kc.active_rs256_key("acme").await;
    assert_ne!(new_kid, old_kid);
    // Keep the load on until plenty of new-kid tokens went through.
    let enough = eventually(Duration::from_secs(10), || async {
        tally
            .lock()
            .unwrap()
            .get(&(new_kid.clone(), 200))
            .is_some_and(|n| *n >= 50)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    for task in clients {
        task.await.unwrap();
    }
    minter.await.unwrap();
    let tally = tally.lock().unwrap().clone();
    eprintln!("load during rotation (kid, status) -> requests: {tally:?}");
    assert!(enough, "too few new-kid requests: {tally:?}");
    let bad: Vec<_> = tally
        .iter()
        .filter(|((_, status), _)| *status != 200)
        .collect();
    assert!(
        bad.is_empty(),
        "valid tokens refused during rotation: {bad:?}"
    );
    assert!(tally.get(&(old_kid.clone(), 200)).is_some_and(|n| *n > 0));

    let fetches = jwks_fetches(&gateway, "acme", "success").await - fetches_at_start;
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(29),
        "the rotation phase took {elapsed:?}: a scheduled refresh may be counted"
    );
    assert_eq!(
        fetches, 1.0,
        "one JWKS fetch for the new kid, shared by every waiting request"
    );
    assert_eq!(jwks_fetches(&gateway, "acme", "failure").await, 0.0);

    // Disable the old key: it leaves the JWKS; at the next refresh (30 s) the gateway drops it,
    // and the verified-token cache entries signed by it.
    kc.disable_key_provider("acme", &old_component).await;
    let jwks: Value = client()
        .get(format!("{}{}", kc.base, Keycloak::jwks_path("acme")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !jwks.to_string().contains(&old_kid),
        "old kid still published"
    );
    let new_token = kc.client_token("acme", ORDERS_SERVICE).await;
    let dropped_at = Instant::now();
    let refused_now = eventually(Duration::from_secs(45), || async {
        get(&gateway, "/echo/_test/echo", &old_token).await.status() == 401
    })
    .await;
    assert!(refused_now, "the old key's token is still accepted");
    eprintln!(
        "old key's token refused {:?} after the key was disabled",
        dropped_at.elapsed()
    );
    refused(
        get(&gateway, "/echo/_test/echo", &old_token).await,
        "unknown_kid",
    )
    .await;
    assert_eq!(
        get(&gateway, "/echo/_test/echo", &new_token).await.status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running Keycloak: run scripts/test.sh (or scripts/keycloak.sh start) and set KEYCLOAK_URL"]
async fn keycloak_down_the_gateway_serves_with_cached_keys_and_readyz_stays_honest() {
    let _log = KeycloakLogOnFailure;
    let kc = Keycloak::from_env().await;
    let api = mocks::upstream("api");
    // The gateway reaches Keycloak's JWKS through a proxy this test cuts: for the gateway,
    // Keycloak is down (connections refused) while the test can still get tokens.
    let proxy = CuttableProxy::start(kc.address()).await;
    let provider_block = format!(
        "  acme:\n    issuer: \"{}\"\n    jwks_uri: \"{}{}\"\n    audiences: [\"orders-api\"]\n    token_types: [\"Bearer\"]\n    jwks: {{ refresh_interval: 30s, min_refetch_interval: 1s, timeout: 2s }}\n",
        kc.issuer("acme"),
        proxy.url(),
        Keycloak::jwks_path("acme"),
    );
    let config = gateway_config(
        api.addr(),
        &provider_block,
        &route("echo", "/echo", "{ providers: [acme] }"),
        "",
    );
    let gateway = GatewayProcess::start(&config);
    wait_ready(&gateway).await;
    let token = kc.client_token("acme", ORDERS_SERVICE).await;
    assert_eq!(
        get(&gateway, "/echo/_test/echo", &token).await.status(),
        200
    );

    proxy.cut();
    // A token with a kid the gateway does not know makes it try Keycloak now (instead of at
    // the next refresh): the fetch fails.
    let unknown = forged_token(&kc.issuer("acme"), "not-a-keycloak-kid");
    refused(
        get(&gateway, "/echo/_test/echo", &unknown).await,
        "unknown_kid",
    )
    .await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            jwks_fetches(&gateway, "acme", "failure").await >= 1.0
        })
        .await,
        "no failed fetch recorded"
    );
    assert!(
        gateway.log().contains("key refresh failed"),
        "{}",
        gateway.log()
    );

    // Cached keys keep serving: the token seen before, and tokens never seen (a new one).
    assert_eq!(
        get(&gateway, "/echo/_test/echo", &token).await.status(),
        200
    );
    let fresh = kc.client_token("acme", ORDERS_SERVICE).await;
    assert_eq!(
        get(&gateway, "/echo/_test/echo", &fresh).await.status(),
        200
    );
    // Ready: it has keys and serves; the age of those keys is visible in the metrics.
    let (status, body) = readyz(&gateway).await;
    assert_eq!(status, 200, "{body}");
    let metrics = metrics_text(gateway.admin_url("/metrics")).await;
    assert!(
        metric(
            &metrics,
            "portcullis_jwks_last_success_timestamp_seconds",
            &[("provider", "acme")]
        ) > 0.0
    );

    // A gateway started while Keycloak is down has no keys: not ready, naming the provider, and
    // its tokens get 503 (not 401).
    let cold = GatewayProcess::start(&config);
    let (status, body) = readyz(&cold).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("acme"), "{body}");
    let response = get(&cold, "/echo/_test/echo", &token).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(problem(response).await["reason"], "provider_unavailable");

    // Keycloak back: the cold gateway gets keys and becomes ready; both serve.
    proxy.restore().await;
    let recovered = eventually(Duration::from_secs(40), || async {
        readyz(&cold).await.0 == 200
    })
    .await;
    assert!(
        recovered,
        "not ready after Keycloak came back: {:?}",
        readyz(&cold).await
    );
    assert_eq!(get(&cold, "/echo/_test/echo", &token).await.status(), 200);
    assert_eq!(
        get(&gateway, "/echo/_test/echo", &fresh).await.status(),
        200
    );
}

/// An RS256-looking JWT of `issuer` with `kid`, and a garbage signature.
fn forged_token(issuer: &str, kid: &str) -> String {
    use base64::Engine;
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    format!(
        "{}.{}.{}",
        b64(serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": kid})),
        b64(
            serde_json::json!({"iss": issuer, "aud": "orders-api", "sub": "x", "typ": "Bearer", "exp": now + 300, "iat": now})
        ),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 256]),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running Keycloak: run scripts/test.sh (or scripts/keycloak.sh start) and set KEYCLOAK_URL"]
async fn a_rate_limit_is_shared_by_two_gateways_through_redis() {
    let _log = KeycloakLogOnFailure;
    let kc = Keycloak::from_env().await;
    let redis = RedisProcess::start();
    let api = mocks::upstream("api");
    let mut routes = route("limited", "/limited", "{ providers: [acme] }");
    routes.push_str("    rate_limit: per-client\n");
    let extra = format!(
        "rate_limits:\n  per-client:\n    key: client_id\n    rate: 10/min\n    store: redis\n    headers: true\n\
redis:\n  url: \"{}\"\n  timeout: 50ms\n  on_error: deny\n",
        redis.url()
    );
    let config = gateway_config(api.addr(), &provider(&kc, "acme", ""), &routes, &extra);
    let first = GatewayProcess::start(&config);
    let second = GatewayProcess::start(&config);
    wait_ready(&first).await;
    wait_ready(&second).await;

    let token = kc.client_token("acme", ORDERS_SERVICE).await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        for gateway in [&first, &second] {
            statuses.push(status_of(gateway, "GET", "/limited/_test/echo", &token).await);
        }
    }
    let allowed = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(allowed, 10, "10/min shared by both gateways: {statuses:?}");
    assert!(statuses[..10].iter().all(|s| *s == 200), "{statuses:?}");
    assert!(statuses[10..].iter().all(|s| *s == 429), "{statuses:?}");
    let response = get(&second, "/limited/_test/echo", &token).await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(problem(response).await["reason"], "rate_limited");

    // Another client of the same realm has its own budget.
    let carol = kc.user_tokens("acme", "web-app", "carol").await.access;
    assert_eq!(
        status_of(&first, "GET", "/limited/_test/echo", &carol).await,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running Keycloak: run scripts/test.sh (or scripts/keycloak.sh start) and set KEYCLOAK_URL"]
async fn a_sighup_reload_adds_a_realm() {
    let _log = KeycloakLogOnFailure;
    let kc = Keycloak::from_env().await;
    let api = mocks::upstream("api");
    let before = gateway_config(
        api.addr(),
        &provider(&kc, "acme", ""),
        &route("api", "/api", "{ providers: [acme] }"),
        "",
    );
    let gateway = GatewayProcess::start(&before);
    wait_ready(&gateway).await;
    let acme = kc.client_token("acme", ORDERS_SERVICE).await;
    let partner = kc.client_token("partners", PARTNER_SERVICE).await;
    assert_eq!(get(&gateway, "/api/_test/echo", &acme).await.status(), 200);
    let response = get(&gateway, "/api/_test/echo", &partner).await;
    assert_eq!(response.status(), 401);
    eprintln!("before the reload: {}", problem(response).await);

    let after = gateway_config(
        api.addr(),
        &[provider(&kc, "acme", ""), provider(&kc, "partners", "")].concat(),
        &route("api", "/api", "{ providers: [acme, partners] }"),
        "",
    );
    gateway.write_config(&after);
    gateway.signal("HUP");
    let accepted = eventually(Duration::from_secs(20), || async {
        get(&gateway, "/api/_test/echo", &partner).await.status() == 200
    })
    .await;
    assert!(
        accepted,
        "the new realm's token is not accepted after SIGHUP"
    );
    let headers = echoed(get(&gateway, "/api/_test/echo", &partner).await).await;
    assert_eq!(headers["x-issuer"][0], kc.issuer("partners").as_str());
    assert_eq!(get(&gateway, "/api/_test/echo", &acme).await.status(), 200);
    wait_ready(&gateway).await;
    let metrics = metrics_text(gateway.admin_url("/metrics")).await;
    assert!(
        metric(
            &metrics,
            "portcullis_config_reloads_total",
            &[("result", "success")]
        ) >= 1.0,
        "{metrics}"
    );
    // The acme provider did not change: it kept its keys (one fetch since start).
    assert_eq!(jwks_fetches(&gateway, "acme", "success").await, 1.0);
}
