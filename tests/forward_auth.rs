//! Integration: the forward-auth endpoint behind a real nginx (`auth_request`), and as Traefik
//! or Caddy call it. A browser signs in through nginx on the gateway's rules; bearer tokens pass
//! or are refused with the gateway's 401/403; identity headers reach the app through nginx.

mod common;

use common::browser::{location, Browser, COOKIE};
use common::mocks::{self, echoed, DevIdp};
use common::{client, free_port, problem, wait_until, GatewayProcess};
use portcullis::dev::identity_provider::{GATEWAY_CLIENT_ID, GATEWAY_CLIENT_SECRET};
use portcullis::sign_in::seal::generate_key_base64;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn gateway_config(idp: &DevIdp, upstream: SocketAddr) -> String {
    format!(
        r#"
server:
  listen: ["127.0.0.1:{{port}}"]
  threads: 2
identity_providers:
  acme:
    discovery: "{discovery}"
    audiences: ["orders-api"]
    client: {{ id: {GATEWAY_CLIENT_ID}, secret: "{GATEWAY_CLIENT_SECRET}" }}
browser_sign_in:
  session: {{ cookie: {COOKIE}, keys: ["{key}"], insecure_cookies: true }}
forward_auth: {{ path: /.portcullis/auth }}
upstreams:
  app:
    targets: ["{upstream}"]
routes:
  - name: app
    match: {{ path_prefix: /app/ }}
    upstream: app
    auth: {{ providers: [acme], sign_in: acme, require: {{ group: /engineering }} }}
    request:
      set_headers: {{ X-User: "{{claims.preferred_username}}" }}
"#,
        discovery = idp.discovery_url("acme"),
        key = generate_key_base64(),
    )
}

/// An nginx (single process, in the foreground) on a free port that protects `app` with the
/// gateway's forward-auth endpoint: the snippet of the README.
struct Nginx {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(gateway: &GatewayProcess, app: SocketAddr) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let path = dir.path().display().to_string();
        let config = format!(
            r#"
daemon off;
master_process off;
worker_processes 1;
pid {path}/nginx.pid;
error_log {path}/error.log info;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {path}/body;
  proxy_temp_path {path}/proxy;
  upstream portcullis {{ server 127.0.0.1:{gateway}; }}
  server {{
    listen 127.0.0.1:{port};
    location = /_portcullis_auth {{
      internal;
      proxy_pass http://portcullis/.portcullis/auth?redirect=false;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-Uri $request_uri;
      proxy_set_header X-Forwarded-Method $request_method;
      proxy_set_header X-Forwarded-Proto $scheme;
    }}
    location /.portcullis/ {{
      proxy_pass http://portcullis;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-Proto $scheme;
    }}
    location @portcullis {{
      proxy_pass http://portcullis;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-Proto $scheme;
    }}
    location /app/ {{
      auth_request /_portcullis_auth;
      auth_request_set $portcullis_user $upstream_http_x_user;
      auth_request_set $portcullis_cookie $upstream_http_set_cookie;
      add_header Set-Cookie $portcullis_cookie;
      error_page 401 403 = @portcullis;
      proxy_set_header X-User $portcullis_user;
      proxy_pass http://{app}/;
    }}
  }}
}}
"#,
            gateway = gateway.port,
        );
        let config_path = dir.path().join("nginx.conf");
        std::fs::write(&config_path, config).unwrap();
        let binary = ["/usr/sbin/nginx", "nginx"]
            .into_iter()
            .find(|b| std::path::Path::new(b).exists())
            .unwrap_or("nginx");
        let child = Command::new(binary)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&config_path)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start nginx ({e}): install it with `apt-get install -y nginx`")
            });
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let up = wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect_timeout(&address, Duration::from_millis(100)).is_ok()
        });
        let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
        assert!(up, "nginx did not listen on {address}:\n{log}");
        Nginx {
            child,
            port,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn nginx_auth_request_signs_browsers_in_and_checks_tokens_on_the_gateways_rules() {
    let idp = mocks::idp(&["acme"]);
    let app = mocks::upstream("app");
    let gateway = GatewayProcess::start(&gateway_config(&idp, app.addr()));
    let nginx = Nginx::start(&gateway, app.addr());
    let page = nginx.url("/app/_test/echo");

    // A browser is sent from nginx to sign in, comes back through nginx, and the app sees who.
    let browser = Browser::new();
    let response = browser.sign_in(&page, "alice", "alice").await;
    let headers = echoed(response).await;
    assert_eq!(headers["x-user"][0], "alice");
    let bob = Browser::new();
    assert_eq!(bob.sign_in(&page, "bob", "bob").await.status(), 403);

    // Scripts: a token of the right group passes, another is refused with the gateway's
    // problem, and no token is a 401 — not a login page.
    let http = client();
    let engineer = idp
        .token("acme")
        .groups(&["/engineering"])
        .username("erin")
        .mint()
        .unwrap();
    let finance = idp.token("acme").groups(&["/finance"]).mint().unwrap();
    let allowed = http.get(&page).bearer_auth(engineer).send().await.unwrap();
    assert_eq!(echoed(allowed).await["x-user"][0], "erin");
    let refused = http.get(&page).bearer_auth(finance).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(problem(refused).await["reason"], "insufficient_scope");
    let anonymous = http.get(&page).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(problem(anonymous).await["reason"], "missing_token");
}

#[tokio::test]
async fn traefik_and_caddy_style_checks_get_a_redirect_or_identity_headers() {
    let idp = mocks::idp(&["acme"]);
    let app = mocks::upstream("app");
    let gateway = GatewayProcess::start(&gateway_config(&idp, app.addr()));
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let check = |uri: &str| {
        http.get(gateway.url("/.portcullis/auth"))
            .header("x-forwarded-method", "GET")
            .header("x-forwarded-uri", uri)
            .header("x-forwarded-host", "app.example.com")
            .header("x-forwarded-proto", "https")
    };
    let navigation = check("/app/page?x=1")
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    let to_sign_in = location(&navigation);
    assert!(
        to_sign_in.contains("/protocol/openid-connect/auth?"),
        "{to_sign_in}"
    );
    // The peer is not a trusted proxy: its X-Forwarded-Proto is not believed.
    assert!(
        to_sign_in.contains("redirect_uri=http%3A%2F%2Fapp.example.com%2F.portcullis%2Fcallback")
    );

    let token = idp.token("acme").groups(&["/engineering"]).mint().unwrap();
    let allowed = check("/app/page").bearer_auth(&token).send().await.unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(allowed.headers()["x-user"], "alice");
    assert_eq!(check("/app/page").send().await.unwrap().status(), 401);
    assert_eq!(
        check("/elsewhere")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let dotted = check("/app/../admin")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(dotted.status(), 400);
    let relative = check("app/page").bearer_auth(&token).send().await.unwrap();
    assert_eq!(relative.status(), 400);
}
