//! The gateway as a confidential OAuth client of a provider (`identity_providers.<name>.client`):
//! its id and secret, compiled offline, and the client authentication it adds to a request to
//! the provider's token endpoint. The secret is read from the file or the environment at compile
//! time — so a reload picks up a rotated `secret_file` — and is never printed.

use crate::config::file::{ClientAuthMethod, ProviderClientFile};
use crate::config::PathError;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use std::fmt;

/// A client secret; its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// The secret, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(***)")
    }
}

/// The gateway's client at one provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    pub id: String,
    pub secret: ClientSecret,
    pub auth_method: ClientAuthMethod,
}

impl ClientCredentials {
    /// Adds client authentication to a token-endpoint form: an `Authorization: Basic` value
    /// (RFC 6749 §2.3.1: id and secret form-urlencoded first) or form fields.
    pub fn authenticate(&self, form: &mut Vec<(&'static str, String)>) -> Option<String> {
        match self.auth_method {
            ClientAuthMethod::ClientSecretBasic => {
                let pair = format!(
                    "{}:{}",
                    form_encode(&self.id),
                    form_encode(self.secret.expose())
                );
                Some(format!("Basic {}", STANDARD.encode(pair)))
            }
            ClientAuthMethod::ClientSecretPost => {
                form.push(("client_id", self.id.clone()));
                form.push(("client_secret", self.secret.expose().to_owned()));
                None
            }
        }
    }
}

fn form_encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Compiles `client` of the provider at `path`.
pub fn compile_client(
    file: &ProviderClientFile,
    path: &str,
    errors: &mut Vec<PathError>,
) -> Option<ClientCredentials> {
    if file.id.trim().is_empty() {
        errors.push(PathError::new(
            format!("{path}.id"),
            "the client id is empty",
        ));
    }
    let secret = match (&file.secret, &file.secret_file) {
        (Some(secret), None) => Some(secret.clone()),
        (None, Some(secret_file)) => match std::fs::read_to_string(secret_file) {
            Ok(text) => Some(text.trim_end_matches(['\r', '\n']).to_owned()),
            Err(error) => {
                errors.push(PathError::new(
                    format!("{path}.secret_file"),
                    format!("cannot read `{secret_file}`: {error}"),
                ));
                None
            }
        },
        _ => {
            errors.push(PathError::new(
                path,
                "give exactly one of `secret` and `secret_file`",
            ));
            None
        }
    }?;
    if secret.is_empty() {
        errors.push(PathError::new(
            path,
            "the client secret is empty (is its environment variable or file set?)",
        ));
        return None;
    }
    Some(ClientCredentials {
        id: file.id.clone(),
        secret: ClientSecret(secret),
        auth_method: file
            .auth_method
            .unwrap_or(ClientAuthMethod::ClientSecretBasic),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(secret: Option<&str>, secret_file: Option<&str>) -> ProviderClientFile {
        ProviderClientFile {
            id: "portcullis gateway".into(),
            secret: secret.map(str::to_owned),
            secret_file: secret_file.map(str::to_owned),
            auth_method: None,
        }
    }

    #[test]
    fn basic_authentication_encodes_id_and_secret_first() {
        let mut errors = Vec::new();
        let client = compile_client(&file(Some("s3cr:t"), None), "c", &mut errors).unwrap();
        let mut form = Vec::new();
        let header = client.authenticate(&mut form).unwrap();
        let decoded = STANDARD
            .decode(header.trim_start_matches("Basic "))
            .unwrap();
        assert_eq!(decoded, b"portcullis+gateway:s3cr%3At");
        assert!(form.is_empty());
        assert!(!format!("{client:?}").contains("s3cr"));
    }

    #[test]
    fn secret_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "from-file\n").unwrap();
        let mut errors = Vec::new();
        let client =
            compile_client(&file(None, path.to_str()), "c", &mut errors).expect("compiles");
        assert_eq!(client.secret.expose(), "from-file");
    }

    #[test]
    fn exactly_one_secret_source_and_no_empty_secret() {
        for (secret, secret_file, expected) in [
            (None, None, "exactly one"),
            (Some("a"), Some("/x"), "exactly one"),
            (Some(""), None, "empty"),
            (None, Some("/nonexistent/secret"), "cannot read"),
        ] {
            let mut errors = Vec::new();
            assert!(compile_client(&file(secret, secret_file), "c", &mut errors).is_none());
            let text = errors
                .iter()
                .map(|e| e.message.as_str())
                .collect::<String>();
            assert!(text.contains(expected), "{text}");
        }
    }
}
