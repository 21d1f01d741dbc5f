//! JSON-RPC 2.0 for MCP over HTTP: one message per POST, classified into a request, a
//! notification or a client's response; answers and errors, with the HTTP status each error
//! travels with.

use http::StatusCode;
use serde_json::{json, Map, Value};

/// JSON-RPC's and MCP's error codes that this server sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    ParseError,
    InvalidRequest,
    MethodNotFound,
    InvalidParams,
    /// MCP: the `MCP-Protocol-Version` names a revision this server does not speak.
    UnsupportedProtocolVersion,
    /// MCP `2026-07-28`: a header disagrees with the body (`HeaderMismatch`).
    HeaderMismatch,
}

impl ErrorCode {
    pub fn code(self) -> i64 {
        match self {
            ErrorCode::ParseError => -32700,
            ErrorCode::InvalidRequest => -32600,
            ErrorCode::MethodNotFound => -32601,
            ErrorCode::InvalidParams => -32602,
            ErrorCode::UnsupportedProtocolVersion => -32022,
            ErrorCode::HeaderMismatch => -32020,
        }
    }

    /// JSON-RPC errors travel with 200, except those about the message or its headers (400)
    /// and an unknown method under the stateless revision (404).
    pub fn status(self, stateless: bool) -> StatusCode {
        match self {
            ErrorCode::ParseError
            | ErrorCode::InvalidRequest
            | ErrorCode::UnsupportedProtocolVersion
            | ErrorCode::HeaderMismatch => StatusCode::BAD_REQUEST,
            ErrorCode::MethodNotFound if stateless => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotFound | ErrorCode::InvalidParams => StatusCode::OK,
        }
    }
}

/// A JSON-RPC error to send.
#[derive(Clone, Debug, PartialEq)]
pub struct RpcError {
    pub code: ErrorCode,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }
}

/// What one POST carried.
#[derive(Debug)]
pub enum Message {
    Request {
        id: Value,
        method: String,
        params: Option<Value>,
    },
    /// No `id`: nothing is answered but 202.
    Notification,
    /// A client's answer to a server request (this server sends none): 202 as well.
    Response,
}

/// Reads the body as one JSON-RPC message; the error is -32700 (not JSON) or -32600 (not one
/// message object: a batch, a bare value, a wrong `jsonrpc`).
pub fn parse(body: &[u8]) -> Result<Message, RpcError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| RpcError::new(ErrorCode::ParseError, "Parse error"))?;
    let invalid =
        |why: &str| RpcError::new(ErrorCode::InvalidRequest, format!("Invalid Request: {why}"));
    let Value::Object(message) = value else {
        return Err(invalid(
            "the body must be one JSON-RPC message object (batches are not accepted)",
        ));
    };
    if message.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(invalid("`jsonrpc` must be \"2.0\""));
    }
    let id = message.get("id").cloned();
    if let Some(id) = &id {
        if !(id.is_string() || id.is_number()) {
            return Err(invalid("`id` must be a string or a number"));
        }
    }
    match (message.get("method"), id) {
        (Some(Value::String(method)), Some(id)) => {
            // Each method reads its own params (`tools/call` refuses a non-object with -32602).
            let params = message.get("params").cloned();
            Ok(Message::Request {
                id,
                method: method.clone(),
                params,
            })
        }
        (Some(Value::String(_)), None) => Ok(Message::Notification),
        (Some(_), _) => Err(invalid("`method` must be a string")),
        (None, Some(_)) if message.contains_key("result") || message.contains_key("error") => {
            Ok(Message::Response)
        }
        (None, _) => Err(invalid("neither a request, a notification nor a response")),
    }
}

/// `{"jsonrpc": "2.0", "id", "result"}`.
pub fn result(id: &Value, result: Map<String, Value>) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// `{"jsonrpc": "2.0", "id", "error": {"code", "message", "data"?}}`.
pub fn error(id: &Value, error: &RpcError) -> Value {
    let mut body = json!({"code": error.code.code(), "message": error.message});
    if let Some(data) = &error.data {
        body["data"] = data.clone();
    }
    json!({"jsonrpc": "2.0", "id": id, "error": body})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(body: &str) -> i64 {
        parse(body.as_bytes()).unwrap_err().code.code()
    }

    #[test]
    fn one_message_object_is_read_and_anything_else_refused() {
        assert_eq!(code("{"), -32700);
        assert_eq!(code("[]"), -32600);
        assert_eq!(
            code(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#),
            -32600
        );
        assert_eq!(code(r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#), -32600);
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#),
            -32600
        );
        assert!(matches!(
            parse(br#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#),
            Ok(Message::Request { .. })
        ));
        assert!(matches!(
            parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Ok(Message::Notification)
        ));
        assert!(matches!(
            parse(br#"{"jsonrpc":"2.0","id":3,"result":{}}"#),
            Ok(Message::Response)
        ));
    }
}
