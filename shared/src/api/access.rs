//! Who may see and change what. Someone else's resource answers 404, never 403, so ids can't be
//! probed; 403 is for a caller acting on its own resource without the right role.

use crate::domain::account::BillingAccount;
use crate::domain::api_key::{KeyOwner, Principal, WorkspaceRole};
use crate::domain::ids::{BillingAccountId, WorkspaceId};
use crate::domain::workspace::Workspace;
use crate::http::{ApiError, Ctx};
use crate::store::lifecycle::WorkspaceState;

/// The account, if the caller may see it: the service, its owner, or a workspace it is linked to.
pub async fn visible_account(
    cx: &Ctx<'_>,
    id: &BillingAccountId,
) -> Result<BillingAccount, ApiError> {
    let hidden = || ApiError::not_found("billing account");
    let account = cx.app.store.get_account(id).await?.ok_or_else(hidden)?;
    let visible = match cx.caller()? {
        Principal::Service => true,
        Principal::User(user) => account.owner_user_id == *user,
        Principal::Workspace { id: workspace, .. } => cx.app.store.is_linked(workspace, id).await?,
    };
    if visible {
        Ok(account)
    } else {
        Err(hidden())
    }
}

/// The account, if the caller may change its settings: the service or its owner. A workspace
/// that can see the account may not change it (403).
pub async fn managed_account(
    cx: &Ctx<'_>,
    id: &BillingAccountId,
) -> Result<BillingAccount, ApiError> {
    let account = visible_account(cx, id).await?;
    match cx.caller()? {
        Principal::Workspace { .. } => Err(ApiError::Forbidden(
            "only the account's owner can change its settings".into(),
        )),
        _ => Ok(account),
    }
}

/// The `{workspaceId}` of the path.
pub fn workspace_id(cx: &Ctx<'_>) -> Result<WorkspaceId, ApiError> {
    cx.path_id("workspaceId", WorkspaceId::parse, "workspace")
}

/// The workspace, if the caller may see and manage it: the service, its owner, or its own keys
/// (read keys are stopped before any write by the dispatch).
pub async fn visible_workspace(cx: &Ctx<'_>, id: &WorkspaceId) -> Result<Workspace, ApiError> {
    Ok(visible_workspace_state(cx, id).await?.workspace)
}

/// [`visible_workspace`] with its lifecycle state (the same single read).
pub async fn visible_workspace_state(
    cx: &Ctx<'_>,
    id: &WorkspaceId,
) -> Result<WorkspaceState, ApiError> {
    let hidden = || ApiError::not_found("workspace");
    let state = cx
        .app
        .store
        .get_workspace_state(id)
        .await?
        .ok_or_else(hidden)?;
    let visible = match cx.caller()? {
        Principal::Service => true,
        Principal::User(user) => state.workspace.owner_user_id == *user,
        Principal::Workspace { id: own, .. } => own == id,
    };
    if visible {
        Ok(state)
    } else {
        Err(hidden())
    }
}

/// The workspace, if the caller may move its spending authority (create and link accounts,
/// link, unlink, choose the default): the service or its owner. Its own keys may see it but
/// not do this (403).
pub async fn owned_workspace(cx: &Ctx<'_>, id: &WorkspaceId) -> Result<Workspace, ApiError> {
    let workspace = visible_workspace(cx, id).await?;
    match cx.caller()? {
        Principal::Workspace { .. } => Err(ApiError::Forbidden(
            "only the workspace's owner can change which billing accounts it spends from".into(),
        )),
        Principal::User(_) | Principal::Service => Ok(workspace),
    }
}

pub fn require_service(cx: &Ctx<'_>) -> Result<(), ApiError> {
    match cx.caller()? {
        Principal::Service => Ok(()),
        _ => Err(ApiError::Forbidden(
            "only the service key may do this".into(),
        )),
    }
}

/// Checks that the caller may create or revoke keys for `owner`: the service for anyone, a user
/// for itself and its workspaces, a workspace admin for read keys of its workspace.
pub async fn may_manage_keys_of(cx: &Ctx<'_>, owner: &KeyOwner) -> Result<(), ApiError> {
    let caller = cx.caller()?;
    match owner {
        KeyOwner::User { id } => {
            let exists = cx.app.store.get_user(id).await?.is_some();
            match caller {
                Principal::Service if exists => Ok(()),
                Principal::User(me) if me == id => Ok(()),
                _ => Err(ApiError::not_found("user")),
            }
        }
        KeyOwner::Workspace { id, role } => {
            visible_workspace(cx, id).await?;
            match (caller, role) {
                (
                    Principal::Workspace {
                        role: WorkspaceRole::Admin,
                        ..
                    },
                    WorkspaceRole::Read,
                ) => Ok(()),
                (Principal::Workspace { .. }, _) => Err(ApiError::Forbidden(
                    "a workspace key may only manage read keys of its workspace".into(),
                )),
                _ => Ok(()),
            }
        }
    }
}
