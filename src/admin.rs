//! The admin listener: `/healthz` (the process is alive), `/readyz` (configuration loaded and
//! every upstream has a healthy target), `/metrics` (Prometheus text exposition) and
//! `POST /reload`. It must never be exposed publicly.

use crate::server::GatewayHandle;
use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use prometheus::Encoder;
use std::sync::Arc;

/// Serves the admin endpoints.
pub struct AdminApp {
    handle: Arc<GatewayHandle>,
}

impl AdminApp {
    pub fn new(handle: Arc<GatewayHandle>) -> pingora::apps::http_app::HttpServer<Self> {
        pingora::apps::http_app::HttpServer::new_app(AdminApp { handle })
    }

    /// Gauges computed at scrape time.
    fn refresh_gauges(&self) {
        let config = self.handle.config.load();
        let healthy = &crate::metrics::metrics().upstream_healthy_targets;
        healthy.reset();
        for upstream in &config.upstreams {
            healthy
                .with_label_values(&[upstream.settings.name.as_str()])
                .set(upstream.healthy_targets() as i64);
        }
    }

    /// Why the gateway is not ready, or `None` when it is.
    fn not_ready_reason(&self) -> Option<String> {
        let config = self.handle.config.load();
        if let Some(authenticator) = &config.authenticator {
            let pending = authenticator.not_ready();
            if !pending.is_empty() {
                return Some(format!(
                    "identity provider(s) without keys: {}",
                    pending.join(", ")
                ));
            }
        }
        config
            .upstreams
            .iter()
            .find(|upstream| upstream.healthy_targets() == 0)
            .map(|upstream| {
                format!(
                    "upstream `{}` has no healthy target",
                    upstream.settings.name
                )
            })
    }
}

fn text(status: u16, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .header("cache-control", "no-store")
        .body(body)
        .unwrap_or_default()
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_owned();
        let method = session.req_header().method.clone();
        if path == "/reload" {
            if method != http::Method::POST {
                return text(405, "text/plain", b"use POST /reload\n".to_vec());
            }
            return match crate::server::reload(&self.handle).await {
                Ok(()) => text(200, "text/plain", b"reloaded\n".to_vec()),
                Err(errors) => text(
                    422,
                    "text/plain",
                    format!(
                        "reload refused, the previous configuration keeps serving:\n{errors}\n"
                    )
                    .into_bytes(),
                ),
            };
        }
        match path.as_str() {
            "/healthz" => text(200, "text/plain", b"ok\n".to_vec()),
            "/readyz" => match self.not_ready_reason() {
                None => text(200, "text/plain", b"ready\n".to_vec()),
                Some(reason) => text(
                    503,
                    "text/plain",
                    format!("not ready: {reason}\n").into_bytes(),
                ),
            },
            "/metrics" => {
                self.refresh_gauges();
                let mut body = Vec::new();
                let encoder = prometheus::TextEncoder::new();
                if encoder.encode(&prometheus::gather(), &mut body).is_err() {
                    return text(500, "text/plain", b"cannot encode metrics\n".to_vec());
                }
                text(200, encoder.format_type(), body)
            }
            _ => text(
                404,
                "text/plain",
                b"not found: try /healthz, /readyz or /metrics\n".to_vec(),
            ),
        }
    }
}
