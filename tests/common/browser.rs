//! A scripted browser for the sign-in tests: one cookie jar per origin (`Set-Cookie` stored,
//! `Max-Age=0` deleting), redirects never followed on their own so that every hop can be
//! checked, and the development identity provider's login form filled in like a person would.
//! Also the gateway set-up the sign-in tests share ([`start`]).

#![allow(dead_code)]

use super::mocks::{self, DevIdp};
use super::GatewayProcess;
use portcullis::dev::identity_provider::{GATEWAY_CLIENT_ID, GATEWAY_CLIENT_SECRET};
use portcullis::sign_in::seal::generate_key_base64;
use reqwest::header::{HeaderMap, ACCEPT, COOKIE as COOKIE_HEADER, LOCATION, SET_COOKIE};
use reqwest::{Method, Response, Url};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// What a browser navigation sends as `Accept`.
pub const NAVIGATION_ACCEPT: &str = "text/html,application/xhtml+xml,*/*;q=0.8";

pub struct Browser {
    http: reqwest::Client,
    /// origin → cookie name → value
    jar: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
}

fn origin(url: &Url) -> String {
    format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or_default()
    )
}

/// The `Location` of a redirect, asserting the status is 302.
pub fn location(response: &Response) -> String {
    assert_eq!(
        response.status(),
        302,
        "expected a redirect from {}",
        response.url()
    );
    response
        .headers()
        .get(LOCATION)
        .expect("Location header")
        .to_str()
        .unwrap()
        .to_owned()
}

