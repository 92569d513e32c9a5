//! Integration: `portcullis validate` accepts the product contract and reports every error in a
//! bad file as `FILE:LINE:COLUMN: message`, with hints.

mod common;

use std::process::Command;
use std::time::Duration;

/// Runs `portcullis validate` on `text` and returns (exit ok, stdout, stderr, file path).
fn validate(text: &str) -> (bool, String, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, text).unwrap();
    let output = Command::new(common::binary())
        .args(["validate", "-c"])
        .arg(&path)
        .env("KEYCLOAK_URL", "http://127.0.0.1:18080")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        path.display().to_string(),
    )
}

const VALID_HEAD: &str = "server:\n  listen: [\"127.0.0.1:8080\"]\nupstreams:\n  orders:\n    targets: [\"127.0.0.1:9001\"]\n";

#[test]
fn the_product_contract_and_the_shipped_config_validate() {
    for file in ["tests/fixtures/spec.yaml", "conf/portcullis.yaml"] {
        let output = Command::new(common::binary())
            .args(["validate", "-c", file])
            .env("KEYCLOAK_URL", "http://127.0.0.1:18080")
            .env("ACME_CLIENT_SECRET", "a-client-secret")
            .env(
                "PORTCULLIS_SESSION_KEY",
                "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
            )
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.starts_with(&format!("{file}: ok (")), "{stdout}");
        assert!(
            stdout.contains("routes")
                && stdout.contains("upstreams")
                && stdout.contains("identity providers")
        );
    }
}

#[test]
fn unknown_key_is_located_and_hinted() {
    let (ok, _, stderr, path) = validate(&format!(
        "{VALID_HEAD}routes:\n  - name: a\n    match: {{ path: /a }}\n    upstrem: orders\n    auth: none\n"
    ));
    assert!(!ok);
    assert!(
        stderr.contains(&format!("{path}:9:5: routes[0]: unknown field `upstrem`")),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `upstream`?"), "{stderr}");
}

#[test]
fn wrong_type_and_bad_duration_are_located() {
    let (ok, _, stderr, path) =
        validate("server:\n  listen: [\"127.0.0.1:8080\"]\n  threads: many\n");
    assert!(!ok);
    assert!(
        stderr.contains(&format!("{path}:3:12: server.threads: invalid type")),
        "{stderr}"
    );

    let (ok, _, stderr, path) = validate(&format!(
        "{VALID_HEAD}    connect_timeout: 5 fortnights\nroutes: []\n"
    ));
    assert!(!ok);
    assert!(
        stderr.contains(&format!("{path}:6:22: upstreams.orders.connect_timeout")),
        "{stderr}"
    );
    assert!(stderr.contains("unknown unit `fortnights`"), "{stderr}");
}

#[test]
fn semantic_errors_are_all_reported_with_positions() {
    let (ok, _, stderr, path) = validate(&format!(
        "{VALID_HEAD}routes:\n  - name: a\n    match: {{ path: /a }}\n    upstream: ordres\n    auth: none\n  - name: a\n    match: {{ path: /b }}\n    upstream: orders\n"
    ));
    assert!(!ok);
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines.contains(&format!("{path}:9:15: routes[0].upstream: unknown upstream `ordres`, did you mean `orders`?").as_str()),
        "{stderr}"
    );
    assert!(
        lines.contains(&format!("{path}:11:11: routes[1].name: duplicate route name `a`").as_str()),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{path}:11:5: routes[1]: route has no `auth`")),
        "{stderr}"
    );
    assert!(stderr.contains("3 error(s)"), "{stderr}");
}

#[test]
fn broken_yaml_is_located() {
    let (ok, _, stderr, path) = validate("server:\n  listen: [\"127.0.0.1:8080\"\nroutes: []\n");
    assert!(!ok);
    assert!(stderr.starts_with(&format!("{path}:")), "{stderr}");
    let position: Vec<&str> = stderr.split(':').skip(1).take(2).collect();
    assert!(
        position.iter().all(|p| p.parse::<usize>().is_ok()),
        "{stderr}"
    );
}

