//! The service checks of `portcullis doctor`: every upstream target resolves, accepts TCP
//! within `connect_timeout` and, with `tls`, completes a handshake for its SNI name; Redis (one
//! server or a cluster) answers a PING within `redis.timeout` and loads the limiter's scripts;
//! and the admin listener (metrics, reload) is not on a public address. A Redis URL's password
//! is never printed.

use super::finding::Finding;
use crate::compile::CompiledConfig;
use crate::ratelimit::redis_store::scripts;
use crate::ratelimit::{RedisSettings, RedisTarget};
use crate::upstream::{Target, UpstreamSettings};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// How long connecting to Redis may take (calls are then held to `redis.timeout`).
const REDIS_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Checks every target of every upstream, concurrently.
pub async fn check_upstreams(config: &CompiledConfig) -> Vec<Finding> {
    let checks = config.upstreams.iter().flat_map(|upstream| {
        let settings = &upstream.settings;
        settings
            .targets
            .iter()
            .map(move |target| check_target(settings, target))
    });
    futures_util::future::join_all(checks)
        .await
        .into_iter()
        .flatten()
        .collect()
}

async fn check_target(upstream: &UpstreamSettings, target: &Target) -> Vec<Finding> {
    let subject = format!("upstream {} {}:{}", upstream.name, target.host, target.port);
    let timeout = upstream.connect_timeout;
    let resolved = tokio::time::timeout(
        timeout.max(Duration::from_secs(2)),
        tokio::net::lookup_host((target.host.as_str(), target.port)),
    )
    .await;
    let addresses: Vec<SocketAddr> = match resolved {
        Ok(Ok(addresses)) => addresses.collect(),
        Ok(Err(error)) => {
            return vec![Finding::fail(
                &subject,
                format!("does not resolve: {error}"),
                "check the host name and the gateway's DNS",
            )]
        }
        Err(_) => {
            return vec![Finding::fail(
                &subject,
                "DNS did not answer in time",
                "check the gateway's DNS resolver",
            )]
        }
    };
    let Some(&address) = addresses.first() else {
        return vec![Finding::fail(
            &subject,
            "resolves to no address",
            "check the host name's DNS records",
        )];
    };
    let started = Instant::now();
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(address)).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => {
            return vec![Finding::fail(
                &subject,
                format!("{address} refuses TCP: {error}"),
                "start the service or fix the target's port",
            )]
        }
        Err(_) => {
            return vec![Finding::fail(
                &subject,
                format!("{address} did not accept TCP within connect_timeout ({timeout:?})"),
                "check firewalls and routes, or raise `connect_timeout`",
            )]
        }
    }
    let mut findings = vec![Finding::ok(
        &subject,
        format!(
            "accepts TCP at {address} in {} ms",
            started.elapsed().as_millis()
        ),
    )];
    if let Some(tls) = &upstream.tls {
        findings.push(check_tls(&subject, &tls.sni, tls.verify, address, timeout).await);
    }
    findings
}

