//! Payment routes: checkout for credits and plans, the billing portal, setup intents and saved
//! methods, invoices, off-session top-ups, the auto-recharge that needs the customer, the
//! no-cap reminder and, locally, completing an offline checkout.

use super::access::{visible_workspace_state, workspace_id};
use crate::app::App;
use crate::billing::checkout::checkout_completed;
use crate::billing::customers::customer_of;
use crate::billing::payments::{credit_payment, PaymentCredit};
use crate::billing::{key_digest, Handled};
use crate::clock::{rfc3339, unix_millis};
use crate::config::Stage;
use crate::domain::bounds::PositiveCents;
use crate::domain::calendar::Month;
use crate::domain::invoice::InvoiceStatus;
use crate::domain::transaction::TransactionType;
use crate::domain::workspace::{PlanStatus, Workspace};
use crate::http::{ApiError, Ctx, Reply};
use crate::payments::events::{CheckoutPaymentStatus, CheckoutSession};
use crate::payments::metadata::{PaymentKind, PaymentMetadata};
use crate::payments::{Charge, CheckoutMode, CheckoutRequest, Gateway, GatewayError};
use crate::store::credits::CreditOutcome;
use crate::store::payments::{CheckoutKind, CheckoutRecord, RechargeAction};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

impl From<GatewayError> for ApiError {
    fn from(error: GatewayError) -> Self {
        match error {
            GatewayError::Rejected(message) => ApiError::InvalidRequest(message),
            GatewayError::Provider(_) => ApiError::PaymentProviderError(error.to_string()),
        }
    }
}

#[derive(Serialize, JsonSchema)]
pub struct PublishableKey {
    pub publishable_key: String,
}

pub async fn publishable_key(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let payments = cx.app.payments().await?;
    Reply::ok(&PublishableKey {
        publishable_key: payments.gateway.publishable_key().to_owned(),
    })
}

/// What [`validate_url`] takes on the local stage, for the schema (with `maxLength` 2048): a
/// deployed stage takes only the `https` ones.
const RETURN_URL_PATTERN: &str = concat!(
    "^https?://[^/?#",
    crate::domain::account::white_space!(),
    "][^",
    crate::domain::account::white_space!(),
    "]*$"
);

/// A URL the customer is sent back to: absolute, with a host, at most 2048 characters. A
/// deployed stage takes `https` only (a plain-HTTP return leaks the session to the network);
/// the local stage also takes `http`, for the dev server.
fn validate_url(app: &App, field: &str, url: &str) -> Result<(), ApiError> {
    let schemes: &[&str] = match app.config.stage {
        Stage::Local => &["https://", "http://"],
        Stage::Deployed(_) => &["https://"],
    };
    let has_host = schemes
        .iter()
        .filter_map(|scheme| url.strip_prefix(scheme))
        .any(|rest| !rest.is_empty() && !rest.starts_with(['/', '?', '#']));
    if has_host && url.chars().count() <= 2048 && !url.chars().any(char::is_whitespace) {
        Ok(())
    } else {
        Err(ApiError::InvalidRequest(match app.config.stage {
            Stage::Local => format!("`{field}` must be an absolute http(s) URL"),
            Stage::Deployed(_) => format!("`{field}` must be an absolute https URL"),
        }))
    }
}

pub fn validate_amount(app: &App, amount_cents: i64) -> Result<(), ApiError> {
    let limits = app.config.purchase_limits;
    if (limits.min_cents..=limits.max_cents).contains(&amount_cents) {
        Ok(())
    } else {
        Err(ApiError::InvalidRequest(format!(
            "`amount_cents` must be from {} to {}",
            limits.min_cents, limits.max_cents
        )))
    }
}

