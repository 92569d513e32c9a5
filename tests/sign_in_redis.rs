//! Integration: server-side sessions (`browser_sign_in.session.store: redis`) with a real
//! redis-server — the cookie holds only an opaque id, two gateway instances share the sessions,
//! a logout or back-channel logout at one instance ends the session at the other, Redis never
//! holds the cookie's id or a readable token, and a Redis that is gone fails closed (503) for
//! sessions while bearer tokens keep working.

mod common;

use common::browser::{config, location, Browser, COOKIE};
use common::mocks::{self, echoed};
use common::{client, problem, GatewayProcess, RedisProcess};
use portcullis::dev::identity_provider::{DevClient, GATEWAY_CLIENT_ID};
use portcullis::sign_in::seal::generate_key_base64;

fn redis_config(
    idp: &common::mocks::DevIdp,
    upstream: std::net::SocketAddr,
    key: &str,
    redis: &RedisProcess,
) -> String {
    format!(
        "{}redis:\n  url: \"{}\"\n  timeout: 500ms\n",
        config(idp, upstream, &[key], "store: redis"),
        redis.url()
    )
}

fn redis_keys(redis: &RedisProcess, pattern: &str) -> Vec<String> {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_connection().unwrap();
    redis::cmd("KEYS")
        .arg(pattern)
        .query(&mut connection)
        .unwrap()
}

#[tokio::test]
async fn two_instances_share_sessions_and_a_logout_at_one_ends_it_at_the_other() {
    let idp = mocks::idp(&["acme"]);
    let upstream = mocks::upstream("api");
    let mut redis = RedisProcess::start();
    let key = generate_key_base64();
    let text = redis_config(&idp, upstream.addr(), &key, &redis);
    let first = GatewayProcess::start(&text);
    let second = GatewayProcess::start(&text);
    let page = first.url("/app/_test/echo");
    let other_page = second.url("/app/_test/echo");

    let browser = Browser::new();
    assert_eq!(browser.sign_in(&page, "alice", "alice").await.status(), 200);
    let id = browser.cookie(&page, COOKIE).unwrap();
    assert_eq!(id.len(), 43, "an opaque id, not a sealed session: {id}");
    assert_eq!(browser.cookie_names(&page), vec![COOKIE.to_owned()]);
    // Redis holds the session sealed, under a hash of the id.
    let stored = redis_keys(&redis, "portcullis:{sessions}:session:*");
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(!stored[0].contains(&id));
    let client_of_redis = redis::Client::open(redis.url()).unwrap();
    let mut connection = client_of_redis.get_connection().unwrap();
    let value: String = redis::cmd("GET")
        .arg(&stored[0])
        .query(&mut connection)
        .unwrap();
    // Sealed with the session key, so no JWT (which always has dots) can be read from it.
    assert!(!value.contains('.'), "no readable token in Redis");
    let keys =
        portcullis::sign_in::seal::SealKeys::from_base64(std::slice::from_ref(&key)).unwrap();
    assert!(portcullis::sign_in::session::Session::open(&keys, &value).is_some());

    // The same cookie works at the other instance.
    browser.put_cookie(&other_page, COOKIE, Some(&id));
    let headers = echoed(browser.fetch(&other_page).await).await;
    assert_eq!(headers["x-user"][0], "alice");
    let metrics = first.metrics_text().await;
    assert!(
        metrics.contains("portcullis_sign_in_active_sessions 1"),
        "{metrics}"
    );

    // Logout at the first instance ends the session at the second one too.
    let out = browser.navigate(&first.url("/.portcullis/logout")).await;
    let end_session = location(&out);
    assert!(end_session.contains("/protocol/openid-connect/logout?"));
    browser.navigate(&end_session).await;
    browser.put_cookie(&other_page, COOKIE, Some(&id));
    assert_eq!(browser.fetch(&other_page).await.status(), 401);
    assert!(redis_keys(&redis, "portcullis:{sessions}:session:*").is_empty());

    // Redis gone: a session cannot be looked up (503), a bearer token still works.
    assert_eq!(browser.sign_in(&page, "alice", "alice").await.status(), 200);
    redis.kill();
    let answer = browser.fetch(&page).await;
    assert_eq!(answer.status(), 503);
    assert_eq!(problem(answer).await["reason"], "session_store_unavailable");
    let token = idp.token("acme").groups(&["/engineering"]).mint().unwrap();
    let bearer = client().get(&page).bearer_auth(token).send().await.unwrap();
    assert_eq!(bearer.status(), 200);
}

#[tokio::test]
async fn a_back_channel_logout_at_one_instance_reaches_every_instance() {
    let idp = mocks::idp(&["acme"]);
    let upstream = mocks::upstream("api");
    let redis = RedisProcess::start();
    let key = generate_key_base64();
    let text = redis_config(&idp, upstream.addr(), &key, &redis);
    let first = GatewayProcess::start(&text);
    let second = GatewayProcess::start(&text);
    idp.add_client(
        "acme",
        DevClient {
            backchannel_logout_url: Some(first.url("/.portcullis/backchannel-logout")),
            ..DevClient::default()
        },
    );
    let browser = Browser::new();
    let page = second.url("/app/_test/echo");
    assert_eq!(browser.sign_in(&page, "alice", "alice").await.status(), 200);
    let (sid, _) = idp.sessions("acme").pop().unwrap();
    let deliveries = idp.end_session("acme", &sid).await;
    assert_eq!(deliveries[0].status, Some(200), "{deliveries:?}");
    assert_eq!(deliveries[0].client_id, GATEWAY_CLIENT_ID);
    // The call went to the first instance; the session was signed in at the second.
    assert_eq!(browser.fetch(&page).await.status(), 401);
}

#[tokio::test]
async fn a_refreshed_session_is_kept_in_redis_and_the_cookie_stays() {
    let idp = mocks::idp(&["acme"]);
    idp.set_access_token_lifetime(std::time::Duration::from_secs(30));
    let upstream = mocks::upstream("api");
    let redis = RedisProcess::start();
    let text = format!(
        "{}redis:\n  url: \"{}\"\n  timeout: 500ms\n",
        config(
            &idp,
            upstream.addr(),
            &[&generate_key_base64()],
            "store: redis\n    refresh_before: 60s"
        ),
        redis.url()
    );
    let gateway = GatewayProcess::start(&text);
    let page = gateway.url("/app/_test/echo");
    let browser = Browser::new();
    assert_eq!(browser.sign_in(&page, "alice", "alice").await.status(), 200);
    assert_eq!(idp.grants("acme", "refresh_token"), 1);
    let id = browser.cookie(&page, COOKIE).unwrap();
    let answer = browser.fetch(&page).await;
    assert_eq!(answer.status(), 200);
    assert!(
        answer.headers().get("set-cookie").is_none(),
        "Redis holds the refreshed session"
    );
    assert_eq!(idp.grants("acme", "refresh_token"), 2);
    assert_eq!(browser.cookie(&page, COOKIE).unwrap(), id);
}
