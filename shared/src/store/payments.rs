//! What payments keep: each workspace's billing profile (its Stripe customer, saved method,
//! subscription mirror, reminders), checkout sessions, invoice mirrors and the claims that make
//! each Stripe event take effect once.

use super::{keys, n, s, Page, PageKey, Query, Store, StoreError, Transacted, NEW_ITEM};
use crate::domain::ids::{BillingAccountId, WorkspaceId};
use crate::domain::invoice::{Invoice, InvoiceStatus};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, TransactWriteItem};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A workspace's billing profile.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BillingProfile {
    #[serde(default)]
    pub customer_id: Option<String>,
    #[serde(default)]
    pub payment_method_id: Option<String>,
    #[serde(default)]
    pub subscription_id: Option<String>,
    /// Stripe's subscription status, as last mirrored.
    #[serde(default)]
    pub subscription_status: Option<String>,
    /// The `created` time of the event the subscription mirror comes from.
    #[serde(default)]
    pub subscription_event_at: Option<i64>,
    #[serde(default)]
    pub no_cap_reminder_dismissed_at: Option<String>,
    #[serde(default)]
    pub recharge_action: Option<RechargeAction>,
}

/// An auto-recharge that needs the customer (3-D Secure).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RechargeAction {
    pub payment_intent_id: String,
    pub client_secret: String,
    pub amount_cents: i64,
    pub since: String,
}

/// What a checkout session sells, kept from its creation until it completes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckoutKind {
    Credits,
    Subscription,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckoutRecord {
    pub id: String,
    pub workspace_id: WorkspaceId,
    pub billing_account_id: BillingAccountId,
    pub kind: CheckoutKind,
    pub amount_cents: i64,
    pub plan_id: Option<String>,
    pub created_at: String,
}

#[derive(Serialize, Deserialize)]
struct CheckoutItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    checkout: CheckoutRecord,
}

#[derive(Serialize, Deserialize)]
struct InvoiceItem {
    pk: String,
    sk: String,
    gsi1pk: String,
    gsi1sk: String,
    /// The mirror's position: the event time, then the status rank.
    event_at: i64,
    rank: i64,
    #[serde(flatten)]
    invoice: Invoice,
}

/// A payment's record (`PAYMENT#pi`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PaymentRecord {
    /// The account it credited, once it was.
    pub credited_account: Option<BillingAccountId>,
    pub early_refund: Option<EarlyRefund>,
}

/// A refund Stripe reported before the payment was credited: taken back when the credit lands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EarlyRefund {
    pub charge_id: String,
    /// Stripe's running total of the charge's refunds, as last reported.
    pub refunded_cents: i64,
}

/// How long a Stripe event id is remembered: Stripe retries for three days.
const EVENT_CLAIM_DAYS: i64 = 30;

impl Store {
    pub async fn billing_profile(
        &self,
        workspace: &WorkspaceId,
    ) -> Result<BillingProfile, StoreError> {
        let item: Option<BillingProfile> = self
            .get(
                keys::workspace(workspace.as_str()),
                keys::BILLING_PROFILE_SK,
            )
            .await?;
        Ok(item.unwrap_or_default())
    }

    /// An update of the workspace's billing profile, for a transaction.
    fn profile_update(
        &self,
        workspace: &WorkspaceId,
        expression: &str,
        values: &[(&str, AttributeValue)],
    ) -> Result<TransactWriteItem, StoreError> {
        self.update(
            keys::workspace(workspace.as_str()),
            keys::BILLING_PROFILE_SK,
            expression,
            None,
            values,
        )
    }

    /// The workspace a Stripe customer belongs to.
    pub async fn workspace_of_customer(
        &self,
        customer_id: &str,
    ) -> Result<Option<WorkspaceId>, StoreError> {
        #[derive(Deserialize)]
        struct CustomerItem {
            workspace_id: WorkspaceId,
        }
        let item: Option<CustomerItem> = self
            .get(keys::customer(customer_id), keys::CUSTOMER_SK)
            .await?;
        Ok(item.map(|i| i.workspace_id))
    }

