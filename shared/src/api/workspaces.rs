//! Workspaces and the billing accounts linked to them.

use super::access::{owned_workspace, visible_workspace, workspace_id};
use crate::clock::{rfc3339, unix_millis};
use crate::domain::account::{validate_name, BillingAccount};
use crate::domain::api_key::Principal;
use crate::domain::ids::{BillingAccountId, UserId, WorkspaceId};
use crate::domain::lifecycle::start_trial;
use crate::domain::workspace::Workspace;
use crate::http::pagination::PageRequest;
use crate::http::{ApiError, Ctx, Reply};
use crate::store::workspaces::{LinkOutcome, UnlinkOutcome};
use crate::store::{Page, PageKey};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkspace {
    #[schemars(
        length(min = 1, max = 200),
        pattern(crate::domain::account::NAME_PATTERN)
    )]
    pub name: String,
    /// Bind this account (owned by the owner) instead of the owner's default one.
    pub billing_account_id: Option<BillingAccountId>,
    /// Service only, and required from the service: whose workspace this is. A user key
    /// creates its own (and giving this answers 400).
    #[schemars(required, with = "UserId")]
    pub owner_user_id: Option<UserId>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLinkedAccount {
    #[schemars(
        length(min = 1, max = 200),
        pattern(crate::domain::account::NAME_PATTERN)
    )]
    pub name: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkAccount {
    pub billing_account_id: BillingAccountId,
}

/// An account as linked to a workspace.
#[derive(Serialize, JsonSchema)]
pub struct LinkedAccount {
    #[serde(flatten)]
    pub account: BillingAccount,
    pub is_default: bool,
}

#[derive(Serialize, JsonSchema)]
pub struct Unlinked {
    pub workspace_id: WorkspaceId,
    pub billing_account_id: BillingAccountId,
    pub linked: bool,
}

fn account_id(cx: &Ctx<'_>) -> Result<BillingAccountId, ApiError> {
    cx.path_id(
        "billingAccountId",
        BillingAccountId::parse,
        "billing account",
    )
}

