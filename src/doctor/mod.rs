//! `portcullis doctor`: online checks of everything a configuration depends on, one line each
//! with ok / warn / FAIL and, when something is wrong, how to fix it. It answers "will this
//! work?" before the first request: the identity providers (discovery, TLS, issuer, keys for
//! the allowed algorithms, clock, endpoints the routes need, the gateway's client credentials
//! and the tokens it gets), the upstream targets (DNS, TCP, TLS with SNI), Redis (answers in
//! time, scripts load) and the admin listener's exposure.
//!
//! `validate` stays the offline check that `systemctl reload` runs; `doctor` talks to the
//! network and is for people. Exit status 1 when any check fails (warnings do not fail).
//!
//! | file | checks |
//! |---|---|
//! | [`finding`] | one check's outcome, the report, and the clock comparison |
//! | [`providers`] | each identity provider, and a token from its token endpoint |
//! | [`client_probe`] | the gateway's client credentials, and the checks on the token it gets |
//! | [`services`] | upstream targets, Redis, the admin listener |

pub mod client_probe;
pub mod finding;
pub mod providers;
pub mod services;

pub use finding::{Finding, Health, Report};

use crate::compile::{self, CompiledConfig};

/// Runs every check of `config`.
pub async fn examine(config: &CompiledConfig) -> Report {
    let (providers, upstreams, redis) = tokio::join!(
        providers::check_all(config),
        services::check_upstreams(config),
        services::check_redis(config),
    );
    let mut report = Report::default();
    report.findings.extend(providers);
    report.findings.extend(upstreams);
    report.findings.extend(redis);
    report.findings.extend(services::check_admin(config));
    report
}

/// Runs `portcullis doctor -c FILE`; returns the exit status (0 all passed, 1 a check failed,
/// 2 the configuration does not compile).
pub fn run(path: &str) -> u8 {
    let config = match compile::load_file(path) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{path}: fix the configuration first (`portcullis validate`)");
            return 2;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("portcullis doctor: cannot start a runtime: {error}");
            return 2;
        }
    };
    let report = runtime.block_on(examine(&config));
    print!("{}", report.render());
    u8::from(report.failed())
}