    /// Records `customer_id` as the workspace's customer unless it has one; returns the one it
    /// has now (the first writer's), indexed by customer for the webhook.
    pub async fn claim_customer(
        &self,
        workspace: &WorkspaceId,
        customer_id: &str,
    ) -> Result<String, StoreError> {
        let winner = self
            .claim_customer_on_profile(workspace, customer_id)
            .await?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item(keys::PK, s(keys::customer(&winner)))
            .item(keys::SK, s(keys::CUSTOMER_SK))
            .item("workspace_id", s(workspace.to_string()))
            .send()
            .await
            .map_err(StoreError::sdk)?;
        Ok(winner)
    }

    async fn claim_customer_on_profile(
        &self,
        workspace: &WorkspaceId,
        customer_id: &str,
    ) -> Result<String, StoreError> {
        self.set_profile_once(workspace, "customer_id", customer_id)
            .await
    }

    /// Sets a profile attribute unless it is set; returns its value now (the first writer's).
    async fn set_profile_once(
        &self,
        workspace: &WorkspaceId,
        attribute: &str,
        value: &str,
    ) -> Result<String, StoreError> {
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(keys::PK, s(keys::workspace(workspace.as_str())))
            .key(keys::SK, s(keys::BILLING_PROFILE_SK))
            .update_expression("SET #attribute = if_not_exists(#attribute, :value)")
            .expression_attribute_names("#attribute", attribute)
            .expression_attribute_values(":value", s(value))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(StoreError::sdk)?;
        match output.attributes.as_ref().and_then(|a| a.get(attribute)) {
            Some(AttributeValue::S(value)) => Ok(value.clone()),
            _ => Err(StoreError::Corrupt(format!(
                "the profile's {attribute} is missing"
            ))),
        }
    }

    /// Saves the workspace's payment method (and marks its default account as having one),
    /// with `extra` items in the same transaction.
    pub async fn save_payment_method(
        &self,
        workspace: &WorkspaceId,
        account: &BillingAccountId,
        payment_method_id: &str,
        extra: Vec<TransactWriteItem>,
    ) -> Result<bool, StoreError> {
        let mut items = vec![
            self.profile_update(
                workspace,
                "SET payment_method_id = :method",
                &[(":method", s(payment_method_id))],
            )?,
            self.update(
                keys::account(account.as_str()),
                keys::ACCOUNT_SK,
                "SET has_payment_method = :yes",
                Some("attribute_exists(pk)"),
                &[(":yes", AttributeValue::Bool(true))],
            )?,
        ];
        items.extend(extra);
        Ok(matches!(self.transact(items).await?, Transacted::Committed))
    }

    /// Mirrors a subscription from an event created at `event_at`, unless a newer event's
    /// mirror is there already (`false`).
    pub async fn mirror_subscription(
        &self,
        workspace: &WorkspaceId,
        subscription_id: &str,
        status: &str,
        event_at: i64,
        extra: Vec<TransactWriteItem>,
    ) -> Result<bool, StoreError> {
        let mut items =
            vec![self.subscription_mirror(workspace, subscription_id, status, event_at)?];
        items.extend(extra);
        Ok(matches!(self.transact(items).await?, Transacted::Committed))
    }

    /// The subscription's mirror as of an event created at `event_at`, for a transaction:
    /// refused when a newer event's mirror is there already.
    pub fn subscription_mirror(
        &self,
        workspace: &WorkspaceId,
        subscription_id: &str,
        status: &str,
        event_at: i64,
    ) -> Result<TransactWriteItem, StoreError> {
        self.update(
            keys::workspace(workspace.as_str()),
            keys::BILLING_PROFILE_SK,
            "SET subscription_id = :id, subscription_status = :status, subscription_event_at = :at",
            Some("attribute_not_exists(subscription_event_at) OR subscription_event_at <= :at"),
            &[
                (":id", s(subscription_id)),
                (":status", s(status)),
                (":at", n(event_at)),
            ],
        )
    }

