//! The one-command demo: [`upstream`] (the demo orders API, also the tests' mock upstream and
//! the benches' fast upstream) and [`run`] (`portcullis demo`).

pub mod run;
pub mod upstream;
mod upstream_routes;

pub use run::run;
pub use upstream_routes::ten_kb_document;
