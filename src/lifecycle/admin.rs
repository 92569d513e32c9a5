//! The admin listener: `/healthz` (the process is alive), `/readyz` (configuration loaded and
//! every upstream has a healthy target), `/metrics` (Prometheus text exposition) and
//! `POST /reload` (200 reloaded, 409 while another reload runs, 422 refused). It must never be
//! exposed publicly.

use super::reload::{LiveConfig, ReloadError};
use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use prometheus::Encoder;
use std::sync::Arc;

/// Serves the admin endpoints.
pub struct AdminApp {
    live: Arc<LiveConfig>,
}

impl AdminApp {
    pub fn new(live: Arc<LiveConfig>) -> pingora::apps::http_app::HttpServer<Self> {
        pingora::apps::http_app::HttpServer::new_app(AdminApp { live })
    }

    /// Gauges computed at scrape time.
    fn refresh_gauges(&self) {
        let snapshot = self.live.snapshot.load();
        let healthy = &crate::metrics::metrics().upstream_healthy_targets;
        healthy.reset();
        for upstream in &snapshot.config.upstreams {
            healthy
                .with_label_values(&[upstream.settings.name.as_str()])
                .set(upstream.healthy_targets() as i64);
        }
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
            return match self.live.reload_unless_busy().await {
                Ok(()) => text(200, "text/plain", b"reloaded\n".to_vec()),
                Err(ReloadError::InProgress) => text(
                    409,
                    "text/plain",
                    b"a reload is in progress; try again when it has finished\n".to_vec(),
                ),
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
            "/readyz" => match self.live.snapshot.load().not_ready_reason() {
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
