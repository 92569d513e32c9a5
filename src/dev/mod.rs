//! Development stand-ins that ship with the binary: the development identity provider (a
//! Keycloak-shaped realm server, [`identity_provider`]) and `portcullis demo` with its demo
//! orders API ([`demo`]). The integration tests use both as their mock IdP and mock upstream,
//! and the benches use them as the fast upstream and token source. Nothing on the request path
//! imports this module.

pub mod demo;
pub mod identity_provider;

pub use demo::upstream::DemoUpstream;
pub use identity_provider::DevIdp;
