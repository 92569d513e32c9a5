//! `portcullis demo`: everything on 127.0.0.1 in one process, no external service — the
//! gateway, the demo orders API and the development identity provider (a Keycloak-shaped realm
//! `demo` with users alice, bob and mallory) — then ready-to-paste commands that show each
//! feature: tokens from the realm's token endpoint as from Keycloak, an allowed call, a 401, a
//! 403, a 429, a transformed body, and a browser sign-in on the same rules.

use super::upstream::DemoUpstream;
use crate::compile;
use crate::dev::identity_provider::{DevIdp, GATEWAY_CLIENT_ID, GATEWAY_CLIENT_SECRET};
use crate::lifecycle::{self, Signals};
use crate::sign_in::seal::generate_key_base64;
use std::process::ExitCode;
use std::time::Duration;

/// Demo access tokens live an hour, so that pasted commands keep working for a while.
const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// The generated demo configuration; `session_key` seals the browser sessions of this run.
fn demo_config(
    port: u16,
    admin_port: u16,
    upstream: std::net::SocketAddr,
    idp: &DevIdp,
    session_key: &str,
) -> String {
    format!(
        r#"
server:
  listen: ["127.0.0.1:{port}"]
  threads: 2
  pid_file: "{pid_file}"
admin:
  listen: "127.0.0.1:{admin_port}"
access_log: {{ path: off }}
identity_providers:
  demo:
    discovery: "{discovery}"
    audiences: ["orders-api"]
    token_types: ["Bearer"]
    client: {{ id: {GATEWAY_CLIENT_ID}, secret: "{GATEWAY_CLIENT_SECRET}" }}
browser_sign_in:
  session:
    cookie: portcullis-demo
    keys: ["{session_key}"]
    insecure_cookies: true   # the demo listens on plain HTTP
upstreams:
  orders:
    targets: ["{upstream}"]
rate_limits:
  per_client:
    key: client_id
    rate: 5/min
    tiers:
      - when: {{ realm_role: premium }}
        rate: 1000/min
routes:
  - name: status
    match: {{ path: /status, methods: [GET] }}
    upstream: orders
    auth: none
  - name: orders-read
    match: {{ path: "/orders/{{id}}", methods: [GET] }}
    upstream: orders
    auth:
      providers: [demo]
      require: {{ any: [ {{ realm_role: reader }}, {{ scope: orders.read }} ] }}
    rate_limit: per_client
    request:
      set_headers: {{ X-User-Id: "{{claims.sub}}", X-Client-Id: "{{claims.azp}}" }}
      remove_headers: [Authorization]
    response:
      set_headers: {{ Cache-Control: no-store }}
      json:
        remove: ["/internal_cost", "/items/*/internal_cost"]
        mask: {{ /card_number: 4 }}
        unless: {{ group: /finance }}
  - name: orders-write
    match: {{ path: /orders, methods: [POST] }}
    upstream: orders
    auth:
      providers: [demo]
      require: {{ all: [ {{ realm_role: writer }}, {{ group: /engineering }} ] }}
  - name: console
    match: {{ path_prefix: /console }}
    upstream: orders
    auth:
      providers: [demo]
      sign_in: demo
      require: {{ group: /engineering }}
    request:
      rewrite_path: {{ pattern: "^/console.*$", replacement: "/_test/echo" }}
      set_headers: {{ X-User: "{{claims.preferred_username}}", X-User-Groups: "{{claims.groups}}" }}
"#,
        pid_file = std::env::temp_dir()
            .join(format!("portcullis-demo-{port}.pid"))
            .display(),
        discovery = idp.discovery_url("demo"),
    )
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Runs the demo until interrupted.
pub fn run(port: u16, control: tokio::runtime::Runtime, signals: Signals) -> ExitCode {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        eprintln!("portcullis demo: {what}: {e}");
        ExitCode::FAILURE
    };
    let upstream = match DemoUpstream::start_in_background_thread("127.0.0.1:0", "demo-orders") {
        Ok(upstream) => upstream,
        Err(e) => return fail("cannot start the demo upstream", &e),
    };
    let idp = match DevIdp::start(&["demo"]) {
        Ok(idp) => idp,
        Err(e) => return fail("cannot start the development identity provider", &e),
    };
    let admin_port = match free_port() {
        Ok(p) => p,
        Err(e) => return fail("no free port for the admin listener", &e),
    };
    idp.set_access_token_lifetime(TOKEN_LIFETIME);
    let text = demo_config(
        port,
        admin_port,
        upstream.addr(),
        &idp,
        &generate_key_base64(),
    );
    let compiled = match compile::compile_text("<demo>", &text) {
        Ok(c) => c,
        Err(errors) => return fail("internal configuration error", &errors),
    };
    let base = format!("http://127.0.0.1:{port}");
    let issuer = idp.issuer("demo");
    std::thread::spawn(move || {
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        for _ in 0..500 {
            if std::net::TcpStream::connect_timeout(&address, Duration::from_millis(50)).is_ok() {
                print_walkthrough(&base, admin_port, &issuer);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("portcullis demo: the gateway did not start listening on {address}");
    });
    // The demo upstream and identity provider live as long as the process.
    std::mem::forget(upstream);
    std::mem::forget(idp);
    let options = lifecycle::RunOptions {
        config_path: None,
        upgrade: false,
    };
    match lifecycle::run(compiled, options, control, signals) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => fail("cannot start the gateway", &e),
    }
}

fn print_walkthrough(base: &str, admin_port: u16, issuer: &str) {
    println!(
        r#"
Portcullis demo is running.
  gateway   {base}
  admin     http://127.0.0.1:{admin_port}  (/metrics /healthz /readyz)
  identity  {issuer}  (a development realm shaped like Keycloak)
  users     alice / alice  (roles reader, writer; group /engineering)
            bob / bob      (role reader; group /finance)
            mallory / mallory  (no roles)

# 0. Tokens come from the realm's token endpoint, as from Keycloak (the password grant; needs jq):
token() {{ curl -s -d grant_type=password -d client_id={GATEWAY_CLIENT_ID} -d client_secret={GATEWAY_CLIENT_SECRET} -d username=$1 -d password=$1 {issuer}/protocol/openid-connect/token | jq -r .access_token; }}
ALICE=$(token alice); BOB=$(token bob); MALLORY=$(token mallory)

# 1. An anonymous route (auth: none):
curl -i {base}/status

# 2. Allowed: alice has the realm role `reader`. The upstream sees X-User-Id / X-Client-Id,
#    and the body is transformed: internal_cost removed, card number masked.
curl -i -H "Authorization: Bearer $ALICE" {base}/orders/42

# 3. The same order for bob of group /finance: the body is untouched (`unless: {{ group: /finance }}`).
curl -s -H "Authorization: Bearer $BOB" {base}/orders/42

# 4. 401: no token (WWW-Authenticate: Bearer realm="demo"), then a tampered one.
curl -i {base}/orders/42
curl -i -H "Authorization: Bearer ${{ALICE}}x" {base}/orders/42

# 5. 403: mallory's token is valid but has no role that the route requires.
curl -i -H "Authorization: Bearer $MALLORY" {base}/orders/42

# 6. 429: the `per_client` limit allows 5 requests a minute per client (the calls above count;
#    these tokens share the client {GATEWAY_CLIENT_ID}); with Retry-After and RateLimit headers.
for i in 1 2 3 4 5 6; do curl -s -o /dev/null -w '%{{http_code}}\n' -H "Authorization: Bearer $ALICE" {base}/orders/7; done

# 7. Writes need realm role `writer` and group /engineering (subgroups count):
curl -i -X POST -H "Authorization: Bearer $ALICE" -H 'Content-Type: application/json' -d '{{"item":"A-1","qty":2}}' {base}/orders

# 8. People sign in with a browser on the same rules (group /engineering): open
#      {base}/console/
#    sign in as alice / alice (bob / bob is refused: 403), see the identity headers the app got,
#    and log out at {base}/.portcullis/logout
#    A script without a session gets 401, never a login page; a bearer token works too:
curl -i {base}/console/
curl -s -H "Authorization: Bearer $ALICE" {base}/console/

Press Ctrl-C to stop.
"#
    );
}
