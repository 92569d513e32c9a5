//! `portcullis explain` against the product contract (`tests/fixtures/spec.yaml`) with the
//! development identity provider as Keycloak: a matrix of tokens names the failing step and
//! exits 0 (allowed) or 1 (refused); `--json` parses; offline, the signature is reported as not
//! checked; and a live gateway on the same file refuses the same token for the same reason,
//! logging the same trace under the request id when `portcullis::decision` is at debug.

mod common;

use common::mocks::{idp, DevIdp};
use common::{binary, GatewayProcess};
use std::process::Command;

const SESSION_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

struct Explained {
    code: i32,
    stdout: String,
}

fn explain(idp: &DevIdp, args: &[&str]) -> Explained {
    let output = Command::new(binary())
        .args(["explain", "-c", "tests/fixtures/spec.yaml"])
        .args(args)
        .env("KEYCLOAK_URL", idp.base_url())
        .env("ACME_CLIENT_SECRET", "a-client-secret")
        .env("PORTCULLIS_SESSION_KEY", SESSION_KEY)
        .env("PORTCULLIS_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.code() != Some(2),
        "explain could not run: {stderr}\n{stdout}"
    );
    Explained {
        code: output.status.code().unwrap_or(-1),
        stdout,
    }
}

fn realms() -> DevIdp {
    idp(&["acme", "partners"])
}

fn reader_token(idp: &DevIdp) -> String {
    idp.token("acme")
        .audience("orders-api")
        .realm_roles(&["reader"])
        .mint()
        .unwrap()
}

const ORDER: &str = "https://api.example.com/orders/7";

#[test]
fn a_valid_token_is_allowed_with_every_step_named() {
    let idp = realms();
    let token = reader_token(&idp);
    let out = explain(&idp, &["--fetch", "--token", &token, "GET", ORDER]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    let text = &out.stdout;
    for expected in [
        "route `orders-read`",
        "ok   provider: `acme`, chosen by the token's `iss`",
        "ok   signature: verified with a key from JWKS from discovery",
        "ok   aud: `orders-api` (expected one of [orders-api])",
        "ok   require: any of 3 rules",
        "ok   realm role \"reader\": realm roles: [",
        "policy `per_client`: key `web-app`; base rate: 100/s, burst 50; store local",
        "set x-user-id: 0b9e6a4c-alice",
        "remove x-user-groups (the route sets it, but a claim its template reads is missing)",
        "the response JSON body is transformed",
        "verdict: allowed: forwarded upstream",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
    assert!(!text.contains(&token), "the token was printed back");
}

#[test]
fn each_bad_token_names_its_failing_step_and_exits_1() {
    let idp = realms();
    let expired = idp
        .token("acme")
        .audience("orders-api")
        .realm_roles(&["reader"])
        .expired()
        .mint()
        .unwrap();
    let only_account = idp
        .token("acme")
        .audiences(&["account"])
        .realm_roles(&["reader"])
        .mint()
        .unwrap();
    let slash_issuer = idp
        .token("acme")
        .audience("orders-api")
        .issuer(&format!("{}/", idp.issuer("acme")))
        .mint()
        .unwrap();
    let no_writer = reader_token(&idp);
    let cases: [(&str, &str, &str, &[&str]); 5] = [
        (
            &expired,
            "GET",
            ORDER,
            &["FAIL exp:", "expired", "401 expired"],
        ),
        (
            &only_account,
            "GET",
            ORDER,
            &["FAIL aud:", "Audience mapper", "401 audience_mismatch"],
        ),
        (
            &slash_issuer,
            "GET",
            ORDER,
            &["trailing slash", "401 issuer_mismatch"],
        ),
        (
            &no_writer,
            "POST",
            "https://api.example.com/orders",
            &[
                "FAIL require: all of 3 rules",
                "FAIL realm role \"writer\": realm roles: [",
                "403 insufficient_scope",
            ],
        ),
        (
            &no_writer,
            "PATCH",
            "https://api.example.com/orders",
            &[
                "[FAIL] route",
                "route `orders-write`",
                "method PATCH is not one of",
                "405 method_not_allowed",
            ],
        ),
    ];
    for (token, method, url, expected) in cases {
        let out = explain(&idp, &["--fetch", "--token", token, method, url]);
        assert_eq!(out.code, 1, "{method} {url}:\n{}", out.stdout);
        for needle in expected {
            assert!(
                out.stdout.contains(needle),
                "{method} {url}: missing `{needle}` in:\n{}",
                out.stdout
            );
        }
    }
}

#[test]
fn json_output_parses_and_offline_reports_the_unchecked_signature() {
    let idp = realms();
    let token = reader_token(&idp);
    let out = explain(&idp, &["--json", "--token", &token, "GET", ORDER]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["outcome"], "allowed");
    assert_eq!(json["signature_checked"], false);
    let steps = json["steps"].as_array().unwrap();
    let names: Vec<&str> = steps.iter().filter_map(|s| s["step"].as_str()).collect();
    assert_eq!(
        names,
        [
            "guard",
            "route",
            "client_ips",
            "cors",
            "authenticate",
            "rate_limit",
            "request_body",
            "forward"
        ]
    );
    let signature = steps[4]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "signature")
        .unwrap();
    assert_eq!(signature["verdict"], "skip");
    assert!(signature["detail"].as_str().unwrap().contains("--fetch"));
    // No token at all on a bearer route: 401 at the token check; text says why.
    let out = explain(&idp, &["GET", ORDER]);
    assert_eq!(out.code, 1);
    assert!(
        out.stdout
            .contains("FAIL token: none, and the route requires one"),
        "{}",
        out.stdout
    );
    // The client address is checked before authentication.
    let out = explain(
        &idp,
        &[
            "--client-ip",
            "203.0.113.9",
            "GET",
            "https://x.test/reports/1",
        ],
    );
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("403 ip_not_allowed"), "{}", out.stdout);
}

