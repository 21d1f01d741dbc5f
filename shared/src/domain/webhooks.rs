//! Webhook delivery rules: the endpoint secret and Standard Webhooks signature, the retry
//! schedule, which addresses a deployed stage may connect to, and what a valid endpoint URL is.
//! Pure: the sender and the store apply them.

use super::events::EventType;
use super::ids::{DeliveryAttemptId, EventId, WebhookEndpointId, WorkspaceId};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A webhook endpoint, as the API shows it (never with its secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WebhookEndpoint {
    pub id: WebhookEndpointId,
    pub workspace_id: WorkspaceId,
    pub url: String,
    pub events: EventSelection,
    pub description: Option<String>,
    pub status: EndpointStatus,
    pub disabled_reason: Option<DisabledReason>,
    pub created_at: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndpointStatus {
    Enabled,
    Disabled,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DisabledReason {
    /// The endpoint answered 410 Gone.
    Gone,
    /// Every attempt failed for five days.
    Failing,
}

/// Which events an endpoint receives: `["*"]` for all, else the listed types (duplicates
/// collapse).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventSelection {
    All,
    Only(BTreeSet<EventType>),
}

/// `"*"`, written as the contract's wildcard.
pub const ALL_EVENTS: &str = "*";

impl EventSelection {
    /// From the request's array: `*` alone or with others is all; an unknown name is refused
    /// (returned).
    pub fn parse(names: &[String]) -> Result<Self, String> {
        if names.is_empty() {
            return Err("`events` must list at least one event type, or \"*\"".into());
        }
        let mut only = BTreeSet::new();
        let mut all = false;
        for name in names {
            if name == ALL_EVENTS {
                all = true;
            } else {
                only.insert(
                    EventType::parse(name)
                        .ok_or_else(|| format!("`events` has an unknown event type `{name}`"))?,
                );
            }
        }
        Ok(if all { Self::All } else { Self::Only(only) })
    }

    pub fn includes(&self, kind: EventType) -> bool {
        match self {
            Self::All => true,
            Self::Only(types) => types.contains(&kind),
        }
    }

    fn names(&self) -> Vec<String> {
        match self {
            Self::All => vec![ALL_EVENTS.to_owned()],
            Self::Only(types) => types.iter().map(|t| t.as_str().to_owned()).collect(),
        }
    }
}

impl Serialize for EventSelection {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.names().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for EventSelection {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(deserializer)?;
        Self::parse(&names).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for EventSelection {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "EventSelection".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let mut names: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        names.push(ALL_EVENTS);
        schemars::json_schema!({
            "type": "array",
            "minItems": 1,
            "maxItems": 50,
            "items": {"type": "string", "enum": names},
            "description": "Event types, or [\"*\"] for every type; duplicates collapse."
        })
    }
}

/// One delivery attempt, as the deliveries route lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DeliveryAttempt {
    pub id: DeliveryAttemptId,
    pub endpoint_id: WebhookEndpointId,
    pub event_id: EventId,
    pub event_type: String,
    /// 1 to 8.
    pub attempt: u32,
    pub status: AttemptStatus,
    /// `null` when no response came.
    pub response_status: Option<u16>,
    pub error: Option<AttemptError>,
    pub duration_ms: u64,
    pub attempted_at: String,
    /// Set on a failed attempt that will be retried.
    pub next_attempt_at: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptStatus {
    Succeeded,
    Failed,
}

impl AttemptStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptStatus::Succeeded => "succeeded",
            AttemptStatus::Failed => "failed",
        }
    }
}

/// Why an attempt got no response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptError {
    Timeout,
    ConnectionFailed,
    TlsError,
    BlockedAddress,
}

/// At most this many endpoints per workspace.
pub const MAX_ENDPOINTS_PER_WORKSPACE: i64 = 20;
/// A URL longer than this is refused.
pub const MAX_URL_CHARS: usize = 2048;
/// An attempt that has no answer after this long fails with `timeout`.
pub const DELIVERY_TIMEOUT_SECS: u64 = 15;
/// Attempts (and their log) are kept this long.
pub const ATTEMPT_RETENTION_SECS: i64 = 30 * 24 * 3600;
/// An endpoint whose attempts all failed for this long is disabled (`failing`).
pub const FAILING_DISABLE_SECS: i64 = 5 * 24 * 3600;
/// The last attempt's number.
pub const MAX_ATTEMPTS: u32 = 8;
/// A `Retry-After` postpones the next attempt at most this far.
pub const MAX_RETRY_AFTER_SECS: i64 = 24 * 3600;
/// The delay after each failed attempt n (index n − 1), before jitter.
const SCHEDULE_SECS: [i64; 7] = [5, 300, 1800, 7200, 18_000, 36_000, 36_000];

