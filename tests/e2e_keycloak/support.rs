//! Helpers of the Keycloak end-to-end suite: the Keycloak under test (tokens, admin API, its log),
//! gateway configuration, metrics, JWT inspection and a TCP proxy that can be cut.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use crate::common::client;

pub const NEEDS_KEYCLOAK: &str = "KEYCLOAK_URL is not set: these tests need a running Keycloak with \
the realms of tests/fixtures/keycloak/. Start one with `scripts/keycloak.sh start` and run \
`KEYCLOAK_URL=$(scripts/keycloak.sh url) cargo test --test e2e_keycloak -- --ignored --test-threads=1` \
(scripts/test.sh does all of this)";

/// Client secrets and passwords of tests/fixtures/keycloak/*.json.
pub const ORDERS_SERVICE: (&str, &str) = ("orders-service", "orders-service-secret");
pub const PARTNER_SERVICE: (&str, &str) = ("partner-service", "partner-service-secret");

/// The Keycloak named by `KEYCLOAK_URL` (e.g. `http://127.0.0.1:18080`).
pub struct Keycloak {
    pub base: String,
    http: reqwest::Client,
}

/// Tokens of one password grant.
pub struct TokenSet {
    pub access: String,
    pub refresh: String,
    pub id: String,
}

impl Keycloak {
    /// Reads `KEYCLOAK_URL`; panics with instructions when it is absent or Keycloak does not answer.
    pub async fn from_env() -> Keycloak {
        let base = match std::env::var("KEYCLOAK_URL") {
            Ok(url) if !url.trim().is_empty() => url.trim().trim_end_matches('/').to_owned(),
            _ => panic!("{NEEDS_KEYCLOAK}"),
        };
        let keycloak = Keycloak {
            base,
            http: client(),
        };
        let discovery = keycloak.discovery_url("acme");
        match keycloak.http.get(&discovery).send().await {
            Ok(response) if response.status().is_success() => {}
            Ok(response) => panic!(
                "{discovery} answered {}: is the `acme` realm of tests/fixtures/keycloak/ imported? (`scripts/keycloak.sh start` imports it)",
                response.status()
            ),
            Err(e) => panic!(
                "Keycloak at {} (KEYCLOAK_URL) does not answer: {e}. Start it with `scripts/keycloak.sh start`",
                keycloak.base
            ),
        }
        keycloak
    }

    pub fn issuer(&self, realm: &str) -> String {
        format!("{}/realms/{realm}", self.base)
    }

