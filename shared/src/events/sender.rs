//! One webhook attempt over the wire: resolve the host once, check every address (deployed
//! stages: global unicast only), connect to those very addresses, speak TLS for https, POST,
//! and read the status. Redirects are never followed; the whole attempt has 15 s.

use crate::domain::webhooks::{is_global, parse_url, AttemptError, DELIVERY_TIMEOUT_SECS};
use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, HOST, USER_AGENT};
use http::Request;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

pub const USER_AGENT_VALUE: &str = "billing-webhooks/1";

/// Which hosts an attempt may reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressPolicy {
    /// Deployed: https only, every resolved address global unicast.
    GlobalOnly,
    /// Local stage: http or https, loopback included.
    Any,
}

/// What came of one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    pub response_status: Option<u16>,
    /// The response's `Retry-After`, in seconds.
    pub retry_after_secs: Option<i64>,
    pub error: Option<AttemptError>,
    pub duration_ms: u64,
}

impl Sent {
    pub fn succeeded(&self) -> bool {
        self.response_status
            .is_some_and(|s| (200..300).contains(&s))
    }
}

/// The signed headers of one attempt.
pub struct Signed<'a> {
    pub webhook_id: &'a str,
    pub timestamp: i64,
    pub signature: &'a str,
}

pub async fn post(url: &str, policy: AddressPolicy, signed: Signed<'_>, body: Bytes) -> Sent {
    let started = Instant::now();
    let outcome = tokio::time::timeout(
        Duration::from_secs(DELIVERY_TIMEOUT_SECS),
        attempt(url, policy, &signed, body),
    )
    .await
    .unwrap_or(Err(AttemptError::Timeout));
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match outcome {
        Ok((status, retry_after_secs)) => Sent {
            response_status: Some(status),
            retry_after_secs,
            error: None,
            duration_ms,
        },
        Err(error) => Sent {
            response_status: None,
            retry_after_secs: None,
            error: Some(error),
            duration_ms,
        },
    }
}

/// The addresses `host:port` resolves to, refused if a deployed stage may not reach any one of
/// them.
pub async fn checked_addresses(
    host: &str,
    port: u16,
    policy: AddressPolicy,
) -> Result<Vec<SocketAddr>, AttemptError> {
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| AttemptError::ConnectionFailed)?
        .collect();
    if addresses.is_empty() {
        return Err(AttemptError::ConnectionFailed);
    }
    if policy == AddressPolicy::GlobalOnly && !addresses.iter().all(|a| is_global(a.ip())) {
        return Err(AttemptError::BlockedAddress);
    }
    Ok(addresses)
}

async fn attempt(
    url: &str,
    policy: AddressPolicy,
    signed: &Signed<'_>,
    body: Bytes,
) -> Result<(u16, Option<i64>), AttemptError> {
    let parsed = parse_url(url, policy == AddressPolicy::GlobalOnly)
        .map_err(|_| AttemptError::BlockedAddress)?;
    let addresses = checked_addresses(&parsed.host, parsed.port, policy).await?;
    let tcp = TcpStream::connect(&addresses[..])
        .await
        .map_err(|_| AttemptError::ConnectionFailed)?;
    let _ = tcp.set_nodelay(true);
    let uri: http::Uri = url.parse().map_err(|_| AttemptError::ConnectionFailed)?;
    let path = uri
        .path_and_query()
        .map_or("/".to_owned(), |p| p.as_str().to_owned());
    let host_header = uri
        .authority()
        .map_or(parsed.host.clone(), |a| a.as_str().to_owned());
    let request = Request::post(path)
        .header(HOST, host_header)
        .header(CONTENT_TYPE, "application/json")
        .header(USER_AGENT, USER_AGENT_VALUE)
        .header("webhook-id", signed.webhook_id)
        .header("webhook-timestamp", signed.timestamp.to_string())
        .header("webhook-signature", signed.signature)
        .body(Full::new(body))
        .map_err(|_| AttemptError::ConnectionFailed)?;
    if parsed.https {
        let name = rustls::pki_types::ServerName::try_from(parsed.host.clone())
            .map_err(|_| AttemptError::TlsError)?;
        let tls = tokio_rustls::TlsConnector::from(tls_config())
            .connect(name, tcp)
            .await
            .map_err(|_| AttemptError::TlsError)?;
        exchange(TokioIo::new(tls), request).await
    } else {
        exchange(TokioIo::new(tcp), request).await
    }
}

async fn exchange<T>(
    io: T,
    request: Request<Full<Bytes>>,
) -> Result<(u16, Option<i64>), AttemptError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|_| AttemptError::ConnectionFailed)?;
    // One request per connection: it ends when the answer is read (or the attempt times out).
    let driver = tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|_| AttemptError::ConnectionFailed);
    driver.abort();
    let response = response?;
    let retry_after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|s| *s >= 0);
    Ok((response.status().as_u16(), retry_after))
}

/// The Mozilla roots over aws-lc, built once per process.
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots =
                rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("aws-lc supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_deployed_stage_refuses_hosts_that_resolve_to_private_addresses() {
        for host in [
            "127.0.0.1",
            "localhost",
            "10.1.2.3",
            "::1",
            "169.254.169.254",
        ] {
            assert_eq!(
                checked_addresses(host, 443, AddressPolicy::GlobalOnly).await,
                Err(AttemptError::BlockedAddress),
                "{host}"
            );
        }
        assert!(checked_addresses("127.0.0.1", 80, AddressPolicy::Any)
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn a_deployed_attempt_to_a_loopback_url_is_blocked_before_connecting() {
        let sent = post(
            "https://127.0.0.1:9/hook",
            AddressPolicy::GlobalOnly,
            Signed {
                webhook_id: "evt_1",
                timestamp: 0,
                signature: "v1,x",
            },
            Bytes::from_static(b"{}"),
        )
        .await;
        assert_eq!(sent.error, Some(AttemptError::BlockedAddress));
        assert_eq!(sent.response_status, None);
    }
}
