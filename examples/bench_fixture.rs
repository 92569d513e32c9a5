//! The load harness's fixture process: a fast upstream (`DemoUpstream`) and the development
//! identity provider, plus tokens for the benchmark cases. Prints one JSON line with the
//! addresses, then serves until killed.
//!
//! Run by `benches/load/harness.py`; by hand: `cargo run --release --example bench_fixture -- DIR`.

use portcullis::dev::identity_provider::{DevIdp, SigningAlg};
use portcullis::dev::DemoUpstream;
use std::io::Write;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| ".".into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let upstream = runtime.block_on(async { DemoUpstream::start("127.0.0.1:0", "bench") })?;
    let idp = DevIdp::start(&["bench"])?;
    let token = |subject: String| {
        idp.token("bench")
            .alg(SigningAlg::RS256)
            .subject(&subject)
            .client("bench-client")
            .realm_roles(&["reader"])
            .groups(&["/engineering/backend"])
            .expires_in(3600)
            .mint()
    };
    std::fs::write(format!("{dir}/warm.token"), token("warm-user".into())?)?;
    // The signing key's public half, for peers that verify with a PEM file (HAProxy).
    let public_pem = idp
        .public_key_pem("bench", SigningAlg::RS256)
        .ok_or("no RS256 key")?;
    std::fs::write(format!("{dir}/public.pem"), public_pem)?;
    let mut unique = std::fs::File::create(format!("{dir}/unique.tokens"))?;
    for i in 0..2000 {
        writeln!(unique, "{}", token(format!("user-{i}"))?)?;
    }
    println!(
        "{}",
        serde_json::json!({
            "upstream": upstream.addr().to_string(),
            "issuer": idp.issuer("bench"),
            "jwks_uri": idp.jwks_uri("bench"),
        })
    );
    std::io::stdout().flush()?;
    runtime.block_on(std::future::pending::<()>());
    Ok(())
}
