//! Discovery: health and the OpenAPI document.

use crate::http::{ApiError, Ctx, Reply};
use schemars::JsonSchema;
use serde::Serialize;

#[derive(Serialize, JsonSchema)]
pub struct Health {
    /// `ok` once the store answers.
    pub status: String,
}

pub async fn health(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    cx.app.store.ping().await.map_err(|error| {
        tracing::warn!(%error, "store not answering");
        ApiError::Unavailable
    })?;
    Reply::ok(&Health {
        status: "ok".into(),
    })
}

pub async fn openapi(_cx: Ctx<'_>) -> Result<Reply, ApiError> {
    Ok(Reply::json(
        http::StatusCode::OK,
        crate::openapi::document().clone(),
    ))
}
