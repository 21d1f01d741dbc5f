//! The Lambda adapter: a function binary is `serve("<name>")`. Clients are built once, before
//! the first invocation; each API Gateway event becomes an [`ApiRequest`] for the route.

use crate::app::App;
use crate::http::dispatch::dispatch;
use crate::http::{ApiRequest, ApiResponse};
use crate::routes::{self, Job, Route};
use lambda_http::{service_fn, Body, Error, Request, RequestExt, Response};

/// Runs `route`'s function until the runtime stops it. A binary names its route's `static`
/// (`serve(&routes::HEALTH)`), so it links that route's handler and no other. Binaries run it on
/// a current-thread runtime: a Lambda handles one event at a time, and worker threads would
/// only lengthen its init.
pub async fn serve(route: &'static Route) -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let app: &'static App = Box::leak(Box::new(App::from_env().await?));
    lambda_http::run(service_fn(move |event: Request| async move {
        Ok::<_, Error>(handle(app, route, event).await)
    }))
    .await
}

/// Runs `job` for each scheduled invocation.
pub async fn serve_job(job: &'static Job) -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let app: &'static App = Box::leak(Box::new(App::from_env().await?));
    lambda_http::lambda_runtime::run(lambda_http::lambda_runtime::service_fn(
        move |event: lambda_http::lambda_runtime::LambdaEvent<serde_json::Value>| async move {
            match job.invoke(app, event.payload).await {
                Ok(outcome) => {
                    tracing::info!(job = job.name, handled = outcome.handled, "job done");
                    Ok(serde_json::to_value(&outcome).unwrap_or_default())
                }
                // An error result makes the scheduler retry; the cause is in the log.
                Err(error) => {
                    tracing::error!(job = job.name, %error, "job failed");
                    Err(Error::from(format!("{} failed", job.name)))
                }
            }
        },
    ))
    .await
}

/// One API Gateway event through the route's handler.
pub async fn handle(app: &App, route: &Route, event: Request) -> Response<Body> {
    let request_id = event
        .request_context_ref()
        .and_then(|context| match context {
            lambda_http::request::RequestContext::ApiGatewayV2(v2) => v2.request_id.clone(),
            _ => None,
        })
        .or_else(|| event.lambda_context_ref().map(|c| c.request_id.clone()))
        .unwrap_or_else(new_request_id);
    // API Gateway fills path parameters; a direct invoke or another proxy may not.
    let path = event.raw_http_path().to_owned();
    let mut path_params: std::collections::HashMap<String, String> = event
        .path_parameters_ref()
        .map(|p| {
            p.iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .unwrap_or_default();
    if path_params.is_empty() {
        path_params = routes::match_path(route.path, &path).unwrap_or_default();
    }
    let query = event
        .query_string_parameters_ref()
        .map(|q| {
            q.iter()
                .flat_map(|(k, _)| {
                    q.all(k)
                        .unwrap_or_default()
                        .into_iter()
                        .map(move |v| (k.to_owned(), v.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default();
    let (parts, body) = event.into_parts();
    let body = match body {
        Body::Empty => bytes::Bytes::new(),
        Body::Text(text) => bytes::Bytes::from(text),
        Body::Binary(data) => bytes::Bytes::from(data),
        _ => bytes::Bytes::new(),
    };
    let request = ApiRequest {
        method: parts.method,
        path,
        query,
        headers: parts.headers,
        body,
        path_params,
        request_id: request_id.clone(),
    };
    to_lambda(dispatch(app, route, request).await)
}

fn to_lambda(response: ApiResponse) -> Response<Body> {
    let mut builder = Response::builder().status(response.status);
    for (name, value) in &response.headers {
        builder = builder.header(*name, value);
    }
    builder
        .body(Body::Text(
            String::from_utf8_lossy(&response.body).into_owned(),
        ))
        .unwrap_or_else(|_| {
            let mut fallback = Response::new(Body::Empty);
            *fallback.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
            fallback
        })
}

/// `req_` and 26 time-ordered characters, for requests that arrive without an id.
pub fn new_request_id() -> String {
    let millis = crate::clock::unix_millis(time::OffsetDateTime::now_utc());
    format!("req_{}", crate::domain::ids::time_ordered_suffix(millis))
}
