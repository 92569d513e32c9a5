//! Integration: `portcullis demo` starts with no external service and the calls it prints work.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Kills the demo process even when an assertion fails.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn demo_starts_and_its_printed_calls_answer() {
    let port = common::free_port();
    let mut child = Command::new(common::binary())
        .args(["demo", "--port", &port.to_string()])
        .env("PORTCULLIS_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().expect("piped stdout");
    let demo = KillOnDrop(child);
    let (lines_tx, lines_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut printed = Vec::new();
    while let Ok(line) = lines_rx.recv_timeout(Duration::from_secs(30)) {
        let done = line.contains("Press Ctrl-C");
        printed.push(line);
        if done {
            break;
        }
    }
    let text = printed.join("\n");
    let status_call = printed
        .iter()
        .find_map(|l| {
            l.trim()
                .strip_prefix("curl -i ")
                .filter(|url| url.ends_with("/status"))
        })
        .unwrap_or_else(|| panic!("no /status call printed:\n{text}"));
    let response = common::client().get(status_call).send().await.unwrap();
    assert_eq!(response.status(), 200, "{text}");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");

    // Step 0: the printed password grant yields tokens that step 2 and step 5 use.
    let token_line = printed
        .iter()
        .find(|l| l.starts_with("token() {"))
        .unwrap_or_else(|| panic!("no token() helper printed:\n{text}"));
    let token_url = token_line
        .split_whitespace()
        .find(|word| word.ends_with("/protocol/openid-connect/token"))
        .expect("token endpoint URL");
    let flag = |name: &str| {
        token_line
            .split(&format!("-d {name}="))
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap()
            .to_owned()
    };
    let (client_id, client_secret) = (flag("client_id"), flag("client_secret"));
    let http = common::client();
    let token = |user: &'static str| {
        let form = [
            ("grant_type", "password"),
            ("client_id", client_id.as_str()),
            ("client_secret", client_secret.as_str()),
            ("username", user),
            ("password", user),
        ];
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        http.post(token_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let base = status_call.trim_end_matches("/status");
    for (user, expected) in [("alice", 200), ("mallory", 403)] {
        let answer: serde_json::Value = token(user).await.unwrap().json().await.unwrap();
        let access_token = answer["access_token"].as_str().expect("access_token");
        let order = http
            .get(format!("{base}/orders/42"))
            .bearer_auth(access_token)
            .send()
            .await
            .unwrap();
        assert_eq!(order.status(), expected, "{user}");
    }

    // Step 8: the printed console URL signs alice in through the browser flow.
    let console = printed
        .iter()
        .map(|l| l.trim_start_matches('#').trim())
        .find(|l| l.starts_with("http") && l.ends_with("/console/"))
        .unwrap_or_else(|| panic!("no console URL printed:\n{text}"));
    let browser = common::browser::Browser::new();
    let page = browser.sign_in(console, "alice", "alice").await;
    assert_eq!(common::mocks::echoed(page).await["x-user"][0], "alice");
    let bob = common::browser::Browser::new();
    assert_eq!(bob.sign_in(console, "bob", "bob").await.status(), 403);
    drop(demo);
}
