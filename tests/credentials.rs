//! Integration: a credential that is present but not a well-formed bearer token — in
//! `Authorization` (a tab after `Bearer`, non-ASCII bytes, no token, another scheme), the
//! configured token header, query parameter (percent-encoded name too) or cookie — is refused
//! with 401 on `auth: optional` and required routes alike, over HTTP/1.1 (raw socket, so nothing
//! normalizes the request) and h2c, and the upstream never sees it.

mod common;

use common::mocks::{self, DemoUpstream, DevIdp};
use common::{client, GatewayProcess};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn config(idp: &DevIdp, upstream: std::net::SocketAddr) -> String {
    format!(
        r#"
server:
  listen: ["127.0.0.1:{{port}}"]
  threads: 2
identity_providers:
  acme:
    issuer: "{issuer}"
    jwks_uri: "{jwks}"
    audiences: ["orders-api"]
tokens:
  header: X-Access-Token
  query: access_token
  cookie: at
upstreams:
  api:
    targets: ["{upstream}"]
routes:
  - name: optional
    match: {{ path_prefix: /maybe/ }}
    strip_prefix: true
    upstream: api
    auth: optional
  - name: required
    match: {{ path_prefix: /needs/ }}
    strip_prefix: true
    upstream: api
    auth: {{ providers: [acme] }}
"#,
        issuer = idp.issuer("acme"),
        jwks = idp.jwks_uri("acme"),
    )
}

/// One bad credential: the query to add to the path, the header lines (raw bytes), the reason.
struct Case {
    query: &'static str,
    header: Vec<u8>,
    reason: &'static str,
}

fn cases(valid: &str) -> Vec<Case> {
    let header = |bytes: &[u8]| bytes.to_vec();
    let case = |query: &'static str, header: Vec<u8>, reason: &'static str| Case {
        query,
        header,
        reason,
    };
    vec![
        case(
            "",
            format!("Authorization: Bearer\t{valid}").into_bytes(),
            "malformed_credential",
        ),
        case(
            "",
            header(b"Authorization: Bearer t\xc3\xb6ken"),
            "malformed_credential",
        ),
        case("", header(b"Authorization: Bearer"), "malformed_credential"),
        case(
            "",
            header(b"Authorization: Basic dXNlcjpwYXNz"),
            "unsupported_scheme",
        ),
        case(
            "",
            header(b"X-Access-Token: tok\xe9n"),
            "malformed_credential",
        ),
        case(
            "",
            header(b"Cookie: theme=dark; at=t\xf6ken"),
            "malformed_credential",
        ),
        case("?access_token=", Vec::new(), "malformed_credential"),
        case("?access_token=a%20b", Vec::new(), "malformed_credential"),
        // The upstream decodes `access%5Ftoken` to `access_token`: so does the gateway.
        case("?access%5Ftoken=EXPIRED", Vec::new(), "expired"),
    ]
}

/// The path with the case's query, the expired token substituted.
fn target(prefix: &str, case: &Case, expired: &str) -> String {
    format!(
        "{prefix}_test/echo{}",
        case.query.replace("EXPIRED", expired)
    )
}

/// Sends one HTTP/1.1 request with raw header bytes; returns status, head and body.
async fn raw_get(port: u16, target: &str, header: &[u8]) -> (u16, String, serde_json::Value) {
    let mut request =
        format!("GET {target} HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n").into_bytes();
    if !header.is_empty() {
        request.extend_from_slice(header);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream.write_all(&request).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let status = head[9..12].parse().expect("a status code");
    let body = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
    (status, head.to_ascii_lowercase(), body)
}

struct Setup {
    idp: DevIdp,
    upstream: DemoUpstream,
    gateway: GatewayProcess,
}

fn setup() -> Setup {
    let idp = mocks::idp(&["acme"]);
    let upstream = mocks::upstream("api");
    let gateway = GatewayProcess::start(&config(&idp, upstream.addr()));
    Setup {
        idp,
        upstream,
        gateway,
    }
}

#[tokio::test]
async fn malformed_credentials_are_refused_over_http1_and_never_forwarded() {
    let s = setup();
    let valid = s.idp.token("acme").mint().unwrap();
    let expired = s.idp.token("acme").expired().mint().unwrap();
    for prefix in ["/maybe/", "/needs/"] {
        for case in cases(&valid) {
            let before = s.upstream.requests();
            let target = target(prefix, &case, &expired);
            let (status, head, body) = raw_get(s.gateway.port, &target, &case.header).await;
            let shown: String = String::from_utf8_lossy(&case.header)
                .chars()
                .take(40)
                .collect();
            assert_eq!(status, 401, "{target} {shown}: {head}");
            assert_eq!(body["reason"], case.reason, "{target} {shown}: {body}");
            assert!(
                head.contains("www-authenticate: bearer realm=\"acme\", error=\"invalid_token\""),
                "{head}"
            );
            assert!(!head.contains(&valid.to_ascii_lowercase()), "{head}");
            assert_eq!(
                s.upstream.requests(),
                before,
                "{target} {shown} reached the upstream"
            );
        }
    }
    // Well-formed: anonymous passes the optional route, a valid token passes both.
    let (status, _, _) = raw_get(s.gateway.port, "/maybe/_test/echo", b"").await;
    assert_eq!(status, 200);
    let bearer = format!("authorization: bEaReR   {valid}");
    let (status, _, body) = raw_get(s.gateway.port, "/needs/_test/echo", bearer.as_bytes()).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn malformed_credentials_are_refused_over_h2c() {
    let s = setup();
    let valid = s.idp.token("acme").mint().unwrap();
    let expired = s.idp.token("acme").expired().mint().unwrap();
    let h2c = common::h2c_client();
    for prefix in ["/maybe/", "/needs/"] {
        for case in cases(&valid) {
            let before = s.upstream.requests();
            let mut request = h2c.get(s.gateway.url(&target(prefix, &case, &expired)));
            if let Some(at) = case.header.iter().position(|b| *b == b':') {
                let name = std::str::from_utf8(&case.header[..at]).unwrap();
                let value = case.header[at + 1..].trim_ascii_start();
                request = request.header(
                    name,
                    reqwest::header::HeaderValue::from_bytes(value).unwrap(),
                );
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.version(), reqwest::Version::HTTP_2);
            assert_eq!(
                response.status(),
                401,
                "{prefix} {}",
                String::from_utf8_lossy(&case.header)
            );
            let challenge = response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .to_owned();
            assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
            let body = common::problem(response).await;
            assert_eq!(body["reason"], case.reason, "{body}");
            assert_eq!(s.upstream.requests(), before);
        }
    }
    let anonymous = h2c
        .get(s.gateway.url("/maybe/_test/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 200);
    let verified = client()
        .get(s.gateway.url("/maybe/_test/echo"))
        .bearer_auth(&valid)
        .send()
        .await
        .unwrap();
    assert_eq!(verified.status(), 200);
}