/// The key Stripe deduplicates a create by: derived from the caller's `Idempotency-Key` when
/// given (a retry reaches the same Stripe object), else a fresh one.
fn stripe_key(cx: &Ctx<'_>, what: &str, workspace: &Workspace) -> Result<String, ApiError> {
    Ok(match cx.idempotency_key() {
        Some(key) => format!(
            "{what}:{}:{}",
            workspace.id,
            key_digest(&format!("{}|{key}", cx.caller()?.scope()))
        ),
        None => format!(
            "{what}:{}:{}",
            workspace.id,
            crate::domain::ids::time_ordered_suffix(unix_millis(cx.now()))
        ),
    })
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BuyCredits {
    /// Within the configured purchase limits (by default 500 to 1,000,000).
    #[schemars(schema_with = "crate::openapi::purchase_cents")]
    pub amount_cents: PositiveCents,
    #[schemars(length(max = 2048), pattern(RETURN_URL_PATTERN))]
    pub success_url: String,
    #[schemars(length(max = 2048), pattern(RETURN_URL_PATTERN))]
    pub cancel_url: String,
}

/// `POST .../billing/checkout/x402`'s body.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BuyX402 {
    /// Within the configured purchase limits (by default 500 to 1,000,000).
    #[schemars(schema_with = "crate::openapi::purchase_cents")]
    pub amount_cents: PositiveCents,
}

#[derive(Serialize, JsonSchema)]
pub struct CheckoutCreated {
    pub checkout_session_id: String,
    pub url: String,
}

async fn start_checkout(
    cx: &Ctx<'_>,
    workspace: &Workspace,
    kind: CheckoutKind,
    mode: CheckoutMode,
    plan_id: Option<String>,
    urls: (&str, &str),
) -> Result<Reply, ApiError> {
    let customer = customer_of(cx.app, workspace).await?;
    let key = stripe_key(cx, "checkout", workspace)?;
    let amount_cents = match &mode {
        CheckoutMode::Credits { amount_cents } => *amount_cents,
        CheckoutMode::Subscription { .. } => 0,
    };
    let paid_for = match kind {
        CheckoutKind::Credits => PaymentKind::CheckoutCredits,
        CheckoutKind::Subscription => PaymentKind::CheckoutSubscription,
    };
    let mut metadata = PaymentMetadata::new(&workspace.id, paid_for)
        .for_account(&workspace.default_billing_account_id);
    metadata.plan_id = plan_id.clone();
    let metadata = metadata.to_stripe();
    let payments = cx.app.payments().await?;
    let session = payments
        .gateway
        .create_checkout(&CheckoutRequest {
            customer_id: &customer,
            mode,
            success_url: urls.0,
            cancel_url: urls.1,
            metadata,
            idempotency_key: &key,
        })
        .await?;
    cx.app
        .store
        .put_checkout(&CheckoutRecord {
            id: session.id.clone(),
            workspace_id: workspace.id.clone(),
            billing_account_id: workspace.default_billing_account_id.clone(),
            kind,
            amount_cents,
            plan_id,
            created_at: rfc3339(cx.now()),
        })
        .await?;
    Reply::ok(&CheckoutCreated {
        checkout_session_id: session.id,
        url: session.url,
    })
}

