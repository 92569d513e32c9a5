//! Shared integration-test harness: a gateway process started on port 0 from a YAML config (it
//! reports the ports it bound in its log), readiness by polling (never sleeping), and logs
//! printed when a test fails. The mock upstream and identity provider are in [`mocks`].

#![allow(dead_code)]

pub mod browser;
pub mod mocks;
pub mod redis_cluster;

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a gateway may take to log its listeners, and then to accept connections on them.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A port that was free a moment ago (the OS does not hand it out again right away). Only for
/// programs that cannot bind port 0 and report it (redis-server, `portcullis demo --port`): the
/// gateway binds port 0 itself, see [`GatewayProcess::start`].
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// A port on 127.0.0.1 where connections are refused, reserved while this guard lives: its
/// socket is bound but never listens, so nothing else can take the port meanwhile.
pub struct ClosedPort {
    _socket: tokio::net::TcpSocket,
    port: u16,
}

impl ClosedPort {
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// A port where nothing listens (connections are refused) for as long as the guard is kept.
pub fn closed_port() -> ClosedPort {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .expect("bind a closed port");
    let port = socket.local_addr().expect("closed port address").port();
    ClosedPort {
        _socket: socket,
        port,
    }
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

/// The addresses a gateway log reports for listener `kind` (`proxy`, `tls` or `admin`), in the
/// order logged: one line `<kind> listening on <ip>:<port>` per bound listener.
pub fn listening_addresses(log: &str, kind: &str) -> Vec<SocketAddr> {
    let phrase = format!("{kind} listening on ");
    log.lines()
        .filter_map(|line| {
            let (start, _) = line.match_indices(&phrase).find(|(at, _)| {
                // `kind` must be a whole word (`proxy`, not the end of another word).
                !line[..*at]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            })?;
            let rest = &line[start + phrase.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']')))
                .unwrap_or(rest.len());
            rest[..end].trim_end_matches(['.', ':']).parse().ok()
        })
        .collect()
}

/// How many listeners of each kind a configuration declares.
#[derive(Debug, Clone, Copy)]
struct Listeners {
    proxy: usize,
    tls: usize,
    admin: usize,
}

impl Listeners {
    /// Counts `server.listen`, `server.tls.listen` and `admin.listen`; a text that is not YAML
    /// (the gateway will refuse it) is assumed to have one plain listener.
    fn declared_in(config: &str) -> Listeners {
        let Ok(document) = serde_yaml::from_str::<serde_yaml::Value>(config) else {
            return Listeners {
                proxy: 1,
                tls: 0,
                admin: 0,
            };
        };
        let count = |value: Option<&serde_yaml::Value>| match value {
            Some(serde_yaml::Value::Sequence(items)) => items.len(),
            Some(serde_yaml::Value::String(_)) => 1,
            _ => 0,
        };
        let server = document.get("server");
        Listeners {
            proxy: count(server.and_then(|s| s.get("listen"))),
            tls: count(
                server
                    .and_then(|s| s.get("tls"))
                    .and_then(|t| t.get("listen")),
            ),
            admin: count(document.get("admin").and_then(|a| a.get("listen"))),
        }
    }

    /// Whether `log` reports every declared listener.
    fn all_logged(&self, log: &str) -> bool {
        listening_addresses(log, "proxy").len() >= self.proxy
            && listening_addresses(log, "tls").len() >= self.tls
            && listening_addresses(log, "admin").len() >= self.admin
    }
}

/// Fills a config's placeholders: `{port}` and `{admin_port}` become `0` (the gateway binds
/// free ports itself and logs them), `{dir}` the test's directory.
fn fill_placeholders(config: &str, dir: &Path) -> String {
    config
        .replace("{port}", "0")
        .replace("{admin_port}", "0")
        .replace("{dir}", &dir.display().to_string())
}

/// Where to connect to reach a listener bound to `address` (loopback for a wildcard address).
fn reachable(address: SocketAddr) -> SocketAddr {
    match address.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv4Addr::LOCALHOST, address.port()))
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv6Addr::LOCALHOST, address.port()))
        }
        _ => address,
    }
}

/// A running gateway process; killed on drop, its log printed if the test panicked.
pub struct GatewayProcess {
    child: Child,
    /// The first plain (`server.listen`) listener's port; 0 when there is none.
    pub port: u16,
    /// The admin listener's port; 0 without an `admin` section.
    pub admin_port: u16,
    /// The first TLS (`server.tls.listen`) listener's port, when there is one.
    pub tls_port: Option<u16>,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    log_path: PathBuf,
}

impl GatewayProcess {
    /// Starts `portcullis run` on `config`, where `{port}` and `{admin_port}` are replaced by `0`
    /// and `{dir}` by the test's directory; learns the bound ports from the gateway's log lines
    /// `proxy|tls|admin listening on IP:PORT`, and waits until they accept connections.
    pub fn start(config: &str) -> GatewayProcess {
        Self::start_with_env(config, &[])
    }

    pub fn start_with_env(config: &str, env: &[(&str, &str)]) -> GatewayProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("portcullis.yaml");
        let text = fill_placeholders(config, dir.path());
        let declared = Listeners::declared_in(&text);
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
            port: 0,
            admin_port: 0,
            tls_port: None,
            dir,
            config_path,
            log_path,
        };

        let mut log = String::new();
        let logged = wait_until(START_TIMEOUT, || {
            gateway.panic_if_exited();
            log = gateway.log();
            declared.all_logged(&log)
        });
        assert!(
            logged,
            "the gateway did not log its listeners within {START_TIMEOUT:?} (expected {declared:?} \
             lines `proxy|tls|admin listening on IP:PORT`):\n{log}"
        );
        let proxy = listening_addresses(&log, "proxy");
        let tls = listening_addresses(&log, "tls");
        let admin = listening_addresses(&log, "admin");
        gateway.port = proxy.first().map_or(0, SocketAddr::port);
        gateway.tls_port = tls.first().map(SocketAddr::port);
        gateway.admin_port = admin.first().map_or(0, SocketAddr::port);

        // The lines come before the ports accept connections: wait for every one of them.
        for address in proxy.iter().chain(&tls).chain(&admin) {
            let address = reachable(*address);
            let up = wait_until(START_TIMEOUT, || {
                gateway.panic_if_exited();
                TcpStream::connect_timeout(&address, Duration::from_millis(100)).is_ok()
            });
            assert!(
                up,
                "the gateway did not accept connections on {address} within {START_TIMEOUT:?}:\n{}",
                gateway.log()
            );
        }
        gateway
    }

    /// Panics, with the log, when the process has already exited.
    fn panic_if_exited(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("gateway exited early with {status}:\n{}", self.log());
        }
    }

    /// Rewrites the config file (for a reload), filling its placeholders as [`Self::start`]
    /// does: the ports stay `0`, since the gateway keeps the listeners it bound.
    pub fn write_config(&self, text: &str) {
        std::fs::write(&self.config_path, fill_placeholders(text, self.dir.path()))
            .expect("write config");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// The Prometheus exposition of the admin listener's `/metrics`.
    pub async fn metrics_text(&self) -> String {
        client()
            .get(self.admin_url("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
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

/// An HTTP/2 client without TLS (h2c, prior knowledge) for the plain listener.
pub fn h2c_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("h2c client")
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
