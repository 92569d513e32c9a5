//! Authorization policy: the compiled rule expressions that route `auth`, rate-limit tiers and
//! transform conditions share.

pub mod evaluate;
pub mod rule;

pub use evaluate::{evaluate, holds, Unmet};
pub use rule::{compile_rule, Rule};