#[test]
fn unset_environment_variable_is_located() {
    let (ok, _, stderr, path) = validate(&format!(
        "{VALID_HEAD}identity_providers:\n  x:\n    issuer: \"${{NOT_SET_ANYWHERE}}/realms/x\"\n    jwks_uri: http://x/certs\nroutes: []\n"
    ));
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "{path}:8:14: environment variable `NOT_SET_ANYWHERE` is not set"
        )),
        "{stderr}"
    );
}

#[test]
fn missing_file_is_reported() {
    let output = Command::new(common::binary())
        .args(["validate", "-c", "/nonexistent/portcullis.yaml"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr)
        .contains("/nonexistent/portcullis.yaml:1:1: cannot read"));
}

/// Runs `portcullis validate` on `text`, killing it after `limit`; returns (exit ok, stderr,
/// file path), or `None` when it was still running at `limit`.
fn validate_within(text: &str, limit: Duration) -> Option<(bool, String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.yaml");
    std::fs::write(&path, text).unwrap();
    let stderr_path = dir.path().join("stderr");
    let mut child = Command::new(common::binary())
        .args(["validate", "-c"])
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let mut status = None;
    common::wait_until(limit, || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        return None;
    };
    Some((
        status.success(),
        std::fs::read_to_string(&stderr_path).unwrap(),
        path.display().to_string(),
    ))
}

/// Nesting and size are bounded before parsing: a deeply nested or oversized file is refused
/// with a located error at once, instead of keeping a parser busy for minutes. (The limit is an
/// upper bound for a debug build on a busy machine, not a benchmark.)
#[test]
fn deeply_nested_and_oversized_files_are_refused_at_once() {
    let limit = Duration::from_secs(2);
    let depth = 200_000;
    let deep = format!(
        "{VALID_HEAD}routes: {}{}\n",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let (ok, stderr, path) =
        validate_within(&deep, limit).expect("a 400 KB nested file is refused within 2 s");
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "{path}:6:72: the configuration nests 65 levels deep here; the deepest accepted is 64"
        )),
        "{stderr}"
    );

    let block: String = (0..3000)
        .map(|i| format!("{}k:\n", " ".repeat(i % 200)))
        .collect();
    let (ok, stderr, path) =
        validate_within(&block, limit).expect("a deep block mapping is refused within 2 s");
    assert!(!ok);
    assert!(
        stderr.contains(&format!("{path}:65:")) && stderr.contains("nests 65 levels"),
        "{stderr}"
    );

    let padding = "# padding\n".repeat(450_000);
    let large = format!("{VALID_HEAD}routes: []\n{padding}");
    let (ok, stderr, path) =
        validate_within(&large, limit).expect("a 4.5 MB file is refused within 2 s");
    assert!(!ok);
    assert!(
        stderr.contains(&format!("{path}:1:1: the configuration is"))
            && stderr.contains("the largest accepted is 4194304 bytes (4 MiB)"),
        "{stderr}"
    );
}

