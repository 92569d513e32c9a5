//! Integration: browser sign-in against the development identity provider — the whole
//! authorization code flow with PKCE as a browser walks it, the same rules for sessions and
//! bearer tokens, 401 (never a redirect) for scripts, a callback that refuses a state it did not
//! issue, tampered and chunked session cookies, gateway cookies kept from every upstream, and a
//! client secret rotated through its file and a reload.

mod common;

use common::browser::{location, query_params, set_cookies, start, Browser, COOKIE};
use common::mocks::{self, echoed};
use common::{client, problem, wait_until, GatewayProcess};
use portcullis::dev::identity_provider::{
    DevClient, DevUser, GATEWAY_CLIENT_ID, GATEWAY_CLIENT_SECRET,
};
use portcullis::sign_in::seal::generate_key_base64;
use std::time::Duration;

#[tokio::test]
async fn a_browser_signs_in_and_comes_back_to_the_page_it_wanted() {
    let setup = start("");
    let (idp, gateway) = (&setup.idp, &setup.gateway);
    let browser = Browser::new();
    let page = gateway.url("/app/_test/echo?tab=2");

    let started = browser.navigate(&page).await;
    let authorization_url = location(&started);
    assert!(
        authorization_url.starts_with(&format!(
            "{}/protocol/openid-connect/auth?",
            idp.issuer("acme")
        )),
        "{authorization_url}"
    );
    let params = query_params(&authorization_url);
    assert_eq!(params["response_type"], "code");
    assert_eq!(params["client_id"], GATEWAY_CLIENT_ID);
    assert_eq!(params["code_challenge_method"], "S256");
    assert_eq!(params["code_challenge"].len(), 43);
    assert_eq!(params["redirect_uri"], gateway.url("/.portcullis/callback"));
    assert_eq!(params["scope"], "openid profile email");
    assert!(params["state"].len() >= 32 && params["nonce"].len() >= 32);
    // The login state rides in its own short-lived cookie, never in the URL.
    let state_cookie = set_cookies(started.headers()).concat();
    assert!(
        state_cookie.starts_with(&format!("{COOKIE}-state-")),
        "{state_cookie}"
    );
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=600"] {
        assert!(
            state_cookie.contains(attribute),
            "{attribute}: {state_cookie}"
        );
    }
    assert!(!state_cookie.contains(&params["nonce"]) && !state_cookie.contains("tab=2"));

    let logged_in = browser
        .log_in_at_provider(&authorization_url, "alice", "alice")
        .await;
    let callback = location(&logged_in);
    assert!(
        callback.starts_with(&gateway.url("/.portcullis/callback?")),
        "{callback}"
    );
    let back = browser.navigate(&callback).await;
    assert_eq!(location(&back), "/app/_test/echo?tab=2");
    let session_cookie = set_cookies(back.headers())
        .into_iter()
        .find(|c| c.starts_with(&format!("{COOKIE}=")))
        .expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=28800"] {
        assert!(
            session_cookie.contains(attribute),
            "{attribute}: {session_cookie}"
        );
    }
    assert!(
        browser
            .cookie_names(&page)
            .iter()
            .all(|n| !n.contains("-state-")),
        "the login state is gone after the callback"
    );

    // An application cookie passes; the gateway's never reach the upstream.
    browser.put_cookie(&page, "app_pref", Some("dark"));
    let response = browser.navigate(&page).await;
    let headers = echoed(response).await;
    assert_eq!(headers["x-user"][0], "alice");
    assert_eq!(headers["cookie"][0], "app_pref=dark");
    assert!(headers.get("authorization").is_none(), "{headers}");
    assert_eq!(idp.grants("acme", "authorization_code"), 1);
    assert_eq!(idp.grants("acme", "refresh_token"), 0, "the token is fresh");

    // The access log names the session's user as it would a bearer token's; no code, state,
    // nonce or cookie value is ever logged.
    let access_log = gateway.dir.path().join("access.log");
    let read_access_log = || std::fs::read_to_string(&access_log).unwrap_or_default();
    let named = wait_until(Duration::from_secs(5), || {
        read_access_log().contains("\"subject\":\"0b9e6a4c-alice\"")
    });
    assert!(named, "{}", read_access_log());
    let log = gateway.log() + &read_access_log();
    let callback_params = query_params(&callback);
    let sealed = browser.cookie(&page, COOKIE).unwrap();
    for secret in [
        callback_params["code"].as_str(),
        params["state"].as_str(),
        params["nonce"].as_str(),
        &sealed[..40],
    ] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