pub async fn checkout(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let state = visible_workspace_state(&cx, &workspace_id(&cx)?).await?;
    let body: BuyCredits = cx.body()?;
    validate_amount(cx.app, body.amount_cents.get())?;
    validate_url(cx.app, "success_url", &body.success_url)?;
    validate_url(cx.app, "cancel_url", &body.cancel_url)?;
    start_checkout(
        &cx,
        &state.workspace,
        CheckoutKind::Credits,
        CheckoutMode::Credits {
            amount_cents: body.amount_cents.get(),
        },
        None,
        (&body.success_url, &body.cancel_url),
    )
    .await
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Subscribe {
    #[schemars(schema_with = "crate::openapi::sold_plan")]
    pub plan_id: String,
    #[schemars(length(max = 2048), pattern(RETURN_URL_PATTERN))]
    pub success_url: String,
    #[schemars(length(max = 2048), pattern(RETURN_URL_PATTERN))]
    pub cancel_url: String,
}

pub async fn subscribe(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let state = visible_workspace_state(&cx, &workspace_id(&cx)?).await?;
    let body: Subscribe = cx.body()?;
    if state.workspace.plan_status == PlanStatus::Deleted {
        return Err(ApiError::SubscriptionCanceled(
            "the workspace's plan has ended and can't be resumed; create a new workspace".into(),
        ));
    }
    validate_url(cx.app, "success_url", &body.success_url)?;
    validate_url(cx.app, "cancel_url", &body.cancel_url)?;
    let plan = cx
        .app
        .catalog
        .plan(&body.plan_id)
        .ok_or_else(|| ApiError::InvalidRequest(format!("unknown plan `{}`", body.plan_id)))?;
    let price_id = plan.stripe_price_id.clone().ok_or_else(|| {
        ApiError::InvalidRequest(format!(
            "plan `{}` is not sold through checkout (free, or agreed with sales)",
            plan.id
        ))
    })?;
    let profile = cx.app.store.billing_profile(&state.workspace.id).await?;
    if profile.subscription_id.is_some() {
        return Err(ApiError::Conflict(
            "the workspace already has a subscription: change plans through the portal".into(),
        ));
    }
    // From a trial, the checkout starts the promo like a first payment method does: free until
    // the promo would end.
    let trial_end = (state.workspace.plan_status == PlanStatus::Trial)
        .then(|| cx.app.durations.promo.after(cx.now()).unix_timestamp());
    start_checkout(
        &cx,
        &state.workspace,
        CheckoutKind::Subscription,
        CheckoutMode::Subscription {
            price_id,
            trial_end,
        },
        Some(plan.id.clone()),
        (&body.success_url, &body.cancel_url),
    )
    .await
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenPortal {
    #[schemars(length(max = 2048), pattern(RETURN_URL_PATTERN))]
    pub return_url: String,
}

#[derive(Serialize, JsonSchema)]
pub struct PortalSession {
    pub url: String,
}

pub async fn portal(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let state = visible_workspace_state(&cx, &workspace_id(&cx)?).await?;
    let body: OpenPortal = cx.body()?;
    validate_url(cx.app, "return_url", &body.return_url)?;
    let customer = customer_of(cx.app, &state.workspace).await?;
    let payments = cx.app.payments().await?;
    let url = payments
        .gateway
        .create_portal(&customer, &body.return_url)
        .await
        .map_err(|e| ApiError::PortalError(e.to_string()))?;
    Reply::ok(&PortalSession { url })
}

#[derive(Serialize, JsonSchema)]
pub struct SetupIntentCreated {
    pub client_secret: String,
}

pub async fn setup_intent(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let state = visible_workspace_state(&cx, &workspace_id(&cx)?).await?;
    let customer = customer_of(cx.app, &state.workspace).await?;
    let key = stripe_key(&cx, "setup-intent", &state.workspace)?;
    let payments = cx.app.payments().await?;
    let intent = payments
        .gateway
        .create_setup_intent(&customer, &key)
        .await?;
    Reply::ok(&SetupIntentCreated {
        client_secret: intent.client_secret,
    })
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachPaymentMethod {
    /// Stripe's `pm_…`.
    #[schemars(length(max = 255), pattern(r"^pm_[A-Za-z0-9_]*$"))]
    pub payment_method_id: String,
}

#[derive(Serialize, JsonSchema)]
pub struct PaymentMethodSaved {
    /// The plan status after: a trial moves to promo; otherwise only the method changed.
    pub status: PlanStatus,
}

pub async fn payment_method(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let state = visible_workspace_state(&cx, &workspace_id(&cx)?).await?;
    let body: AttachPaymentMethod = cx.body()?;
    if !body.payment_method_id.starts_with("pm_")
        || body.payment_method_id.len() > 255
        || !body
            .payment_method_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(ApiError::InvalidRequest(
            "`payment_method_id` must be a Stripe payment method id (`pm_…`)".into(),
        ));
    }
    if state.workspace.plan_status == PlanStatus::Deleted {
        return Err(ApiError::SubscriptionCanceled(
            "the workspace's plan has ended".into(),
        ));
    }
    let customer = customer_of(cx.app, &state.workspace).await?;
    let payments = cx.app.payments().await?;
    payments
        .gateway
        .attach_payment_method(&customer, &body.payment_method_id)
        .await?;
    let status = crate::billing::subscriptions::save_payment_method(
        cx.app,
        &state.workspace,
        &body.payment_method_id,
        Vec::new(),
    )
    .await?
    .unwrap_or(state.workspace.plan_status);
    Reply::ok(&PaymentMethodSaved { status })
}

pub async fn invoices(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let state = visible_workspace_state(&cx, &workspace_id(&cx)?).await?;
    let status = match cx.query("status") {
        None => None,
        Some(text) => Some(
            InvoiceStatus::parse(text)
                .filter(|s| *s != InvoiceStatus::Draft)
                .ok_or_else(|| {
                    ApiError::InvalidRequest(
                        "`status` must be one of paid, open, void, uncollectible".into(),
                    )
                })?,
        ),
    };
    let list = format!(
        "invoices:{}:status={}",
        state.workspace.id,
        status.map(InvoiceStatus::as_str).unwrap_or_default()
    );
    let page_request = cx.page_request(list).await?;
    let page = cx
        .app
        .store
        .list_invoices(
            &state.workspace.id,
            status,
            page_request.limit,
            page_request.start.clone(),
        )
        .await?;
    cx.list_reply(&page_request, page).await
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TopUp {
    /// Within the configured purchase limits (by default 500 to 1,000,000).
    #[schemars(schema_with = "crate::openapi::purchase_cents")]
    pub amount_cents: PositiveCents,
}

#[derive(Serialize, JsonSchema)]
pub struct TopUpProcessing {
    /// `processing`: the payment is not final yet; the credit arrives with Stripe's webhook.
    pub status: &'static str,
    pub payment_intent_id: String,
}

pub async fn top_up(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let state = visible_workspace_state(&cx, &workspace_id(&cx)?).await?;
    let workspace = &state.workspace;
    let body: TopUp = cx.body()?;
    validate_amount(cx.app, body.amount_cents.get())?;
    let profile = cx.app.store.billing_profile(&workspace.id).await?;
    let (Some(customer), Some(method)) = (profile.customer_id, profile.payment_method_id) else {
        return Err(ApiError::PaymentRequired(
            "no saved payment method: attach one first".into(),
        ));
    };
    let key = stripe_key(&cx, "top-up", workspace)?;
    let payments = cx.app.payments().await?;
    let metadata = PaymentMetadata::new(&workspace.id, PaymentKind::TopUp)
        .for_account(&workspace.default_billing_account_id)
        .to_stripe();
    let charge = payments
        .gateway
        .charge_off_session(&customer, &method, body.amount_cents.get(), &metadata, &key)
        .await?;
    match charge {
        Charge::Succeeded { payment_intent_id } => {
            match credit_payment(
                cx.app,
                workspace,
                PaymentCredit {
                    account: &workspace.default_billing_account_id,
                    kind: TransactionType::TopUp,
                    payment_intent_id: &payment_intent_id,
                    amount_cents: body.amount_cents.get(),
                    recharge_marker: None,
                },
                Vec::new(),
            )
            .await?
            {
                CreditOutcome::Credited(t) | CreditOutcome::Repeated(t) => Reply::ok(&t),
                CreditOutcome::Refused(refusal) => Err(refusal.into()),
                CreditOutcome::NotApplied => Err(ApiError::Internal(
                    "a top-up has no items of its own to refuse".into(),
                )),
            }
        }
        Charge::RequiresAction {
            payment_intent_id,
            client_secret,
        } => Err(ApiError::RequiresAction {
            message: "the bank asks the customer to authenticate this payment".into(),
            payment_intent_id,
            client_secret,
        }),
        Charge::Processing { payment_intent_id } => Reply::with_status(
            http::StatusCode::ACCEPTED,
            &TopUpProcessing {
                status: "processing",
                payment_intent_id,
            },
        ),
        Charge::Declined { message, .. } => Err(ApiError::PaymentRequired(format!(
            "the saved payment method was declined: {message}"
        ))),
    }
}

#[derive(Serialize, JsonSchema)]
pub struct RequiresActionView {
    pub requires_action: bool,
    pub payment_intent_id: Option<String>,
    pub client_secret: Option<String>,
    pub amount_cents: Option<i64>,
    pub since: Option<String>,
}

pub async fn recharge_requires_action(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let state = visible_workspace_state(&cx, &workspace_id(&cx)?).await?;
    let action: Option<RechargeAction> = cx
        .app
        .store
        .billing_profile(&state.workspace.id)
        .await?
        .recharge_action;
    Reply::ok(&RequiresActionView {
        requires_action: action.is_some(),
        payment_intent_id: action.as_ref().map(|a| a.payment_intent_id.clone()),
        client_secret: action.as_ref().map(|a| a.client_secret.clone()),
        amount_cents: action.as_ref().map(|a| a.amount_cents),
        since: action.map(|a| a.since),
    })
}

#[derive(Serialize, JsonSchema)]
pub struct NoCapReminder {
    pub show: bool,
    /// Why it shows (`auto_recharge_without_hard_cap`); `null` when it doesn't.
    pub reason: Option<String>,
}

pub async fn no_cap_reminder(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let state = visible_workspace_state(&cx, &workspace_id(&cx)?).await?;
    let workspace = &state.workspace;
    let month = Month::of(cx.now());
    let (profile, snapshot, account) = tokio::try_join!(
        cx.app.store.billing_profile(&workspace.id),
        cx.app.store.workspace_snapshot(workspace, month),
        cx.app
            .store
            .get_account(&workspace.default_billing_account_id),
    )?;
    let auto_recharge = account.is_some_and(|a| a.settings.auto_recharge.enabled);
    let unbounded = auto_recharge
        && snapshot.account.hard_cap_cents.is_none()
        && snapshot.budget.hard_cap_cents.is_none();
    let show = unbounded && profile.no_cap_reminder_dismissed_at.is_none();
    Reply::ok(&NoCapReminder {
        show,
        reason: show.then(|| "auto_recharge_without_hard_cap".to_owned()),
    })
}

#[derive(Serialize, JsonSchema)]
pub struct ReminderDismissed {
    pub show: bool,
    pub dismissed_at: String,
}

pub async fn dismiss_no_cap_reminder(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let state = visible_workspace_state(&cx, &workspace_id(&cx)?).await?;
    let dismissed_at = cx
        .app
        .store
        .dismiss_no_cap_reminder(&state.workspace.id, &rfc3339(cx.now()))
        .await?;
    Reply::ok(&ReminderDismissed {
        show: false,
        dismissed_at,
    })
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteLocal {
    pub checkout_session_id: String,
}

#[derive(Serialize, JsonSchema)]
pub struct CompletedLocally {
    pub checkout_session_id: String,
    /// `completed`, or `already_completed` when it was completed before (by either path).
    pub status: &'static str,
}

/// Completes an offline checkout through the code path of Stripe's
/// `checkout.session.completed`. Only the local stage with the offline gateway has it.
pub async fn complete_local(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let offline = cx.app.config.stage == Stage::Local
        && matches!(cx.app.payments().await?.gateway, Gateway::Offline(_));
    if !offline {
        return Err(ApiError::NotFound("no such route".into()));
    }
    let state = visible_workspace_state(&cx, &workspace_id(&cx)?).await?;
    let body: CompleteLocal = cx.body()?;
    let checkout = cx
        .app
        .store
        .get_checkout(&body.checkout_session_id)
        .await?
        .filter(|c| c.workspace_id == state.workspace.id)
        .ok_or_else(|| ApiError::not_found("checkout session"))?;
    // Made a customer as Stripe's checkout does (its later invoices name it).
    customer_of(cx.app, &state.workspace).await?;
    let local_suffix = checkout.id.trim_start_matches("cs_local_");
    let session = CheckoutSession {
        id: checkout.id.clone(),
        payment_status: Some(CheckoutPaymentStatus::Paid),
        amount_total: Some(checkout.amount_cents),
        payment_intent: Some(format!("pi_local_{local_suffix}")),
        subscription: match checkout.kind {
            CheckoutKind::Subscription => Some(format!("sub_local_{local_suffix}")),
            CheckoutKind::Credits => None,
        },
        // The card the offline checkout "collected": Stripe's test card.
        payment_method: Some("pm_card_visa".to_owned()),
    };
    let handled = checkout_completed(cx.app, &session, cx.now().unix_timestamp(), None).await?;
    if checkout.kind == CheckoutKind::Subscription && handled == Handled::Applied {
        // Outside a trial the subscription is charged at once, as Stripe's checkout does: its
        // first invoice, through the same path as Stripe's `invoice.paid`.
        crate::billing::invoices::bill_subscription_start(cx.app, &state.workspace.id).await?;
    }
    Reply::ok(&CompletedLocally {
        checkout_session_id: checkout.id,
        status: match handled {
            Handled::Applied => "completed",
            _ => "already_completed",
        },
    })
}
