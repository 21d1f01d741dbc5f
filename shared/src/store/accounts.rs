//! Billing accounts and their ledger.

use super::{keys, n, s, Item, Page, PageKey, Query, Store, StoreError, Transacted, NEW_ITEM};
use crate::domain::account::{AccountSettings, BillingAccount};
use crate::domain::calendar::Month;
use crate::domain::ids::{BillingAccountId, UserId, WorkspaceId};
use crate::domain::transaction::{Transaction, TransactionType};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};

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
    pub(crate) fn opened_with(mut self, month: Month, credited: i64) -> Self {
        self.spend_month = month.to_string();
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
    /// The workspace's history (when it has a workspace).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    gsi1pk: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    gsi1sk: Option<String>,
    /// The account's history; absent on entries written before histories were spread (those
    /// are in the account's own partition).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    gsi3pk: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    gsi3sk: Option<String>,
    #[serde(flatten)]
    transaction: Transaction,
}

impl TransactionItem {
    /// The transaction in its own item, listed in its account's and workspace's histories.
    pub(crate) fn new(transaction: &Transaction) -> Self {
        Self::at(
            keys::transaction(transaction.id.as_str()),
            keys::TRANSACTION_SK.to_owned(),
            transaction,
        )
    }

    /// The transaction's attributes and history keys on the item keyed `pk`/`sk` (a usage
    /// event's claim: one item is both).
    pub(crate) fn at(pk: String, sk: String, transaction: &Transaction) -> Self {
        let id = transaction.id.as_str();
        let history_sk = keys::transaction_sk(id);
        let workspace = transaction.workspace_id.as_ref();
        Self {
            pk,
            sk,
            gsi1pk: workspace.map(|w| keys::History::Workspace(w.as_str()).partition(id)),
            gsi1sk: workspace.map(|_| history_sk.clone()),
            gsi3pk: Some(
                keys::History::Account(transaction.billing_account_id.as_str()).partition(id),
            ),
            gsi3sk: Some(history_sk),
            transaction: transaction.clone(),
        }
    }
}

/// One partition of a history being merged: what was read of it and not yet merged.
struct HistoryPartition {
    query: Query,
    buffer: VecDeque<Transaction>,
    /// Where its next read starts.
    next: Option<Item>,
    done: bool,
}

impl HistoryPartition {
    /// Reads its next entries (at least one, unless it has no more).
    async fn refill(&mut self, store: &Store, chunk: usize) -> Result<(), StoreError> {
        while self.buffer.is_empty() && !self.done {
            let (items, next) = store
                .query_once(&self.query, self.next.take(), chunk)
                .await?;
            for item in items {
                let entry: TransactionItem =
                    serde_dynamo::aws_sdk_dynamodb_1::from_item(item).map_err(StoreError::codec)?;
                self.buffer.push_back(entry.transaction);
            }
            self.done = next.is_none();
            self.next = next;
        }
        Ok(())
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
        let mut equal = Vec::new();
        if let Some(kind) = filter.kind {
            equal.push(("type", kind.as_str().to_owned()));
        }
        if let Some(workspace) = &filter.workspace_id {
            equal.push(("workspace_id", workspace.to_string()));
        }
        self.history_page(
            keys::History::Account(account.as_str()),
            &equal,
            limit,
            start,
        )
        .await
    }

    /// A workspace's ledger entries (on whichever accounts), newest first.
    pub async fn list_workspace_transactions(
        &self,
        workspace: &WorkspaceId,
        kind: Option<TransactionType>,
        limit: usize,
        start: Option<PageKey>,
    ) -> Result<Page<Transaction>, StoreError> {
        let equal: Vec<_> = kind
            .map(|kind| ("type", kind.as_str().to_owned()))
            .into_iter()
            .collect();
        self.history_page(
            keys::History::Workspace(workspace.as_str()),
            &equal,
            limit,
            start,
        )
        .await
    }

    /// A page of `history`, newest first: a merge of its partitions by transaction id (which
    /// orders by time), each read from the cursor on in small chunks, as far as the page needs.
    /// The cursor is the last entry's history sort key (`sk`), as it was before histories were
    /// spread, so a cursor issued then still pages on.
    async fn history_page(
        &self,
        history: keys::History<'_>,
        equal: &[(&str, String)],
        limit: usize,
        start: Option<PageKey>,
    ) -> Result<Page<Transaction>, StoreError> {
        let before = start.and_then(|mut key| key.remove(keys::SK));
        let (_, index_pk, index_sk) = history.index();
        let mut partitions: Vec<HistoryPartition> = history
            .partitions()
            .into_iter()
            .map(|(index, pk)| {
                let (pk_name, sk_name) = match index {
                    Some(_) => (index_pk, index_sk),
                    None => (keys::PK, keys::SK),
                };
                let mut query = Query {
                    index,
                    key_condition: format!("{pk_name} = :pk AND begins_with({sk_name}, :sk)"),
                    filter: None,
                    values: HashMap::from([
                        (":pk".to_owned(), s(pk)),
                        (":sk".to_owned(), s(keys::TRANSACTION_SK_PREFIX)),
                    ]),
                    names: HashMap::new(),
                };
                if let Some(before) = &before {
                    // Inclusive: the cursor's own entry is passed over in the merge.
                    query.key_condition =
                        format!("{pk_name} = :pk AND {sk_name} BETWEEN :sk AND :before");
                    query.values.insert(":before".to_owned(), s(before.clone()));
                }
                for (attribute, value) in equal {
                    query = query.with_equal(attribute, value.clone());
                }
                HistoryPartition {
                    query,
                    buffer: VecDeque::new(),
                    next: None,
                    done: false,
                }
            })
            .collect();
        // Enough per partition that a page spread evenly needs one read of each.
        let chunk = limit / partitions.len() + 2;
        let mut entries = Vec::with_capacity(limit + 1);
        while entries.len() <= limit {
            let refills = partitions
                .iter_mut()
                .filter(|p| p.buffer.is_empty() && !p.done)
                .map(|p| p.refill(self, chunk));
            futures::future::try_join_all(refills).await?;
            let newest = partitions
                .iter_mut()
                .filter(|p| !p.buffer.is_empty())
                .max_by(|a, b| a.buffer[0].id.as_str().cmp(b.buffer[0].id.as_str()));
            let Some(entry) = newest.and_then(|p| p.buffer.pop_front()) else {
                break;
            };
            if before.as_deref() != Some(keys::transaction_sk(entry.id.as_str()).as_str()) {
                entries.push(entry);
            }
        }
        let has_more = entries.len() > limit;
        entries.truncate(limit);
        let next = has_more.then(|| entries.last()).flatten().map(|last| {
            PageKey::from([(keys::SK.to_owned(), keys::transaction_sk(last.id.as_str()))])
        });
        Ok(Page {
            items: entries,
            next,
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
