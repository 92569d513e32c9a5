//! Criterion benches of the per-request hot paths: route lookup (10 and 10,000 routes),
//! authorization rule evaluation against a Keycloak token with 50 roles and 20 groups (and the
//! one-off indexing of that token's identity, paid once per verified token), a
//! JSON body transform of a 10 KB document with five operations (reported in MB/s), and the
//! identity assertion, warm (cached) and cold (one ES256 signature), and the trace context
//! every request starts or continues.
//!
//! Run: `cargo bench --bench hot_paths`. Absolute numbers depend on the machine; compare
//! within one run.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use portcullis::config::policy_file::RuleFile;
use portcullis::policy::{compile_rule, holds, Claims, Identity};
use portcullis::routing::{MethodSet, PathPattern, RouteMatcher, RouteTable};
use std::hint::black_box;

/// The gateway's allocator (src/main.rs), so that allocation costs read as they do in it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn route_table(count: usize) -> RouteTable {
    let matchers: Vec<RouteMatcher> = (0..count)
        .map(|i| RouteMatcher {
            host: None,
            path: if i % 2 == 0 {
                PathPattern::Template(format!("/service{i}/orders/{{id}}"))
            } else {
                PathPattern::Prefix(format!("/static{i}/"))
            },
            methods: MethodSet::from_names(["GET", "POST"]),
        })
        .collect();
    RouteTable::build(&matchers).expect("routes")
}

fn routing(c: &mut Criterion) {
    for count in [10, 10_000] {
        let table = route_table(count);
        let template_path = format!("/service{}/orders/42", (count / 2) & !1);
        let prefix_path = format!("/static{}/app.js", (count / 2) | 1);
        c.bench_function(&format!("route lookup, template, {count} routes"), |b| {
            b.iter(|| black_box(table.lookup("", black_box(&template_path), "GET")))
        });
        c.bench_function(&format!("route lookup, prefix, {count} routes"), |b| {
            b.iter(|| black_box(table.lookup("", black_box(&prefix_path), "GET")))
        });
    }
}

fn keycloak_claims() -> serde_json::Value {
    let roles: Vec<String> = (0..50).map(|i| format!("role-{i}")).collect();
    let groups: Vec<String> = (0..20)
        .map(|i| format!("/division-{}/team-{i}", i % 4))
        .collect();
    serde_json::json!({
        "sub": "4f1c", "azp": "orders-web", "scope": "openid profile email orders.read",
        "realm_access": { "roles": roles },
        "resource_access": { "orders-api": { "roles": ["orders:read", "orders:list"] }, "account": { "roles": ["view-profile"] } },
        "groups": groups,
        "email_verified": true,
    })
}

fn authorization(c: &mut Criterion) {
    let file: RuleFile = serde_yaml::from_str(
        r#"
all:
  - any:
      - realm_role: role-49
      - client_role: { client: orders-api, role: "orders:write" }
  - group: /division-3
  - scope: orders.read
  - not: { claim: { path: email_verified, equals: false } }
"#,
    )
    .expect("rule");
    let mut errors = Vec::new();
    let rule = compile_rule(&file, "bench", &mut errors);
    assert!(errors.is_empty());
    let claims = keycloak_claims();
    let identity = Identity::from_claims(claims.clone());
    assert!(holds(&rule, &identity));
    c.bench_function("rule evaluation, 50 roles, 20 groups", |b| {
        b.iter(|| black_box(holds(black_box(&rule), black_box(&identity))))
    });
    // The claims are parsed outside the timed part: verification hands them over from `split`.
    let text = claims.to_string();
    c.bench_function(
        "identity indexing once per verified token, 50 roles, 20 groups",
        |b| {
            b.iter_batched(
                || Claims::parse(text.clone()).expect("claims"),
                |claims| Identity::from_claims(black_box(claims)),
                BatchSize::SmallInput,
            )
        },
    );
}

fn json_transform(c: &mut Criterion) {
    use portcullis::config::file::JsonTransformFile;
    use portcullis::transform::{JsonTransform, TemplateContext};
    let file: JsonTransformFile = serde_yaml::from_str(
        r#"
remove: [/internal_cost, /items/*/internal_cost]
rename: { /owner: /owner_name }
set: { /served_by: portcullis }
mask: { /card_number: 4 }
"#,
    )
    .expect("transform");
    let mut errors = Vec::new();
    let transform = JsonTransform::compile(&file, "bench", &mut errors);
    assert!(errors.is_empty());
    let document = portcullis::dev::demo::ten_kb_document();
    let context = TemplateContext {
        claims: None,
        request_id: "bench",
        client_ip: "127.0.0.1",
        method: "GET",
        host: "api",
        path: "/orders/1",
    };
    let mut group = c.benchmark_group("json transform");
    group.throughput(criterion::Throughput::Bytes(document.len() as u64));
    group.bench_function(
        "10 KB document, five operations (parse, apply, serialize)",
        |b| {
            b.iter(|| {
                let mut value: serde_json::Value =
                    serde_json::from_slice(black_box(document.as_bytes())).expect("json");
                transform.apply(&mut value, &context);
                black_box(serde_json::to_vec(&value).expect("serialize"))
            })
        },
    );
    group.finish();
}

fn identity_assertion(c: &mut Criterion) {
    let signer = portcullis::identity_assertion::AssertionSigner::new().expect("a key");
    let mut claims = keycloak_claims();
    claims["exp"] = serde_json::json!(u64::MAX / 2);
    let identity = portcullis::policy::Identity::from_claims(claims);
    c.bench_function("identity assertion, warm (cached)", |b| {
        b.iter(|| std::hint::black_box(signer.assertion(&identity, "orders")))
    });
    let mut audience = 0u64;
    c.bench_function("identity assertion, cold (ES256 signature)", |b| {
        b.iter(|| {
            audience += 1;
            std::hint::black_box(signer.assertion(&identity, &audience.to_string()))
        })
    });
}

/// Every request continues or starts a trace and sends the upstream a `traceparent`.
fn trace_context(c: &mut Criterion) {
    use portcullis::trace_context::TraceContext;
    let incoming = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    c.bench_function("trace context, new trace and upstream traceparent", |b| {
        b.iter(|| {
            let trace = TraceContext::from_traceparent(None, 0.0);
            black_box(trace.upstream_traceparent())
        })
    });
    c.bench_function("trace context, continued and upstream traceparent", |b| {
        b.iter(|| {
            let trace = TraceContext::from_traceparent(Some(black_box(&incoming[..])), 0.0);
            black_box(trace.upstream_traceparent())
        })
    });
}

criterion_group!(
    benches,
    routing,
    authorization,
    json_transform,
    identity_assertion,
    trace_context
);
criterion_main!(benches);
