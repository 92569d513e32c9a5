//! Edge policies a route applies before authentication, compiled offline and evaluated per
//! request without I/O:
//!
//! | file | role |
//! |---|---|
//! | [`cors`] | CORS: preflight answers and the headers of actual responses |
//! | [`client_ips`] | client address allow and deny lists (CIDR, IPv4 and IPv6) |

pub mod client_ips;
pub mod cors;

pub use client_ips::{compile_client_ips, parse_cidr, ClientIps};
pub use cors::{compile_cors, CorsPolicy, PreflightRefusal};
