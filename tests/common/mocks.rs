//! The tests' mocks: the mock upstream ([`DemoUpstream`], the demo orders API with its
//! `/_test/…` endpoints) and the mock identity provider ([`DevIdp`], Keycloak-shaped realms that
//! mint tokens), both shipped in `portcullis::dev`, with the set-up the test files repeat.

#![allow(dead_code, unused_imports)]

pub use portcullis::dev::identity_provider::DevIdp;
pub use portcullis::dev::DemoUpstream;

/// A mock upstream on `127.0.0.1:0`, serving on the current tokio runtime; every response
/// carries `x-upstream: <name>`.
pub fn upstream(name: &str) -> DemoUpstream {
    DemoUpstream::start("127.0.0.1:0", name)
        .unwrap_or_else(|error| panic!("mock upstream `{name}`: {error}"))
}

/// A development identity provider on a free port of 127.0.0.1, with the given realms.
pub fn idp(realms: &[&str]) -> DevIdp {
    DevIdp::start(realms).unwrap_or_else(|error| panic!("dev IdP {realms:?}: {error}"))
}

/// The headers the mock upstream received, from its `/_test/echo` answer (asserting a 200):
/// lower-case names, each with the list of its values in order.
pub async fn echoed(response: reqwest::Response) -> serde_json::Value {
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    body["headers"].clone()
}
