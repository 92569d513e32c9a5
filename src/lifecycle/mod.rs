//! The process around the request path: start-up ([`run`]), the listening sockets
//! ([`listeners`]), the live configuration and its reload ([`reload`]), signals and drain
//! ([`signals`]), the pid file ([`pid_file`]) and the admin endpoints ([`admin`]).
//!
//! Imports point one way: `run` builds the services from `admin`, `listeners` and `signals`;
//! `admin` and `signals` call `reload`; `reload` activates snapshots. Nothing here exits the
//! process: [`run::run`] returns to `main`.

pub mod admin;
pub mod listeners;
pub mod pid_file;
pub mod reload;
pub mod run;
pub mod signals;

pub use reload::{LiveConfig, ReloadError};
pub use run::{control_runtime, run, RunOptions, StartError};
pub use signals::{Signals, Stopped};
