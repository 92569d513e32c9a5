//! Integration: the life of a browser session — refresh shortly before the access token expires
//! (once however many requests arrive together), the end of the session at the provider, logout
//! here and at the provider with same-host landing pages only, back-channel logout with forged
//! tokens refused, session keys rotated by a reload without signing anyone out, and the idle
//! timeout, the absolute lifetime and the login timeout (cookies aged with the gateway's key).

mod common;

use common::browser::{config, location, query_params, start, Browser, COOKIE};
use common::mocks::echoed;
use common::{client, problem};
use futures_util::future::join_all;
use portcullis::dev::identity_provider::{DevClient, GATEWAY_CLIENT_ID};
use portcullis::sign_in::seal::{generate_key_base64, SealKeys};
use portcullis::sign_in::session::{LoginState, Session};
use std::time::Duration;

#[tokio::test]
async fn the_access_token_is_refreshed_once_and_a_session_ended_at_the_provider_ends_here() {
    let setup = start("refresh_before: 60s");
    let (idp, gateway) = (&setup.idp, &setup.gateway);
    // Tokens that live 30 s are inside `refresh_before` from the start.
    idp.set_access_token_lifetime(Duration::from_secs(30));
    let browser = Browser::new();
    let page = gateway.url("/app/_test/echo");
    assert_eq!(browser.sign_in(&page, "alice", "alice").await.status(), 200);
    // The final navigation of sign_in already needed one refresh.
    assert_eq!(idp.grants("acme", "refresh_token"), 1);
    let refreshed_once = browser.cookie(&page, COOKIE).unwrap();

    // Five requests at once with the same nearly expired session: one refresh grant.
    let answers = join_all((0..5).map(|_| browser.fetch(&page))).await;
    assert!(answers.iter().all(|a| a.status() == 200));
    assert_eq!(idp.grants("acme", "refresh_token"), 2);
    let renewed = browser.cookie(&page, COOKIE).unwrap();
    assert_ne!(
        renewed, refreshed_once,
        "the refreshed session comes back as a cookie"
    );
    // A late request with the pre-refresh cookie reuses the result instead of the grant.
    browser.put_cookie(&page, COOKIE, Some(&refreshed_once));
    assert_eq!(browser.fetch(&page).await.status(), 200);
    assert_eq!(idp.grants("acme", "refresh_token"), 2);
    browser.put_cookie(&page, COOKIE, Some(&renewed));

    // The session ends at the provider (admin sign-out): the next refresh fails, and the
    // browser is sent to sign in again while a script gets 401.
    let (sid, user) = idp.sessions("acme").pop().unwrap();
    assert_eq!(user, "alice");
    idp.end_session("acme", &sid).await;
    assert_eq!(browser.fetch(&page).await.status(), 401);
    let again = browser.navigate(&page).await;
    assert!(location(&again).contains("/protocol/openid-connect/auth?"));
}

#[tokio::test]
async fn logout_ends_the_session_here_and_at_the_provider_and_lands_on_this_host() {
    let setup = start("");
    let (idp, gateway) = (&setup.idp, &setup.gateway);
    let browser = Browser::new();
    let page = gateway.url("/app/_test/echo");
    assert_eq!(browser.sign_in(&page, "alice", "alice").await.status(), 200);
    let copied = browser.cookie(&page, COOKIE).unwrap();

    let out = browser
        .navigate(&gateway.url("/.portcullis/logout?rd=/app/bye"))
        .await;
    let end_session = location(&out);
    assert!(
        end_session.starts_with(&format!(
            "{}/protocol/openid-connect/logout?",
            idp.issuer("acme")
        )),
        "{end_session}"
    );
    let params = query_params(&end_session);
    assert_eq!(params["post_logout_redirect_uri"], gateway.url("/app/bye"));
    assert_eq!(params["client_id"], GATEWAY_CLIENT_ID);
    assert!(params["id_token_hint"].starts_with("ey"));
    assert_eq!(
        browser.cookie(&page, COOKIE),
        None,
        "the session cookie is expired"
    );
    let landed = browser.navigate(&end_session).await;
    assert_eq!(location(&landed), gateway.url("/app/bye"));
    assert!(
        idp.sessions("acme").is_empty(),
        "the provider's session ended too"
    );

    // A copy of the cookie taken before the logout is worth nothing now.
    browser.put_cookie(&page, COOKIE, Some(&copied));
    let replay = browser.fetch(&page).await;
    assert_eq!(replay.status(), 401);

    // Landing pages are same-host paths only; anything else lands on `/`.
    for rd in [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "javascript:alert(1)",
        "%2F%2Fevil.example",
    ] {
        let url = format!(
            "{}?rd={}",
            gateway.url("/.portcullis/logout"),
            urlencode(rd)
        );
        let answer = Browser::new().navigate(&url).await;
        assert_eq!(location(&answer), "/", "rd={rd}");
    }
}

fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn back_channel_logout_ends_the_session_and_forged_tokens_are_refused() {
    let setup = start("");
    let (idp, gateway) = (&setup.idp, &setup.gateway);
    let endpoint = gateway.url("/.portcullis/backchannel-logout");
    idp.add_client(
        "acme",
        DevClient {
            backchannel_logout_url: Some(endpoint.clone()),
            ..DevClient::default()
        },
    );
    let browser = Browser::new();
    let page = gateway.url("/app/_test/echo");
    assert_eq!(browser.sign_in(&page, "alice", "alice").await.status(), 200);
    let (sid, _) = idp.sessions("acme").pop().unwrap();

    let http = client();
    let post = |body: String| {
        http.post(&endpoint)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let form = |token: String| format!("logout_token={token}");
    let logout_token = || {
        idp.logout_token("acme", GATEWAY_CLIENT_ID)
            .claim("sid", sid.as_str())
            .claim("sub", "0b9e6a4c-alice")
    };
    let forged = [
        (
            "a nonce",
            logout_token().claim("nonce", "n").mint().unwrap(),
        ),
        (
            "another audience",
            logout_token().claim("aud", "someone-else").mint().unwrap(),
        ),
        (
            "no event",
            logout_token().without_claim("events").mint().unwrap(),
        ),
        ("an ID token", idp.token("acme").id_token().mint().unwrap()),
        (
            "a bad signature",
            logout_token().mint().unwrap().replace(".ey", ".eX"),
        ),
    ];
    for (what, token) in forged {
        let answer = post(form(token)).await.unwrap();
        assert_eq!(answer.status(), 400, "{what}");
        assert_eq!(
            problem(answer).await["reason"],
            "invalid_logout_token",
            "{what}"
        );
    }
    assert_eq!(post("no token here".into()).await.unwrap().status(), 400);
    let get = http.get(&endpoint).send().await.unwrap();
    assert_eq!(get.status(), 405);
    assert_eq!(browser.fetch(&page).await.status(), 200, "still signed in");

    // Keycloak ends the SSO session and tells the gateway.
    let deliveries = idp.end_session("acme", &sid).await;
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].status, Some(200), "{deliveries:?}");
    assert_eq!(browser.fetch(&page).await.status(), 401);
}

