//! Webhook endpoints: create (the secret is shown once), list, delete, and each endpoint's
//! delivery log.

use super::access::{visible_workspace, workspace_id};
use crate::clock::{rfc3339, unix_millis};
use crate::config::Stage;
use crate::domain::ids::{EventId, WebhookEndpointId};
use crate::domain::webhooks::{
    new_secret, parse_url, AttemptError, AttemptStatus, EndpointStatus, EventSelection,
    WebhookEndpoint, MAX_ENDPOINTS_PER_WORKSPACE, MAX_URL_CHARS, URL_PATTERN,
};
use crate::events::sender::{checked_addresses, AddressPolicy};
use crate::http::{ApiError, Ctx, Reply};
use crate::store::webhooks::EndpointRecord;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpoint {
    /// Absolute, without userinfo or fragment, of URL characters (the pattern; a bracketed
    /// IPv6 literal host is taken too). Deployed stages: `https` only, and a host whose
    /// addresses are all global unicast (checked again at every attempt). The local stage
    /// takes `http` and loopback too.
    #[schemars(length(min = 1, max = MAX_URL_CHARS), pattern(URL_PATTERN))]
    pub url: String,
    pub events: EventSelection,
    #[schemars(length(max = 500))]
    pub description: Option<String>,
}

/// The endpoint and its signing secret: the only response that ever shows the secret.
#[derive(Serialize, JsonSchema)]
pub struct EndpointCreated {
    #[serde(flatten)]
    pub endpoint: WebhookEndpoint,
    /// `whsec_` + base64 of 32 random bytes: the Standard Webhooks signing key. Store it now.
    /// `null` when this response is replayed for a retry under the same `Idempotency-Key`.
    pub secret: Option<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct EndpointDeleted {
    pub id: WebhookEndpointId,
    pub deleted: bool,
}

fn endpoint_id(cx: &Ctx<'_>) -> Result<WebhookEndpointId, ApiError> {
    cx.path_id("endpointId", WebhookEndpointId::parse, "webhook endpoint")
}

pub async fn create(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let workspace = visible_workspace(&cx, &workspace_id(&cx)?).await?;
    let body: CreateEndpoint = cx.body()?;
    let deployed = matches!(cx.app.config.stage, Stage::Deployed(_));
    let url =
        parse_url(&body.url, deployed).map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
    if deployed {
        // A host that does not resolve yet is taken: its attempts fail until it does.
        if let Err(AttemptError::BlockedAddress) =
            checked_addresses(&url.host, url.port, AddressPolicy::GlobalOnly).await
        {
            return Err(ApiError::InvalidRequest(
                "url resolves to a private address".into(),
            ));
        }
    }
    let description = match body.description {
        Some(text) if text.chars().count() > 500 => {
            return Err(ApiError::InvalidRequest(
                "`description` must be at most 500 characters".into(),
            ))
        }
        other => other,
    };
    let now = cx.now();
    let record = EndpointRecord {
        endpoint: WebhookEndpoint {
            id: WebhookEndpointId::generate(unix_millis(now)),
            workspace_id: workspace.id.clone(),
            url: body.url,
            events: body.events,
            description,
            status: EndpointStatus::Enabled,
            disabled_reason: None,
            created_at: rfc3339(now),
        },
        secret: new_secret(),
    };
    if !cx.app.store.create_endpoint(&record).await? {
        return Err(ApiError::Conflict(format!(
            "the workspace has {MAX_ENDPOINTS_PER_WORKSPACE} webhook endpoints already: delete one first"
        )));
    }
    Ok(Reply::created(&EndpointCreated {
        endpoint: record.endpoint,
        secret: Some(record.secret),
    })?
    .with_secret_shown_once("secret"))
}

pub async fn list(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let workspace = visible_workspace(&cx, &workspace_id(&cx)?).await?;
    let page_request = cx
        .page_request(format!("webhook-endpoints:{}", workspace.id))
        .await?;
    let page = cx
        .app
        .store
        .list_endpoints(
            &workspace.id,
            page_request.limit,
            page_request.start.clone(),
        )
        .await?;
    let page = crate::store::Page {
        items: page
            .items
            .into_iter()
            .map(|r| r.endpoint)
            .collect::<Vec<_>>(),
        next: page.next,
    };
    cx.list_reply(&page_request, page).await
}

pub async fn delete(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let workspace = visible_workspace(&cx, &workspace_id(&cx)?).await?;
    let id = endpoint_id(&cx)?;
    if !cx.app.store.delete_endpoint(&workspace.id, &id).await? {
        return Err(ApiError::not_found("webhook endpoint"));
    }
    Reply::ok(&EndpointDeleted { id, deleted: true })
}

pub async fn deliveries(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let workspace = visible_workspace(&cx, &workspace_id(&cx)?).await?;
    let id = endpoint_id(&cx)?;
    if cx
        .app
        .store
        .get_endpoint(&workspace.id, &id)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found("webhook endpoint"));
    }
    let event = cx
        .query("event_id")
        .map(|e| {
            EventId::parse(e)
                .ok_or_else(|| ApiError::InvalidRequest("`event_id` is not an event id".into()))
        })
        .transpose()?;
    let status = cx
        .query("status")
        .map(|s| match s {
            "succeeded" => Ok(AttemptStatus::Succeeded),
            "failed" => Ok(AttemptStatus::Failed),
            _ => Err(ApiError::InvalidRequest(
                "`status` must be `succeeded` or `failed`".into(),
            )),
        })
        .transpose()?;
    let page_request = cx
        .page_request(format!(
            "webhook-deliveries:{id}:event={}:status={}",
            event.as_ref().map(EventId::as_str).unwrap_or_default(),
            status.map(AttemptStatus::as_str).unwrap_or_default()
        ))
        .await?;
    let page = cx
        .app
        .store
        .list_attempts(
            &id,
            event.as_ref(),
            status,
            page_request.limit,
            page_request.start.clone(),
        )
        .await?;
    cx.list_reply(&page_request, page).await
}