pub async fn create(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let body: CreateWorkspace = cx.body()?;
    let name = validate_name("name", &body.name)?;
    let owner_id = match (cx.caller()?, body.owner_user_id) {
        (Principal::Service, Some(owner)) => owner,
        (Principal::Service, None) => {
            return Err(ApiError::InvalidRequest(
                "the service must give `owner_user_id`".into(),
            ))
        }
        (Principal::User(me), None) => me.clone(),
        (Principal::User(_), Some(_)) => {
            return Err(ApiError::InvalidRequest(
                "only the service may give `owner_user_id`".into(),
            ))
        }
        (Principal::Workspace { .. }, _) => {
            return Err(ApiError::Forbidden(
                "a workspace key cannot create workspaces".into(),
            ))
        }
    };
    let owner = cx
        .app
        .store
        .get_user(&owner_id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let account = body
        .billing_account_id
        .unwrap_or(owner.default_billing_account_id);
    let now = cx.now();
    let created_at = rfc3339(now);
    let workspace = Workspace::start_trial(
        WorkspaceId::generate(unix_millis(now)),
        name,
        owner.id,
        account,
        created_at.clone(),
    );
    let trial = start_trial(now, &cx.app.durations);
    // The store checks, in the same transaction, that the account exists and is the owner's.
    if !cx
        .app
        .store
        .create_workspace(&workspace, &trial.dates, &created_at)
        .await?
    {
        return Err(ApiError::not_found("billing account"));
    }
    super::lifecycle::schedule_deadline(cx.app, &workspace.id, &trial, 1).await;
    Reply::created(&workspace)
}

pub async fn get(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let workspace = visible_workspace(&cx, &workspace_id(&cx)?).await?;
    Reply::ok(&workspace)
}

/// One page of a workspace's linked accounts, each with whether it is the default.
pub(crate) async fn linked_accounts(
    cx: &Ctx<'_>,
    workspace: &WorkspaceId,
    page_request: &PageRequest,
) -> Result<(Vec<(BillingAccount, bool)>, Option<PageKey>), ApiError> {
    let workspace = visible_workspace(cx, workspace).await?;
    let page = cx
        .app
        .store
        .list_linked_account_ids(
            &workspace.id,
            page_request.limit,
            page_request.start.clone(),
        )
        .await?;
    let mut accounts = cx.app.store.get_accounts(&page.items).await?;
    // Keep the links' order (BatchGetItem returns any order).
    accounts.sort_by_key(|a| page.items.iter().position(|id| *id == a.id));
    let with_default = accounts
        .into_iter()
        .map(|account| {
            let is_default = account.id == workspace.default_billing_account_id;
            (account, is_default)
        })
        .collect();
    Ok((with_default, page.next))
}

pub async fn list_accounts(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let workspace = workspace_id(&cx)?;
    let page_request = cx
        .page_request(format!("workspace-accounts:{workspace}"))
        .await?;
    let (accounts, next) = linked_accounts(&cx, &workspace, &page_request).await?;
    let items = accounts
        .into_iter()
        .map(|(account, is_default)| LinkedAccount {
            account,
            is_default,
        })
        .collect();
    cx.list_reply(&page_request, Page { items, next }).await
}

pub async fn create_account(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let workspace = owned_workspace(&cx, &workspace_id(&cx)?).await?;
    let body: CreateLinkedAccount = cx.body()?;
    let name = validate_name("name", &body.name)?;
    let now = cx.now();
    let account = BillingAccount::open(
        BillingAccountId::generate(unix_millis(now)),
        workspace.owner_user_id.clone(),
        name,
        false,
        rfc3339(now),
    );
    if !cx
        .app
        .store
        .create_linked_account(&workspace.id, &account, &rfc3339(now))
        .await?
    {
        return Err(ApiError::not_found("workspace"));
    }
    Reply::created(&LinkedAccount {
        account,
        is_default: false,
    })
}

/// Links an existing account of the workspace's owner. Linking it again changes nothing.
pub async fn link_account(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let workspace = owned_workspace(&cx, &workspace_id(&cx)?).await?;
    let body: LinkAccount = cx.body()?;
    let outcome = cx
        .app
        .store
        .link_account(&workspace, &body.billing_account_id, &rfc3339(cx.now()))
        .await?;
    if let LinkOutcome::AccountNotOwned = outcome {
        return Err(ApiError::not_found("billing account"));
    }
    let account = cx
        .app
        .store
        .get_account(&body.billing_account_id)
        .await?
        .ok_or_else(|| ApiError::not_found("billing account"))?;
    Reply::ok(&LinkedAccount {
        is_default: account.id == workspace.default_billing_account_id,
        account,
    })
}

pub async fn set_default_account(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let workspace = owned_workspace(&cx, &workspace_id(&cx)?).await?;
    let account = account_id(&cx)?;
    if !cx
        .app
        .store
        .set_default_account(&workspace.id, &account)
        .await?
    {
        return Err(ApiError::NotFound(
            "no such billing account linked to this workspace".into(),
        ));
    }
    Reply::ok(&Workspace {
        default_billing_account_id: account,
        ..workspace
    })
}

pub async fn unlink_account(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let workspace = owned_workspace(&cx, &workspace_id(&cx)?).await?;
    let account = account_id(&cx)?;
    match cx.app.store.unlink_account(&workspace.id, &account).await? {
        UnlinkOutcome::Unlinked => Reply::ok(&Unlinked {
            workspace_id: workspace.id,
            billing_account_id: account,
            linked: false,
        }),
        UnlinkOutcome::NotLinked => Err(ApiError::NotFound(
            "no such billing account linked to this workspace".into(),
        )),
        UnlinkOutcome::IsDefault => Err(ApiError::DefaultAccountUnlink),
    }
}
