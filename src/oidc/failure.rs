//! Why a token was refused: a stable reason code (logs, metrics, problem+json) and a human
//! description that never contains the token.

/// Stable refusal codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthReason {
    MissingToken,
    MultipleTokens,
    TokenTooLarge,
    /// A credential is present (in any configured source) but is not a well-formed bearer token.
    MalformedCredential,
    /// `Authorization` carries another scheme than Bearer (`Basic`, `Digest`, …).
    UnsupportedScheme,
    Malformed,
    /// The JOSE header lists a `crit` extension; the gateway understands none (RFC 7515 §4.1.11).
    UnsupportedCriticalHeader,
    UnknownIssuer,
    ProviderNotAllowed,
    AlgorithmNotAllowed,
    UnknownKid,
    BadSignature,
    Expired,
    NotYetValid,
    IssuedInFuture,
    AudienceMismatch,
    UnauthorizedParty,
    WrongTokenType,
    ProviderUnavailable,
}

impl AuthReason {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthReason::MissingToken => "missing_token",
            AuthReason::MultipleTokens => "multiple_tokens",
            AuthReason::TokenTooLarge => "token_too_large",
            AuthReason::MalformedCredential => "malformed_credential",
            AuthReason::UnsupportedScheme => "unsupported_scheme",
            AuthReason::Malformed => "malformed",
            AuthReason::UnsupportedCriticalHeader => "unsupported_critical_header",
            AuthReason::UnknownIssuer => "issuer_mismatch",
            AuthReason::ProviderNotAllowed => "provider_not_allowed",
            AuthReason::AlgorithmNotAllowed => "algorithm_not_allowed",
            AuthReason::UnknownKid => "unknown_kid",
            AuthReason::BadSignature => "bad_signature",
            AuthReason::Expired => "expired",
            AuthReason::NotYetValid => "not_yet_valid",
            AuthReason::IssuedInFuture => "issued_in_future",
            AuthReason::AudienceMismatch => "audience_mismatch",
            AuthReason::UnauthorizedParty => "unauthorized_party",
            AuthReason::WrongTokenType => "wrong_token_type",
            AuthReason::ProviderUnavailable => "provider_unavailable",
        }
    }
}

/// A refused authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailure {
    pub reason: AuthReason,
    pub description: String,
    /// The provider the token was matched to, when it was.
    pub provider: Option<String>,
}

impl AuthFailure {
    pub fn new(reason: AuthReason, description: impl Into<String>) -> Self {
        AuthFailure {
            reason,
            description: description.into(),
            provider: None,
        }
    }

    pub fn with_provider(mut self, provider: &str) -> Self {
        self.provider = Some(provider.to_owned());
        self
    }

    /// 503 rather than 401: the gateway cannot verify anything for this provider yet.
    pub fn is_unavailable(&self) -> bool {
        self.reason == AuthReason::ProviderUnavailable
    }
}