/// The secret's prefix.
pub const SECRET_PREFIX: &str = "whsec_";

/// A fresh endpoint secret: `whsec_` + standard base64 (never URL-safe: verifiers drop `-` and
/// `_` silently) of 32 random bytes.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// `v1,<base64 of HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`, key the secret's decoded
/// part after `whsec_`. `None` for a secret that is not of that form.
pub fn signature(secret: &str, webhook_id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = STANDARD.decode(secret.strip_prefix(SECRET_PREFIX)?).ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(webhook_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// When attempt `failed` + 1 is due, in seconds after attempt `failed` failed: the schedule with
/// `jitter` (a fraction in −0.1..=0.1), postponed to a longer `retry_after` (at most 24 h).
/// `None` after the last attempt.
pub fn retry_delay_secs(failed: u32, retry_after_secs: Option<i64>, jitter: f64) -> Option<i64> {
    let index = usize::try_from(failed.checked_sub(1)?).ok()?;
    let scheduled = *SCHEDULE_SECS.get(index)?;
    let jittered = ((scheduled as f64) * (1.0 + jitter.clamp(-0.1, 0.1))).round() as i64;
    let asked = retry_after_secs.unwrap_or(0).clamp(0, MAX_RETRY_AFTER_SECS);
    Some(jittered.max(asked).max(1))
}

/// A jitter fraction, uniform in −0.1..=0.1.
pub fn random_jitter() -> f64 {
    rand::random_range(-0.1..=0.1)
}

/// Whether a deployed stage may connect to `ip`: global unicast only. IPv4-mapped
/// (`::ffff:a.b.c.d`) and NAT64 (`64:ff9b::a.b.c.d`) forms are judged as the IPv4 they carry.
pub fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_global_v4(v4),
        IpAddr::V6(v6) => is_global_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, network: [u8; 4], bits: u32) -> bool {
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(network)) & mask)
}

fn is_global_v4(ip: Ipv4Addr) -> bool {
    const REFUSED: [([u8; 4], u32); 10] = [
        ([0, 0, 0, 0], 8),
        ([10, 0, 0, 0], 8),
        ([100, 64, 0, 0], 10),
        ([127, 0, 0, 0], 8),
        ([169, 254, 0, 0], 16),
        ([172, 16, 0, 0], 12),
        ([192, 0, 0, 0], 24),
        ([192, 168, 0, 0], 16),
        ([198, 18, 0, 0], 15),
        // Multicast, reserved and broadcast: 224.0.0.0 and above.
        ([224, 0, 0, 0], 3),
    ];
    !REFUSED
        .iter()
        .any(|(network, bits)| in_v4(ip, *network, *bits))
}

fn is_global_v6(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    if ip.is_unspecified() || ip.is_loopback() {
        return false;
    }
    // IPv4-mapped `::ffff:0:0/96` and NAT64 `64:ff9b::/96` carry an IPv4 address.
    let embedded = Ipv4Addr::new(
        (segments[6] >> 8) as u8,
        segments[6] as u8,
        (segments[7] >> 8) as u8,
        segments[7] as u8,
    );
    if segments[..6] == [0, 0, 0, 0, 0, 0xffff] || segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_global_v4(embedded);
    }
    let first = segments[0];
    let unique_local = first & 0xfe00 == 0xfc00;
    let link_local = first & 0xffc0 == 0xfe80;
    let multicast = first & 0xff00 == 0xff00;
    !(unique_local || link_local || multicast)
}

/// What is wrong with an endpoint URL.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefused {
    #[error("`url` must be an absolute http(s) URL")]
    NotAbsolute,
    #[error("`url` must be at most {MAX_URL_CHARS} characters")]
    TooLong,
    #[error("`url` must not contain userinfo")]
    Userinfo,
    #[error("`url` must not contain a fragment")]
    Fragment,
    #[error("`url` must use https")]
    NotHttps,
    #[error("url resolves to a private address")]
    PrivateAddress,
}

