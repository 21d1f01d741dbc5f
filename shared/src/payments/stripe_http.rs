//! The HTTP transport under async-stripe's typed requests: async-stripe builds each request
//! (path, form encoding, idempotency strategy) and this client sends it, on connections kept
//! for reuse, and reads only the fields of Stripe's answers and errors that the gateway uses.
//!
//! Why not async-stripe's own client: it opens a new TLS connection for every call, and it
//! parses every error into the full `ApiErrors` object graph (a PaymentIntent with its charges,
//! customer, account…), whose deserializers made every function that can charge a card larger
//! than the whole API used to be.

use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use stripe_client_core::{
    CustomizedStripeRequest, Outcome, RequestBuilder, RequestStrategy, StripeClient,
    StripeClientErr, StripeMethod,
};

/// Idle connections are dropped before Stripe's load balancers would drop them; a function
/// frozen between invocations for longer simply connects again.
const POOL_IDLE: Duration = Duration::from_secs(30);
const USER_AGENT_VALUE: &str = concat!("billing/", env!("CARGO_PKG_VERSION"));

pub struct StripeHttp {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// Ends with `/`; requests go to `<api_base>v1<path>`.
    api_base: String,
    authorization: HeaderValue,
    stripe_version: HeaderValue,
    /// Per attempt, unless the request overrides it.
    timeout: Duration,
}

/// Why a call failed.
#[derive(Debug)]
pub enum StripeHttpError {
    /// Stripe answered with its error object.
    Api {
        status: u16,
        error: ApiError,
    },
    Timeout,
    /// No answer: the connection failed.
    Transport(String),
    /// An answer this client could not read.
    Unreadable(String),
}

impl StripeClientErr for StripeHttpError {
    fn deserialize_err(message: impl std::fmt::Display) -> Self {
        StripeHttpError::Unreadable(message.to_string())
    }
}

/// The fields of Stripe's error object that the gateway reads.
#[derive(Debug, Deserialize)]
pub struct ApiError {
    #[serde(rename = "type")]
    pub kind: String,
    pub code: Option<String>,
    pub decline_code: Option<String>,
    pub message: Option<String>,
    pub param: Option<String>,
    /// With a card error on a confirmation: the PaymentIntent as it now stands.
    pub payment_intent: Option<ErrorPaymentIntent>,
}

#[derive(Debug, Deserialize)]
pub struct ErrorPaymentIntent {
    pub id: String,
    pub status: String,
    pub client_secret: Option<String>,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ApiError,
}

impl StripeHttp {
    /// `api_base` is Stripe's (`https://api.stripe.com/`) or a stand-in's; `secret_key` must be
    /// usable as a header value.
    pub fn new(secret_key: &str, api_base: &str, timeout: Duration) -> Result<Self, String> {
        let authorization = HeaderValue::from_str(&format!("Bearer {secret_key}"))
            .map_err(|_| "the Stripe secret key is not a valid header value".to_owned())?;
        let connector = HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(POOL_IDLE)
                .build(connector),
            api_base: format!("{}/", api_base.trim_end_matches('/')),
            authorization,
            stripe_version: HeaderValue::from_str(stripe_client_core::VERSION.as_str())
                .expect("an API version is a valid header value"),
            timeout,
        })
    }

    fn request(&self, request: &RequestBuilder, key: Option<&str>) -> Request<Full<Bytes>> {
        let mut uri = format!("{}v1{}", self.api_base, request.path);
        if let Some(query) = &request.query {
            let _ = write!(uri, "?{query}");
        }
        let method = match request.method {
            StripeMethod::Get => Method::GET,
            StripeMethod::Post => Method::POST,
            StripeMethod::Delete => Method::DELETE,
        };
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(AUTHORIZATION, self.authorization.clone())
            .header(USER_AGENT, USER_AGENT_VALUE)
            .header("stripe-version", self.stripe_version.clone());
        if let Some(key) = key {
            builder = builder.header("idempotency-key", key);
        }
        let body = match &request.body {
            Some(body) => {
                builder = builder.header(CONTENT_TYPE, "application/x-www-form-urlencoded");
                Bytes::from(body.clone())
            }
            None => Bytes::new(),
        };
        builder
            .body(Full::new(body))
            .expect("a request of a valid URI and header values")
    }

    /// One attempt: the status and body, or why there were none.
    async fn attempt(
        &self,
        request: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<(StatusCode, Option<bool>, Bytes), StripeHttpError> {
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| StripeHttpError::Transport(e.to_string()))?;
            let status = response.status();
            let should_retry = response
                .headers()
                .get("stripe-should-retry")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.parse().ok());
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| StripeHttpError::Transport(e.to_string()))?
                .to_bytes();
            Ok((status, should_retry, body))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(StripeHttpError::Timeout))
    }
}

impl StripeClient for StripeHttp {
    type Err = StripeHttpError;

    /// Sends under the request's strategy (ours: once, with its idempotency key), as
    /// async-stripe's own client would.
    async fn execute(&self, request: CustomizedStripeRequest) -> Result<Bytes, StripeHttpError> {
        let (request, overrides) = request.into_pieces();
        let strategy = overrides.request_strategy.unwrap_or(RequestStrategy::Once);
        let timeout = overrides.timeout.unwrap_or(self.timeout);
        let key = strategy.get_key();
        let (mut tries, mut last_status, mut last_should_retry) = (0, None, None);
        let mut last_error = StripeHttpError::Transport("no attempt was made".into());
        loop {
            match strategy.test(last_status, last_should_retry, tries) {
                Outcome::Stop => return Err(last_error),
                Outcome::Continue(backoff) => {
                    if let Some(backoff) = backoff {
                        tokio::time::sleep(backoff).await;
                    }
                }
            }
            tries += 1;
            let http_request = self.request(&request, key.as_ref().map(|k| k.as_str()));
            match self.attempt(http_request, timeout).await {
                Ok((status, _, body)) if status.is_success() => return Ok(body),
                Ok((status, should_retry, body)) => {
                    last_status = Some(status.as_u16());
                    last_should_retry = should_retry;
                    last_error = match serde_json::from_slice::<ErrorEnvelope>(&body) {
                        Ok(envelope) => StripeHttpError::Api {
                            status: status.as_u16(),
                            error: envelope.error,
                        },
                        Err(e) => StripeHttpError::Unreadable(format!(
                            "Stripe answered {status} with an unreadable error: {e}"
                        )),
                    };
                }
                Err(error) => last_error = error,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri_for(api_base: &str) -> String {
        let client = StripeHttp::new("sk_test_x", api_base, Duration::from_secs(1)).unwrap();
        let request = RequestBuilder::new(StripeMethod::Post, "/customers");
        client.request(&request, None).uri().to_string()
    }

    #[test]
    fn requests_go_to_v1_under_the_base_with_or_without_its_slash() {
        assert_eq!(
            uri_for("http://127.0.0.1:9"),
            "http://127.0.0.1:9/v1/customers"
        );
        assert_eq!(
            uri_for("http://127.0.0.1:9/"),
            "http://127.0.0.1:9/v1/customers"
        );
        assert_eq!(
            uri_for("https://proxy/stripe"),
            "https://proxy/stripe/v1/customers"
        );
    }

    #[test]
    fn a_key_with_a_newline_is_refused_not_sent() {
        assert!(
            StripeHttp::new("sk_test\nx", "http://127.0.0.1:9", Duration::from_secs(1)).is_err()
        );
    }
}