#[tokio::test]
async fn sessions_and_bearer_tokens_meet_the_same_rules_and_scripts_get_401() {
    let setup = start("");
    let (idp, gateway) = (&setup.idp, &setup.gateway);
    let page = gateway.url("/app/_test/echo");

    // bob is in /finance, not /engineering: signed in, but refused like his token would be.
    let bob = Browser::new();
    let refused = bob.sign_in(&page, "bob", "bob").await;
    assert_eq!(refused.status(), 403);
    assert_eq!(problem(refused).await["reason"], "insufficient_scope");

    // A script without a session or token: 401 with WWW-Authenticate, never a redirect.
    let script = Browser::new();
    let answer = script.fetch(&page).await;
    assert_eq!(answer.status(), 401);
    assert!(answer.headers().get("location").is_none());
    assert!(answer.headers().get("www-authenticate").is_some());
    assert_eq!(problem(answer).await["reason"], "missing_token");
    let posted = script
        .send(
            reqwest::Method::POST,
            &page,
            &[("accept", "text/html")],
            None,
        )
        .await;
    assert_eq!(
        posted.status(),
        401,
        "only GET/HEAD navigations are redirected"
    );

    // Bearer tokens on the same route: the group decides, as for sessions.
    let engineer = idp.token("acme").groups(&["/engineering"]).mint().unwrap();
    let finance = idp.token("acme").groups(&["/finance"]).mint().unwrap();
    let http = client();
    let with = |token: String| {
        http.get(&page)
            .bearer_auth(token)
            .header("accept", "text/html")
    };
    assert_eq!(with(engineer).send().await.unwrap().status(), 200);
    assert_eq!(with(finance).send().await.unwrap().status(), 403);
}

#[tokio::test]
async fn the_callback_refuses_a_state_it_did_not_issue() {
    let setup = start("");
    let gateway = &setup.gateway;
    let browser = Browser::new();
    let page = gateway.url("/app/_test/echo");
    let authorization_url = location(&browser.navigate(&page).await);
    let callback = location(
        &browser
            .log_in_at_provider(&authorization_url, "alice", "alice")
            .await,
    );
    let state = query_params(&callback)["state"].clone();

    // Another browser (no login-state cookie): a login CSRF attempt.
    let attacker = Browser::new();
    let answer = attacker.navigate(&callback).await;
    assert_eq!(answer.status(), 400);
    assert_eq!(problem(answer).await["reason"], "sign_in_state_missing");

    // A state cookie that does not open.
    let state_cookie = browser
        .cookie_names(&page)
        .into_iter()
        .find(|n| n.contains("-state-"))
        .unwrap();
    let sealed = browser.cookie(&page, &state_cookie).unwrap();
    let flipped = if sealed.ends_with('A') { "B" } else { "A" };
    browser.put_cookie(
        &page,
        &state_cookie,
        Some(&format!("{}{flipped}", &sealed[..sealed.len() - 1])),
    );
    let answer = browser.navigate(&callback).await;
    assert_eq!(problem(answer).await["reason"], "sign_in_state_invalid");
    browser.put_cookie(&page, &state_cookie, Some(&sealed));

    // A different state value with the right cookie.
    let forged = callback.replace(&state, &format!("{}x", &state[..state.len() - 1]));
    let answer = browser.navigate(&forged).await;
    assert_eq!(answer.status(), 400);

    // The real callback works once; replaying it finds no state.
    let back = browser.navigate(&callback).await;
    assert_eq!(location(&back), "/app/_test/echo");
    let replay = browser.navigate(&callback).await;
    assert_eq!(problem(replay).await["reason"], "sign_in_state_missing");
    // An error from the provider is reported, not followed.
    let denied = gateway.url(&format!(
        "/.portcullis/callback?state={state}&error=access_denied"
    ));
    assert_eq!(browser.navigate(&denied).await.status(), 400);
}

#[tokio::test]
async fn a_tampered_or_foreign_session_cookie_is_no_session() {
    let setup = start("");
    let gateway = &setup.gateway;
    let browser = Browser::new();
    let page = gateway.url("/app/_test/echo");
    assert_eq!(browser.sign_in(&page, "alice", "alice").await.status(), 200);
    let sealed = browser.cookie(&page, COOKIE).unwrap();

    let mut bytes = sealed.clone().into_bytes();
    let middle = bytes.len() / 2;
    bytes[middle] = if bytes[middle] == b'A' { b'B' } else { b'A' };
    browser.put_cookie(&page, COOKIE, Some(std::str::from_utf8(&bytes).unwrap()));
    assert_eq!(browser.fetch(&page).await.status(), 401);
    let again = browser.navigate(&page).await;
    assert!(location(&again).contains("/protocol/openid-connect/auth?"));

    // A cookie sealed by another gateway's key does not open here.
    let other = start("");
    let stranger = Browser::new();
    let other_page = other.gateway.url("/app/_test/echo");
    assert_eq!(
        stranger
            .sign_in(&other_page, "alice", "alice")
            .await
            .status(),
        200
    );
    let foreign = stranger.cookie(&other_page, COOKIE).unwrap();
    browser.put_cookie(&page, COOKIE, Some(&foreign));
    assert_eq!(browser.fetch(&page).await.status(), 401);
    browser.put_cookie(&page, COOKIE, Some(&sealed));
    assert_eq!(browser.fetch(&page).await.status(), 200);
}

