//! Billing accounts and their ledger.

use super::{keys, n, s, Page, PageKey, Query, Store, StoreError, Transacted, NEW_ITEM};
use crate::domain::account::{AccountSettings, BillingAccount};
use crate::domain::ids::{BillingAccountId, UserId, WorkspaceId};
use crate::domain::transaction::{Transaction, TransactionType};
use serde::{Deserialize, Serialize};

/// An account as stored: the balance and holds are the truth, `available_cents` is derived.
#[derive(Serialize, Deserialize)]
pub(crate) struct AccountItem {
    pk: String,
    sk: String,
    gsi1pk: String,
    gsi1sk: String,
    id: BillingAccountId,
    name: String,
    owner_user_id: UserId,
    is_user_default: bool,
    currency: String,
    balance_cents: i64,
    held_cents: i64,
    has_payment_method: bool,
    settings: AccountSettings,
    created_at: String,
    /// Bumped by every change of `name` or `settings`, so concurrent PATCHes don't lose updates.
    settings_version: i64,
    /// Bumped by every change of the money fields; ledger writes are conditional on it.
    pub(crate) ledger_version: i64,
    /// The month (`YYYY-MM`) that `spent_month_cents` and `credited_month_cents` count.
    pub(crate) spend_month: String,
    pub(crate) spent_month_cents: i64,
    pub(crate) credited_month_cents: i64,
}

impl AccountItem {
    pub(crate) fn new(account: &BillingAccount) -> Self {
        Self {
            pk: keys::account(account.id.as_str()),
            sk: keys::ACCOUNT_SK.to_owned(),
            gsi1pk: keys::owner(account.owner_user_id.as_str()),
            gsi1sk: keys::account(account.id.as_str()),
            id: account.id.clone(),
            name: account.name.clone(),
            owner_user_id: account.owner_user_id.clone(),
            is_user_default: account.is_user_default,
            currency: account.currency.clone(),
            balance_cents: account.balance_cents,
            held_cents: account.held_cents,
            has_payment_method: account.has_payment_method,
            settings: account.settings.clone(),
            created_at: account.created_at.clone(),
            settings_version: 0,
            ledger_version: 0,
            spend_month: String::new(),
            spent_month_cents: 0,
            credited_month_cents: 0,
        }
    }

    /// The account as opened with `credited` cents in `month` (the introductory grant).
    pub(crate) fn opened_with(mut self, month: &str, credited: i64) -> Self {
        self.spend_month = month.to_owned();
        self.credited_month_cents = credited;
        self
    }

    fn into_account(self) -> (BillingAccount, i64) {
        let account = BillingAccount {
            id: self.id,
            name: self.name,
            owner_user_id: self.owner_user_id,
            is_user_default: self.is_user_default,
            currency: self.currency,
            balance_cents: self.balance_cents,
            held_cents: self.held_cents,
            available_cents: self.balance_cents - self.held_cents,
            has_payment_method: self.has_payment_method,
            settings: self.settings,
            created_at: self.created_at,
        };
        (account, self.settings_version)
    }
}

/// A ledger entry as stored, under its account, and indexed by workspace when it has one.
#[derive(Serialize, Deserialize)]
pub(crate) struct TransactionItem {
    pk: String,
    sk: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    gsi1pk: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    gsi1sk: Option<String>,
    #[serde(flatten)]
    transaction: Transaction,
}

impl TransactionItem {
    pub(crate) fn new(transaction: &Transaction) -> Self {
        let sk = keys::transaction_sk(transaction.id.as_str());
        let workspace = transaction.workspace_id.as_ref();
        Self {
            pk: keys::account(transaction.billing_account_id.as_str()),
            gsi1pk: workspace.map(|w| keys::workspace_transactions(w.as_str())),
            gsi1sk: workspace.map(|_| sk.clone()),
            sk,
            transaction: transaction.clone(),
        }
    }
}

/// An account read together with its settings version, for a read-modify-write.
pub struct VersionedAccount {
    pub account: BillingAccount,
    pub settings_version: i64,
}

/// Filters on an account's transaction listing.
#[derive(Default, Clone)]
pub struct TransactionFilter {
    pub kind: Option<TransactionType>,
    pub workspace_id: Option<WorkspaceId>,
}

impl Store {
    pub async fn get_account(
        &self,
        id: &BillingAccountId,
    ) -> Result<Option<BillingAccount>, StoreError> {
        Ok(self
            .get_account_versioned(id)
            .await?
            .map(|versioned| versioned.account))
    }

    pub async fn get_account_versioned(
        &self,
        id: &BillingAccountId,
    ) -> Result<Option<VersionedAccount>, StoreError> {
        let item: Option<AccountItem> = self
            .get(keys::account(id.as_str()), keys::ACCOUNT_SK)
            .await?;
        Ok(item.map(|item| {
            let (account, settings_version) = item.into_account();
            VersionedAccount {
                account,
                settings_version,
            }
        }))
    }

