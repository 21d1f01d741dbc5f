//! `POST /v1/workspaces/{workspaceId}/billing/checkout/x402`: credits bought with an x402
//! `exact` payment (USDC, EIP-3009). Without a payment header: the 402 that says what to pay.
//! With one: its checks in the contract's order, then the facilitator (offline: the checks and
//! the credit write are the settlement; deployed: `/verify`, a pending claim, `/settle`), then
//! one transaction that claims the authorization, writes the `purchase` and its
//! `credits.purchased` event, so an authorization credits once however often it comes.

use super::access::{visible_workspace_state, workspace_id};
use super::payments::{validate_amount, BuyX402};
use crate::app::App;
use crate::clock::{rfc3339, unix_millis};
use crate::config::Stage;
use crate::domain::events::{EventPayload, PurchaseData, PurchaseMethod};
use crate::domain::ids::TransactionId;
use crate::domain::transaction::{Transaction, TransactionType};
use crate::http::{ApiError, Ctx, Reply};
use crate::store::credits::CreditOutcome;
use crate::store::x402::ClaimState;
use crate::x402::evm::hex;
use crate::x402::facilitator::{Facilitator, FacilitatorError, Settlement};
use crate::x402::payload::{Payment, Version};
use crate::x402::requirements::Offer;
use crate::x402::{
    Refusal, PAYMENT_REQUIRED_HEADER, PAYMENT_RESPONSE_HEADER, PAYMENT_SIGNATURE_HEADER,
    X_PAYMENT_HEADER, X_PAYMENT_RESPONSE_HEADER,
};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use http::StatusCode;
use serde_json::{json, Value};

/// A pending claim this old (its request wrote it before `/settle` and never finished) may
/// hide a settled payment that was never credited: it is logged for reconciliation.
pub const STALE_PENDING_SECS: i64 = 15 * 60;

pub async fn checkout(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let state = visible_workspace_state(&cx, &workspace_id(&cx)?).await?;
    let workspace = &state.workspace;
    let body: BuyX402 = cx.body()?;
    let cents = body.amount_cents.get();
    validate_amount(cx.app, cents)?;
    let config = &cx.app.config.x402;
    let offer = Offer::new(config, cents, resource_url(&cx), workspace.id.as_str());
    let Some((version, header)) = payment_header(&cx) else {
        return Ok(payment_required(&offer, None));
    };
    let payment = Payment::parse(version, header.as_bytes())
        .map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
    let now = cx.now();
    let now_epoch = now.unix_timestamp();
    let facilitator = cx.app.x402_facilitator().await?;
    let offline = matches!(facilitator, Facilitator::Offline);
    if let Err(refusal) = payment.check(config, &offer, now_epoch, offline) {
        return Ok(payment_required(&offer, Some((version, &refusal))));
    }
    let claim_key = payment.claim_key(config);
    if let Some(claim) = cx.app.store.x402_claim(&claim_key).await? {
        if claim.state == ClaimState::Pending
            && claim.claimed_epoch <= now_epoch - STALE_PENDING_SECS
        {
            log_stale(&claim_key, claim.claimed_epoch);
        }
        return Ok(payment_required(
            &offer,
            Some((version, &Refusal::NonceAlreadyUsed)),
        ));
    }
    let owner = crate::domain::ids::time_ordered_suffix(unix_millis(now));
    let mut payer = payment.authorization.from.checksummed();
    let (reference, pending_first) = match facilitator {
        Facilitator::Offline => (format!("0x{}", hex(&payment.digest(config))), false),
        Facilitator::Http(http) => {
            let requirements = match version {
                Version::V2 => serde_json::to_value(&offer.requirement)
                    .map_err(|e| ApiError::Internal(e.to_string()))?,
                Version::V1 => offer.v1_requirement(),
            };
            let verified = http
                .verify(&payment, &requirements)
                .await
                .map_err(provider_error)?;
            if !verified.is_valid {
                let reason = verified
                    .invalid_reason
                    .unwrap_or_else(|| "invalid_payment".into());
                return Ok(payment_required(
                    &offer,
                    Some((version, &Refusal::Facilitator(reason))),
                ));
            }
            if !cx
                .app
                .store
                .claim_x402_pending(&claim_key, &owner, now_epoch)
                .await?
            {
                return Ok(payment_required(
                    &offer,
                    Some((version, &Refusal::NonceAlreadyUsed)),
                ));
            }
            // From here the money may move on chain: a failure leaves the pending claim for
            // reconciliation (it is never released unless the facilitator says it failed).
            let settlement = http
                .settle(&payment, &requirements)
                .await
                .map_err(provider_error)?;
            if !settlement.success {
                cx.app
                    .store
                    .release_x402_pending(&claim_key, &owner)
                    .await?;
                return Ok(settlement_failed(&offer, version, &settlement, &payer));
            }
            if let Some(settled_by) = settlement.payer.filter(|p| !p.is_empty()) {
                payer = settled_by;
            }
            (settlement.transaction, true)
        }
    };
    let created_at = rfc3339(now);
    let transaction = Transaction {
        id: TransactionId::generate(unix_millis(now)),
        billing_account_id: workspace.default_billing_account_id.clone(),
        workspace_id: Some(workspace.id.clone()),
        kind: TransactionType::Purchase,
        amount_cents: cents,
        balance_after_cents: 0,
        description: "credits purchased (x402)".into(),
        category: None,
        agent_id: None,
        run_id: None,
        reference: Some(reference.clone()),
        created_at: created_at.clone(),
    };
    let store = &cx.app.store;
    let extra = vec![
        store.x402_settled_put(
            &claim_key,
            &owner,
            pending_first,
            now_epoch,
            &reference,
            &payer,
        )?,
        store.outbox_put(
            EventPayload::CreditsPurchased(PurchaseData {
                amount_cents: cents,
                method: PurchaseMethod::X402,
                reference: reference.clone(),
                payer: Some(payer.clone()),
            }),
            Some(&workspace.id),
            &workspace.default_billing_account_id,
            &created_at,
            unix_millis(now),
        )?,
    ];
    match store.apply_credit(&transaction, None, extra).await? {
        CreditOutcome::Credited(credited) | CreditOutcome::Repeated(credited) => {
            let (name, network) = match version {
                Version::V2 => (PAYMENT_RESPONSE_HEADER, config.network.caip2()),
                Version::V1 => (X_PAYMENT_RESPONSE_HEADER, offer.v1_network().to_owned()),
            };
            let settled = json!({
                "success": true, "transaction": reference, "network": network,
                "payer": payer, "amount": offer.requirement.amount,
            });
            Ok(Reply::ok(&credited)?.with_header(name, BASE64.encode(settled.to_string())))
        }
        // Another request claimed the same authorization first.
        CreditOutcome::NotApplied if !pending_first => Ok(payment_required(
            &offer,
            Some((version, &Refusal::NonceAlreadyUsed)),
        )),
        CreditOutcome::NotApplied => Err(ApiError::Internal(format!(
            "x402 claim {claim_key} settled ({reference}) but its pending claim was lost; reconcile"
        ))),
        CreditOutcome::Refused(refusal) => Err(refusal.into()),
    }
}

