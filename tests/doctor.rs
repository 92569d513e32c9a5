//! `portcullis doctor` against the development identity provider, a mock upstream and a real
//! redis-server: a healthy configuration passes every check (exit 0); each common
//! misconfiguration — issuer with a trailing slash, no key for the allowed algorithms, a
//! provider clock two minutes ahead, a wrong client secret, an upstream that refuses TCP, Redis
//! down, the admin listener on every interface, a realm whose tokens miss the audience — is
//! named with a fix (exit 1 when one fails). No secret reaches the output.

mod common;

use common::mocks::{idp, upstream, DevIdp};
use common::{binary, closed_port, RedisProcess};
use std::process::Command;

struct Setup<'a> {
    idp: &'a DevIdp,
    upstream_port: u16,
    redis_url: String,
}

/// A mock upstream and a redis-server that answer.
struct Running {
    upstream: common::mocks::DemoUpstream,
    redis: RedisProcess,
}

impl Running {
    fn start() -> Running {
        Running {
            upstream: upstream("orders"),
            redis: RedisProcess::start(),
        }
    }

    fn setup<'a>(&self, idp: &'a DevIdp) -> Setup<'a> {
        Setup {
            idp,
            upstream_port: self.upstream.addr().port(),
            redis_url: self.redis.url(),
        }
    }
}

fn config(setup: &Setup<'_>, provider_extra: &str, secret: &str, admin: &str) -> String {
    format!(
        r#"server:
  listen: ["127.0.0.1:0"]
admin:
  listen: "{admin}"
identity_providers:
  acme:
    discovery: "{base}/realms/acme/.well-known/openid-configuration"
    clock_skew: 30s
    client: {{ id: portcullis-gateway, secret: "{secret}" }}
{provider_extra}
upstreams:
  orders: {{ targets: ["127.0.0.1:{upstream}"] }}
redis: {{ url: "{redis}", timeout: 250ms }}
rate_limits:
  shared: {{ key: client_id, rate: 10/s, store: redis }}
routes:
  - name: orders
    match: {{ path_prefix: / }}
    upstream: orders
    auth: {{ providers: [acme], introspect: true }}
    rate_limit: shared
"#,
        base = setup.idp.base_url(),
        upstream = setup.upstream_port,
        redis = setup.redis_url,
    )
}

fn doctor(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.yaml");
    std::fs::write(&path, text).unwrap();
    let output = Command::new(binary())
        .args(["doctor", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(output.status.code(), Some(2), "{stderr}\n{stdout}");
    (output.status.code().unwrap_or(-1), stdout)
}

#[tokio::test]
async fn a_healthy_configuration_passes_every_check() {
    let idp = idp(&["acme"]);
    let running = Running::start();
    let setup = running.setup(&idp);
    let text = config(
        &setup,
        "    audiences: [orders-api]",
        "portcullis-dev-secret",
        "127.0.0.1:0",
    );
    let (code, out) = doctor(&text);
    assert_eq!(code, 0, "{out}");
    for expected in [
        "[ok  ] provider acme: discovery answered in",
        "[ok  ] provider acme: issuer `",
        "signing key(s); allowed algorithms with a key: RS256",
        "[ok  ] provider acme: clock agrees with ours",
        "introspection endpoint present",
        "client `portcullis-gateway` authenticated; its client_credentials token passes every check",
        "[ok  ] upstream orders 127.0.0.1:",
        "PING median",
        "the rate limit script loads",
        "the limit sync script loads",
        "[ok  ] admin 127.0.0.1:0: listens on loopback only",
        "0 warning(s), 0 failure(s)",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }
    assert!(!out.contains("portcullis-dev-secret"));
}

#[tokio::test]
async fn each_misconfiguration_is_named_with_a_fix() {
    let idp = idp(&["acme"]);
    idp.set_clock_offset(120);
    let closed = closed_port();
    let redis_closed = closed_port();
    let setup = Setup {
        idp: &idp,
        upstream_port: closed.port(),
        redis_url: format!("redis://127.0.0.1:{}/0", redis_closed.port()),
    };
    let issuer = format!("{}/", idp.issuer("acme"));
    let extra =
        format!("    issuer: \"{issuer}\"\n    audiences: [orders-api]\n    algorithms: [RS512]");
    let text = config(&setup, &extra, "not-the-secret", "0.0.0.0:0");
    let (code, out) = doctor(&text);
    assert_eq!(code, 1, "{out}");
    for expected in [
        "differs only in a trailing slash",
        "no signing key for the allowed algorithms [RS512]",
        "s ahead of ours, beyond clock_skew (30s)",
        "fix: synchronize both clocks (NTP)",
        "the provider refuses client `portcullis-gateway`'s credentials",
        "refuses TCP",
        "[FAIL] redis 127.0.0.1:",
        "[FAIL] admin 0.0.0.0:0: listens on every interface",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }
    assert!(!out.contains("not-the-secret"));
}

#[tokio::test]
async fn a_realm_whose_tokens_miss_the_audience_is_caught_by_the_probe_token() {
    let idp = idp(&["acme"]);
    let running = Running::start();
    let setup = running.setup(&idp);
    let text = config(
        &setup,
        "    audiences: [billing-api]",
        "portcullis-dev-secret",
        "127.0.0.1:0",
    );
    let (_, out) = doctor(&text);
    assert!(
        out.contains("its own client_credentials token would be refused")
            && out.contains("audience_mismatch")
            && out.contains("Audience mapper"),
        "{out}"
    );
}
