//! The step list against a real activated snapshot (development IdP, no listener): each step
//! refuses what it owns, in order, and a rate-limited route is always limited — the limiter is
//! part of every snapshot, so there is no state in which a limit is skipped (it used to be an
//! `Option` that let requests through when absent).

use super::run;
use crate::compile::compile_text;
use crate::dev::identity_provider::DevIdp;
use crate::pipeline::context::{AuthDecision, Context, RateLimitDecision};
use crate::pipeline::facts::RequestFacts;
use crate::reply::{Denial, Reply};
use crate::snapshot::Snapshot;
use pingora::http::RequestHeader;
use std::sync::Arc;

fn config(idp: &DevIdp) -> String {
    format!(
        r#"
server: {{ listen: ["127.0.0.1:0"], max_header_size: 2KiB }}
identity_providers:
  acme: {{ issuer: "{issuer}", jwks_uri: "{jwks}", audiences: ["orders-api"] }}
upstreams: {{ app: {{ targets: ["127.0.0.1:9"] }} }}
rate_limits:
  two_a_minute: {{ key: client_ip, rate: 2/min }}
routes:
  - {{ name: limited, match: {{ path_prefix: /limited/ }}, upstream: app, auth: none, rate_limit: two_a_minute }}
  - {{ name: reads, match: {{ path_prefix: /reads/, methods: [GET] }}, upstream: app, auth: none }}
  - {{ name: secure, match: {{ path_prefix: /secure/ }}, upstream: app, auth: {{ providers: [acme] }} }}
"#,
        issuer = idp.issuer("acme"),
        jwks = idp.jwks_uri("acme"),
    )
}

struct Fixture {
    control: tokio::runtime::Runtime,
    snapshot: Arc<Snapshot>,
    idp: DevIdp,
}

fn fixture() -> Fixture {
    let idp = DevIdp::start(&["acme"]).expect("development IdP");
    let control = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let compiled = compile_text("steps.yaml", &config(&idp)).expect("valid config");
    let snapshot = control
        .block_on(Snapshot::activate(compiled, None, control.handle()))
        .expect("activated");
    Fixture {
        control,
        snapshot: Arc::new(snapshot),
        idp,
    }
}

impl Fixture {
    /// Runs the steps on a fresh request context; returns the context and the outcome.
    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (Context, Result<(), Denial>) {
        let mut request = RequestHeader::build(method, path.as_bytes(), None).unwrap();
        request.insert_header("host", "api.example.com").unwrap();
        for (name, value) in headers {
            request.insert_header(name.to_string(), *value).unwrap();
        }
        let mut ctx = Context::new(Arc::clone(&self.snapshot));
        ctx.facts = RequestFacts::of(&request, Some([127, 0, 0, 1].into()), false, &[]);
        let outcome = self
            .control
            .block_on(run(&request, &mut ctx, &self.snapshot));
        (ctx, outcome.map_err(refusal))
    }
}

/// The refusal in a reply; these routes have no sign-in, so nothing else may come.
fn refusal(reply: Reply) -> Denial {
    match reply {
        Reply::Refusal(denial) => denial,
        other => panic!("a route without sign-in answered {other:?}"),
    }
}

#[test]
fn a_rate_limited_route_is_limited_from_the_first_request() {
    let fixture = fixture();
    for _ in 0..2 {
        let (ctx, outcome) = fixture.request("GET", "/limited/x", &[]);
        assert_eq!(outcome, Ok(()));
        assert_eq!(ctx.rate_limit, RateLimitDecision::Allowed);
        assert!(
            !ctx.rate_limit_headers.is_empty(),
            "RateLimit headers kept for the response"
        );
    }
    let (ctx, outcome) = fixture.request("GET", "/limited/x", &[]);
    assert!(
        matches!(&outcome, Err(Denial::RateLimited { policy, .. }) if policy == "two_a_minute"),
        "{outcome:?}"
    );
    assert_eq!(ctx.rate_limit, RateLimitDecision::Limited);
}

#[test]
fn each_step_refuses_what_it_owns() {
    let fixture = fixture();
    let mut oversize = fixture.request("GET", "/reads/x", &[]).0;
    oversize.facts.head_size = 4096;
    let request = RequestHeader::build("GET", b"/reads/x", None).unwrap();
    let outcome = fixture
        .control
        .block_on(run(&request, &mut oversize, &fixture.snapshot));
    assert_eq!(
        outcome.map_err(refusal),
        Err(Denial::HeadersTooLarge { limit: 2048 })
    );

    assert_eq!(
        fixture.request("GET", "/reads/../secure/x", &[]).1,
        Err(Denial::PathNotNormalized {
            why: crate::routing::PathRejection::DotSegment
        })
    );
    assert_eq!(
        fixture.request("GET", "/nowhere", &[]).1,
        Err(Denial::NoRoute)
    );
    assert!(matches!(
        fixture.request("POST", "/reads/x", &[]).1,
        Err(Denial::MethodNotAllowed { .. })
    ));
    let (ctx, outcome) = fixture.request("GET", "/secure/x", &[]);
    assert!(
        matches!(
            &outcome,
            Err(Denial::Unauthenticated {
                status: 401,
                reason: "missing_token",
                ..
            })
        ),
        "{outcome:?}"
    );
    assert_eq!(ctx.auth, AuthDecision::Denied);
    assert!(
        ctx.route.is_some(),
        "the route is known to a refused request's log line"
    );
}

#[test]
fn a_verified_token_reaches_the_upstream_with_its_identity() {
    let fixture = fixture();
    let token = fixture.idp.token("acme").mint().unwrap();
    let bearer = format!("Bearer {token}");
    let (ctx, outcome) = fixture.request("GET", "/secure/x", &[("authorization", &bearer)]);
    assert_eq!(outcome, Ok(()));
    assert_eq!(ctx.auth, AuthDecision::Allowed);
    assert_eq!(
        ctx.route.as_deref().map(|r| r.name.as_str()),
        Some("secure")
    );
    assert!(ctx
        .claims()
        .is_some_and(|claims| claims.document()["iss"] == fixture.idp.issuer("acme")));
}
