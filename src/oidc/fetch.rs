//! Fetching discovery documents and JWKS over HTTP: a timeout on every call, a response size
//! limit, certificate verification for https (with an optional private CA), and the
//! `Cache-Control: max-age` of the answer.

use super::SetupError;
use std::time::Duration;

/// An HTTP fetcher for one provider.
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    timeout: Duration,
    max_size: usize,
}

/// A fetched document.
pub struct Fetched {
    pub body: Vec<u8>,
    pub max_age: Option<Duration>,
    /// The server's `Date` (its clock, to compare with ours).
    pub date: Option<std::time::SystemTime>,
}

/// Why [`Fetcher::get`] returned no document: the server did not answer in time, the connection
/// or the transfer failed, the status was not 200, or the body exceeded the size limit.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No response headers within the timeout.
    #[error("{url}: no answer within {timeout:?}")]
    NoAnswer { url: String, timeout: Duration },
    /// The body did not arrive within the timeout.
    #[error("{url}: body not received within {timeout:?}")]
    BodyTimeout { url: String, timeout: Duration },
    /// Connecting, sending the request or reading the body failed.
    #[error("{url}: {}", describe(.error))]
    Transport { url: String, error: reqwest::Error },
    /// The server answered with another status than 200.
    #[error("{url}: HTTP {status}")]
    Status {
        url: String,
        status: reqwest::StatusCode,
    },
    /// The body is (or announces itself as) larger than the size limit.
    #[error("{url}: response larger than {max_size} bytes")]
    TooLarge { url: String, max_size: usize },
}

impl Fetcher {
    pub fn new(
        timeout: Duration,
        max_size: usize,
        ca_pem: Option<&[u8]>,
    ) -> Result<Fetcher, SetupError> {
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_pem {
            let certificate =
                reqwest::Certificate::from_pem(pem).map_err(SetupError::InvalidCaCertificate)?;
            builder = builder.add_root_certificate(certificate);
        }
        let client = builder.build().map_err(SetupError::HttpClient)?;
        Ok(Fetcher {
            client,
            timeout,
            max_size,
        })
    }

    /// GETs `url`, expecting 200 and at most `max_size` bytes.
    pub async fn get(&self, url: &str) -> Result<Fetched, FetchError> {
        let request = self.client.get(url).header("accept", "application/json");
        let response = self.send(url, request).await?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(FetchError::Status {
                url: url.to_owned(),
                status: response.status(),
            });
        }
        let max_age = response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_max_age);
        let date = response
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok());
        let body = self.read_body(url, response).await?;
        Ok(Fetched {
            body,
            max_age,
            date,
        })
    }

    /// POSTs an `application/x-www-form-urlencoded` form (a token endpoint call) with an
    /// optional `Authorization` value; any status comes back with its body (at most `max_size`
    /// bytes), since OAuth errors arrive as 400 with a JSON body.
    pub async fn post_form(
        &self,
        url: &str,
        form: &[(&'static str, String)],
        authorization: Option<&str>,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), FetchError> {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter().map(|(name, value)| (*name, value.as_str())))
            .finish();
        let mut request = self
            .client
            .post(url)
            .header("accept", "application/json")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = self.send(url, request).await?;
        let status = response.status();
        Ok((status, self.read_body(url, response).await?))
    }

    /// Sends `request` and waits for the response head within the timeout.
    async fn send(
        &self,
        url: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, FetchError> {
        tokio::time::timeout(self.timeout, request.send())
            .await
            .map_err(|_| FetchError::NoAnswer {
                url: url.to_owned(),
                timeout: self.timeout,
            })?
            .map_err(|error| FetchError::Transport {
                url: url.to_owned(),
                error,
            })
    }

    /// Reads a response body within the timeout and the size limit.
    async fn read_body(
        &self,
        url: &str,
        mut response: reqwest::Response,
    ) -> Result<Vec<u8>, FetchError> {
        let too_large = || FetchError::TooLarge {
            url: url.to_owned(),
            max_size: self.max_size,
        };
        if response
            .content_length()
            .is_some_and(|len| len as usize > self.max_size)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        loop {
            let chunk = tokio::time::timeout(self.timeout, response.chunk())
                .await
                .map_err(|_| FetchError::BodyTimeout {
                    url: url.to_owned(),
                    timeout: self.timeout,
                })?
                .map_err(|error| FetchError::Transport {
                    url: url.to_owned(),
                    error,
                })?;
            let Some(chunk) = chunk else { break };
            if body.len() + chunk.len() > self.max_size {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

fn describe(error: &reqwest::Error) -> String {
    if error.is_connect() {
        "connection failed".into()
    } else if error.is_timeout() {
        "timed out".into()
    } else {
        let mut text = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(inner) = source {
            text.push_str(&format!(": {inner}"));
            source = inner.source();
        }
        text
    }
}

/// `max-age=N` of a Cache-Control value (`no-store`/`no-cache` give zero).
pub fn parse_max_age(value: &str) -> Option<Duration> {
    let mut result = None;
    for directive in value.split(',').map(str::trim) {
        if directive.eq_ignore_ascii_case("no-store") || directive.eq_ignore_ascii_case("no-cache")
        {
            return Some(Duration::ZERO);
        }
        if let Some(seconds) = directive.strip_prefix("max-age=") {
            result = seconds
                .trim_matches('"')
                .parse()
                .ok()
                .map(Duration::from_secs);
        }
    }
    result
}

/// Whether a URL points at this machine (plain http is tolerated there without a warning).
pub fn is_loopback(url: &str) -> bool {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .is_some_and(|host| {
            host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
                || host == "[::1]"
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age() {
        assert_eq!(
            parse_max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(parse_max_age("no-cache"), Some(Duration::ZERO));
        assert_eq!(parse_max_age("public"), None);
    }

    #[test]
    fn loopback() {
        assert!(is_loopback("http://127.0.0.1:8080/x"));
        assert!(is_loopback("http://localhost/x"));
        assert!(!is_loopback("http://keycloak.internal/x"));
    }

    #[test]
    fn fetch_error_names_the_url_and_the_status() {
        let error = FetchError::Status {
            url: "https://idp.example/jwks".into(),
            status: reqwest::StatusCode::NOT_FOUND,
        };
        assert_eq!(
            error.to_string(),
            "https://idp.example/jwks: HTTP 404 Not Found"
        );
    }
}
