//! Every response the gateway produces itself, and the one place that maps them to HTTP.
//!
//! Each refusal or upstream failure is a [`Denial`] with a stable `reason` code; a Pingora error
//! from the upstream side becomes one in [`classify_proxy_error`]. [`send`] writes it as an
//! `application/problem+json` body (RFC 9457) carrying the reason and the request id, with the
//! headers the status needs (`Allow` for 405, `WWW-Authenticate` for 401/403, `Retry-After` for
//! 429/503). The answers that are not refusals — the redirects of browser sign-in, the
//! acknowledgement of a back-channel logout and the verdict of a forward-auth check — are the
//! other arms of [`Reply`]. No other module writes a response of the gateway's own.
//!
//! | file | role |
//! |---|---|
//! | [`denial`] | the refusals: status, reason, problem body, headers |
//! | [`send`] | every answer ([`Reply`]) written to the client |

pub mod denial;
pub mod send;

pub use denial::{classify_proxy_error, Denial};
pub use send::{send, send_reply, ExtraHeaders, Reply};