#[tokio::test]
async fn a_large_session_is_chunked_and_reassembled() {
    let setup = start("");
    let (idp, gateway) = (&setup.idp, &setup.gateway);
    let groups: Vec<String> = (0..150)
        .map(|i| format!("/engineering/team-{i:03}-with-a-rather-long-group-path"))
        .chain(["/engineering".to_owned()])
        .collect();
    let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
    idp.add_user("acme", DevUser::new("carol", "carol").with_groups(&groups));
    let browser = Browser::new();
    let page = gateway.url("/app/_test/echo");
    let response = browser.sign_in(&page, "carol", "carol").await;
    assert_eq!(echoed(response).await["x-user"][0], "carol");
    let names = browser.cookie_names(&page);
    assert!(names.contains(&format!("{COOKIE}_1")), "{names:?}");
    assert!(browser.cookie(&page, COOKIE).unwrap().contains('.'));

    // A missing chunk is no session (never half of one).
    browser.put_cookie(&page, &format!("{COOKIE}_1"), None);
    assert_eq!(browser.fetch(&page).await.status(), 401);
}

#[tokio::test]
async fn the_access_token_goes_upstream_only_where_a_route_asks() {
    let setup = start("");
    let gateway = &setup.gateway;
    let browser = Browser::new();
    let response = browser
        .sign_in(&gateway.url("/token/_test/echo"), "alice", "alice")
        .await;
    let headers = echoed(response).await;
    let bearer = headers["authorization"][0].as_str().unwrap();
    assert!(bearer.starts_with("Bearer ey"), "{bearer}");
    assert!(headers.get("cookie").is_none(), "{headers}");

    for path in ["/app/_test/echo", "/public/_test/echo"] {
        browser.put_cookie(&gateway.url(path), "theme", Some("dark"));
        let headers = echoed(browser.navigate(&gateway.url(path)).await).await;
        assert!(headers.get("authorization").is_none(), "{path}: {headers}");
        assert_eq!(headers["cookie"][0], "theme=dark", "{path}");
    }
}

#[tokio::test]
async fn a_rotated_client_secret_file_takes_effect_with_a_reload() {
    let idp = mocks::idp(&["acme"]);
    let upstream = mocks::upstream("api");
    let secrets = tempfile::tempdir().unwrap();
    let secret_file = secrets.path().join("client-secret");
    std::fs::write(&secret_file, format!("{GATEWAY_CLIENT_SECRET}\n")).unwrap();
    let text = common::browser::config(&idp, upstream.addr(), &[&generate_key_base64()], "")
        .replace(
            &format!("secret: \"{GATEWAY_CLIENT_SECRET}\""),
            &format!("secret_file: \"{}\"", secret_file.display()),
        );
    let gateway = GatewayProcess::start(&text);
    let page = gateway.url("/app/_test/echo");
    assert_eq!(
        Browser::new()
            .sign_in(&page, "alice", "alice")
            .await
            .status(),
        200
    );

    // The secret is rotated at the provider: the code exchange fails until the file follows.
    let rotated = "rotated-secret-4711";
    idp.add_client("acme", DevClient::new(GATEWAY_CLIENT_ID, rotated));
    let browser = Browser::new();
    let authorization_url = location(&browser.navigate(&page).await);
    let callback = location(
        &browser
            .log_in_at_provider(&authorization_url, "bob", "bob")
            .await,
    );
    let failed = browser.navigate(&callback).await;
    assert_eq!(failed.status(), 502);
    assert_eq!(problem(failed).await["reason"], "token_exchange_failed");

    std::fs::write(&secret_file, format!("{rotated}\n")).unwrap();
    let reloaded = client()
        .post(gateway.admin_url("/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(reloaded.status(), 200);
    assert_eq!(
        Browser::new()
            .sign_in(&page, "alice", "alice")
            .await
            .status(),
        200
    );
    let log = gateway.log();
    assert!(
        !log.contains(rotated) && !log.contains(GATEWAY_CLIENT_SECRET),
        "{log}"
    );
}
