//! Who settles a payment. Offline (local stage only): the server's own checks are the
//! verification, and settling is the credit write, with the EIP-712 digest as the
//! "transaction". Deployed: the configured facilitator's `/verify` and `/settle`, over the same
//! rustls hyper client as Stripe's transport, each call bounded by [`CALL_TIMEOUT`].

use super::payload::{Payment, Version};
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

/// A facilitator that has not answered by then is treated as down (502, nothing credited).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

pub enum Facilitator {
    Offline,
    Http(Box<HttpFacilitator>),
}

/// The facilitator could not be asked: unreachable, timed out, a 5xx, or an answer that is
/// not its protocol's.
#[derive(Debug, thiserror::Error)]
#[error("x402 facilitator {call}: {cause}")]
pub struct FacilitatorError {
    pub call: &'static str,
    pub cause: String,
}

/// `/verify`'s answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    pub is_valid: bool,
    #[serde(default)]
    pub invalid_reason: Option<String>,
    #[serde(default)]
    pub payer: Option<String>,
}

/// `/settle`'s answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settlement {
    pub success: bool,
    #[serde(default)]
    pub error_reason: Option<String>,
    #[serde(default)]
    pub transaction: String,
    #[serde(default)]
    pub network: Option<String>,
    #[serde(default)]
    pub payer: Option<String>,
}

pub struct HttpFacilitator {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// Without a trailing `/`; calls go to `<base>/verify` and `<base>/settle`.
    base: String,
    token: Option<String>,
}

impl HttpFacilitator {
    pub fn new(base: &str, token: Option<String>) -> Self {
        let connector = HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            base: base.trim_end_matches('/').to_owned(),
            token,
        }
    }

    /// The body both calls take.
    fn request_body(payment: &Payment, requirements: &Value) -> Value {
        json!({
            "x402Version": match payment.version { Version::V1 => 1, Version::V2 => 2 },
            "paymentPayload": payment.raw,
            "paymentRequirements": requirements,
        })
    }

    pub async fn verify(
        &self,
        payment: &Payment,
        requirements: &Value,
    ) -> Result<Verification, FacilitatorError> {
        self.call("verify", Self::request_body(payment, requirements))
            .await
    }

    pub async fn settle(
        &self,
        payment: &Payment,
        requirements: &Value,
    ) -> Result<Settlement, FacilitatorError> {
        self.call("settle", Self::request_body(payment, requirements))
            .await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        call: &'static str,
        body: Value,
    ) -> Result<T, FacilitatorError> {
        let failed = |cause: String| FacilitatorError { call, cause };
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(format!("{}/{call}", self.base))
            .header(CONTENT_TYPE, "application/json");
        if let Some(token) = &self.token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| failed(e.to_string()))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| failed(format!("unreachable: {e}")))?;
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| failed(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok::<_, FacilitatorError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(CALL_TIMEOUT, exchange)
            .await
            .map_err(|_| failed(format!("no answer within {} s", CALL_TIMEOUT.as_secs())))??;
        if status.is_server_error() {
            return Err(failed(format!("answered {status}")));
        }
        // A 4xx from a facilitator still carries its verdict (`isValid: false`, …).
        serde_json::from_slice(&bytes)
            .map_err(|e| failed(format!("answered {status} with an unreadable body: {e}")))
    }
}
