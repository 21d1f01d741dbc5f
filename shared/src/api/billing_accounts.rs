//! Billing accounts: list, get, change settings, balance and ledger.

use super::access::{managed_account, visible_account};
use crate::domain::account::{AccountPatch, AutoRechargePatch, BillingAccount};
use crate::domain::api_key::Principal;
use crate::domain::bounds::{AmountCents, Bounded, PositiveCents};
use crate::domain::ids::{BillingAccountId, UserId, WorkspaceId};
use crate::domain::transaction::TransactionType;
use crate::http::request::nullable;
use crate::http::{ApiError, Ctx, Reply};
use crate::store::accounts::TransactionFilter;
use crate::store::Page;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `PATCH` body: absent fields are unchanged; `null` clears a cap, the e-mail or the monthly limit.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAccount {
    #[schemars(
        length(min = 1, max = 200),
        pattern(crate::domain::account::NAME_PATTERN)
    )]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schemars(length(max = 254), pattern(crate::domain::account::EMAIL_PATTERN))]
    pub billing_email: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub soft_cap_cents: Option<Option<AmountCents>>,
    #[serde(default, deserialize_with = "nullable")]
    pub hard_cap_cents: Option<Option<AmountCents>>,
    pub auto_recharge: Option<UpdateAutoRecharge>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAutoRecharge {
    pub enabled: Option<bool>,
    pub threshold_cents: Option<AmountCents>,
    pub amount_cents: Option<PositiveCents>,
    #[serde(default, deserialize_with = "nullable")]
    pub monthly_limit_cents: Option<Option<PositiveCents>>,
}

impl From<UpdateAccount> for AccountPatch {
    fn from(body: UpdateAccount) -> Self {
        AccountPatch {
            name: body.name,
            billing_email: body.billing_email,
            soft_cap_cents: body.soft_cap_cents.map(|cap| cap.map(Bounded::get)),
            hard_cap_cents: body.hard_cap_cents.map(|cap| cap.map(Bounded::get)),
            auto_recharge: body.auto_recharge.map(|r| AutoRechargePatch {
                enabled: r.enabled,
                threshold_cents: r.threshold_cents.map(Bounded::get),
                amount_cents: r.amount_cents.map(Bounded::get),
                monthly_limit_cents: r.monthly_limit_cents.map(|limit| limit.map(Bounded::get)),
            }),
        }
    }
}

#[derive(Serialize, JsonSchema)]
pub struct Balance {
    pub billing_account_id: BillingAccountId,
    pub balance_cents: i64,
    pub held_cents: i64,
    pub available_cents: i64,
    pub currency: String,
}

impl From<&BillingAccount> for Balance {
    fn from(account: &BillingAccount) -> Self {
        Balance {
            billing_account_id: account.id.clone(),
            balance_cents: account.balance_cents,
            held_cents: account.held_cents,
            available_cents: account.available_cents,
            currency: account.currency.clone(),
        }
    }
}

fn account_id(cx: &Ctx<'_>) -> Result<BillingAccountId, ApiError> {
    cx.path_id(
        "billingAccountId",
        BillingAccountId::parse,
        "billing account",
    )
}

/// The caller's accounts: a user's own, a workspace's linked ones, or (service) those of
/// `?owner_user_id=`.
pub async fn list(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let owner = match (cx.caller()?, cx.query("owner_user_id")) {
        (Principal::Service, Some(owner)) => UserId::parse(owner)
            .ok_or_else(|| ApiError::InvalidRequest("`owner_user_id` is not a user id".into()))?,
        (Principal::Service, None) => {
            return Err(ApiError::InvalidRequest(
                "the service must give `owner_user_id`".into(),
            ))
        }
        (_, Some(_)) => {
            return Err(ApiError::InvalidRequest(
                "only the service may give `owner_user_id`".into(),
            ))
        }
        (Principal::User(me), None) => me.clone(),
        (Principal::Workspace { id, .. }, None) => {
            let id = id.clone();
            return linked_accounts_page(&cx, &id).await;
        }
    };
    let page_request = cx.page_request(format!("accounts:{owner}")).await?;
    let page = cx
        .app
        .store
        .list_accounts_of(&owner, page_request.limit, page_request.start.clone())
        .await?;
    cx.list_reply(&page_request, page).await
}

async fn linked_accounts_page(cx: &Ctx<'_>, workspace: &WorkspaceId) -> Result<Reply, ApiError> {
    let page_request = cx
        .page_request(format!("accounts-of-workspace:{workspace}"))
        .await?;
    let (accounts, next) = super::workspaces::linked_accounts(cx, workspace, &page_request).await?;
    let items = accounts.into_iter().map(|(account, _)| account).collect();
    cx.list_reply(&page_request, Page { items, next }).await
}

pub async fn get(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let account = visible_account(&cx, &account_id(&cx)?).await?;
    Reply::ok(&account)
}

const PATCH_ATTEMPTS: usize = 5;

pub async fn update(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let id = account_id(&cx)?;
    managed_account(&cx, &id).await?;
    let body: UpdateAccount = cx.body()?;
    let patch = AccountPatch::from(body);
    for _ in 0..PATCH_ATTEMPTS {
        let current = cx
            .app
            .store
            .get_account_versioned(&id)
            .await?
            .ok_or_else(|| ApiError::not_found("billing account"))?;
        let next = current.account.patched(patch.clone())?;
        if cx
            .app
            .store
            .update_account_settings(&next, current.settings_version)
            .await?
        {
            return Reply::ok(&next);
        }
    }
    Err(ApiError::Conflict(
        "the account's settings kept changing; retry the request".into(),
    ))
}

pub async fn balance(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let account = visible_account(&cx, &account_id(&cx)?).await?;
    Reply::ok(&Balance::from(&account))
}

/// The ledger, newest first, filtered by `?type=` and `?workspace_id=`.
pub async fn transactions(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let account = visible_account(&cx, &account_id(&cx)?).await?;
    let kind = type_filter(&cx)?;
    let workspace_id = cx
        .query("workspace_id")
        .map(|w| {
            WorkspaceId::parse(w).ok_or_else(|| {
                ApiError::InvalidRequest("`workspace_id` is not a workspace id".into())
            })
        })
        .transpose()?;
    let list = format!(
        "transactions:{}:type={}:workspace={}",
        account.id,
        kind.map(TransactionType::as_str).unwrap_or_default(),
        workspace_id
            .as_ref()
            .map(WorkspaceId::as_str)
            .unwrap_or_default(),
    );
    let page_request = cx.page_request(list).await?;
    let filter = TransactionFilter { kind, workspace_id };
    let page = cx
        .app
        .store
        .list_transactions(
            &account.id,
            &filter,
            page_request.limit,
            page_request.start.clone(),
        )
        .await?;
    cx.list_reply(&page_request, page).await
}

/// `?type=`, checked against the transaction types.
pub fn type_filter(cx: &Ctx<'_>) -> Result<Option<TransactionType>, ApiError> {
    cx.query("type")
        .map(|t| {
            TransactionType::parse(t).ok_or_else(|| {
                ApiError::InvalidRequest(format!("`type` must be one of: {}", type_names()))
            })
        })
        .transpose()
}

fn type_names() -> String {
    TransactionType::ALL
        .iter()
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
