//! The single-process dev server: every route of the table on one port, through the same
//! dispatch and handlers the Lambdas use.

use crate::app::App;
use crate::http::dispatch::{dispatch, error_response, REQUEST_ID_HEADER};
use crate::http::request::percent_decode;
use crate::http::{ApiError, ApiRequest, ApiResponse};
use crate::lambda::new_request_id;
use crate::routes::{resolve, Resolved};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Serves until the listener fails; each connection on its own task.
pub async fn serve(app: Arc<App>, listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let app = app.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(handle(&app, request).await) }
            });
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "connection closed with an error");
            }
        });
    }
}

async fn handle(app: &App, request: hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
    let request_id = new_request_id();
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let response = match resolve(&parts.method, &path) {
        Resolved::Route(route, path_params) => {
            // Read one byte past the limit, so dispatch sees the body is too large and says so.
            let limit = app.config.max_body_bytes + 1;
            match Limited::new(body, limit).collect().await {
                Ok(collected) => {
                    let request = ApiRequest {
                        method: parts.method,
                        query: parse_query(parts.uri.query().unwrap_or_default()),
                        path,
                        headers: parts.headers,
                        body: collected.to_bytes(),
                        path_params,
                        request_id: request_id.clone(),
                    };
                    dispatch(app, route, request).await
                }
                Err(_) => with_id(
                    error_response(
                        &ApiError::InvalidRequest(format!(
                            "the body is larger than the limit of {} bytes",
                            app.config.max_body_bytes
                        )),
                        &request_id,
                    ),
                    &request_id,
                ),
            }
        }
        Resolved::MethodNotAllowed => with_id(
            error_response(
                &ApiError::NotFound(format!("{} is not allowed on {path}", parts.method)),
                &request_id,
            ),
            &request_id,
        ),
        Resolved::NotFound => with_id(
            error_response(
                &ApiError::NotFound(format!("no route for {path}")),
                &request_id,
            ),
            &request_id,
        ),
    };
    let mut builder = hyper::Response::builder().status(response.status);
    for (name, value) in &response.headers {
        builder = builder.header(*name, value);
    }
    builder
        .body(Full::new(response.body.clone()))
        .unwrap_or_else(|_| hyper::Response::new(Full::new(response.body)))
}

fn with_id(mut response: ApiResponse, request_id: &str) -> ApiResponse {
    response
        .headers
        .push((REQUEST_ID_HEADER, request_id.to_owned()));
    response
}

/// `a=1&b=x%20y` → pairs, percent- and plus-decoded.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key, true), percent_decode(value, true))
        })
        .collect()
}
