//! Browser sign-in: the OpenID Connect authorization code flow with PKCE, sealed sessions in
//! cookies, refresh and logout, for routes with `auth.sign_in`.
//!
//! | module | role |
//! |---|---|
//! | [`settings`] | `browser_sign_in` compiled offline |
//! | [`session`] | the session and login state as sealed into cookies; what a request does with them |
//! | [`token_endpoint`] | code exchange and refresh grant at the provider |
//! | [`provider_tokens`] | ID token and back-channel logout token checks |
//! | [`service`] | the running service: a request's session, refresh |
//! | [`refresh`] | one refresh per session at a time |
//! | [`revocation`] | sessions ended before their cookies expire |
//! | [`flow`] | the redirect that starts a sign-in and the callback that finishes it |
//! | [`logout`] | logout at the gateway and back-channel logout from the provider |

//! | [`seal`] | AES-256-GCM sealing under rotating keys |
//! | [`cookie_jar`] | cookies read, chunked, set, expired and stripped |
//! | [`redirect`] | state and PKCE tokens, query strings, same-host return paths |
//! | [`session_store`] | sessions in the cookie itself or in Redis behind an opaque id |
//! | [`redis_sessions`] | the Redis side of server-side sessions |

pub mod cookie_jar;
pub mod flow;
pub mod logout;
pub mod provider_tokens;
pub mod redirect;
pub mod redis_sessions;
pub mod refresh;
pub mod revocation;
pub mod seal;
pub mod service;
pub mod session;
pub mod session_store;
pub mod settings;
pub mod token_endpoint;
