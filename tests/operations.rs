//! Integration: operating the gateway — hot reload under load (valid and invalid files), key
//! caches surviving a reload, Prometheus exposition checked by promtool, readiness, the JSON
//! access log without tokens and with the client address behind trusted proxies, SIGTERM
//! draining in-flight requests, graceful upgrade.

mod common;

use common::mocks::{self, DevIdp};
use common::{client, wait_until, GatewayProcess};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn config(idp: &DevIdp, upstream: std::net::SocketAddr, version: u32, extra: &str) -> String {
    format!(
        r#"
server:
  listen: ["127.0.0.1:{{port}}"]
  threads: 2
  pid_file: "{{dir}}/portcullis.pid"
  shutdown_timeout: 5s
admin:
  listen: "127.0.0.1:{{admin_port}}"
access_log: {{ path: "{{dir}}/access.log" }}
tokens: {{ query: access_token }}
identity_providers:
  acme:
    issuer: "{issuer}"
    jwks_uri: "{jwks}"
    audiences: ["orders-api"]
upstreams:
  api:
    targets: ["{upstream}"]
routes:
  - name: versioned
    match: {{ path_prefix: / }}
    upstream: api
    auth: none
    response:
      set_headers: {{ X-Config-Version: "{version}" }}
  - name: secure
    match: {{ path_prefix: /secure/ }}
    strip_prefix: true
    upstream: api
    auth: {{ providers: [acme] }}
{extra}"#,
        issuer = idp.issuer("acme"),
        jwks = idp.jwks_uri("acme"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_reloads_under_load_drop_nothing() {
    let idp = mocks::idp(&["acme"]);
    let upstream = mocks::upstream("api");
    let gateway = GatewayProcess::start(&config(&idp, upstream.addr(), 0, ""));
    let token = idp.token("acme").mint().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        let (plain, secure, token) = (
            gateway.url("/status"),
            gateway.url("/secure/status"),
            token.clone(),
        );
        load.push(tokio::spawn(async move {
            let http = client();
            while !stop.load(Ordering::Relaxed) {
                let a = http.get(&plain).send().await.map(|r| r.status().as_u16());
                let b = http
                    .get(&secure)
                    .bearer_auth(&token)
                    .send()
                    .await
                    .map(|r| r.status().as_u16());
                for result in [a, b] {
                    match result {
                        Ok(200) => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            }
        }));
    }
    let http = client();
    let jwks_fetches = idp.jwks_requests("acme");
    for round in 1..=20u32 {
        if round % 2 == 0 {
            gateway.write_config("routes: [ {{ broken");
            let response = http
                .post(gateway.admin_url("/reload"))
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                422,
                "round {round}: an invalid file is refused"
            );
            let body = response.text().await.unwrap();
            assert!(body.contains("portcullis.yaml:1:"), "{body}");
        } else {
            gateway.write_config(&config(&idp, upstream.addr(), round, ""));
            let response = http
                .post(gateway.admin_url("/reload"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "round {round}");
        }
        let expected = if round % 2 == 0 { round - 1 } else { round };
        let seen = http.get(gateway.url("/status")).send().await.unwrap();
        assert_eq!(
            seen.headers()["x-config-version"],
            expected.to_string().as_str(),
            "round {round}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "{} requests succeeded",
        ok.load(Ordering::Relaxed)
    );
    assert!(ok.load(Ordering::Relaxed) > 40);
    assert_eq!(
        idp.jwks_requests("acme"),
        jwks_fetches,
        "an unchanged provider keeps its keys across reloads"
    );

    // SIGHUP reloads too, and the metrics count every outcome.
    gateway.write_config(&config(&idp, upstream.addr(), 99, ""));
    gateway.signal("HUP");
    assert!(wait_until(Duration::from_secs(10), || {
        std::process::Command::new("curl")
            .args(["-s", "-D", "-", "-o", "/dev/null", &gateway.url("/status")])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .to_ascii_lowercase()
                    .contains("x-config-version: 99")
            })
            .unwrap_or(false)
    }));
    let metrics = gateway.metrics_text().await;
    assert!(
        metrics.contains("portcullis_config_reloads_total{result=\"success\"} 11"),
        "{metrics}"
    );
    assert!(
        metrics.contains("portcullis_config_reloads_total{result=\"invalid\"} 10"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_and_readiness_is_reported() {
    let idp = mocks::idp(&["acme"]);
    let upstream = mocks::upstream("api");
    let gateway = GatewayProcess::start(&config(&idp, upstream.addr(), 1, ""));
    let http = client();
    let token = idp.token("acme").mint().unwrap();
    http.get(gateway.url("/secure/status"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    http.get(gateway.url("/secure/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        http.get(gateway.admin_url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http.get(gateway.admin_url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let metrics = gateway.metrics_text().await;
    for name in [
        "portcullis_requests_total",
        "portcullis_request_duration_seconds_bucket",
        "portcullis_upstream_duration_seconds_bucket",
        "portcullis_auth_decisions_total",
        "portcullis_jwks_fetches_total",
        "portcullis_jwks_keys",
        "portcullis_jwks_last_success_timestamp_seconds",
        "portcullis_config_info",
        "portcullis_config_loaded_timestamp_seconds",
        "portcullis_upstream_healthy_targets",
    ] {
        assert!(metrics.contains(name), "{name} missing");
    }
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is required (Debian package `prometheus`; scripts/test.sh installs it)");
    use std::io::Write;
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let output = promtool.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    // An upstream without a healthy target makes the gateway not ready.
    drop(upstream);
    assert!(wait_until(Duration::from_secs(15), || {
        std::process::Command::new("curl")
            .args(["-s", &gateway.admin_url("/readyz")])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout).contains("upstream `api` has no healthy target")
            })
            .unwrap_or(false)
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_is_json_and_never_holds_a_token() {
    let idp = mocks::idp(&["acme"]);
    let upstream = mocks::upstream("api");
    let gateway = GatewayProcess::start(&config(&idp, upstream.addr(), 1, ""));
    let http = client();
    let token = idp
        .token("acme")
        .subject("user-1")
        .client("app-9")
        .mint()
        .unwrap();
    http.get(gateway.url("/secure/status"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    http.get(gateway.url(&format!("/secure/status?access_token={token}")))
        .send()
        .await
        .unwrap();
    http.get(gateway.url("/secure/status"))
        .bearer_auth(format!("{token}x"))
        .send()
        .await
        .unwrap();
    let path = gateway.dir.path().join("access.log");
    let mut lines = Vec::new();
    assert!(wait_until(Duration::from_secs(5), || {
        lines = std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        lines.len() >= 3
    }));
    let signature = token.rsplit('.').next().unwrap();
    for line in &lines {
        assert!(
            !line.contains(signature) && !line.contains(&token[..40]),
            "token leaked: {line}"
        );
        let entry: serde_json::Value =
            serde_json::from_str(line).expect("one JSON object per line");
        for key in [
            "time",
            "request_id",
            "route",
            "method",
            "path",
            "status",
            "bytes",
            "duration_ms",
            "auth",
            "rate_limit",
        ] {
            assert!(entry.get(key).is_some(), "{key} missing in {line}");
        }
    }
    let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(first["client_id"], "app-9");
    assert_eq!(first["subject"], "user-1");
    assert_eq!(first["auth"], "allowed");
    let last: serde_json::Value = serde_json::from_str(&lines[2]).unwrap();
    assert_eq!(last["status"], 401);
    assert_eq!(last["reason"], "bad_signature");
}

/// A gateway with an access log in `{dir}/access.log` and one route that sends the upstream the
/// `{request.client_ip}` template as `X-Client-Ip`; `extra` holds more top-level sections.
fn client_ip_config(upstream: std::net::SocketAddr, extra: &str) -> String {
    format!(
        r#"
server:
  listen: ["127.0.0.1:{{port}}"]
  threads: 1
access_log: {{ path: "{{dir}}/access.log" }}
upstreams:
  api:
    targets: ["{upstream}"]
routes:
  - name: echo
    match: {{ path_prefix: / }}
    upstream: api
    auth: none
    request:
      set_headers: {{ X-Client-Ip: "{{request.client_ip}}" }}
{extra}"#
    )
}

/// The first `count` lines of the gateway's access log, once it has that many (polled).
fn access_log_lines(gateway: &GatewayProcess, count: usize) -> Vec<String> {
    let path = gateway.dir.path().join("access.log");
    let mut lines = Vec::new();
    let written = wait_until(Duration::from_secs(5), || {
        lines = std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        lines.len() >= count
    });
    assert!(
        written,
        "{} access-log lines, expected {count}: {lines:?}",
        lines.len()
    );
    lines.truncate(count);
    lines
}

/// Sends one request whose X-Forwarded-For claims 203.0.113.9; returns the `X-Client-Ip` the
/// upstream received and the request's access-log entry.
async fn client_ip_seen(gateway: &GatewayProcess) -> (serde_json::Value, serde_json::Value) {
    let response = client()
        .get(gateway.url("/_test/echo"))
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    let forwarded = mocks::echoed(response).await["x-client-ip"][0].clone();
    let line = access_log_lines(gateway, 1).remove(0);
    let entry = serde_json::from_str(&line).expect("one JSON object per line");
    (forwarded, entry)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_client_ip_is_the_client_behind_a_trusted_proxy() {
    let upstream = mocks::upstream("api");

    // The peer 127.0.0.1 is a trusted proxy: the client is the address it forwarded for.
    let trusted = GatewayProcess::start(&client_ip_config(
        upstream.addr(),
        "trusted_proxies: [\"127.0.0.1/32\"]\n",
    ));
    let (forwarded, entry) = client_ip_seen(&trusted).await;
    assert_eq!(entry["client_ip"], "203.0.113.9", "{entry}");
    assert_eq!(entry["peer_ip"], "127.0.0.1", "{entry}");
    assert_eq!(
        forwarded, "203.0.113.9",
        "{{request.client_ip}} is the client behind the trusted proxy"
    );

    // Without trusted proxies the header is ignored: the client is the socket peer.
    let direct = GatewayProcess::start(&client_ip_config(upstream.addr(), ""));
    let (forwarded, entry) = client_ip_seen(&direct).await;
    assert_eq!(entry["client_ip"], "127.0.0.1", "{entry}");
    assert_eq!(entry["peer_ip"], "127.0.0.1", "{entry}");
    assert_eq!(
        forwarded, "127.0.0.1",
        "{{request.client_ip}} is the socket peer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish() {
    let idp = mocks::idp(&["acme"]);
    let upstream = mocks::upstream("api");
    let mut gateway = GatewayProcess::start(&config(&idp, upstream.addr(), 1, ""));
    let url = gateway.url("/_test/slow/1500");
    let in_flight =
        tokio::spawn(async move { client().get(url).send().await.map(|r| r.status().as_u16()) });
    let requests_before = upstream.requests();
    assert!(wait_until(Duration::from_secs(5), || upstream.requests()
        > requests_before));
    gateway.signal("TERM");
    assert_eq!(
        in_flight.await.unwrap().unwrap(),
        200,
        "the in-flight request completes"
    );
    assert!(
        gateway.wait_exit(Duration::from_secs(15)).is_some(),
        "the gateway exits after draining"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_upgrade_hands_over_the_listeners() {
    let idp = mocks::idp(&["acme"]);
    let upstream = mocks::upstream("api");
    let mut old = GatewayProcess::start(&config(&idp, upstream.addr(), 1, ""));
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load = {
        let (stop, ok, failed, url) =
            (stop.clone(), ok.clone(), failed.clone(), old.url("/status"));
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                // A new connection per request, so each one meets whichever process listens.
                let http = reqwest::Client::builder()
                    .no_proxy()
                    .pool_max_idle_per_host(0)
                    .build()
                    .unwrap();
                match http.get(&url).send().await.map(|r| r.status().as_u16()) {
                    Ok(200) => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    };
    // Sockets are handed over by address: the new process must name the ports the old one took
    // (a port-0 listener cannot take over sockets, and the gateway says so).
    let fixed = config(&idp, upstream.addr(), 1, "")
        .replace("{port}", &old.port.to_string())
        .replace("{admin_port}", &old.admin_port.to_string());
    std::fs::write(
        &old.config_path,
        fixed.replace("{dir}", &old.dir.path().display().to_string()),
    )
    .unwrap();
    // The new binary waits for the listening sockets; SIGQUIT makes the old one hand them over.
    let log = std::fs::File::create(old.dir.path().join("upgraded.log")).unwrap();
    let mut new = std::process::Command::new(common::binary())
        .args(["run", "--upgrade", "-c"])
        .arg(&old.config_path)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    // No wait needed: on SIGQUIT the old process retries until the new one accepts the sockets.
    old.signal("QUIT");
    assert!(
        old.wait_exit(Duration::from_secs(20)).is_some(),
        "the old process exits after the hand-over"
    );
    let served_before = ok.load(Ordering::Relaxed);
    assert!(wait_until(Duration::from_secs(5), || ok
        .load(Ordering::Relaxed)
        > served_before + 20));
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    let _ = new.kill();
    let _ = new.wait();
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "{} served",
        ok.load(Ordering::Relaxed)
    );
}

/// The `X-Config-Version` the gateway answers `/status` with, once it is `version` (polling for
/// up to `limit`).
async fn serves_version(gateway: &GatewayProcess, version: u32, limit: Duration) -> bool {
    let http = client();
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if let Ok(response) = http.get(gateway.url("/status")).send().await {
            if response
                .headers()
                .get("x-config-version")
                .is_some_and(|seen| seen.as_bytes() == version.to_string().as_bytes())
            {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// A key server that accepts connections and never answers: a reload that adds a provider
/// fetching from it runs until the provider's fetch timeout. Returns its address and the number
/// of connections it has accepted.
fn silent_key_server() -> (std::net::SocketAddr, Arc<AtomicU64>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicU64::new(0));
    let counter = accepted.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    (address, accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_during_a_reload_is_refused_promptly_and_the_latest_file_wins() {
    let idp = mocks::idp(&["acme"]);
    let upstream = mocks::upstream("api");
    let gateway = GatewayProcess::start(&config(&idp, upstream.addr(), 1, ""));
    let (silent, connections) = silent_key_server();
    let slow = config(&idp, upstream.addr(), 2, "").replace(
        "identity_providers:\n",
        &format!(
            "identity_providers:\n  slow:\n    issuer: \"http://{silent}/realms/slow\"\n    \
             jwks_uri: \"http://{silent}/certs\"\n    audiences: [x]\n    jwks: {{ timeout: 4s }}\n"
        ),
    );
    gateway.write_config(&slow);
    gateway.signal("HUP");
    assert!(
        wait_until(Duration::from_secs(5), || connections
            .load(Ordering::SeqCst)
            > 0),
        "the slow reload fetches keys:\n{}",
        gateway.log()
    );

    // The slow reload is running: POST /reload is refused at once instead of queueing.
    let body = prompt_reload_answer(&gateway, 409).await;
    assert!(body.contains("a reload is in progress"), "{body}");

    // A SIGHUP burst during the reload: one more reload, of the file as it is then.
    gateway.write_config(&config(&idp, upstream.addr(), 3, ""));
    for _ in 0..3 {
        gateway.signal("HUP");
    }
    assert!(
        serves_version(&gateway, 3, Duration::from_secs(15)).await,
        "the latest file is applied after the slow reload:\n{}",
        gateway.log()
    );
}

/// `POST /reload`, which must answer `status` within 2 s; returns the body.
async fn prompt_reload_answer(gateway: &GatewayProcess, status: u16) -> String {
    let started = std::time::Instant::now();
    let response = client()
        .post(gateway.admin_url("/reload"))
        .send()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(response.status(), status);
    assert!(
        elapsed < Duration::from_secs(2),
        "answered after {elapsed:?}"
    );
    response.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_would_burn_cpu_is_refused_at_once_and_the_next_reload_applies() {
    let idp = mocks::idp(&["acme"]);
    let upstream = mocks::upstream("api");
    let gateway = GatewayProcess::start(&config(&idp, upstream.addr(), 1, ""));
    let depth = 200_000;
    gateway.write_config(&format!(
        "routes: {}{}\n",
        "[".repeat(depth),
        "]".repeat(depth)
    ));
    let body = prompt_reload_answer(&gateway, 422).await;
    assert!(
        body.contains("portcullis.yaml:1:72: the configuration nests 65 levels"),
        "{body}"
    );

    // The same file by SIGHUP, then a good one: the good one is applied at once.
    gateway.signal("HUP");
    gateway.write_config(&config(&idp, upstream.addr(), 2, ""));
    gateway.signal("HUP");
    assert!(
        serves_version(&gateway, 2, Duration::from_secs(5)).await,
        "{}",
        gateway.log()
    );
}