#[tokio::test]
async fn a_live_request_is_refused_for_the_same_reason_and_logs_the_same_trace() {
    let idp = realms();
    let only_account = idp
        .token("acme")
        .audiences(&["account"])
        .realm_roles(&["reader"])
        .mint()
        .unwrap();
    let explained = explain(&idp, &["--fetch", "--token", &only_account, "GET", ORDER]);
    assert_eq!(explained.code, 1);
    let spec = std::fs::read_to_string("tests/fixtures/spec.yaml")
        .unwrap()
        .replace("\"0.0.0.0:8080\"", "\"127.0.0.1:{port}\"")
        .replace("\"127.0.0.1:9090\"", "\"127.0.0.1:{admin_port}\"")
        .replace(
            "  threads: 2",
            "  threads: 2\n  pid_file: \"{dir}/portcullis.pid\"",
        );
    let gateway = GatewayProcess::start_with_env(
        &spec,
        &[
            ("KEYCLOAK_URL", idp.base_url()),
            ("ACME_CLIENT_SECRET", "a-client-secret"),
            ("PORTCULLIS_SESSION_KEY", SESSION_KEY),
            ("PORTCULLIS_LOG", "info,portcullis::decision=debug"),
        ],
    );
    let response = common::client()
        .get(gateway.url("/orders/7"))
        .header("host", "api.example.com")
        .bearer_auth(&only_account)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let problem = common::problem(response).await;
    assert_eq!(problem["reason"], "audience_mismatch");
    assert!(explained.stdout.contains("401 audience_mismatch"));
    let found = common::wait_until(std::time::Duration::from_secs(5), || {
        gateway.log().contains("FAIL aud:")
    });
    let log = gateway.log();
    assert!(found, "no decision trace in the log:\n{log}");
    let traced: Vec<&str> = log.lines().filter(|l| l.contains(&request_id)).collect();
    assert!(
        traced
            .iter()
            .any(|l| l.contains("FAIL aud:") && l.contains("Audience mapper")),
        "{traced:#?}"
    );
    assert!(
        traced.iter().any(|l| l.contains("route `orders-read`")),
        "{traced:#?}"
    );
    assert!(!log.contains(&only_account), "the token reached the log");
}

#[test]
fn a_question_that_cannot_be_asked_exits_2_with_the_reason() {
    let run = |args: &[&str]| {
        let output = Command::new(binary())
            .arg("explain")
            .args(args)
            .env("PORTCULLIS_LOG", "error")
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(&["-c", "/nonexistent/portcullis.yaml", "GET", "/x"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("/nonexistent/portcullis.yaml"), "{stderr}");
    let (code, stderr) = run(&[
        "-c",
        "conf/portcullis.yaml",
        "--token-file",
        "/nonexistent/token",
        "GET",
        "/x",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("cannot read the token file"), "{stderr}");
    let (code, stderr) = run(&["-c", "conf/portcullis.yaml", "GET", "ftp://x/y"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("is not a URL"), "{stderr}");
}