/// The `Set-Cookie` values of a response.
pub fn set_cookies(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// The query parameters of a URL.
pub fn query_params(url: &str) -> BTreeMap<String, String> {
    Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The `action` of the `<form id="kc-form-login">` tag (Keycloak's and the development IdP's
/// login form), HTML entities decoded.
fn login_form_action(html: &str) -> Option<String> {
    let form = html
        .split("<form")
        .skip(1)
        .map(|rest| rest.split('>').next().unwrap_or_default())
        .find(|tag| tag.contains("id=\"kc-form-login\""))?;
    let action = form.split("action=\"").nth(1)?.split('"').next()?;
    Some(action.replace("&amp;", "&"))
}

impl Default for Browser {
    fn default() -> Self {
        Browser::new()
    }
}

impl Browser {
    pub fn new() -> Self {
        Browser {
            http: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            jar: Mutex::new(BTreeMap::new()),
        }
    }

    /// The `Cookie` header this browser sends to `url`.
    pub fn cookie_header(&self, url: &str) -> String {
        let url = Url::parse(url).unwrap();
        let jar = self.jar.lock().unwrap();
        jar.get(&origin(&url))
            .map(|cookies| {
                cookies
                    .iter()
                    .map(|(name, value)| format!("{name}={value}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default()
    }

    pub fn cookie(&self, url: &str, name: &str) -> Option<String> {
        let url = Url::parse(url).unwrap();
        self.jar
            .lock()
            .unwrap()
            .get(&origin(&url))?
            .get(name)
            .cloned()
    }

    /// Sets (or with `None` removes) a cookie as if a server had.
    pub fn put_cookie(&self, url: &str, name: &str, value: Option<&str>) {
        let url = Url::parse(url).unwrap();
        let mut jar = self.jar.lock().unwrap();
        let cookies = jar.entry(origin(&url)).or_default();
        match value {
            Some(value) => cookies.insert(name.to_owned(), value.to_owned()),
            None => cookies.remove(name),
        };
    }

    /// The names of the cookies kept for `url`'s origin.
    pub fn cookie_names(&self, url: &str) -> Vec<String> {
        let url = Url::parse(url).unwrap();
        let jar = self.jar.lock().unwrap();
        jar.get(&origin(&url))
            .map(|cookies| cookies.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn store(&self, url: &Url, headers: &HeaderMap) {
        let mut jar = self.jar.lock().unwrap();
        let cookies = jar.entry(origin(url)).or_default();
        for set_cookie in set_cookies(headers) {
            let pair = set_cookie.split(';').next().unwrap_or_default();
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            if set_cookie.contains("Max-Age=0") {
                cookies.remove(name.trim());
            } else {
                cookies.insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }

    /// Sends a request with this browser's cookies and stores what comes back.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        form: Option<&[(&str, &str)]>,
    ) -> Response {
        let parsed = Url::parse(url).unwrap();
        let mut request = self.http.request(method, parsed.clone());
        let cookies = self.cookie_header(url);
        if !cookies.is_empty() {
            request = request.header(COOKIE_HEADER, cookies);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(form) = form {
            let body = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form)
                .finish();
            request = request
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body);
        }
        let response = request.send().await.unwrap();
        self.store(&parsed, response.headers());
        response
    }

    /// A top-level navigation (`Accept: text/html`, `Sec-Fetch-Mode: navigate`).
    pub async fn navigate(&self, url: &str) -> Response {
        self.send(
            Method::GET,
            url,
            &[
                (ACCEPT.as_str(), NAVIGATION_ACCEPT),
                ("sec-fetch-mode", "navigate"),
            ],
            None,
        )
        .await
    }

    /// A script's request (`fetch`): JSON accepted, `Sec-Fetch-Mode: cors`.
    pub async fn fetch(&self, url: &str) -> Response {
        self.send(
            Method::GET,
            url,
            &[("accept", "application/json"), ("sec-fetch-mode", "cors")],
            None,
        )
        .await
    }

    /// At the provider's login page `authorization_url`: fills in the form and submits it;
    /// returns the provider's answer (a redirect to the callback when the password is right).
    pub async fn log_in_at_provider(
        &self,
        authorization_url: &str,
        username: &str,
        password: &str,
    ) -> Response {
        let page = self.navigate(authorization_url).await;
        assert_eq!(page.status(), 200, "the login page");
        let html = page.text().await.unwrap();
        let action = login_form_action(&html).unwrap_or_else(|| panic!("no login form: {html}"));
        let form = [("username", username), ("password", password)];
        self.send(Method::POST, &action, &[], Some(&form)).await
    }

    /// Signs in from `start_url` (a page behind a `sign_in` route) as `username`, following
    /// every hop, and returns the final answer for the page.
    pub async fn sign_in(&self, start_url: &str, username: &str, password: &str) -> Response {
        let started = self.navigate(start_url).await;
        let authorization_url = location(&started);
        let logged_in = self
            .log_in_at_provider(&authorization_url, username, password)
            .await;
        let callback = location(&logged_in);
        let back = self.navigate(&callback).await;
        let target = Url::parse(&callback)
            .unwrap()
            .join(&location(&back))
            .unwrap();
        self.navigate(target.as_str()).await
    }
}

/// The session cookie of the test configs (no `__Host-` prefix: the listener is plain HTTP).
pub const COOKIE: &str = "portcullis";

/// A gateway with one sign-in realm: `/app/` needs the `/engineering` group, `/token/` passes the
/// session's access token upstream, `/public/` is anonymous. `keys` are the session keys;
/// `session_extra` more `browser_sign_in.session` settings (`"refresh_before: 10s"`).
pub fn config(
    idp: &DevIdp,
    upstream: std::net::SocketAddr,
    keys: &[&str],
    session_extra: &str,
) -> String {
    let keys = keys
        .iter()
        .map(|k| format!("\"{k}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
server:
  listen: ["127.0.0.1:{{port}}"]
  threads: 2
admin:
  listen: "127.0.0.1:{{admin_port}}"
access_log: {{ path: "{{dir}}/access.log" }}
identity_providers:
  acme:
    discovery: "{discovery}"
    audiences: ["orders-api"]
    client:
      id: {GATEWAY_CLIENT_ID}
      secret: "{GATEWAY_CLIENT_SECRET}"
browser_sign_in:
  session:
    cookie: {COOKIE}
    keys: [{keys}]
    insecure_cookies: true
    {session_extra}
upstreams:
  api:
    targets: ["{upstream}"]
routes:
  - name: app
    match: {{ path_prefix: /app/ }}
    strip_prefix: true
    upstream: api
    auth:
      providers: [acme]
      sign_in: acme
      require: {{ group: /engineering }}
    request:
      set_headers: {{ X-User: "{{claims.preferred_username}}" }}
  - name: token
    match: {{ path_prefix: /token/ }}
    strip_prefix: true
    upstream: api
    auth: {{ providers: [acme], sign_in: acme, pass_access_token: true }}
  - name: public
    match: {{ path_prefix: /public/ }}
    strip_prefix: true
    upstream: api
    auth: none
"#,
        discovery = idp.discovery_url("acme"),
    )
}

/// Everything a test runs against; the mocks stop when it is dropped.
pub struct Setup {
    pub idp: DevIdp,
    pub upstream: mocks::DemoUpstream,
    pub gateway: GatewayProcess,
    /// The session key the gateway started with.
    pub key: String,
}

/// A dev IdP, a mock upstream and a gateway on [`config`] with a fresh key.
pub fn start(session_extra: &str) -> Setup {
    let idp = mocks::idp(&["acme"]);
    let upstream = mocks::upstream("api");
    let key = generate_key_base64();
    let gateway = GatewayProcess::start(&config(&idp, upstream.addr(), &[&key], session_extra));
    Setup {
        idp,
        upstream,
        gateway,
        key,
    }
}
