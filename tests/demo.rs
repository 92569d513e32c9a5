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
    drop(demo);
}