/// Sizes, durations and counts that parse but would break every request (or hold resources
/// without bound) are refused, each located and naming its allowed range.
#[test]
fn sizes_timeouts_and_counts_outside_their_range_are_refused() {
    let (ok, _, stderr, path) = validate(
        r#"server:
  listen: ["127.0.0.1:8080"]
  threads: 0
  max_header_size: 0
  read_timeout: 0s
  keepalive_timeout: 100d
  header_timeout: 0s
  max_connections: 0
access_log: { buffer_lines: 0 }
upstreams:
  orders:
    targets: ["127.0.0.1:9001"]
    connect_timeout: 0s
    read_timeout: 0ms
    max_failures: 0
    health_check: { interval: 0s, healthy_after: 0 }
identity_providers:
  realm:
    issuer: "http://127.0.0.1:18080/realms/realm"
    jwks_uri: "http://127.0.0.1:18080/certs"
    audiences: [orders-api]
    jwks: { timeout: 0s, max_size: 0 }
    token_cache: { ttl: 100d }
rate_limits:
  closed:
    key: client_ip
    rate: 2000000000/s
routes:
  - name: a
    match: { path: /a }
    upstream: orders
    auth: none
    response:
      json: { max_body: 0 }
"#,
    );
    assert!(!ok);
    for expected in [
        ":3:12: server.threads: `0` is out of range: allowed 1 to 1024",
        ":4:20: server.max_header_size: `0B` is out of range: allowed 1KiB to 1MiB",
        ":5:17: server.read_timeout: `0s` is out of range: allowed 100ms to 1h",
        ":6:22: server.keepalive_timeout: `100d` is out of range: allowed 1s to 1h",
        ":7:19: server.header_timeout: `0s` is out of range: allowed 100ms to 1h",
        ":8:20: server.max_connections: `0` is out of range: allowed 1 to 1000000",
        ":9:29: access_log.buffer_lines: `0` is out of range: allowed 1 to 1048576",
        ":13:22: upstreams.orders.connect_timeout: `0s` is out of range: allowed 10ms to 1m",
        ":14:19: upstreams.orders.read_timeout: `0s` is out of range: allowed 100ms to 1h",
        ":15:19: upstreams.orders.max_failures: `0` is out of range: allowed 1 to 100",
        ":16:31: upstreams.orders.health_check.interval: `0s` is out of range: allowed 100ms to 1h",
        ":16:50: upstreams.orders.health_check.healthy_after: `0` is out of range: allowed 1 to 100",
        ":22:22: identity_providers.realm.jwks.timeout: `0s` is out of range: allowed 100ms to 1m",
        ":22:36: identity_providers.realm.jwks.max_size: `0B` is out of range: allowed 1KiB to 16MiB",
        ":23:25: identity_providers.realm.token_cache.ttl: `100d` is out of range: allowed 0s to 1d",
        ":27:11: rate_limits.closed.rate: `2000000000` is out of range: allowed 1 to 1000000000",
        ":34:25: routes[0].response.json.max_body: `0B` is out of range: allowed 1B to 64MiB",
    ] {
        assert!(
            stderr.contains(&format!("{path}{expected}")),
            "missing `{expected}` in:\n{stderr}"
        );
    }
}

#[test]
fn browser_sign_in_mistakes_are_refused_offline() {
    let provider = "identity_providers:\n  acme:\n    issuer: \"http://127.0.0.1:1/realms/acme\"\n    jwks_uri: \"http://127.0.0.1:1/certs\"\n    audiences: [orders-api]\n";
    let route = "routes:\n  - name: console\n    match: { path_prefix: / }\n    upstream: orders\n    auth: { providers: [acme], sign_in: acme }\n";
    let (ok, _, stderr, _) = validate(&format!("{VALID_HEAD}{provider}{route}"));
    assert!(!ok);
    for expected in [
        "routes[0].auth.sign_in: needs the `browser_sign_in` section",
        "identity provider `acme` needs a `client` block",
        "identity provider `acme` needs `discovery`",
    ] {
        assert!(stderr.contains(expected), "{expected}\n{stderr}");
    }

    let section = "browser_sign_in:\n  callback_path: callback\n  scopes: [profile]\n  session:\n    cookie: __Host-portcullis\n    keys: [\"c2hvcnQ=\"]\n    insecure_cookies: true\n    store: redis\n    idle_timeout: 10s\n";
    let (ok, _, stderr, _) = validate(&format!("{VALID_HEAD}{section}"));
    assert!(!ok);
    for expected in [
        "browser_sign_in.callback_path: `callback` is not an absolute path",
        "browser_sign_in.scopes: must contain `openid`",
        "browser_sign_in.session.cookie: browsers refuse `__Host-portcullis` without `Secure`",
        "browser_sign_in.session.keys:",
        "openssl rand -base64 32",
        "browser_sign_in.session.store:",
        "browser_sign_in.session.idle_timeout:",
    ] {
        assert!(stderr.contains(expected), "{expected}\n{stderr}");
    }
    assert!(
        !stderr.contains("c2hvcnQ="),
        "a key is never echoed: {stderr}"
    );
}
