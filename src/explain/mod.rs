//! `portcullis explain`: what the gateway would decide about one request, step by step, without
//! sending anything anywhere (unless `--fetch` lets providers' discovery and keys be fetched).
//!
//! The explanation runs the gateway's own request steps ([`crate::pipeline::steps::run`]) on a
//! snapshot built for inspection ([`Snapshot::inspect`]) with a decision trace attached, so the
//! explanation and a live request share one code path: the trace only writes down what the
//! steps decided. Rate limits are described, not counted. Without keys (offline, discovery or
//! a JWKS URL), the signature is reported as not checked and the other checks still run.
//! Exit status: 0 allowed, 1 refused, 2 when the question cannot be asked (bad configuration,
//! request or token file).
//!
//! | file | role |
//! |---|---|
//! | [`request`] | the request from the command line (method, URL, headers, token) |
//! | [`forwarding`] | what an admitted request carries upstream |

pub mod forwarding;
pub mod request;

use crate::compile::{self, CompiledConfig};
use crate::decision_trace::{DecisionTrace, Verdict};
use crate::pipeline::facts::RequestFacts;
use crate::pipeline::{steps, Context};
use crate::reply::Reply;
use crate::snapshot::{ActivationError, Snapshot};
use request::{build, ExplainRequest};
use serde::Serialize;
use std::net::IpAddr;
use std::sync::Arc;

/// What the gateway would do with the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Forwarded upstream (or a CORS preflight answered by the gateway).
    Allowed,
    /// Refused, or sent to sign in.
    Refused,
}

/// One request explained.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub outcome: Outcome,
    /// The status the gateway would answer with itself (`None`: the upstream answers).
    pub status: Option<u16>,
    /// The refusal's reason code (`None` when allowed).
    pub reason: Option<&'static str>,
    /// Whether a token's signature was verified (false offline without keys).
    pub signature_checked: bool,
    #[serde(flatten)]
    pub trace: DecisionTrace,
}

impl Explanation {
    /// Exit status of `portcullis explain`: 0 allowed, 1 refused.
    pub fn exit_code(&self) -> u8 {
        match self.outcome {
            Outcome::Allowed => 0,
            Outcome::Refused => 1,
        }
    }

    /// The explanation as text: the steps, then the verdict.
    pub fn render_text(&self) -> String {
        let mut text = self.trace.render_text();
        let verdict = match (self.outcome, self.status, self.reason) {
            (Outcome::Allowed, Some(status), _) => format!("allowed: answered by the gateway ({status})"),
            (Outcome::Allowed, None, _) if !self.signature_checked => {
                "allowed, provided the token's signature verifies (keys unknown offline: run with --fetch)".to_owned()
            }
            (Outcome::Allowed, None, _) => "allowed: forwarded upstream".to_owned(),
            (Outcome::Refused, status, reason) => format!(
                "refused: {} {}{}",
                status.unwrap_or(0),
                reason.unwrap_or(""),
                self.trace
                    .failed_step()
                    .map(|s| format!(" (at step `{}`)", s.step))
                    .unwrap_or_default()
            ),
        };
        text.push_str(&format!("verdict: {verdict}\n"));
        text
    }
}

/// Builds the inspection snapshot for `config` (fetching keys only with `fetch`).
pub async fn snapshot(
    config: CompiledConfig,
    fetch: bool,
) -> Result<Arc<Snapshot>, ActivationError> {
    let handle = tokio::runtime::Handle::current();
    Snapshot::inspect(config, fetch, &handle)
        .await
        .map(Arc::new)
}

/// Explains `request` from `client_ip` on `snapshot`. `offline`: the providers' keys were not
/// fetched (a signature without keys is reported, not refused).
pub async fn explain(
    snapshot: Arc<Snapshot>,
    request: &ExplainRequest,
    client_ip: IpAddr,
    offline: bool,
) -> Explanation {
    let mut ctx = Context::new(Arc::clone(&snapshot));
    ctx.facts = RequestFacts::of(
        &request.header,
        Some(client_ip),
        request.tls,
        &snapshot.config.trusted_proxies,
    );
    ctx.decision = Some(Box::new(DecisionTrace {
        offline,
        explaining: true,
        ..Default::default()
    }));
    let result = steps::run(&request.header, &mut ctx, &snapshot).await;
    let mut trace = ctx.decision.take().map(|t| *t).unwrap_or_default();
    let signature_checked = !trace
        .steps
        .iter()
        .flat_map(|s| &s.checks)
        .any(|c| c.name == "signature" && c.verdict == Verdict::Skip);
    let (outcome, status, reason) = match &result {
        Ok(()) => {
            if let Some(route) = ctx.route.clone() {
                forwarding::record(&mut trace, &request.header, &ctx, &route);
            }
            (Outcome::Allowed, None, None)
        }
        Err(reply @ Reply::Preflight { .. }) => (Outcome::Allowed, Some(reply.status()), None),
        Err(reply) => (Outcome::Refused, Some(reply.status()), Some(reply.reason())),
    };
    Explanation {
        outcome,
        status,
        reason,
        signature_checked,
        trace,
    }
}

/// The command line of `portcullis explain`.
#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub file: crate::config::ConfigPathArg,
    /// The access token (never printed back; prefer --token-file, shell history keeps this).
    #[arg(long)]
    pub token: Option<String>,
    /// A file holding the access token.
    #[arg(long)]
    pub token_file: Option<String>,
    /// A request header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// The client address the request comes from.
    #[arg(long, default_value = "127.0.0.1")]
    pub client_ip: IpAddr,
    /// Fetch the providers' discovery documents and keys (to verify signatures).
    #[arg(long)]
    pub fetch: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// The request method (GET, POST, ...).
    pub method: String,
    /// The request URL: `https://host/path?query`, or `/path` with -H 'Host: host'.
    pub url: String,
}

/// Exit status for a question that could not be asked.
const CANNOT_EXPLAIN: u8 = 2;

/// Runs `portcullis explain`; returns the exit status.
pub fn run(args: ExplainArgs) -> u8 {
    match run_command(&args) {
        Ok(status) => status,
        Err(message) => {
            eprintln!("portcullis explain: {message}");
            CANNOT_EXPLAIN
        }
    }
}

fn run_command(args: &ExplainArgs) -> Result<u8, String> {
    let config = compile::load_file(&args.file.config).map_err(|errors| {
        format!(
            "{errors}\n{}: the configuration has errors",
            args.file.config
        )
    })?;
    let token = match (&args.token, &args.token_file) {
        (Some(_), Some(_)) => return Err("give --token or --token-file, not both".into()),
        (Some(token), None) => Some(token.trim().to_owned()),
        (None, Some(path)) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the token file `{path}`: {e}"))?
                .trim()
                .to_owned(),
        ),
        (None, None) => None,
    };
    let request = build(&args.method, &args.url, &args.headers, token.as_deref())
        .map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    let explanation = runtime.block_on(async {
        let snapshot = snapshot(config, args.fetch)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(explain(snapshot, &request, args.client_ip, !args.fetch).await)
    })?;
    if args.json {
        let text = serde_json::to_string_pretty(&explanation)
            .map_err(|e| format!("cannot write JSON: {e}"))?;
        println!("{text}");
    } else {
        let mode = if args.fetch {
            "keys fetched"
        } else {
            "offline"
        };
        println!(
            "explain {} {} from {} ({mode})",
            request.header.method, args.url, args.client_ip
        );
        print!("{}", explanation.render_text());
    }
    Ok(explanation.exit_code())
}
