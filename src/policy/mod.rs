//! Authorization policy: the compiled rule expressions that route `auth`, rate-limit tiers and
//! transform conditions share, and the verified claims and identity they are evaluated on.

pub mod claims;
pub mod evaluate;
pub mod identity;
mod names;
pub mod rule;

pub use claims::{ClaimValue, Claims, ClaimsError, RawJson};
pub use evaluate::{evaluate, holds, holds_for, Unmet};
pub use identity::Identity;
pub use rule::{compile_rule, Rule};
