//! Shared integration-test harness: free ports, a gateway process started on them from a YAML
//! config, readiness by polling (never sleeping), and logs printed when a test fails.

#![allow(dead_code)]

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port that was free a moment ago (the OS does not hand it out again right away).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// A port where nothing listens (connections are refused).
pub fn closed_port() -> u16 {
    free_port()
}

/// Polls `check` until it is true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The portcullis binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_portcullis")
}

/// A running gateway process; killed on drop, its log printed if the test panicked.
pub struct GatewayProcess {
    child: Child,
    pub port: u16,
    pub admin_port: u16,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    log_path: PathBuf,
}

impl GatewayProcess {
    /// Starts `portcullis run` on `config`, where `{port}` and `{admin_port}` are replaced by
    /// fresh ports, and waits until the proxy port accepts connections.
    pub fn start(config: &str) -> GatewayProcess {
        Self::start_with_env(config, &[])
    }

    pub fn start_with_env(config: &str, env: &[(&str, &str)]) -> GatewayProcess {
        let port = free_port();
        let admin_port = free_port();
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("portcullis.yaml");
        let text = config
            .replace("{port}", &port.to_string())
            .replace("{admin_port}", &admin_port.to_string())
            .replace("{dir}", &dir.path().display().to_string());
        std::fs::write(&config_path, text).expect("write config");
        let log_path = dir.path().join("gateway.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let mut command = Command::new(binary());
        command
            .args(["run", "-c"])
            .arg(&config_path)
            .env("PORTCULLIS_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("spawn portcullis");
        let mut gateway = GatewayProcess {
            child,
            port,
            admin_port,
            dir,
            config_path,
            log_path,
        };
        let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let up = wait_until(Duration::from_secs(15), || {
            if let Ok(Some(status)) = gateway.child.try_wait() {
                panic!("gateway exited early with {status}:\n{}", gateway.log());
            }
            TcpStream::connect_timeout(&address, Duration::from_millis(100)).is_ok()
        });
        assert!(up, "gateway did not start listening:\n{}", gateway.log());
        gateway
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.admin_port, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory of the gateway process, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// What the gateway logged so far.
    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.log_path) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let mut code = None;
        wait_until(timeout, || match self.child.try_wait() {
            Ok(Some(status)) => {
                code = status.code().or(Some(-1));
                true
            }
            _ => false,
        });
        code
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "----- gateway log -----\n{}\n-----------------------",
                self.log()
            );
        }
    }
}

/// An HTTP client for tests: no proxy from the environment, short timeouts.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// Parses a problem+json response, checking its content type and request id.
pub async fn problem(response: reqwest::Response) -> serde_json::Value {
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    let request_id = response
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned())
        .expect("x-request-id header");
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.expect("problem body");
    assert_eq!(body["status"], status);
    assert_eq!(body["request_id"], request_id.as_str());
    body
}

/// A redis-server of the test's own on a free port; stopped on drop.
pub struct RedisProcess {
    child: Child,
    pub port: u16,
}

impl RedisProcess {
    /// Starts `redis-server` (Debian package `redis-server`; `scripts/test.sh` installs it).
    pub fn start() -> RedisProcess {
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is required for these tests: apt-get install redis-server (scripts/test.sh does it)");
        let redis = RedisProcess { child, port };
        let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        assert!(
            wait_until(Duration::from_secs(10), || TcpStream::connect_timeout(
                &address,
                Duration::from_millis(100)
            )
            .is_ok()),
            "redis-server did not start"
        );
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