    /// Writes `items` in one transaction; `Some(index)`: the first item whose condition refused
    /// (and nothing was written).
    pub async fn write_claimed(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<Option<usize>, StoreError> {
        Ok(match self.transact(items).await? {
            Transacted::Committed => None,
            Transacted::Refused(reasons) => {
                Some(reasons.iter().position(|r| r.failed).unwrap_or(0))
            }
        })
    }

    /// Dismisses the reminder; a second dismissal keeps the first time.
    pub async fn dismiss_no_cap_reminder(
        &self,
        workspace: &WorkspaceId,
        at: &str,
    ) -> Result<String, StoreError> {
        self.set_profile_once(workspace, "no_cap_reminder_dismissed_at", at)
            .await
    }

    /// Records (or, with `None`, clears) an auto-recharge that needs the customer.
    pub async fn set_recharge_action(
        &self,
        workspace: &WorkspaceId,
        action: Option<&RechargeAction>,
    ) -> Result<(), StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(keys::PK, s(keys::workspace(workspace.as_str())))
            .key(keys::SK, s(keys::BILLING_PROFILE_SK));
        let update = match action {
            Some(action) => update
                .update_expression("SET recharge_action = :action")
                .expression_attribute_values(
                    ":action",
                    serde_dynamo::aws_sdk_dynamodb_1::to_attribute_value(action)
                        .map_err(StoreError::codec)?,
                ),
            None => update.update_expression("REMOVE recharge_action"),
        };
        update.send().await.map_err(StoreError::sdk)?;
        Ok(())
    }

    /// Records an auto-recharge waiting for the customer, with `extra` (the event's claim), unless
    /// the payment was credited already (`credit_claim` exists): then nothing is written.
    pub async fn record_recharge_action(
        &self,
        workspace: &WorkspaceId,
        action: &RechargeAction,
        credit_claim: &str,
        extra: Vec<TransactWriteItem>,
    ) -> Result<bool, StoreError> {
        let mut items = vec![
            self.profile_update(
                workspace,
                "SET recharge_action = :action",
                &[(
                    ":action",
                    serde_dynamo::aws_sdk_dynamodb_1::to_attribute_value(action)
                        .map_err(StoreError::codec)?,
                )],
            )?,
            self.check(
                format!("CREDIT#{credit_claim}"),
                keys::CREDIT_CLAIM_SK,
                "attribute_not_exists(pk)",
                &[],
            )?,
        ];
        items.extend(extra);
        Ok(matches!(self.transact(items).await?, Transacted::Committed))
    }

    /// Records which account a payment credited, so its refunds are taken from that account
    /// (in the same write as the credit), if the refund remembered before it is still `early`
    /// (what the credit took back): a refund remembered meanwhile makes the credit decide again.
    pub(crate) fn payment_account(
        &self,
        payment_intent_id: &str,
        account: &BillingAccountId,
        early: Option<&EarlyRefund>,
    ) -> Result<TransactWriteItem, StoreError> {
        let account = (":account", s(account.to_string()));
        match early {
            None => self.update(
                keys::payment(payment_intent_id),
                keys::PAYMENT_SK,
                "SET billing_account_id = :account",
                Some("attribute_not_exists(early_refund_cents)"),
                &[account],
            ),
            Some(early) => self.update(
                keys::payment(payment_intent_id),
                keys::PAYMENT_SK,
                "SET billing_account_id = :account",
                Some("early_refund_cents = :seen"),
                &[account, (":seen", n(early.refunded_cents))],
            ),
        }
    }