fn provider_error(error: FacilitatorError) -> ApiError {
    ApiError::PaymentProviderError(error.to_string())
}

/// The payment header and its version: `PAYMENT-SIGNATURE` (v2) before `X-PAYMENT` (v1).
fn payment_header(cx: &Ctx<'_>) -> Option<(Version, String)> {
    [
        (PAYMENT_SIGNATURE_HEADER, Version::V2),
        (X_PAYMENT_HEADER, Version::V1),
    ]
    .into_iter()
    .find_map(|(name, version)| {
        cx.req
            .headers
            .get(name)
            .map(|v| (version, String::from_utf8_lossy(v.as_bytes()).into_owned()))
    })
}

/// This request's absolute URL: what the payment is for.
fn resource_url(cx: &Ctx<'_>) -> String {
    let host = cx
        .req
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = match cx.app.config.stage {
        Stage::Local => "http",
        Stage::Deployed(_) => "https",
    };
    format!("{scheme}://{host}{}", cx.req.path)
}

/// The 402: `PAYMENT-REQUIRED` (v2) and the v1 body, with the refusal's reason (or the missing
/// header). Never kept under an `Idempotency-Key`: the paid retry carries the same key.
fn payment_required(offer: &Offer, refused: Option<(Version, &Refusal)>) -> Reply {
    let (v2_error, v1_error) = match refused {
        None => (
            "PAYMENT-SIGNATURE header is required".to_owned(),
            "X-PAYMENT header is required".to_owned(),
        ),
        Some((_, refusal)) => (refusal.reason().to_owned(), refusal.reason().to_owned()),
    };
    Reply::json(
        StatusCode::PAYMENT_REQUIRED,
        offer.payment_required_v1(&v1_error),
    )
    .with_header(
        PAYMENT_REQUIRED_HEADER,
        BASE64.encode(offer.payment_required_v2(&v2_error).to_string()),
    )
    .not_final()
}

/// The facilitator could not settle: the 402 with its reason and a failed `PAYMENT-RESPONSE`.
fn settlement_failed(
    offer: &Offer,
    version: Version,
    settlement: &Settlement,
    payer: &str,
) -> Reply {
    let reason = settlement
        .error_reason
        .clone()
        .unwrap_or_else(|| "settlement_failed".into());
    let (name, network) = match version {
        Version::V2 => (PAYMENT_RESPONSE_HEADER, offer.requirement.network.clone()),
        Version::V1 => (X_PAYMENT_RESPONSE_HEADER, offer.v1_network().to_owned()),
    };
    let response: Value = json!({
        "success": false, "errorReason": reason, "transaction": "",
        "network": network, "payer": settlement.payer.clone().unwrap_or_else(|| payer.to_owned()),
    });
    payment_required(offer, Some((version, &Refusal::Facilitator(reason))))
        .with_header(name, BASE64.encode(response.to_string()))
}

fn log_stale(key: &str, claimed_epoch: i64) {
    tracing::warn!(
        claim = key,
        claimed_epoch,
        "x402 claim pending for over 15 minutes: reconcile it with the facilitator's settlement (credit it or release it)"
    );
}

/// The scheduled half of reconciliation (run by `auto-recharge-retry`): logs every claim left
/// pending for over 15 minutes. Returns how many.
pub async fn log_stale_claims(app: &App) -> Result<usize, ApiError> {
    let now = app.clock.now().unix_timestamp();
    let stale = app
        .store
        .stale_x402_claims(now - STALE_PENDING_SECS, 100)
        .await?;
    for claim in &stale {
        log_stale(&claim.key, claim.claimed_epoch);
    }
    Ok(stale.len())
}
