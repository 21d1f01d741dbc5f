//! API keys: create (the plaintext is shown once), list, revoke.

use super::access::{may_manage_keys_of, visible_workspace};
use crate::clock::{rfc3339, unix_millis};
use crate::domain::account::validate_name;
use crate::domain::api_key::{mint_key, ApiKey, KeyOwner, Principal, WorkspaceRole};
use crate::domain::ids::{ApiKeyId, UserId, WorkspaceId};
use crate::http::{ApiError, Ctx, Reply};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    pub owner: KeyOwner,
    #[schemars(
        length(min = 1, max = 200),
        pattern(crate::domain::account::NAME_PATTERN)
    )]
    pub name: Option<String>,
}

/// The only response that ever contains the key itself.
#[derive(Serialize, JsonSchema)]
pub struct ApiKeyCreated {
    pub id: ApiKeyId,
    /// The key. Store it now: it is not shown again. `null` when this response is replayed for
    /// a retry under the same `Idempotency-Key` (the plaintext is never stored).
    pub key: Option<String>,
    pub prefix: String,
    pub owner: KeyOwner,
    pub name: Option<String>,
    pub created_at: String,
}

pub async fn create(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let body: CreateApiKey = cx.body()?;
    let name = body.name.map(|n| validate_name("name", &n)).transpose()?;
    may_manage_keys_of(&cx, &body.owner).await?;
    let now = cx.now();
    let minted = mint_key();
    let key = ApiKey {
        id: ApiKeyId::generate(unix_millis(now)),
        name,
        prefix: minted.prefix,
        owner: body.owner,
        created_at: rfc3339(now),
        revoked_at: None,
    };
    cx.app.store.create_api_key(&key, &minted.hash).await?;
    Ok(Reply::created(&ApiKeyCreated {
        id: key.id,
        key: Some(minted.plaintext),
        prefix: key.prefix,
        owner: key.owner,
        name: key.name,
        created_at: key.created_at,
    })?
    .with_secret_shown_once("key"))
}

/// `GET /v1/api-keys`: the caller's own keys (a user's; a workspace admin's workspace's), or with
/// `?workspace_id=` / `?user_id=` those of a workspace or user the caller manages. The service
/// must name one of the two.
pub async fn list(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let workspace = cx
        .query("workspace_id")
        .map(|w| WorkspaceId::parse(w).ok_or_else(|| ApiError::not_found("workspace")))
        .transpose()?;
    let user = cx
        .query("user_id")
        .map(|u| UserId::parse(u).ok_or_else(|| ApiError::not_found("user")))
        .transpose()?;
    let owner_id = match (workspace, user, cx.caller()?) {
        (Some(_), Some(_), _) => {
            return Err(ApiError::InvalidRequest(
                "give `workspace_id` or `user_id`, not both".into(),
            ))
        }
        (
            _,
            _,
            Principal::Workspace {
                role: WorkspaceRole::Read,
                ..
            },
        ) => return Err(ApiError::Forbidden("read keys cannot list keys".into())),
        (Some(workspace), None, _) => {
            visible_workspace(&cx, &workspace).await?;
            workspace.to_string()
        }
        (None, Some(user), _) => {
            may_manage_keys_of(&cx, &KeyOwner::User { id: user.clone() }).await?;
            user.to_string()
        }
        (None, None, Principal::User(me)) => me.to_string(),
        (None, None, Principal::Workspace { id, .. }) => id.to_string(),
        (None, None, Principal::Service) => {
            return Err(ApiError::InvalidRequest(
                "the service must give `user_id` or `workspace_id`".into(),
            ))
        }
    };
    let page_request = cx.page_request(format!("api-keys:{owner_id}")).await?;
    let page = cx
        .app
        .store
        .list_api_keys(&owner_id, page_request.limit, page_request.start.clone())
        .await?;
    cx.list_reply(&page_request, page).await
}

pub async fn revoke(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let id = cx.path_id("keyId", ApiKeyId::parse, "API key")?;
    let key = cx
        .app
        .store
        .get_api_key(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("API key"))?;
    may_manage_keys_of(&cx, &key.owner)
        .await
        .map_err(|error| match error {
            // Someone else's key: not found, whatever the reason.
            ApiError::NotFound(_) => ApiError::not_found("API key"),
            other => other,
        })?;
    let revoked = cx
        .app
        .store
        .revoke_api_key(&id, &rfc3339(cx.now()))
        .await?
        .ok_or_else(|| ApiError::not_found("API key"))?;
    Reply::ok(&revoked)
}