    pub fn discovery_url(&self, realm: &str) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer(realm))
    }

    pub fn jwks_path(realm: &str) -> String {
        format!("/realms/{realm}/protocol/openid-connect/certs")
    }

    pub fn address(&self) -> SocketAddr {
        let authority = self
            .base
            .strip_prefix("http://")
            .expect("KEYCLOAK_URL must be http://HOST:PORT");
        let authority = authority.split('/').next().unwrap();
        std::net::ToSocketAddrs::to_socket_addrs(authority)
            .expect("KEYCLOAK_URL host:port")
            .next()
            .unwrap()
    }

    /// POSTs a form to the realm's token endpoint; panics with Keycloak's answer unless 200.
    pub async fn token_response(&self, realm: &str, form: &[(&str, &str)]) -> Value {
        let url = format!("{}/protocol/openid-connect/token", self.issuer(realm));
        let response = self
            .http
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_encode(form))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "{url} answered {status}: {body}");
        serde_json::from_str(&body).expect("token response JSON")
    }

    /// An access token of `client` by the client_credentials grant.
    pub async fn client_token(&self, realm: &str, (client, secret): (&str, &str)) -> String {
        let body = self
            .token_response(
                realm,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", client),
                    ("client_secret", secret),
                ],
            )
            .await;
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// Tokens of a fixture user (password `<user>-password`) through the public `client`.
    pub async fn user_tokens(&self, realm: &str, client: &str, user: &str) -> TokenSet {
        let password = format!("{user}-password");
        let body = self
            .token_response(
                realm,
                &[
                    ("grant_type", "password"),
                    ("client_id", client),
                    ("username", user),
                    ("password", &password),
                    ("scope", "openid"),
                ],
            )
            .await;
        let field = |name: &str| {
            body[name]
                .as_str()
                .unwrap_or_else(|| panic!("no {name} in {body}"))
                .to_owned()
        };
        TokenSet {
            access: field("access_token"),
            refresh: field("refresh_token"),
            id: field("id_token"),
        }
    }

    async fn admin_token(&self) -> String {
        let user = std::env::var("KEYCLOAK_ADMIN_USER").unwrap_or_else(|_| "admin".into());
        let password = std::env::var("KEYCLOAK_ADMIN_PASSWORD").unwrap_or_else(|_| "admin".into());
        let body = self
            .token_response(
                "master",
                &[
                    ("grant_type", "password"),
                    ("client_id", "admin-cli"),
                    ("username", &user),
                    ("password", &password),
                ],
            )
            .await;
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// A call of the admin REST API (`path` below `/admin/`); returns the JSON answer (or null).
    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/admin/{}", self.base, path.trim_start_matches('/'));
        let mut request = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(self.admin_token().await);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "{method} {url} answered {status}: {text}"
        );
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::Null)
        }
    }

    pub async fn version(&self) -> String {
        let info = self.admin(reqwest::Method::GET, "serverinfo", None).await;
        info["systemInfo"]["version"]
            .as_str()
            .unwrap_or("unknown")
            .to_owned()
    }

    /// The realm's active RS256 key: (kid, component id, priority).
    pub async fn active_rs256_key(&self, realm: &str) -> (String, String, i64) {
        let keys = self
            .admin(reqwest::Method::GET, &format!("realms/{realm}/keys"), None)
            .await;
        let key = keys["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["algorithm"] == "RS256" && k["status"] == "ACTIVE" && k["use"] == "SIG")
            .max_by_key(|k| k["providerPriority"].as_i64().unwrap_or(0))
            .unwrap_or_else(|| panic!("no active RS256 key in {keys}"))
            .clone();
        (
            key["kid"].as_str().unwrap().to_owned(),
            key["providerId"].as_str().unwrap().to_owned(),
            key["providerPriority"].as_i64().unwrap_or(0),
        )
    }

    /// Adds a generated RS256 key with a higher priority than the active one: Keycloak signs new
    /// tokens with it at once, and both keys are in the JWKS.
    pub async fn rotate_rs256_key(&self, realm: &str) {
        let (_, _, priority) = self.active_rs256_key(realm).await;
        let realm_id = self
            .admin(reqwest::Method::GET, &format!("realms/{realm}"), None)
            .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let name = format!("rsa-rotated-{}", priority + 100);
        self.admin(
            reqwest::Method::POST,
            &format!("realms/{realm}/components"),
            Some(json!({
                "name": name,
                "providerId": "rsa-generated",
                "providerType": "org.keycloak.keys.KeyProvider",
                "parentId": realm_id,
                "config": {
                    "priority": [(priority + 100).to_string()],
                    "enabled": ["true"],
                    "active": ["true"],
                    "algorithm": ["RS256"],
                    "keySize": ["2048"],
                }
            })),
        )
        .await;
    }

    /// Disables a key provider component: its key leaves the JWKS.
    pub async fn disable_key_provider(&self, realm: &str, component_id: &str) {
        let path = format!("realms/{realm}/components/{component_id}");
        let mut component = self.admin(reqwest::Method::GET, &path, None).await;
        component["config"]["enabled"] = json!(["false"]);
        component["config"]["active"] = json!(["false"]);
        self.admin(reqwest::Method::PUT, &path, Some(component))
            .await;
    }
}

/// Where scripts/keycloak.sh writes the Keycloak log (or `KEYCLOAK_LOG`).
pub fn keycloak_log_path() -> PathBuf {
    if let Ok(path) = std::env::var("KEYCLOAK_LOG") {
        return PathBuf::from(path);
    }
    let cache = std::env::var("PORTCULLIS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
                .join(".cache/portcullis")
        });
    cache.join("keycloak-run/keycloak.log")
}

