//! Workspaces and their links to billing accounts.

use super::lifecycle::LifecycleFields;
use super::{keys, s, Page, PageKey, Query, Store, StoreError, Transacted, NEW_ITEM};
use crate::domain::ids::{BillingAccountId, UserId, WorkspaceId};
use crate::domain::lifecycle::LifecycleDates;
use crate::domain::workspace::Workspace;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub(crate) struct WorkspaceItem {
    pk: String,
    sk: String,
    gsi1pk: String,
    gsi1sk: String,
    #[serde(flatten)]
    pub(crate) workspace: Workspace,
    #[serde(flatten)]
    pub(crate) lifecycle: LifecycleFields,
}

/// A workspace may spend from this account. Indexed from the account's side too, for the
/// account summary's `linked_workspace_ids`.
#[derive(Serialize, Deserialize)]
pub(crate) struct LinkItem {
    pk: String,
    sk: String,
    gsi1pk: String,
    gsi1sk: String,
    pub(crate) workspace_id: WorkspaceId,
    pub(crate) billing_account_id: BillingAccountId,
    linked_at: String,
}

impl LinkItem {
    pub(crate) fn new(
        workspace: &WorkspaceId,
        account: &BillingAccountId,
        linked_at: &str,
    ) -> Self {
        Self {
            pk: keys::workspace(workspace.as_str()),
            sk: keys::link_sk(account.as_str()),
            gsi1pk: keys::account_links(account.as_str()),
            gsi1sk: keys::workspace(workspace.as_str()),
            workspace_id: workspace.clone(),
            billing_account_id: account.clone(),
            linked_at: linked_at.to_owned(),
        }
    }
}

pub enum LinkOutcome {
    Linked,
    AlreadyLinked,
    /// The account is gone or has another owner.
    AccountNotOwned,
}

pub enum UnlinkOutcome {
    Unlinked,
    NotLinked,
    IsDefault,
}

fn owned_by(owner: &UserId) -> [(&'static str, aws_sdk_dynamodb::types::AttributeValue); 1] {
    [(":owner", s(owner.to_string()))]
}

const OWNED_ACCOUNT: &str = "attribute_exists(pk) AND owner_user_id = :owner";

impl Store {
    /// Creates the workspace linked to its default account, provided the account still exists
    /// and belongs to the workspace's owner (`false` otherwise).
    pub async fn create_workspace(
        &self,
        workspace: &Workspace,
        dates: &LifecycleDates,
        created_at: &str,
    ) -> Result<bool, StoreError> {
        let account = &workspace.default_billing_account_id;
        let items = vec![
            self.put(
                WorkspaceItem {
                    pk: keys::workspace(workspace.id.as_str()),
                    sk: keys::WORKSPACE_SK.to_owned(),
                    gsi1pk: keys::owner(workspace.owner_user_id.as_str()),
                    gsi1sk: keys::workspace(workspace.id.as_str()),
                    workspace: workspace.clone(),
                    lifecycle: LifecycleFields::new(workspace, dates, 1, None),
                },
                Some(NEW_ITEM),
            )?,
            self.put(LinkItem::new(&workspace.id, account, created_at), None)?,
            self.check(
                keys::account(account.as_str()),
                keys::ACCOUNT_SK,
                OWNED_ACCOUNT,
                &owned_by(&workspace.owner_user_id),
            )?,
        ];
        Ok(matches!(self.transact(items).await?, Transacted::Committed))
    }

    pub async fn get_workspace(&self, id: &WorkspaceId) -> Result<Option<Workspace>, StoreError> {
        let item: Option<WorkspaceItem> = self
            .get(keys::workspace(id.as_str()), keys::WORKSPACE_SK)
            .await?;
        Ok(item.map(|i| i.workspace))
    }

    /// The accounts linked to a workspace, newest link target first.
    pub async fn list_linked_account_ids(
        &self,
        workspace: &WorkspaceId,
        limit: usize,
        start: Option<PageKey>,
    ) -> Result<Page<BillingAccountId>, StoreError> {
        let query = Query::prefix(
            None,
            keys::workspace(workspace.as_str()),
            keys::LINK_SK_PREFIX,
        );
        let page: Page<LinkItem> = self.query_page(query, limit, start).await?;
        Ok(Page {
            items: page
                .items
                .into_iter()
                .map(|l| l.billing_account_id)
                .collect(),
            next: page.next,
        })
    }

    pub async fn is_linked(
        &self,
        workspace: &WorkspaceId,
        account: &BillingAccountId,
    ) -> Result<bool, StoreError> {
        let link: Option<LinkItem> = self
            .get(
                keys::workspace(workspace.as_str()),
                &keys::link_sk(account.as_str()),
            )
            .await?;
        Ok(link.is_some())
    }

    /// Links an account of the workspace owner's to the workspace.
    pub async fn link_account(
        &self,
        workspace: &Workspace,
        account: &BillingAccountId,
        linked_at: &str,
    ) -> Result<LinkOutcome, StoreError> {
        let items = vec![
            self.put(
                LinkItem::new(&workspace.id, account, linked_at),
                Some(NEW_ITEM),
            )?,
            self.check(
                keys::account(account.as_str()),
                keys::ACCOUNT_SK,
                OWNED_ACCOUNT,
                &owned_by(&workspace.owner_user_id),
            )?,
            self.workspace_exists(&workspace.id)?,
        ];
        let outcome = self.transact(items).await?;
        Ok(match outcome {
            Transacted::Committed => LinkOutcome::Linked,
            _ if outcome.failed(1) || outcome.failed(2) => LinkOutcome::AccountNotOwned,
            Transacted::Refused(_) => LinkOutcome::AlreadyLinked,
        })
    }

    /// Makes a linked account the workspace's default. `false` when it is not linked.
    pub async fn set_default_account(
        &self,
        workspace: &WorkspaceId,
        account: &BillingAccountId,
    ) -> Result<bool, StoreError> {
        let items = vec![
            self.check(
                keys::workspace(workspace.as_str()),
                &keys::link_sk(account.as_str()),
                "attribute_exists(pk)",
                &[],
            )?,
            self.update(
                keys::workspace(workspace.as_str()),
                keys::WORKSPACE_SK,
                "SET default_billing_account_id = :account",
                Some("attribute_exists(pk)"),
                &[(":account", s(account.to_string()))],
            )?,
        ];
        Ok(matches!(self.transact(items).await?, Transacted::Committed))
    }

    /// Unlinks a non-default account; the check and the delete are one transaction, so a racing
    /// "set default" can't leave the workspace without its default link.
    pub async fn unlink_account(
        &self,
        workspace: &WorkspaceId,
        account: &BillingAccountId,
    ) -> Result<UnlinkOutcome, StoreError> {
        let items = vec![
            self.delete(
                keys::workspace(workspace.as_str()),
                &keys::link_sk(account.as_str()),
                Some("attribute_exists(pk)"),
            )?,
            self.check(
                keys::workspace(workspace.as_str()),
                keys::WORKSPACE_SK,
                "default_billing_account_id <> :account",
                &[(":account", s(account.to_string()))],
            )?,
        ];
        let outcome = self.transact(items).await?;
        Ok(match outcome {
            Transacted::Committed => UnlinkOutcome::Unlinked,
            _ if outcome.failed(0) => UnlinkOutcome::NotLinked,
            Transacted::Refused(_) => UnlinkOutcome::IsDefault,
        })
    }
}
