//! One request through one route: size limit, authentication, role, idempotency, the handler,
//! and the error mapping. Both the Lambda adapter and the dev server call [`dispatch`].

use super::auth::authenticate;
use super::error::ApiError;
use super::idempotency::{self, Admission};
use super::request::{ApiRequest, ApiResponse, Ctx, Reply};
use crate::app::App;
use crate::routes::{Access, Idempotency, Route};
use bytes::Bytes;
use http::{Method, StatusCode};
use std::time::Instant;
use tracing::Instrument;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

pub async fn dispatch(app: &App, route: &Route, request: ApiRequest) -> ApiResponse {
    let span = tracing::info_span!(
        "request",
        request_id = %request.request_id,
        route = route.name,
        method = %request.method,
    );
    async move {
        let started = Instant::now();
        let request_id = request.request_id.clone();
        let mut response = match run(app, route, request).await {
            Ok(response) => response,
            Err(error) => error_response(&error, &request_id),
        };
        response.headers.push((REQUEST_ID_HEADER, request_id));
        tracing::info!(
            status = response.status.as_u16(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "handled"
        );
        response
    }
    .instrument(span)
    .await
}

/// The contract's error body, logging the cause of internal errors (never sent).
pub fn error_response(error: &ApiError, request_id: &str) -> ApiResponse {
    match error {
        ApiError::Internal(cause) => tracing::error!(%cause, "internal error"),
        ApiError::PortalError(cause) | ApiError::PaymentProviderError(cause) => {
            tracing::warn!(%cause, "payment provider failure")
        }
        _ => {}
    }
    let mut response = json_response(error.status(), error.body(request_id).to_string());
    match error {
        ApiError::RateLimited {
            retry_after_secs, ..
        } => response
            .headers
            .push(("retry-after", retry_after_secs.to_string())),
        ApiError::MethodNotAllowed { allow } => response.headers.push(("allow", (*allow).into())),
        _ => {}
    }
    response
}

const WEBHOOK_MAX_BODY_BYTES: usize = 512 * 1024;

fn json_response(status: StatusCode, body: String) -> ApiResponse {
    ApiResponse {
        status,
        headers: vec![("content-type", "application/json".to_owned())],
        body: Bytes::from(body),
    }
}

/// The reply as sent: its JSON body (or none) and its own headers.
fn reply_response(reply: &Reply) -> ApiResponse {
    let mut response = if reply.empty {
        ApiResponse {
            status: reply.status,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    } else {
        json_response(reply.status, reply.body.to_string())
    };
    response.headers.extend(reply.headers.iter().cloned());
    response
}

/// The header names a stored answer may replay: those of the protocols the routes speak.
const REPLAYED_HEADERS: &[&str] = &[
    crate::x402::PAYMENT_RESPONSE_HEADER,
    crate::x402::X_PAYMENT_RESPONSE_HEADER,
];

async fn run(app: &App, route: &Route, request: ApiRequest) -> Result<ApiResponse, ApiError> {
    if route.options.answers_every_method && request.method != route.method {
        return Err(ApiError::MethodNotAllowed {
            allow: route.method_name(),
        });
    }
    // Before the key: a page in a browser must not reach a local server through its user's
    // credentials (DNS rebinding).
    if route.options.checks_origin {
        super::origin::check(&app.config, &request.headers)?;
    }
    // A provider's webhook (the only public POST) may carry a large object, e.g. an invoice
    // with many lines: it gets Stripe's own ceiling.
    let max_body_bytes = if route.access == Access::Public && route.method == Method::POST {
        WEBHOOK_MAX_BODY_BYTES
    } else {
        app.config.max_body_bytes
    };
    if request.body.len() > max_body_bytes {
        return Err(ApiError::InvalidRequest(format!(
            "the body is {} bytes; the limit is {max_body_bytes} bytes",
            request.body.len(),
        )));
    }
    // The route table lists each route's query parameters: any other is refused, like an
    // unknown body field.
    if let Some((unknown, _)) = request
        .query
        .iter()
        .find(|(name, _)| !route.query.iter().any(|(known, _)| known == name))
    {
        return Err(ApiError::InvalidRequest(format!(
            "unknown query parameter `{unknown}`"
        )));
    }
    let principal = match route.access {
        Access::Public => None,
        Access::Key | Access::KeyReadOnlyAllowed => {
            let principal = authenticate(app, &request.headers).await?;
            let read_only_ok =
                request.method == Method::GET || route.access == Access::KeyReadOnlyAllowed;
            if !principal.may_write() && !read_only_ok {
                return Err(ApiError::Forbidden("this key can only read".into()));
            }
            Some(principal)
        }
    };
    let kept_header = match route.options.idempotency {
        Idempotency::Body => Some(None),
        Idempotency::Ignored => None,
        Idempotency::BodyAndHeader { headers } => headers
            .iter()
            .find_map(|name| request.headers.get(*name).map(|v| (*name, v.as_bytes())))
            .map(Some),
    };
    if request.method == Method::POST && route.options.idempotency != Idempotency::Ignored {
        // A malformed key is refused even where this request would not be kept under it.
        idempotency::key_from(&request.headers)?;
    }
    let held = match (&principal, request.method == Method::POST, kept_header) {
        (Some(principal), true, Some(header)) => match idempotency::key_from(&request.headers)? {
            Some(key) => {
                let fingerprint = idempotency::fingerprint(
                    request.method.as_str(),
                    &request.path,
                    &request.body,
                    header,
                );
                match idempotency::admit(app, principal.scope(), key, fingerprint).await? {
                    Admission::Run(held) => Some(held),
                    Admission::Replay {
                        status,
                        body,
                        headers,
                    } => {
                        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                        let mut response = json_response(status, body);
                        response
                            .headers
                            .extend(headers.into_iter().filter_map(|(name, value)| {
                                REPLAYED_HEADERS
                                    .iter()
                                    .find(|known| known.eq_ignore_ascii_case(&name))
                                    .map(|known| (*known, value))
                            }));
                        response
                            .headers
                            .push(("idempotent-replayed", "true".to_owned()));
                        return Ok(response);
                    }
                }
            }
            None => None,
        },
        _ => None,
    };
    let request_id = request.request_id.clone();
    let cx = Ctx {
        app,
        req: request,
        principal,
    };
    let outcome = (route.handler)(cx).await;
    let response = match &outcome {
        Ok(reply) => reply_response(reply),
        Err(error) => error_response(error, &request_id),
    };
    if let Some(after) = route.after {
        after(app).await;
    } else if app.store.recharges.pending() {
        // Nothing is lost (the retry job charges a marker left uncharged), but the route
        // table is wrong: this route moves money and should charge what it starts.
        tracing::error!(
            route = route.name,
            "an auto-recharge was started by a route that does not charge it"
        );
    }
    if let Some(held) = held {
        idempotency::settle(app, &held, &outcome, &request_id).await?;
    }
    Ok(response)
}