/// A TLS handshake with `sni` against `address` (any HTTP answer proves it).
async fn check_tls(
    subject: &str,
    sni: &str,
    verify: bool,
    address: SocketAddr,
    timeout: Duration,
) -> Finding {
    let client = reqwest::Client::builder()
        .no_proxy()
        .resolve(sni, address)
        .danger_accept_invalid_certs(!verify)
        .timeout(timeout.max(Duration::from_secs(2)))
        .build();
    let client = match client {
        Ok(client) => client,
        Err(error) => {
            return Finding::fail(
                subject,
                format!("cannot build a TLS client: {error}"),
                "report this as a bug",
            )
        }
    };
    let url = format!("https://{sni}:{}/", address.port());
    match client.head(&url).send().await {
        Ok(_) if verify => Finding::ok(
            subject,
            format!("TLS handshake for SNI `{sni}`, certificate verified"),
        ),
        Ok(_) => Finding::warn(
            subject,
            format!("TLS handshake for SNI `{sni}` (certificate not verified: `verify: false`)"),
            "verify the upstream's certificate in production",
        ),
        Err(error) => {
            let chain = error_chain(&error);
            Finding::fail(subject, format!("TLS with SNI `{sni}` failed: {chain}"), "check `tls.sni` against the certificate's names, and that the target speaks TLS on this port")
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Redis (or the cluster): connects, answers in time, loads the scripts.
pub async fn check_redis(config: &CompiledConfig) -> Vec<Finding> {
    let Some(settings) = &config.redis else {
        return Vec::new();
    };
    let subject = format!("redis {}", describe_target(&settings.target));
    match redis_round_trips(settings).await {
        Ok(findings) => findings
            .into_iter()
            .map(|(ok, message, fix)| {
                if ok {
                    Finding::ok(&subject, message)
                } else {
                    Finding::fail(&subject, message, fix)
                }
            })
            .collect(),
        Err(error) => vec![Finding::fail(
            &subject,
            format!("cannot connect: {error}"),
            "check `redis.url` / `redis.cluster` and that Redis listens there",
        )],
    }
}

/// Host and port of each node, without credentials.
fn describe_target(target: &RedisTarget) -> String {
    let host_port = |url: &str| match reqwest::Url::parse(url) {
        Ok(url) => format!(
            "{}:{}",
            url.host_str().unwrap_or("?"),
            url.port().unwrap_or(6379)
        ),
        Err(_) => "(unparsable URL)".into(),
    };
    match target {
        RedisTarget::Single(url) => host_port(url),
        RedisTarget::Cluster(seeds) => format!(
            "cluster [{}]",
            seeds
                .iter()
                .map(|s| host_port(s))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

type Outcome = (bool, String, &'static str);

async fn redis_round_trips(settings: &RedisSettings) -> Result<Vec<Outcome>, String> {
    let slow = |_| "no connection within 2 s".to_owned();
    match &settings.target {
        RedisTarget::Single(url) => {
            let client = redis::Client::open(url.as_str()).map_err(|e| e.to_string())?;
            let connecting = client.get_multiplexed_async_connection();
            let connection = tokio::time::timeout(REDIS_CONNECT_TIMEOUT, connecting)
                .await
                .map_err(slow)?
                .map_err(|e| e.to_string())?;
            probe(connection, settings).await
        }
        RedisTarget::Cluster(seeds) => {
            let client =
                redis::cluster::ClusterClient::new(seeds.clone()).map_err(|e| e.to_string())?;
            let connecting = client.get_async_connection();
            let connection = tokio::time::timeout(REDIS_CONNECT_TIMEOUT, connecting)
                .await
                .map_err(slow)?
                .map_err(|e| e.to_string())?;
            probe(connection, settings).await
        }
    }
}

/// Five PINGs (their median against `redis.timeout`), then the scripts.
async fn probe(
    mut connection: impl redis::aio::ConnectionLike,
    settings: &RedisSettings,
) -> Result<Vec<Outcome>, String> {
    let mut outcomes = Vec::new();
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let pong: redis::RedisResult<String> =
            redis::cmd("PING").query_async(&mut connection).await;
        pong.map_err(|e| format!("PING: {e}"))?;
        times.push(started.elapsed());
    }
    times.sort();
    let median = times[times.len() / 2];
    let within = median <= settings.timeout;
    outcomes.push((
        within,
        format!("PING median {median:?} (redis.timeout {:?})", settings.timeout),
        "every limited request waits at most redis.timeout: move Redis closer, or raise `redis.timeout`",
    ));
    for (purpose, script) in scripts() {
        let loaded: redis::RedisResult<redis::Value> = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(script)
            .query_async(&mut connection)
            .await;
        outcomes.push(match loaded {
            Ok(_) => (true, format!("the {purpose} script loads"), ""),
            Err(error) => (
                false,
                format!("the {purpose} script does not load: {error}"),
                "the gateway needs EVALSHA and SCRIPT LOAD: allow them in Redis ACLs",
            ),
        });
    }
    Ok(outcomes)
}

/// The admin listener serves metrics and `POST /reload`: loopback or a private network only.
pub fn check_admin(config: &CompiledConfig) -> Vec<Finding> {
    let Some(address) = config.admin_listen else {
        return Vec::new();
    };
    let subject = format!("admin {address}");
    let ip = address.ip();
    let finding = if ip.is_loopback() {
        Finding::ok(&subject, "listens on loopback only")
    } else if ip.is_unspecified() {
        Finding::fail(
            &subject,
            "listens on every interface, public ones included",
            "listen on 127.0.0.1 (or a private address behind a firewall)",
        )
    } else if is_private(ip) {
        Finding::warn(
            &subject,
            "listens on a private network address",
            "make sure only the monitoring network reaches it",
        )
    } else {
        Finding::fail(
            &subject,
            "listens on a public address",
            "listen on 127.0.0.1 (or a private address behind a firewall)",
        )
    };
    vec![finding]
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            (v6.segments()[0] & 0xfe00) == 0xfc00 || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}