/// An endpoint URL's parts, as checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointUrl {
    pub https: bool,
    /// Without brackets for an IPv6 literal.
    pub host: String,
    pub port: u16,
}

/// The form of an endpoint URL, as the OpenAPI document states it (the server checks exactly
/// this, and also takes a bracketed IPv6 literal as the host): `http(s)://`, a host of letters,
/// digits, dots and hyphens, an optional port, then a path and query of URL characters.
pub const URL_PATTERN: &str = concat!(
    "^https?://[A-Za-z0-9.-]+",
    "(:([0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?",
    "(/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?",
    "([?][A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)?$"
);

const PATH_CHARS: &str = "._~!$&'()*+,;=:@%/-";

fn path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || PATH_CHARS.contains(c)
}

/// Checks the URL's form (the host's addresses are checked apart, at creation and at each
/// attempt): [`URL_PATTERN`]. `https_only` on a deployed stage.
pub fn parse_url(url: &str, https_only: bool) -> Result<EndpointUrl, UrlRefused> {
    if url.chars().count() > MAX_URL_CHARS {
        return Err(UrlRefused::TooLong);
    }
    let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(UrlRefused::NotAbsolute);
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return Err(UrlRefused::Userinfo);
    }
    if tail.contains('#') {
        return Err(UrlRefused::Fragment);
    }
    let (path, query) = match tail.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (tail, None),
    };
    let path_ok = path.chars().all(path_char);
    let query_ok = query.is_none_or(|q| q.chars().all(|c| path_char(c) || c == '?'));
    let (host, port) = split_host_port(authority).ok_or(UrlRefused::NotAbsolute)?;
    if !path_ok || !query_ok {
        return Err(UrlRefused::NotAbsolute);
    }
    if https_only && !https {
        return Err(UrlRefused::NotHttps);
    }
    Ok(EndpointUrl {
        https,
        host,
        port: port.unwrap_or(if https { 443 } else { 80 }),
    })
}

