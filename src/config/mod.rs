//! The configuration file as users write it: its schema ([`file`], [`policy_file`]), the scalar
//! units it uses ([`units`]), `${VAR}` expansion ([`env`]) and located error messages
//! ([`diagnostics`]). Nothing here knows what the settings mean at run time: [`crate::compile`]
//! turns a parsed file into the validated snapshot, and domain modules read only this schema.
//!
//! Loading is a pipeline: read ([`read_file`]) → bound the size and nesting ([`limits`]) →
//! expand variables → parse (serde_yaml, `deny_unknown_fields`) → compile. Every step reports
//! `FILE:LINE:COLUMN: message`.

/// `-c/--config FILE` (or `PORTCULLIS_CONFIG`), shared by the subcommands that read a file.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigPathArg {
    /// Configuration file.
    #[arg(
        short,
        long,
        env = "PORTCULLIS_CONFIG",
        default_value = "/etc/portcullis/portcullis.yaml"
    )]
    pub config: String,
}

pub mod bounds;
pub mod diagnostics;
pub mod edge_file;
pub mod env;
pub mod file;
pub mod limits;
pub mod policy_file;
pub mod route_file;
pub mod schema;
pub mod sign_in_file;
pub mod telemetry_file;
pub mod units;

pub use diagnostics::{ConfigError, ConfigErrors, PathError, PositionIndex};
pub use file::FileConfig;

/// A parsed file and what is needed to locate its errors.
pub struct ParsedConfig {
    pub file_name: String,
    pub config: FileConfig,
    pub positions: PositionIndex,
    /// A hash of the expanded text, exposed as the active config's identity.
    pub content_hash: u64,
}

/// Expands variables (from the process environment) and parses `text`.
pub fn parse_text(file_name: &str, text: &str) -> Result<ParsedConfig, ConfigErrors> {
    parse_text_with_env(file_name, text, |name| std::env::var(name).ok())
}

/// Like [`parse_text`], with an explicit variable lookup (for tests).
pub fn parse_text_with_env(
    file_name: &str,
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<ParsedConfig, ConfigErrors> {
    let refuse = |error: ConfigError| ConfigErrors(vec![error]);
    limits::check_size(file_name, text.len()).map_err(refuse)?;
    let expanded = env::expand_variables(text, lookup).map_err(|errors| {
        ConfigErrors(
            errors
                .into_iter()
                .map(|e| ConfigError {
                    file: file_name.to_owned(),
                    line: e.line,
                    column: e.column,
                    message: e.message,
                })
                .collect(),
        )
    })?;
    // Variables may lengthen the text or add brackets: bound what the parsers will read.
    limits::check_size(file_name, expanded.len()).map_err(refuse)?;
    limits::check_nesting(file_name, &expanded).map_err(refuse)?;
    let config: FileConfig = serde_yaml::from_str(&expanded)
        .map_err(|e| ConfigErrors(vec![diagnostics::from_yaml_error(file_name, &e)]))?;
    Ok(ParsedConfig {
        file_name: file_name.to_owned(),
        config,
        positions: PositionIndex::build(&expanded),
        content_hash: fnv1a(expanded.as_bytes()),
    })
}

/// Reads a configuration file; an unreadable file, or one larger than
/// [`limits::MAX_FILE_BYTES`], is a located error like any other. At most one byte past the
/// limit is read, whatever the file's size.
pub fn read_file(path: &str) -> Result<String, ConfigErrors> {
    use std::io::Read;
    let unreadable = |e: std::io::Error| {
        ConfigErrors(vec![ConfigError {
            file: path.to_owned(),
            line: 1,
            column: 1,
            message: format!("cannot read the configuration file: {e}"),
        }])
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut bytes = Vec::new();
    file.take(limits::MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    limits::check_size(path, bytes.len()).map_err(|error| ConfigErrors(vec![error]))?;
    String::from_utf8(bytes)
        .map_err(|e| unreadable(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
}

/// 64-bit FNV-1a, enough to tell two configuration texts apart in metrics and logs.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}