    /// What is known of a payment: the account it credited, and a refund Stripe reported
    /// before that.
    pub async fn payment_record(
        &self,
        payment_intent_id: &str,
    ) -> Result<PaymentRecord, StoreError> {
        #[derive(Deserialize)]
        struct Payment {
            #[serde(default)]
            billing_account_id: Option<BillingAccountId>,
            #[serde(default)]
            early_refund_charge_id: Option<String>,
            #[serde(default)]
            early_refund_cents: Option<i64>,
        }
        let item: Option<Payment> = self
            .get(keys::payment(payment_intent_id), keys::PAYMENT_SK)
            .await?;
        Ok(item.map_or_else(PaymentRecord::default, |p| PaymentRecord {
            credited_account: p.billing_account_id,
            early_refund: match (p.early_refund_charge_id, p.early_refund_cents) {
                (Some(charge_id), Some(refunded_cents)) => Some(EarlyRefund {
                    charge_id,
                    refunded_cents,
                }),
                _ => None,
            },
        }))
    }

    /// The account a payment credited, if it was recorded.
    pub async fn account_of_payment(
        &self,
        payment_intent_id: &str,
    ) -> Result<Option<BillingAccountId>, StoreError> {
        Ok(self
            .payment_record(payment_intent_id)
            .await?
            .credited_account)
    }

    /// Remembers that Stripe reports `refund.refunded_cents` refunded (its running total) of a
    /// payment not credited yet, moving it from `before`: only while the payment is still not
    /// credited and the total still is `before`, so the credit takes it back exactly once.
    pub fn remember_refund(
        &self,
        payment_intent_id: &str,
        before: Option<&EarlyRefund>,
        refund: &EarlyRefund,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut values = vec![
            (":charge", s(refund.charge_id.as_str())),
            (":total", n(refund.refunded_cents)),
        ];
        let condition = match before {
            None => "attribute_not_exists(billing_account_id) AND attribute_not_exists(early_refund_cents)",
            Some(before) => {
                values.push((":before", n(before.refunded_cents)));
                "attribute_not_exists(billing_account_id) AND early_refund_cents = :before"
            }
        };
        self.update(
            keys::payment(payment_intent_id),
            keys::PAYMENT_SK,
            "SET early_refund_charge_id = :charge, early_refund_cents = :total",
            Some(condition),
            &values,
        )
    }

    /// What was taken back for a charge's refunds so far, in cents.
    pub async fn refunded_so_far(&self, charge_id: &str) -> Result<i64, StoreError> {
        #[derive(Deserialize)]
        struct Progress {
            refunded_cents: i64,
        }
        let item: Option<Progress> = self
            .get(keys::charge_refunds(charge_id), keys::CHARGE_REFUNDS_SK)
            .await?;
        Ok(item.map_or(0, |p| p.refunded_cents))
    }

    /// Moves a charge's refunded total from `before` to `total`, only if it still is `before`.
    pub fn refund_progress(
        &self,
        charge_id: &str,
        before: i64,
        total: i64,
    ) -> Result<TransactWriteItem, StoreError> {
        let (condition, values) = if before == 0 {
            ("attribute_not_exists(pk)", vec![(":total", n(total))])
        } else {
            (
                "refunded_cents = :before",
                vec![(":total", n(total)), (":before", n(before))],
            )
        };
        self.update(
            keys::charge_refunds(charge_id),
            keys::CHARGE_REFUNDS_SK,
            "SET refunded_cents = :total",
            Some(condition),
            &values,
        )
    }

    pub async fn put_checkout(&self, checkout: &CheckoutRecord) -> Result<(), StoreError> {
        let item = self.put(
            CheckoutItem {
                pk: keys::checkout(&checkout.id),
                sk: keys::CHECKOUT_SK.to_owned(),
                checkout: checkout.clone(),
            },
            None,
        )?;
        self.transact(vec![item]).await?;
        Ok(())
    }

    pub async fn get_checkout(&self, id: &str) -> Result<Option<CheckoutRecord>, StoreError> {
        let item: Option<CheckoutItem> = self.get(keys::checkout(id), keys::CHECKOUT_SK).await?;
        Ok(item.map(|i| i.checkout))
    }

