//! Rule evaluation allocates nothing: a counting global allocator watches `holds` over a
//! Keycloak-shaped identity with 50 roles and 20 groups, for allowed and denied rules alike.
//! A control case allocates inside the same window to prove the counter sees allocations.

// A global allocator implements the unsafe `GlobalAlloc` trait; the project denies unsafe code
// everywhere else (Cargo.toml `[lints]`).
#![allow(unsafe_code)]

use portcullis::config::policy_file::RuleFile;
use portcullis::policy::{compile_rule, holds, holds_for, Identity, Rule};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Allocations made on this thread while `work` runs.
fn allocations_during(work: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    work();
    ALLOCATIONS.with(Cell::get) - before
}

fn rule(yaml: &str) -> Rule {
    let file: RuleFile = serde_yaml::from_str(yaml).expect("rule yaml");
    let mut errors = Vec::new();
    let rule = compile_rule(&file, "test", &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    rule
}

fn keycloak_identity() -> Identity {
    let roles: Vec<String> = (0..50).map(|i| format!("role-{i}")).collect();
    let groups: Vec<String> = (0..20)
        .map(|i| format!("/division-{}/team-{i}", i % 4))
        .collect();
    Identity::from_claims(serde_json::json!({
        "sub": "4f1c", "azp": "orders-web", "scope": "openid profile  email orders.read",
        "realm_access": { "roles": roles },
        "resource_access": { "orders-api": { "roles": ["orders:read"] } },
        "groups": groups,
        "email_verified": true,
        "address": { "country": "FR" },
    }))
}

#[test]
fn evaluating_rules_allocates_nothing() {
    let identity = keycloak_identity();
    let rules = [
        (rule("realm_role: role-49"), true),
        (rule("realm_role: role-50"), false),
        (rule("client_role: { client: orders-api, role: 'orders:read' }"), true),
        (rule("client_role: { client: account, role: 'orders:read' }"), false),
        (rule("group: /division-3"), true),
        (rule("group: /division-3/team-3"), true),
        (rule("group: /division-9"), false),
        (rule("group: /"), true),
        (rule("scope: orders.read"), true),
        (rule("scope: orders.write"), false),
        (rule("client: orders-web"), true),
        (rule("claim: { path: address.country, in: [DE, FR] }"), true),
        (rule("claim: { path: email_verified, equals: false }"), false),
        (
            rule(
                "all: [ { any: [ { realm_role: role-49 }, { client_role: { client: orders-api, role: 'orders:write' } } ] }, \
                 { group: /division-3 }, { scope: orders.read }, { not: { claim: { path: email_verified, equals: false } } } ]",
            ),
            true,
        ),
    ];
    for (rule, expected) in &rules {
        let mut outcome = !expected;
        let count = allocations_during(|| {
            outcome = black_box(holds(black_box(rule), black_box(&identity)));
        });
        assert_eq!(outcome, *expected, "{rule:?}");
        assert_eq!(count, 0, "evaluating {rule:?} allocated {count} times");
        let anonymous_count = allocations_during(|| {
            black_box(holds_for(black_box(rule), None));
        });
        assert_eq!(anonymous_count, 0, "anonymous {rule:?} allocated");
    }
}

#[test]
fn the_counter_sees_allocations() {
    let count = allocations_during(|| {
        black_box(String::from("an allocation"));
    });
    assert!(count >= 1);
}
