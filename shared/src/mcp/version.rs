//! MCP revisions: the three handshake revisions (an `initialize` negotiates one, and each later
//! request names it in `MCP-Protocol-Version`) and the stateless `2026-07-28`, where every
//! request repeats its version, method and tool name in headers that must match its body.

use super::protocol::{ErrorCode, RpcError};
use base64::Engine as _;
use http::HeaderMap;
use serde_json::{json, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revision {
    V2025_03_26,
    V2025_06_18,
    V2025_11_25,
    /// Stateless: no handshake, headers checked against the body.
    V2026_07_28,
}

pub const PROTOCOL_VERSION_HEADER: &str = "mcp-protocol-version";
pub const METHOD_HEADER: &str = "mcp-method";
pub const NAME_HEADER: &str = "mcp-name";
/// Where a stateless request names its version in its body.
pub const PROTOCOL_VERSION_META: &str = "io.modelcontextprotocol/protocolVersion";
/// Where a stateless result names the server.
pub const SERVER_INFO_META: &str = "io.modelcontextprotocol/serverInfo";

impl Revision {
    pub const ALL: [Revision; 4] = [
        Revision::V2025_03_26,
        Revision::V2025_06_18,
        Revision::V2025_11_25,
        Revision::V2026_07_28,
    ];
    /// What `initialize` answers to a version it does not know.
    pub const LATEST_HANDSHAKE: Revision = Revision::V2025_11_25;

    pub fn as_str(self) -> &'static str {
        match self {
            Revision::V2025_03_26 => "2025-03-26",
            Revision::V2025_06_18 => "2025-06-18",
            Revision::V2025_11_25 => "2025-11-25",
            Revision::V2026_07_28 => "2026-07-28",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }

    pub fn is_stateless(self) -> bool {
        self == Revision::V2026_07_28
    }

    /// The revision an `initialize` settles on: the client's, when it is a handshake one.
    pub fn negotiate(requested: Option<&str>) -> Self {
        requested
            .and_then(Self::parse)
            .filter(|r| !r.is_stateless())
            .unwrap_or(Self::LATEST_HANDSHAKE)
    }

    /// The revision a request other than `initialize` is read by: its header's (absent:
    /// `2025-03-26`, as the 2025 revisions say), or -32022 with what this server speaks.
    pub fn of_request(headers: &HeaderMap) -> Result<Self, RpcError> {
        let Some(value) = headers.get(PROTOCOL_VERSION_HEADER) else {
            return Ok(Revision::V2025_03_26);
        };
        let requested = String::from_utf8_lossy(value.as_bytes()).into_owned();
        Self::parse(&requested).ok_or_else(|| {
            RpcError::new(
                ErrorCode::UnsupportedProtocolVersion,
                format!("Unsupported protocol version: {requested}"),
            )
            .with_data(json!({
                "supported": Self::ALL.map(Revision::as_str),
                "requested": requested,
            }))
        })
    }
}

/// The stateless rules: the body's `_meta` version equals the header, `Mcp-Method` equals the
/// method and, for `tools/call`, `Mcp-Name` equals the tool's name. The first that fails is a
/// -32020 naming its header.
pub fn check_stateless_headers(
    headers: &HeaderMap,
    revision: Revision,
    method: &str,
    params: Option<&Value>,
) -> Result<(), RpcError> {
    let mismatch = |header: &str| {
        RpcError::new(
            ErrorCode::HeaderMismatch,
            format!("HeaderMismatch: the {header} header is missing or does not match the body"),
        )
    };
    let meta_version = params
        .and_then(|p| p.get("_meta"))
        .and_then(|m| m.get(PROTOCOL_VERSION_META))
        .and_then(Value::as_str);
    if meta_version != Some(revision.as_str()) {
        return Err(mismatch("MCP-Protocol-Version"));
    }
    let header = |name: &str| {
        headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    if header(METHOD_HEADER).as_deref() != Some(method) {
        return Err(mismatch("Mcp-Method"));
    }
    if method == "tools/call" {
        let name = params.and_then(|p| p.get("name")).and_then(Value::as_str);
        let sent = header(NAME_HEADER).and_then(|v| decode_header_value(&v));
        if name.is_none() || sent.as_deref() != name {
            return Err(mismatch("Mcp-Name"));
        }
    }
    Ok(())
}

/// A header value as sent: verbatim, or UTF-8 inside `=?base64?…?=`. A broken wrapper is `None`.
pub fn decode_header_value(value: &str) -> Option<String> {
    match value
        .strip_prefix("=?base64?")
        .and_then(|rest| rest.strip_suffix("?="))
    {
        Some(encoded) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok()),
        None => Some(value.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn initialize_echoes_a_handshake_revision_and_otherwise_answers_the_latest() {
        assert_eq!(
            Revision::negotiate(Some("2025-06-18")),
            Revision::V2025_06_18
        );
        assert_eq!(
            Revision::negotiate(Some("2026-07-28")),
            Revision::V2025_11_25
        );
        assert_eq!(
            Revision::negotiate(Some("1999-01-01")),
            Revision::V2025_11_25
        );
        assert_eq!(Revision::negotiate(None), Revision::V2025_11_25);
    }

    #[test]
    fn the_header_chooses_the_revision_and_an_unknown_one_is_32022() {
        assert_eq!(
            Revision::of_request(&headers(&[])),
            Ok(Revision::V2025_03_26)
        );
        assert_eq!(
            Revision::of_request(&headers(&[(PROTOCOL_VERSION_HEADER, "2026-07-28")])),
            Ok(Revision::V2026_07_28)
        );
        let error =
            Revision::of_request(&headers(&[(PROTOCOL_VERSION_HEADER, "2024-01-01")])).unwrap_err();
        assert_eq!(error.code.code(), -32022);
        assert_eq!(error.data.unwrap()["requested"], "2024-01-01");
    }

    #[test]
    fn stateless_headers_must_match_the_body_and_names_may_be_base64_wrapped() {
        let params =
            json!({"name": "check_budget", "_meta": {PROTOCOL_VERSION_META: "2026-07-28"}});
        let good = headers(&[
            (METHOD_HEADER, "tools/call"),
            (NAME_HEADER, "=?base64?Y2hlY2tfYnVkZ2V0?="),
        ]);
        assert!(
            check_stateless_headers(&good, Revision::V2026_07_28, "tools/call", Some(&params))
                .is_ok()
        );
        let wrong_name = headers(&[(METHOD_HEADER, "tools/call"), (NAME_HEADER, "get_usage")]);
        let error = check_stateless_headers(
            &wrong_name,
            Revision::V2026_07_28,
            "tools/call",
            Some(&params),
        )
        .unwrap_err();
        assert!(error.message.contains("Mcp-Name"));
        let wrong_method = headers(&[(METHOD_HEADER, "tools/list")]);
        assert!(check_stateless_headers(
            &wrong_method,
            Revision::V2026_07_28,
            "tools/call",
            Some(&params)
        )
        .unwrap_err()
        .message
        .contains("Mcp-Method"));
        assert!(check_stateless_headers(
            &good,
            Revision::V2026_07_28,
            "tools/call",
            Some(&json!({}))
        )
        .unwrap_err()
        .message
        .contains("MCP-Protocol-Version"));
    }
}