/// Prints the tail of the Keycloak log when the test panics. Create it first in a test so that it
/// is dropped last (after the gateway printed its own log).
pub struct KeycloakLogOnFailure;

impl Drop for KeycloakLogOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() && std::env::var_os("KEYCLOAK_URL").is_some() {
            let path = keycloak_log_path();
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| format!("({e})"));
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(80)..].join("\n");
            eprintln!(
                "----- Keycloak log ({}, last 80 lines) -----\n{tail}\n-----------------------",
                path.display()
            );
        }
    }
}

/// `application/x-www-form-urlencoded`.
pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    fn encode(text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for byte in text.bytes() {
            match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    out.push(byte as char)
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{byte:02X}")),
            }
        }
        out
    }
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn jwt_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON")
}

/// The (unverified) claims of a JWT.
pub fn claims(token: &str) -> Value {
    jwt_part(token, 1)
}

/// The `kid` of a JWT's header.
pub fn kid(token: &str) -> String {
    jwt_part(token, 0)["kid"].as_str().unwrap_or("").to_owned()
}

/// A provider block of the gateway configuration for realm `realm` found by discovery.
pub fn provider(keycloak: &Keycloak, realm: &str, extra: &str) -> String {
    format!(
        "  {realm}:\n    discovery: \"{}\"\n    audiences: [\"orders-api\"]\n    token_types: [\"Bearer\"]\n{extra}",
        keycloak.discovery_url(realm)
    )
}

/// A whole gateway configuration: `providers` and `routes` are YAML blocks (indented by two
/// spaces), `extra` top-level sections; every route's upstream is `api`.
pub fn gateway_config(upstream: SocketAddr, providers: &str, routes: &str, extra: &str) -> String {
    format!(
        "server:\n  listen: [\"127.0.0.1:{{port}}\"]\n  threads: 2\n  pid_file: \"{{dir}}/portcullis.pid\"\n\
admin:\n  listen: \"127.0.0.1:{{admin_port}}\"\n\
identity_providers:\n{providers}\
upstreams:\n  api:\n    targets: [\"{upstream}\"]\n\
routes:\n{routes}{extra}"
    )
}

/// A route forwarding `PREFIX/...` to the upstream's `/...`, with identity headers.
pub fn route(name: &str, prefix: &str, auth: &str) -> String {
    format!(
        "  - name: {name}\n    match: {{ path_prefix: {prefix}/ }}\n    strip_prefix: true\n    upstream: api\n    auth: {auth}\n    request:\n      set_headers:\n        X-User-Id: \"{{claims.sub}}\"\n        X-Client: \"{{claims.azp}}\"\n        X-Username: \"{{claims.preferred_username}}\"\n        X-Roles: \"{{claims.realm_access.roles}}\"\n        X-Groups: \"{{claims.groups}}\"\n        X-Issuer: \"{{claims.iss}}\"\n      remove_headers: [Authorization]\n"
    )
}

/// Sum of the samples of metric `name` whose labels include all of `labels`.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric_name, label_text) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if metric_name != name {
                return None;
            }
            let all = labels
                .iter()
                .all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")));
            all.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// The gateway's /metrics text.
pub async fn metrics_text(admin_url: String) -> String {
    client()
        .get(admin_url)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap()
}

/// Polls an async check until it holds or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A TCP proxy to `target` on a fixed local port that the test can cut (the port then refuses
/// connections and every open connection is closed, as when the server stops) and restore.
pub struct CuttableProxy {
    pub port: u16,
    target: SocketAddr,
    tasks: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl CuttableProxy {
    pub async fn start(target: SocketAddr) -> CuttableProxy {
        let proxy = CuttableProxy {
            port: crate::common::free_port(),
            target,
            tasks: Arc::default(),
        };
        proxy.restore().await;
        proxy
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// (Re)opens the port.
    pub async fn restore(&self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("proxy port");
        let target = self.target;
        let tasks = self.tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let connection = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().unwrap().push(connection.abort_handle());
            }
        });
        self.tasks.lock().unwrap().push(accept.abort_handle());
    }

    /// Closes the port and every connection through it.
    pub fn cut(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.cut();
    }
}
