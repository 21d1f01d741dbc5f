//! A workspace's money: its budget (caps inside its account), balance, ledger and service credits.

use super::access::{require_service, visible_workspace, workspace_id};
use super::billing_accounts::{type_filter, Balance};
use crate::clock::{rfc3339, unix_millis};
use crate::domain::account::validate_caps;
use crate::domain::api_key::Principal;
use crate::domain::bounds::{AmountCents, Bounded, SignedCents};
use crate::domain::calendar::Month;
use crate::domain::ids::{BillingAccountId, TransactionId, WorkspaceId};
use crate::domain::ledger::CapSetter;
use crate::domain::transaction::{Transaction, TransactionType};
use crate::http::request::nullable;
use crate::http::{ApiError, Ctx, Reply};
use crate::store::credits::CreditOutcome;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `PATCH` body: the workspace's own monthly caps inside its account; `null` removes one.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBudget {
    #[serde(default, deserialize_with = "nullable")]
    pub soft_cap_cents: Option<Option<AmountCents>>,
    #[serde(default, deserialize_with = "nullable")]
    pub hard_cap_cents: Option<Option<AmountCents>>,
}

#[derive(Serialize, JsonSchema)]
pub struct Budget {
    pub workspace_id: WorkspaceId,
    pub billing_account_id: BillingAccountId,
    pub soft_cap_cents: Option<i64>,
    pub hard_cap_cents: Option<i64>,
}

const PATCH_ATTEMPTS: usize = 5;

/// A workspace's own key sets caps with less authority than its owner (or the service).
fn cap_setter(caller: &Principal) -> CapSetter {
    match caller {
        Principal::Workspace { .. } => CapSetter::Workspace,
        Principal::User(_) | Principal::Service => CapSetter::Owner,
    }
}

pub async fn update_budget(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let workspace = visible_workspace(&cx, &workspace_id(&cx)?).await?;
    let body: UpdateBudget = cx.body()?;
    let setter = cap_setter(cx.caller()?);
    let soft_cap = body.soft_cap_cents.map(|cap| cap.map(Bounded::get));
    let hard_cap = body.hard_cap_cents.map(|cap| cap.map(Bounded::get));
    let month = Month::of(cx.now());
    for _ in 0..PATCH_ATTEMPTS {
        // Read, check the caps as a whole, write if nobody changed them meanwhile.
        let snapshot = cx.app.store.workspace_snapshot(&workspace, month).await?;
        let soft = soft_cap.unwrap_or(snapshot.budget.soft_cap_cents);
        let hard = hard_cap.unwrap_or(snapshot.budget.hard_cap_cents);
        validate_caps(soft, hard)?;
        let hard_cap_set_by = match hard_cap {
            Some(next) => snapshot.budget.hard_cap_change(next, setter)?,
            None => snapshot.budget.hard_cap_set_by,
        };
        if cx
            .app
            .store
            .set_workspace_caps(&snapshot, soft, hard, hard_cap_set_by)
            .await?
        {
            return Reply::ok(&Budget {
                workspace_id: workspace.id,
                billing_account_id: workspace.default_billing_account_id,
                soft_cap_cents: soft,
                hard_cap_cents: hard,
            });
        }
    }
    Err(ApiError::Conflict(
        "the workspace's caps kept changing; retry the request".into(),
    ))
}

pub async fn balance(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let workspace = visible_workspace(&cx, &workspace_id(&cx)?).await?;
    let account = cx
        .app
        .store
        .get_account(&workspace.default_billing_account_id)
        .await?
        .ok_or_else(|| ApiError::Internal("a workspace's default account is missing".into()))?;
    Reply::ok(&Balance::from(&account))
}

/// The workspace's credit history, newest first, `?type=` to filter.
pub async fn transactions(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let workspace = visible_workspace(&cx, &workspace_id(&cx)?).await?;
    let kind = type_filter(&cx)?;
    let list = format!(
        "workspace-transactions:{}:type={}",
        workspace.id,
        kind.map(TransactionType::as_str).unwrap_or_default()
    );
    let page_request = cx.page_request(list).await?;
    let page = cx
        .app
        .store
        .list_workspace_transactions(
            &workspace.id,
            kind,
            page_request.limit,
            page_request.start.clone(),
        )
        .await?;
    cx.list_reply(&page_request, page).await
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
// The schema of `amount_cents` depends on `type`: positive for a grant or a refund.
#[schemars(extend("if" = {"properties": {"type": {"enum": ["grant", "refund"]}}}, "then" = {"properties": {"amount_cents": {"minimum": 1}}}))]
pub struct ServiceCredit {
    /// Never 0. Positive for `grant` and `refund`; an `adjustment` may be negative but never
    /// takes `available_cents` below 0.
    #[schemars(extend("not" = {"const": 0}))]
    pub amount_cents: SignedCents,
    #[serde(rename = "type")]
    pub kind: CreditKind,
    /// Becomes the transaction's description (trimmed).
    #[schemars(
        length(min = 1, max = 500),
        pattern(crate::domain::account::NAME_PATTERN)
    )]
    pub reason: String,
}

#[derive(Deserialize, JsonSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum CreditKind {
    Grant,
    Adjustment,
    Refund,
}

/// Service only: credit (or adjust) the workspace's default account.
pub async fn create_credit(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    require_service(&cx)?;
    let workspace = visible_workspace(&cx, &workspace_id(&cx)?).await?;
    let body: ServiceCredit = cx.body()?;
    let kind = match body.kind {
        CreditKind::Grant => TransactionType::Grant,
        CreditKind::Adjustment => TransactionType::Adjustment,
        CreditKind::Refund => TransactionType::Refund,
    };
    let positive_only = !matches!(body.kind, CreditKind::Adjustment);
    let amount_cents = body.amount_cents.get();
    if amount_cents == 0 || (positive_only && amount_cents < 0) {
        return Err(ApiError::InvalidRequest(if positive_only {
            "`amount_cents` must be greater than 0 for a grant or a refund".into()
        } else {
            "`amount_cents` must not be 0".into()
        }));
    }
    let reason = body.reason.trim();
    // Characters as given, as the schema's `maxLength` counts them.
    if reason.is_empty() || body.reason.chars().count() > 500 {
        return Err(ApiError::InvalidRequest(
            "`reason` must be 1 to 500 characters".into(),
        ));
    }
    let now = cx.now();
    let transaction = Transaction {
        id: TransactionId::generate(unix_millis(now)),
        billing_account_id: workspace.default_billing_account_id.clone(),
        workspace_id: Some(workspace.id.clone()),
        kind,
        amount_cents,
        balance_after_cents: 0,
        description: reason.to_owned(),
        category: None,
        agent_id: None,
        run_id: None,
        reference: None,
        created_at: rfc3339(now),
    };
    let claim = cx.idempotency_key().map(|key| {
        format!(
            "{}#{}#{key}",
            cx.caller().map(|p| p.scope()).unwrap_or_default(),
            workspace.id
        )
    });
    match cx
        .app
        .store
        .apply_credit(&transaction, claim.as_deref(), Vec::new())
        .await?
    {
        CreditOutcome::Credited(transaction) => Reply::created(&transaction),
        CreditOutcome::Repeated(transaction) => Reply::created(&transaction),
        CreditOutcome::Refused(refusal) => Err(refusal.into()),
        CreditOutcome::NotApplied => Err(ApiError::Internal(
            "a service credit has no items of its own to refuse".into(),
        )),
    }
}
