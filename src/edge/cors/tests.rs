//! CORS policies compiled from file structs and evaluated on origins, methods and headers.

use super::*;
use crate::config::units::ConfigDuration;

fn policy(origins: &[&str], credentials: bool) -> Result<CorsPolicy, Vec<PathError>> {
    let file = CorsFile {
        allow_origins: origins.iter().map(|o| o.to_string()).collect(),
        allow_methods: None,
        allow_headers: vec!["Authorization".into(), "Content-Type".into()],
        expose_headers: vec!["X-Request-Id".into()],
        allow_credentials: Some(credentials),
        max_age: Some(ConfigDuration(Duration::from_secs(600))),
    };
    let mut errors = Vec::new();
    let methods = ["GET".to_owned(), "DELETE".to_owned()];
    compile_cors(&file, Some(&methods), "cors", &mut errors).ok_or(errors)
}

fn header(headers: &Headers, name: HeaderName) -> Option<&str> {
    headers
        .iter()
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| v.to_str().ok())
}

#[test]
fn exact_and_subdomain_origins() {
    let cors = policy(
        &["https://app.example.com", "https://*.partners.example.com"],
        true,
    )
    .unwrap();
    assert!(cors.allows_origin("https://app.example.com"));
    assert!(cors.allows_origin("HTTPS://APP.EXAMPLE.COM"));
    assert!(cors.allows_origin("https://a.partners.example.com"));
    assert!(cors.allows_origin("https://a.b.partners.example.com"));
    for refused in [
        "https://partners.example.com",
        "http://a.partners.example.com",
        "https://evilpartners.example.com",
        "https://app.example.com.evil.net",
        "https://app.example.com:8443",
        "null",
    ] {
        assert!(!cors.allows_origin(refused), "{refused}");
    }
}

#[test]
fn preflights_check_origin_method_and_headers() {
    let cors = policy(&["https://app.example.com"], true).unwrap();
    let ok = cors
        .preflight(
            "https://app.example.com",
            "DELETE",
            Some("authorization, content-type"),
        )
        .unwrap();
    assert_eq!(
        header(&ok, http::header::ACCESS_CONTROL_ALLOW_ORIGIN),
        Some("https://app.example.com")
    );
    assert_eq!(
        header(&ok, http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS),
        Some("true")
    );
    assert_eq!(
        header(&ok, http::header::ACCESS_CONTROL_ALLOW_METHODS),
        Some("GET, DELETE")
    );
    assert_eq!(
        header(&ok, http::header::ACCESS_CONTROL_MAX_AGE),
        Some("600")
    );
    assert_eq!(
        cors.preflight("https://evil.example", "GET", None),
        Err(PreflightRefusal::Origin)
    );
    assert_eq!(
        cors.preflight("https://app.example.com", "PUT", None),
        Err(PreflightRefusal::Method)
    );
    assert_eq!(
        cors.preflight("https://app.example.com", "GET", Some("x-secret")),
        Err(PreflightRefusal::Header)
    );
}

#[test]
fn actual_responses_name_the_origin_and_always_vary() {
    let cors = policy(&["https://app.example.com"], false).unwrap();
    let allowed = cors.actual(Some("https://app.example.com"));
    assert_eq!(
        header(&allowed, http::header::ACCESS_CONTROL_ALLOW_ORIGIN),
        Some("https://app.example.com")
    );
    assert_eq!(
        header(&allowed, http::header::ACCESS_CONTROL_EXPOSE_HEADERS),
        Some("X-Request-Id")
    );
    assert_eq!(
        header(&allowed, http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS),
        None
    );
    let other = cors.actual(Some("https://evil.example"));
    assert_eq!(other.len(), 1);
    assert_eq!(header(&other, http::header::VARY), Some("Origin"));
    let any = policy(&["*"], false).unwrap();
    assert_eq!(
        header(
            &any.actual(Some("https://x.example")),
            http::header::ACCESS_CONTROL_ALLOW_ORIGIN
        ),
        Some("*")
    );
}

#[test]
fn any_origin_with_credentials_and_bad_origins_are_refused_offline() {
    let errors = policy(&["*"], true).unwrap_err();
    assert!(
        errors[0].message.contains("allow_credentials"),
        "{errors:?}"
    );
    let errors = policy(
        &[
            "app.example.com",
            "https://*example.com",
            "https://a.com/path",
        ],
        false,
    )
    .unwrap_err();
    assert_eq!(errors.len(), 3, "{errors:?}");
}