#[tokio::test]
async fn session_keys_rotate_through_a_reload_without_signing_anyone_out() {
    let setup = start("");
    let (idp, gateway) = (&setup.idp, &setup.gateway);
    let (old_key, new_key) = (setup.key.clone(), generate_key_base64());
    let http = client();
    let reload = |keys: Vec<String>| {
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        gateway.write_config(&config(idp, setup.upstream.addr(), &keys, ""));
        http.post(gateway.admin_url("/reload")).send()
    };
    let page = gateway.url("/app/_test/echo");
    let before = Browser::new();
    assert_eq!(before.sign_in(&page, "alice", "alice").await.status(), 200);
    let logged_out = Browser::new();
    assert_eq!(
        logged_out.sign_in(&page, "alice", "alice").await.status(),
        200
    );
    let copied = logged_out.cookie(&page, COOKIE).unwrap();
    logged_out
        .navigate(&gateway.url("/.portcullis/logout"))
        .await;

    // A new first key seals; the old one still opens.
    let answer = reload(vec![new_key.clone(), old_key.clone()])
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        echoed(before.fetch(&page).await).await["x-user"][0],
        "alice"
    );
    let after = Browser::new();
    assert_eq!(after.sign_in(&page, "bob", "bob").await.status(), 403);
    // A logout is remembered across the reload.
    logged_out.put_cookie(&page, COOKIE, Some(&copied));
    assert_eq!(logged_out.fetch(&page).await.status(), 401);

    // The old key retired: its sessions end, the new key's go on.
    assert_eq!(reload(vec![new_key]).await.unwrap().status(), 200);
    assert_eq!(before.fetch(&page).await.status(), 401);
    assert_eq!(
        after.fetch(&page).await.status(),
        403,
        "bob's session opens, his group is wrong"
    );
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Opens the browser's session cookie with the gateway's key, changes it, seals it back: what
/// the passing of time would have done, without waiting for it.
fn age_session(browser: &Browser, page: &str, keys: &SealKeys, change: impl FnOnce(&mut Session)) {
    let sealed = browser.cookie(page, COOKIE).unwrap();
    let mut session = Session::open(keys, &sealed).expect("the session opens with the key");
    change(&mut session);
    browser.put_cookie(page, COOKIE, Some(&session.seal(keys)));
}

#[tokio::test]
async fn idle_and_overlong_sessions_end_and_an_active_one_moves_its_idle_deadline() {
    let setup = start("idle_timeout: 30m\n    lifetime: 2h");
    let gateway = &setup.gateway;
    let keys = SealKeys::from_base64(std::slice::from_ref(&setup.key)).unwrap();
    let page = gateway.url("/app/_test/echo");
    let browser = Browser::new();
    assert_eq!(browser.sign_in(&page, "alice", "alice").await.status(), 200);
    let fresh = browser.cookie(&page, COOKIE).unwrap();

    // Used two minutes ago: served, and re-sealed with a new last use.
    age_session(&browser, &page, &keys, |s| s.last_seen -= 120);
    let answer = browser.fetch(&page).await;
    assert_eq!(answer.status(), 200);
    assert!(answer.headers().get("set-cookie").is_some());
    let touched = Session::open(&keys, &browser.cookie(&page, COOKIE).unwrap()).unwrap();
    assert!(touched.last_seen + 5 >= unix_now(), "{touched:?}");
    // Used a second ago: no new cookie on every request.
    let answer = browser.fetch(&page).await;
    assert!(answer.headers().get("set-cookie").is_none());

    // Unused for longer than the idle timeout.
    age_session(&browser, &page, &keys, |s| s.last_seen -= 31 * 60);
    assert_eq!(browser.fetch(&page).await.status(), 401);
    let again = browser.navigate(&page).await;
    assert!(location(&again).contains("/protocol/openid-connect/auth?"));

    // Active all along, but past the absolute lifetime.
    browser.put_cookie(&page, COOKIE, Some(&fresh));
    age_session(&browser, &page, &keys, |s| s.created_at -= 2 * 3600 + 1);
    assert_eq!(browser.fetch(&page).await.status(), 401);
}

#[tokio::test]
async fn a_sign_in_that_took_too_long_is_refused_at_the_callback() {
    let setup = start("");
    let gateway = &setup.gateway;
    let keys = SealKeys::from_base64(std::slice::from_ref(&setup.key)).unwrap();
    let browser = Browser::new();
    let page = gateway.url("/app/_test/echo");
    let authorization_url = location(&browser.navigate(&page).await);
    let callback = location(
        &browser
            .log_in_at_provider(&authorization_url, "alice", "alice")
            .await,
    );
    let name = browser
        .cookie_names(&page)
        .into_iter()
        .find(|n| n.contains("-state-"))
        .unwrap();
    let mut login = LoginState::open(&keys, &browser.cookie(&page, &name).unwrap()).unwrap();
    assert_eq!(login.return_to, "/app/_test/echo");
    login.expires_at = unix_now() - 1;
    browser.put_cookie(&page, &name, Some(&login.seal(&keys)));
    let answer = browser.navigate(&callback).await;
    assert_eq!(answer.status(), 400);
    assert_eq!(problem(answer).await["reason"], "sign_in_state_expired");
}
