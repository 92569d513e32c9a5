//! End-to-end: browser sign-in through the gateway against a real Keycloak (26.x, the
//! `portcullis-gateway` confidential client of tests/fixtures/keycloak/acme-realm.json): the
//! authorization code flow on Keycloak's own login page, the group rule for people, logout at the
//! gateway and at Keycloak, Keycloak's back-channel logout ending the gateway's session, and
//! token introspection refusing a token whose session an admin ended.
//! The last test drives a real headless Chromium over WebDriver.
//!
//! Ignored by default: they need a running Keycloak (and Chromium with chromedriver for the
//! browser test). `scripts/test.sh` provides both; by hand:
//!
//! ```sh
//! scripts/keycloak.sh start
//! KEYCLOAK_URL=$(scripts/keycloak.sh url) cargo test --test e2e_sign_in -- --ignored --test-threads=1
//! ```

mod common;
#[path = "e2e_keycloak/support.rs"]
#[allow(dead_code)] // shared with tests/e2e_keycloak.rs, which uses the rest
mod support;

use common::browser::{location, query_params, Browser};
use common::mocks::{self, echoed};
use common::GatewayProcess;
use portcullis::sign_in::seal::generate_key_base64;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;
use support::*;

const CLIENT: (&str, &str) = ("portcullis-gateway", "portcullis-gateway-secret");

/// A gateway whose `/console/` is for the `/engineering` group, signed in with realm `acme`.
fn sign_in_gateway(keycloak: &Keycloak, upstream: std::net::SocketAddr) -> GatewayProcess {
    let providers = provider(
        keycloak,
        "acme",
        &format!(
            "    client: {{ id: {}, secret: \"{}\" }}\n",
            CLIENT.0, CLIENT.1
        ),
    );
    let routes = "  - name: console\n    match: { path_prefix: /console/ }\n    strip_prefix: true\n    upstream: api\n    auth: { providers: [acme], sign_in: acme, require: { group: /engineering } }\n    request:\n      set_headers: { X-Username: \"{claims.preferred_username}\", X-Groups: \"{claims.groups}\" }\n";
    let sign_in = format!(
        "browser_sign_in:\n  session:\n    cookie: portcullis\n    keys: [\"{}\"]\n    insecure_cookies: true\n",
        generate_key_base64()
    );
    GatewayProcess::start(&gateway_config(upstream, &providers, routes, &sign_in))
}

/// Keycloak's id of user `username` in realm acme.
async fn user_id(keycloak: &Keycloak, username: &str) -> String {
    let users = keycloak
        .admin(
            Method::GET,
            &format!("realms/acme/users?username={username}&exact=true"),
            None,
        )
        .await;
    users[0]["id"].as_str().unwrap().to_owned()
}

/// Ends every SSO session of `user` (earlier runs against the same Keycloak leave some).
async fn sign_out_everywhere(keycloak: &Keycloak, user: &str) {
    keycloak
        .admin(
            Method::POST,
            &format!("realms/acme/users/{user}/logout"),
            None,
        )
        .await;
}

