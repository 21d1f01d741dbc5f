//! A request as the handlers see it, whichever server received it, and the reply they give.

use super::error::ApiError;
use crate::app::App;
use crate::domain::api_key::Principal;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// A transport-neutral request: the Lambda adapter and the dev server both produce one.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub path_params: HashMap<String, String>,
    pub request_id: String,
}

/// What a server sends back.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

/// A handler's answer: a status and a JSON body (or none), with any headers of its own.
pub struct Reply {
    pub status: StatusCode,
    pub body: serde_json::Value,
    /// A top-level field of `body` holding a secret shown only in this response (an API key's
    /// plaintext): what is kept for idempotent replays has it `null`.
    pub shown_once: Option<&'static str>,
    /// Headers of the protocol the route speaks (x402's `PAYMENT-RESPONSE`); they are kept and
    /// replayed with the body.
    pub headers: Vec<(&'static str, String)>,
    /// No body at all (a 202 to an MCP notification), not even `null`.
    pub empty: bool,
    /// Whether a retry of the same request would get this answer again, so that it may be kept
    /// under an `Idempotency-Key`. x402's 402 is not: the paid retry carries the same key.
    pub is_final: bool,
}

impl Reply {
    pub fn ok(body: &impl Serialize) -> Result<Self, ApiError> {
        Self::with_status(StatusCode::OK, body)
    }

    pub fn created(body: &impl Serialize) -> Result<Self, ApiError> {
        Self::with_status(StatusCode::CREATED, body)
    }

    pub fn with_status(status: StatusCode, body: &impl Serialize) -> Result<Self, ApiError> {
        let body = serde_json::to_value(body).map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(Self::json(status, body))
    }

    pub fn json(status: StatusCode, body: serde_json::Value) -> Self {
        Self {
            status,
            body,
            shown_once: None,
            headers: Vec::new(),
            empty: false,
            is_final: true,
        }
    }

    /// A status with no body.
    pub fn empty(status: StatusCode) -> Self {
        Self {
            empty: true,
            ..Self::json(status, serde_json::Value::Null)
        }
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Marks the answer as one a retry may not get (see [`Reply::is_final`]).
    pub fn not_final(mut self) -> Self {
        self.is_final = false;
        self
    }

    /// Marks the top-level `field` as a secret this response alone shows.
    pub fn with_secret_shown_once(mut self, field: &'static str) -> Self {
        self.shown_once = Some(field);
        self
    }

    /// The body as it may be kept and replayed: any secret shown once is `null`.
    pub fn replayable_body(&self) -> serde_json::Value {
        let mut body = self.body.clone();
        if let Some(secret) = body
            .as_object_mut()
            .and_then(|fields| self.shown_once.and_then(|f| fields.get_mut(f)))
        {
            *secret = serde_json::Value::Null;
        }
        body
    }
}

/// Everything a handler gets: the app, the request and, on authenticated routes, the caller.
pub struct Ctx<'a> {
    pub app: &'a App,
    pub req: ApiRequest,
    pub principal: Option<Principal>,
}

impl Ctx<'_> {
    /// The authenticated caller. Dispatch authenticates every non-public route first.
    pub fn caller(&self) -> Result<&Principal, ApiError> {
        self.principal.as_ref().ok_or(ApiError::Unauthorized)
    }

    pub fn now(&self) -> time::OffsetDateTime {
        self.app.clock.now()
    }

    /// A path parameter parsed as an id; a malformed id names no resource, so it is a 404.
    pub fn path_id<T>(
        &self,
        name: &str,
        parse: fn(&str) -> Option<T>,
        what: &str,
    ) -> Result<T, ApiError> {
        self.req
            .path_params
            .get(name)
            .and_then(|raw| parse(raw))
            .ok_or_else(|| ApiError::not_found(what))
    }

    /// The request's `Idempotency-Key`, if it has a valid one.
    pub fn idempotency_key(&self) -> Option<String> {
        super::idempotency::key_from(&self.req.headers)
            .ok()
            .flatten()
    }

    /// The last value of a query parameter.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.req
            .query
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The JSON body as `T`; unknown fields, wrong types and malformed JSON are 400s that name
    /// the offending field. An empty body reads as `{}`.
    pub fn body<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        parse_json(&self.req.body)
    }
}

pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::InvalidRequest(format!("the body is not valid JSON: {inner}"))
        } else if path == "." {
            ApiError::InvalidRequest(format!("invalid body: {inner}"))
        } else {
            ApiError::InvalidRequest(format!("invalid field `{path}`: {inner}"))
        }
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::InvalidRequest(format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

/// Decodes `%XX` escapes (and `+` as a space in query strings); malformed escapes stay as
/// they are.
pub fn percent_decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (escaped, bytes[i]) {
            (Some(byte), _) => {
                out.push(byte);
                i += 3;
                continue;
            }
            (None, b'+') if plus_is_space => out.push(b' '),
            (None, other) => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Deserializes a field that may be absent (outer `None`), `null` (`Some(None)`) or a value, as
/// PATCH bodies need.
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        amount_cents: Option<i64>,
    }

    fn message(body: &str) -> String {
        match parse_json::<Body>(body.as_bytes()) {
            Err(ApiError::InvalidRequest(message)) => message,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn a_secret_shown_once_is_null_in_the_replayable_body() {
        let reply = Reply::json(
            StatusCode::CREATED,
            serde_json::json!({"id": "key_1", "key": "bk_secret"}),
        )
        .with_secret_shown_once("key");
        assert_eq!(reply.body["key"], "bk_secret");
        assert_eq!(
            reply.replayable_body(),
            serde_json::json!({"id": "key_1", "key": null})
        );
    }

    #[test]
    fn percent_decoding_handles_escapes_plus_and_junk() {
        assert_eq!(percent_decode("a%20b+c", true), "a b c");
        assert_eq!(percent_decode("a+b", false), "a+b");
        assert_eq!(percent_decode("100%", true), "100%");
        assert_eq!(percent_decode("%zz", true), "%zz");
    }

    #[test]
    fn errors_name_the_field() {
        assert!(message(r#"{"name":"a","colour":1}"#).contains("colour"));
        assert!(message(r#"{"name":"a","amount_cents":"ten"}"#).contains("amount_cents"));
        assert!(message(r#"{"amount_cents":1}"#).contains("name"));
        assert!(message(r#"{"name":"a""#).contains("not valid JSON"));
        assert!(message(r#"{"name":"a"} trailing"#).contains("not valid JSON"));
    }
}
