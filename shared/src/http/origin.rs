//! `Origin` validation for routes a browser page could reach (MCP over Streamable HTTP): a
//! request that names an origin must name an allowed one, before its key is even read, so a
//! page cannot use a local server through DNS rebinding. No `Origin` (an SDK, curl) is fine.

use super::ApiError;
use crate::config::{Config, Stage};
use http::HeaderMap;

/// Refuses (403 `forbidden`) an `Origin` that is neither in `MCP_ALLOWED_ORIGINS` nor, on the
/// local stage, a loopback `http` origin.
pub fn check(config: &Config, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(http::header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or_default();
    let listed = config
        .allowed_origins
        .iter()
        .any(|allowed| allowed == origin);
    if listed || (config.stage == Stage::Local && is_local_loopback(origin)) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "the origin `{origin}` is not allowed"
        )))
    }
}

/// `http://127.0.0.1[:port]` or `http://localhost[:port]`.
fn is_local_loopback(origin: &str) -> bool {
    let Some(host_port) = origin.strip_prefix("http://") else {
        return false;
    };
    let (host, port) = match host_port.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (host_port, None),
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    matches!(host, "127.0.0.1" | "localhost") && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_origins_are_local_and_lookalikes_are_not() {
        assert!(is_local_loopback("http://127.0.0.1:3000"));
        assert!(is_local_loopback("http://localhost:8080"));
        assert!(!is_local_loopback("http://localhost.evil.example:80"));
        assert!(!is_local_loopback("https://evil.example"));
        assert!(!is_local_loopback("http://127.0.0.1:3000/path"));
        assert!(!is_local_loopback("null"));
    }
}