/// The ids of the user's live SSO sessions.
async fn sessions_of(keycloak: &Keycloak, user: &str) -> Vec<String> {
    let sessions = keycloak
        .admin(
            Method::GET,
            &format!("realms/acme/users/{user}/sessions"),
            None,
        )
        .await;
    sessions
        .as_array()
        .map(|all| {
            all.iter()
                .filter_map(|s| s["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Points the gateway client's back-channel logout URL at `url`.
async fn set_backchannel_url(keycloak: &Keycloak, url: &str) {
    let clients = keycloak
        .admin(
            Method::GET,
            &format!("realms/acme/clients?clientId={}", CLIENT.0),
            None,
        )
        .await;
    let mut client: Value = clients[0].clone();
    let id = client["id"].as_str().unwrap().to_owned();
    client["attributes"]["backchannel.logout.url"] = json!(url);
    client["attributes"]["backchannel.logout.session.required"] = json!("true");
    keycloak
        .admin(
            Method::PUT,
            &format!("realms/acme/clients/{id}"),
            Some(client),
        )
        .await;
}

#[tokio::test]
#[ignore = "needs a running Keycloak: scripts/keycloak.sh start, then KEYCLOAK_URL"]
async fn people_sign_in_on_keycloak_meet_the_group_rule_and_log_out_everywhere() {
    let _keycloak_log = KeycloakLogOnFailure;
    let keycloak = Keycloak::from_env().await;
    let upstream = mocks::upstream("api");
    let gateway = sign_in_gateway(&keycloak, upstream.addr());
    let page = gateway.url("/console/_test/echo");
    let alice_id = user_id(&keycloak, "alice").await;
    sign_out_everywhere(&keycloak, &alice_id).await;

    let alice = Browser::new();
    let started = alice.navigate(&page).await;
    let authorization_url = location(&started);
    assert!(
        authorization_url.starts_with(&keycloak.issuer("acme")),
        "{authorization_url}"
    );
    let logged_in = alice
        .log_in_at_provider(&authorization_url, "alice", "alice-password")
        .await;
    let callback = location(&logged_in);
    assert_eq!(query_params(&callback)["iss"], keycloak.issuer("acme"));
    let back = alice.navigate(&callback).await;
    assert_eq!(location(&back), "/console/_test/echo");
    let headers = echoed(alice.navigate(&page).await).await;
    assert_eq!(headers["x-username"][0], "alice");
    assert!(headers["x-groups"][0]
        .as_str()
        .unwrap()
        .contains("/engineering/backend"));
    assert!(headers.get("cookie").is_none(), "{headers}");

    // bob is in /finance: Keycloak signs him in, the gateway's rule refuses him.
    let bob = Browser::new();
    assert_eq!(
        bob.sign_in(&page, "bob", "bob-password").await.status(),
        403
    );

    // Logout at the gateway goes on to Keycloak, which ends the SSO session and comes back.
    assert_eq!(sessions_of(&keycloak, &alice_id).await.len(), 1);
    let out = alice
        .navigate(&gateway.url("/.portcullis/logout?rd=/console/bye"))
        .await;
    let end_session = location(&out);
    assert!(end_session.contains("id_token_hint="), "{end_session}");
    let landed = alice.navigate(&end_session).await;
    assert_eq!(location(&landed), gateway.url("/console/bye"));
    assert!(sessions_of(&keycloak, &alice_id).await.is_empty());
    // Signed out at Keycloak too: the next visit meets the login form again.
    let again = location(&alice.navigate(&page).await);
    let form = alice.navigate(&again).await;
    assert_eq!(form.status(), 200);
    assert!(form.text().await.unwrap().contains("kc-form-login"));
}

#[tokio::test]
#[ignore = "needs a running Keycloak: scripts/keycloak.sh start, then KEYCLOAK_URL"]
async fn an_admin_sign_out_at_keycloak_ends_the_gateway_session_by_back_channel() {
    let _keycloak_log = KeycloakLogOnFailure;
    let keycloak = Keycloak::from_env().await;
    let upstream = mocks::upstream("api");
    let gateway = sign_in_gateway(&keycloak, upstream.addr());
    // Sessions left by earlier runs end first, before this gateway is Keycloak's back-channel.
    let carol_id = user_id(&keycloak, "carol").await;
    sign_out_everywhere(&keycloak, &carol_id).await;
    set_backchannel_url(&keycloak, &gateway.url("/.portcullis/backchannel-logout")).await;
    let page = gateway.url("/console/_test/echo");
    let carol = Browser::new();
    let response = carol.sign_in(&page, "carol", "carol-password").await;
    assert_eq!(echoed(response).await["x-username"][0], "carol");

    let sessions = sessions_of(&keycloak, &carol_id).await;
    assert_eq!(sessions.len(), 1);
    keycloak
        .admin(
            Method::DELETE,
            &format!("realms/acme/sessions/{}", sessions[0]),
            None,
        )
        .await;
    let ended = eventually(Duration::from_secs(10), || async {
        carol.fetch(&page).await.status() == 401
    })
    .await;
    assert!(
        ended,
        "the back-channel logout did not end the session:\n{}",
        gateway.log()
    );
    let metrics = metrics_text(gateway.admin_url("/metrics")).await;
    assert_eq!(
        metric(
            &metrics,
            "portcullis_sign_in_events_total",
            &[("event", "backchannel_logout"), ("outcome", "ok")]
        ),
        1.0
    );
}

#[tokio::test]
#[ignore = "needs a running Keycloak: scripts/keycloak.sh start, then KEYCLOAK_URL"]
async fn a_session_ended_at_keycloak_stops_its_token_on_an_introspecting_route_only() {
    let _keycloak_log = KeycloakLogOnFailure;
    let keycloak = Keycloak::from_env().await;
    let upstream = mocks::upstream("api");
    let providers = provider(
        &keycloak,
        "acme",
        &format!(
            "    client: {{ id: {}, secret: \"{}\" }}\n    introspection: {{ cache_ttl: 1s }}\n",
            CLIENT.0, CLIENT.1
        ),
    );
    let routes = format!(
        "{}{}",
        route(
            "checked",
            "/checked",
            "{ providers: [acme], introspect: true }"
        ),
        route("plain", "/plain", "{ providers: [acme] }")
    );
    let gateway = GatewayProcess::start(&gateway_config(upstream.addr(), &providers, &routes, ""));
    let alice_id = user_id(&keycloak, "alice").await;
    sign_out_everywhere(&keycloak, &alice_id).await;
    let tokens = keycloak.user_tokens("acme", "web-app", "alice").await;
    let http = common::client();
    let status = |path: &'static str| {
        http.get(gateway.url(path))
            .bearer_auth(&tokens.access)
            .send()
    };
    assert_eq!(status("/checked/_test/echo").await.unwrap().status(), 200);
    assert_eq!(status("/plain/_test/echo").await.unwrap().status(), 200);

    // Keycloak's admin API ends alice's sessions: the token is no longer active there.
    sign_out_everywhere(&keycloak, &alice_id).await;
    let stopped = eventually(Duration::from_secs(10), || async {
        status("/checked/_test/echo").await.unwrap().status() == 401
    })
    .await;
    assert!(
        stopped,
        "the introspecting route still accepts the token:\n{}",
        gateway.log()
    );
    let refused = status("/checked/_test/echo").await.unwrap();
    assert_eq!(common::problem(refused).await["reason"], "token_revoked");
    assert_eq!(
        status("/plain/_test/echo").await.unwrap().status(),
        200,
        "a plain route accepts the JWT until it expires"
    );
}

/// A `chromedriver` on a free port of 127.0.0.1, stopped when dropped.
struct ChromeDriver {
    child: std::process::Child,
    port: u16,
}

impl ChromeDriver {
    fn start() -> ChromeDriver {
        let port = common::free_port();
        let child = std::process::Command::new("chromedriver")
            .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start chromedriver ({e}): this test needs Chromium driven over \
                     WebDriver; install `chromium chromium-driver` (scripts/test.sh does)"
                )
            });
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let up = common::wait_until(Duration::from_secs(20), || {
            std::net::TcpStream::connect_timeout(&address, Duration::from_millis(100)).is_ok()
        });
        assert!(up, "chromedriver did not listen on {address}");
        ChromeDriver { child, port }
    }

    /// A new headless Chromium session.
    async fn browser(&self) -> fantoccini::Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({ "args": [
                "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--no-proxy-server", "--window-size=1024,768"
            ] }),
        );
        // WebDriver over plain HTTP on loopback: no TLS stack needed.
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        fantoccini::ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a Chromium session from chromedriver")
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
#[ignore = "needs a running Keycloak and Chromium with chromedriver"]
async fn a_real_chromium_signs_in_on_keycloaks_login_page_and_lands_on_the_app() {
    use fantoccini::Locator;
    let _keycloak_log = KeycloakLogOnFailure;
    let keycloak = Keycloak::from_env().await;
    let upstream = mocks::upstream("api");
    let gateway = sign_in_gateway(&keycloak, upstream.addr());
    let driver = ChromeDriver::start();
    let chromium = driver.browser().await;
    let page = gateway.url("/console/_test/echo");

    chromium.goto(&page).await.unwrap();
    let username = chromium
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Id("username"))
        .await
        .unwrap();
    let at_keycloak = chromium.current_url().await.unwrap();
    assert!(
        at_keycloak.as_str().starts_with(&keycloak.issuer("acme")),
        "{at_keycloak}"
    );
    username.send_keys("alice").await.unwrap();
    let password = chromium.find(Locator::Id("password")).await.unwrap();
    password.send_keys("alice-password").await.unwrap();
    chromium
        .find(Locator::Id("kc-login"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let page_url = reqwest::Url::parse(&page).unwrap();
    chromium
        .wait()
        .at_most(Duration::from_secs(20))
        .for_url(&page_url)
        .await
        .unwrap_or_else(|e| panic!("did not land on {page}: {e}\n{}", gateway.log()));
    let text = chromium
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let echoed: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(echoed["headers"]["x-username"][0], "alice", "{text}");
    assert!(echoed["headers"].get("cookie").is_none(), "{text}");
    chromium.close().await.unwrap();
}