/// `host[:port]`: a host of letters, digits, dots and hyphens (or a bracketed IPv6 literal),
/// a port of at most 5 digits up to 65535 (5 digits never start with 0).
fn split_host_port(authority: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(literal) = authority.strip_prefix('[') {
        let (inside, after) = literal.split_once(']')?;
        inside.parse::<Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (inside, port)
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let host_ok = authority.starts_with('[')
        || (!host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'));
    if !host_ok {
        return None;
    }
    let port = match port {
        None => None,
        Some(digits) => {
            let valid = (1..=5).contains(&digits.len())
                && digits.bytes().all(|b| b.is_ascii_digit())
                && !(digits.len() == 5 && digits.starts_with('0'));
            Some(digits.parse::<u16>().ok().filter(|_| valid)?)
        }
    };
    Some((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contracts_standard_webhooks_vector_signs_as_stated() {
        let body = r#"{"id":"evt_0001","type":"credits.purchased","timestamp":"2026-11-23T12:00:00Z","workspace_id":"ws_1","billing_account_id":"ba_1","data":{"amount_cents":2000,"method":"stripe_checkout","reference":"cs_1"}}"#;
        assert_eq!(
            signature(
                "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
                "evt_0001",
                1_795_435_200,
                body.as_bytes()
            )
            .as_deref(),
            Some("v1,HGHt07vsvaTv8r+VtmVGgHzAlB7Oqvsah4D/361uh7I=")
        );
    }

    #[test]
    fn a_secret_is_standard_base64_of_32_bytes() {
        let secret = new_secret();
        let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap();
        assert!(!encoded.contains(['-', '_']));
        assert_eq!(STANDARD.decode(encoded).unwrap().len(), 32);
        assert_ne!(new_secret(), secret);
    }

    #[test]
    fn retries_follow_the_schedule_with_jitter_and_retry_after() {
        let delays: Vec<Option<i64>> = (1..=8).map(|n| retry_delay_secs(n, None, 0.0)).collect();
        assert_eq!(
            delays,
            [
                Some(5),
                Some(300),
                Some(1800),
                Some(7200),
                Some(18_000),
                Some(36_000),
                Some(36_000),
                None
            ]
        );
        assert_eq!(retry_delay_secs(2, None, 0.1), Some(330));
        assert_eq!(retry_delay_secs(2, None, -0.5), Some(270));
        // A longer Retry-After postpones, a shorter one does not hasten; at most a day.
        assert_eq!(retry_delay_secs(1, Some(60), 0.0), Some(60));
        assert_eq!(retry_delay_secs(2, Some(60), 0.0), Some(300));
        assert_eq!(retry_delay_secs(1, Some(10 * 86_400), 0.0), Some(86_400));
        for _ in 0..100 {
            let jitter = random_jitter();
            assert!((-0.1..=0.1).contains(&jitter));
        }
    }

    #[test]
    fn only_global_unicast_addresses_are_reachable_from_a_deployed_stage() {
        let table: &[(&str, bool)] = &[
            ("0.0.0.0", false),
            ("0.1.2.3", false),
            ("10.0.0.1", false),
            ("100.64.0.1", false),
            ("100.127.255.254", false),
            ("100.128.0.1", true),
            ("127.0.0.1", false),
            ("127.255.255.255", false),
            ("169.254.169.254", false),
            ("172.16.0.1", false),
            ("172.31.255.255", false),
            ("172.32.0.1", true),
            ("192.0.0.8", false),
            ("192.0.1.1", true),
            ("192.168.1.1", false),
            ("198.18.0.1", false),
            ("198.19.255.255", false),
            ("198.20.0.1", true),
            ("224.0.0.1", false),
            ("239.255.255.250", false),
            ("240.0.0.1", false),
            ("255.255.255.255", false),
            ("8.8.8.8", true),
            ("93.184.216.34", true),
            ("::", false),
            ("::1", false),
            ("fc00::1", false),
            ("fd12:3456::1", false),
            ("fe80::1", false),
            ("febf::1", false),
            ("ff02::1", false),
            ("2606:4700:4700::1111", true),
            ("2001:4860:4860::8888", true),
            // IPv4-mapped forms are judged as their IPv4 address.
            ("::ffff:127.0.0.1", false),
            ("::ffff:10.1.2.3", false),
            ("::ffff:169.254.169.254", false),
            ("::ffff:8.8.8.8", true),
            // NAT64 likewise.
            ("64:ff9b::127.0.0.1", false),
            ("64:ff9b::a9fe:a9fe", false),
            ("64:ff9b::c0a8:101", false),
            ("64:ff9b::808:808", true),
        ];
        for (text, global) in table {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(is_global(ip), *global, "{text}");
        }
    }

    #[test]
    fn endpoint_urls_are_absolute_without_userinfo_or_fragment() {
        assert_eq!(
            parse_url("http://127.0.0.1:8080/hook", false),
            Ok(EndpointUrl {
                https: false,
                host: "127.0.0.1".into(),
                port: 8080
            })
        );
        assert_eq!(
            parse_url("https://[::1]/x", true).map(|u| u.host),
            Ok("::1".into())
        );
        assert_eq!(
            parse_url("http://example.com/", true),
            Err(UrlRefused::NotHttps)
        );
        assert_eq!(
            parse_url("https://user:pw@example.com/", true),
            Err(UrlRefused::Userinfo)
        );
        assert_eq!(
            parse_url("https://example.com/#x", true),
            Err(UrlRefused::Fragment)
        );
        assert_eq!(parse_url("/relative", false), Err(UrlRefused::NotAbsolute));
        assert_eq!(
            parse_url("ftp://example.com/", false),
            Err(UrlRefused::NotAbsolute)
        );
        assert_eq!(
            parse_url("http://127.0.0.1:65535/a?b=c?d", false).map(|u| u.port),
            Ok(65535)
        );
        for bad in [
            "http://127.0.0.1:65536/",
            "http://127.0.0.1:00080/",
            "http://exa mple.com/",
            "http://example.com/é",
            "HTTP://example.com/",
            "http://:80/",
        ] {
            assert_eq!(parse_url(bad, false), Err(UrlRefused::NotAbsolute), "{bad}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_CHARS));
        assert_eq!(parse_url(&long, true), Err(UrlRefused::TooLong));
    }
}