    /// The claim of a Stripe event: in the same transaction as its effect, so the effect
    /// happens once however often the event is delivered.
    pub fn event_claim(
        &self,
        event_id: &str,
        now_epoch: i64,
    ) -> Result<TransactWriteItem, StoreError> {
        self.update(
            keys::stripe_event(event_id),
            keys::STRIPE_EVENT_SK,
            &format!("SET {} = :ttl", keys::TTL_ATTRIBUTE),
            Some(NEW_ITEM),
            &[(":ttl", n(now_epoch + EVENT_CLAIM_DAYS * 86_400))],
        )
    }

    pub async fn event_claimed(&self, event_id: &str) -> Result<bool, StoreError> {
        let item: Option<serde_json::Value> = self
            .get(keys::stripe_event(event_id), keys::STRIPE_EVENT_SK)
            .await?;
        Ok(item.is_some())
    }

    /// Claims an event that has no other effect; `false` if it was claimed before.
    pub async fn claim_event(&self, claim: TransactWriteItem) -> Result<bool, StoreError> {
        self.claim_events(vec![claim]).await
    }

    /// Claims an event together with what it records (billing events); `false` if it was
    /// claimed before, and then nothing is written.
    pub async fn claim_events(&self, items: Vec<TransactWriteItem>) -> Result<bool, StoreError> {
        Ok(matches!(self.transact(items).await?, Transacted::Committed))
    }

    /// The invoice's mirror as of an event created at `event_at`, for a transaction: refused
    /// when the mirror is already further along (a later event, or at the same second a
    /// further status).
    pub fn invoice_mirror(
        &self,
        invoice: &Invoice,
        event_at: i64,
    ) -> Result<TransactWriteItem, StoreError> {
        let rank = invoice.status.rank();
        let created_epoch = time::OffsetDateTime::parse(
            &invoice.created_at,
            &time::format_description::well_known::Rfc3339,
        )
        .map(|t| t.unix_timestamp())
        .unwrap_or(0);
        let item = InvoiceItem {
            pk: keys::invoice(&invoice.id),
            sk: keys::INVOICE_SK.to_owned(),
            gsi1pk: keys::workspace_invoices(invoice.workspace_id.as_str()),
            gsi1sk: format!("{created_epoch:012}#{}", invoice.id),
            event_at,
            rank,
            invoice: invoice.clone(),
        };
        let put = aws_sdk_dynamodb::types::Put::builder()
            .table_name(&self.table)
            .set_item(Some(super::to_item(&item)?))
            .condition_expression(
                "attribute_not_exists(pk) OR event_at < :at OR (event_at = :at AND #rank < :rank)",
            )
            .expression_attribute_names("#rank", "rank")
            .expression_attribute_values(":at", n(event_at))
            .expression_attribute_values(":rank", n(rank))
            .build()
            .map_err(StoreError::build)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The workspace's newest invoice still open (unpaid), if any.
    pub async fn latest_open_invoice(
        &self,
        workspace: &WorkspaceId,
    ) -> Result<Option<Invoice>, StoreError> {
        let page = self
            .list_invoices(workspace, Some(InvoiceStatus::Open), 100, None)
            .await?;
        Ok(page.items.into_iter().next())
    }

    /// A workspace's invoices, newest first, optionally of one status.
    pub async fn list_invoices(
        &self,
        workspace: &WorkspaceId,
        status: Option<InvoiceStatus>,
        limit: usize,
        start: Option<PageKey>,
    ) -> Result<Page<Invoice>, StoreError> {
        let mut query = Query::partition(
            Some(keys::GSI1),
            keys::workspace_invoices(workspace.as_str()),
        );
        if let Some(status) = status {
            query = query.with_equal("status", status.as_str().to_owned());
        }
        let page: Page<InvoiceItem> = self.query_page(query, limit, start).await?;
        Ok(Page {
            items: page.items.into_iter().map(|i| i.invoice).collect(),
            next: page.next,
        })
    }
}