    pub async fn get_accounts(
        &self,
        ids: &[BillingAccountId],
    ) -> Result<Vec<BillingAccount>, StoreError> {
        let item_keys = ids
            .iter()
            .map(|id| (keys::account(id.as_str()), keys::ACCOUNT_SK.to_owned()))
            .collect();
        let items: Vec<AccountItem> = self.get_many(item_keys).await?;
        Ok(items.into_iter().map(|i| i.into_account().0).collect())
    }

    /// The owner's accounts, newest first.
    pub async fn list_accounts_of(
        &self,
        owner: &UserId,
        limit: usize,
        start: Option<PageKey>,
    ) -> Result<Page<BillingAccount>, StoreError> {
        let query = Query::prefix(Some(keys::GSI1), keys::owner(owner.as_str()), "ACCOUNT#");
        let page: Page<AccountItem> = self.query_page(query, limit, start).await?;
        Ok(Page {
            items: page.items.into_iter().map(|i| i.into_account().0).collect(),
            next: page.next,
        })
    }

    /// Writes `name` and `settings` if nobody changed them since `expected_version`.
    /// `false` means someone did: read again and re-apply.
    pub async fn update_account_settings(
        &self,
        account: &BillingAccount,
        expected_version: i64,
    ) -> Result<bool, StoreError> {
        let settings = serde_dynamo::aws_sdk_dynamodb_1::to_attribute_value(&account.settings)
            .map_err(StoreError::codec)?;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(keys::PK, s(keys::account(account.id.as_str())))
            .key(keys::SK, s(keys::ACCOUNT_SK))
            // The ledger version moves too: caps are in the settings, and a debit decided on
            // remembered caps must fail its condition and be decided again on these.
            .update_expression(
                "SET #name = :name, settings = :settings, settings_version = :next, \
                 ledger_version = ledger_version + :one",
            )
            .condition_expression("settings_version = :expected")
            .expression_attribute_names("#name", "name")
            .expression_attribute_values(":name", s(account.name.clone()))
            .expression_attribute_values(":settings", settings)
            .expression_attribute_values(":expected", n(expected_version))
            .expression_attribute_values(":next", n(expected_version + 1))
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        super::update_applied(result)
    }

    /// An account's ledger, newest first.
    pub async fn list_transactions(
        &self,
        account: &BillingAccountId,
        filter: &TransactionFilter,
        limit: usize,
        start: Option<PageKey>,
    ) -> Result<Page<Transaction>, StoreError> {
        let mut query = Query::prefix(
            None,
            keys::account(account.as_str()),
            keys::TRANSACTION_SK_PREFIX,
        );
        if let Some(kind) = filter.kind {
            query = query.with_equal("type", kind.as_str().to_owned());
        }
        if let Some(workspace) = &filter.workspace_id {
            query = query.with_equal("workspace_id", workspace.to_string());
        }
        let page: Page<TransactionItem> = self.query_page(query, limit, start).await?;
        Ok(Page {
            items: page.items.into_iter().map(|i| i.transaction).collect(),
            next: page.next,
        })
    }

    /// A workspace's ledger entries (on whichever accounts), newest first.
    pub async fn list_workspace_transactions(
        &self,
        workspace: &WorkspaceId,
        kind: Option<TransactionType>,
        limit: usize,
        start: Option<PageKey>,
    ) -> Result<Page<Transaction>, StoreError> {
        let mut query = Query::prefix(
            Some(keys::GSI1),
            keys::workspace_transactions(workspace.as_str()),
            keys::TRANSACTION_SK_PREFIX,
        );
        if let Some(kind) = kind {
            query = query.with_equal("type", kind.as_str().to_owned());
        }
        let page: Page<TransactionItem> = self.query_page(query, limit, start).await?;
        Ok(Page {
            items: page.items.into_iter().map(|i| i.transaction).collect(),
            next: page.next,
        })
    }

    /// Opens `account` for the owner of `workspace` and links it there (not as the default).
    /// `false` when the workspace is gone.
    pub async fn create_linked_account(
        &self,
        workspace: &WorkspaceId,
        account: &BillingAccount,
        linked_at: &str,
    ) -> Result<bool, StoreError> {
        let items = vec![
            self.put(AccountItem::new(account), Some(NEW_ITEM))?,
            self.put(
                super::workspaces::LinkItem::new(workspace, &account.id, linked_at),
                Some(NEW_ITEM),
            )?,
            self.workspace_exists(workspace)?,
        ];
        Ok(matches!(self.transact(items).await?, Transacted::Committed))
    }
}
