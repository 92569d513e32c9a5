//! The configuration's JSON Schema: the committed `conf/portcullis.schema.json` is exactly what
//! the file structs generate (regenerate with `portcullis schema > conf/portcullis.schema.json`),
//! the example configurations validate against it and name it for editors, and it refuses the
//! mistakes an editor should underline.

mod common;

use std::process::Command;

const SCHEMA_FILE: &str = "conf/portcullis.schema.json";
const EXAMPLES: [&str; 2] = ["tests/fixtures/spec.yaml", "conf/portcullis.yaml"];

fn generated() -> String {
    let output = Command::new(common::binary())
        .arg("schema")
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap()
}

fn validator() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(&generated()).unwrap();
    jsonschema::validator_for(&schema).expect("the schema compiles")
}

fn yaml_as_json(text: &str) -> serde_json::Value {
    let value: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
    serde_json::to_value(value).unwrap()
}

#[test]
fn the_committed_schema_is_what_the_file_structs_generate() {
    let committed = std::fs::read_to_string(SCHEMA_FILE).unwrap_or_default();
    assert!(
        committed == generated(),
        "{SCHEMA_FILE} is out of date: run `cargo run -- schema > {SCHEMA_FILE}`"
    );
}

#[test]
fn the_example_configs_name_the_schema_and_validate_against_it() {
    let validator = validator();
    for file in EXAMPLES {
        let text = std::fs::read_to_string(file).unwrap();
        let first = text.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("# yaml-language-server: $schema=")
                && first.ends_with("portcullis.schema.json"),
            "{file} does not name the schema on its first line: {first}"
        );
        let errors: Vec<String> = validator
            .iter_errors(&yaml_as_json(&text))
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{file}: {errors:#?}");
    }
}

#[test]
fn the_schema_refuses_what_the_gateway_refuses_and_carries_descriptions() {
    let validator = validator();
    let base = "server: { listen: [\"127.0.0.1:8080\"] }\nupstreams: { a: { targets: [\"127.0.0.1:1\"] } }\n";
    let good = format!(
        "{base}routes:\n  - name: r\n    match: {{ path: /x }}\n    upstream: a\n    auth: {{ require: {{ any: [{{ realm_role: reader }}, {{ group: /eng }}] }} }}\nrate_limits: {{ p: {{ key: client_ip, rate: 10/s }} }}\n"
    );
    assert!(validator.is_valid(&yaml_as_json(&good)));
    for bad in [
        format!("{base}routes:\n  - name: r\n    match: {{ path: /x }}\n    upstrem: a\n    auth: none\n"),
        format!("{base}routes:\n  - name: r\n    match: {{ path: /x }}\n    upstream: a\n    auth: sometimes\n"),
        format!("{base}routes:\n  - name: r\n    match: {{ path: /x }}\n    upstream: a\n    auth: {{ require: {{ realm_rol: x }} }}\n"),
        format!("{base}rate_limits: {{ p: {{ key: client_ip, rate: ten per second }} }}\n"),
        "server: { listen: [\"127.0.0.1:8080\"] }\nupstreams: { a: { targets: [\"x:1\"], connect_timeout: 2 weeks } }\n".to_owned(),
    ] {
        assert!(!validator.is_valid(&yaml_as_json(&bad)), "accepted:\n{bad}");
    }
    let schema: serde_json::Value = serde_json::from_str(&generated()).unwrap();
    let described = schema["properties"]["trusted_proxies"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(described.contains("X-Forwarded-For"), "{described}");
}
