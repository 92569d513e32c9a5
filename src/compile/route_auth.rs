//! A route's `auth` (or `defaults.auth`): which identity providers' tokens it takes, whether a
//! token is required, and the rules a token must meet (for every method and per method).

use crate::config::diagnostics::suggest;
use crate::config::policy_file::AuthFile;
use crate::config::PathError;
use crate::policy::{compile_rule, Rule};

/// How a route authenticates.
#[derive(Debug, Clone)]
pub enum RouteAuth {
    /// `auth: none`: no token is looked at.
    Anonymous,
    /// A token from one of `providers` (indexes into the snapshot's provider list).
    Verify {
        providers: Vec<usize>,
        /// False for `optional`: requests without a token pass, a bad token is refused.
        token_required: bool,
        require: Option<Rule>,
        /// Extra rules for some methods, checked after `require`.
        per_method: Vec<(String, Rule)>,
        /// `sign_in`: browsers without a session go to this provider's login page.
        sign_in: Option<usize>,
        /// Send a session's access token upstream as `Authorization: Bearer`.
        pass_access_token: bool,
        /// Ask the provider whether the token is still active (RFC 7662).
        introspect: bool,
    },
}

pub(super) fn compile_auth(
    auth: &AuthFile,
    provider_names: &[String],
    path: &str,
    errors: &mut Vec<PathError>,
) -> RouteAuth {
    let all_providers = || (0..provider_names.len()).collect::<Vec<_>>();
    let no_providers = |errors: &mut Vec<PathError>| {
        if provider_names.is_empty() {
            errors.push(PathError::new(
                path,
                "needs at least one entry in `identity_providers`",
            ));
        }
    };
    match auth {
        AuthFile::None => RouteAuth::Anonymous,
        AuthFile::Optional => {
            no_providers(errors);
            RouteAuth::Verify {
                providers: all_providers(),
                token_required: false,
                require: None,
                per_method: Vec::new(),
                sign_in: None,
                pass_access_token: false,
                introspect: false,
            }
        }
        AuthFile::Policy(policy) => {
            let providers = match &policy.providers {
                None => {
                    no_providers(errors);
                    all_providers()
                }
                Some(names) => names
                    .iter()
                    .enumerate()
                    .filter_map(|(i, name)| {
                        let found = provider_names.iter().position(|p| p == name);
                        if found.is_none() {
                            let known: Vec<&str> =
                                provider_names.iter().map(String::as_str).collect();
                            errors.push(PathError::new(
                                format!("{path}.providers[{i}]"),
                                format!(
                                    "unknown identity provider `{name}`{}",
                                    suggest(name, &known)
                                ),
                            ));
                        }
                        found
                    })
                    .collect(),
            };
            let require = policy
                .require
                .as_ref()
                .map(|r| compile_rule(r, &format!("{path}.require"), errors));
            let per_method = policy
                .methods
                .iter()
                .map(|(method, rule)| {
                    (
                        method.clone(),
                        compile_rule(rule, &format!("{path}.methods.{method}"), errors),
                    )
                })
                .collect();
            let sign_in = policy.sign_in.as_ref().and_then(|name| {
                let index = providers
                    .iter()
                    .copied()
                    .find(|i| provider_names.get(*i) == Some(name));
                if index.is_none() {
                    errors.push(PathError::new(
                        format!("{path}.sign_in"),
                        format!("`{name}` must be one of this route's `providers`"),
                    ));
                }
                index
            });
            if policy.pass_access_token && sign_in.is_none() {
                errors.push(PathError::new(
                    format!("{path}.pass_access_token"),
                    "only a route with `sign_in` has a session's access token to pass",
                ));
            }
            RouteAuth::Verify {
                providers,
                token_required: !policy.optional,
                require,
                per_method,
                sign_in,
                pass_access_token: policy.pass_access_token,
                introspect: policy.introspect,
            }
        }
    }
}
