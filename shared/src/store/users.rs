//! Users, their external-id claims, and the default account each one opens with.

use super::accounts::{AccountItem, TransactionItem};
use super::{keys, month_of, Store, StoreError, Transacted, NEW_ITEM};
use crate::domain::account::BillingAccount;
use crate::domain::ids::UserId;
use crate::domain::transaction::Transaction;
use crate::domain::user::User;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct UserItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    user: User,
}

/// Makes `external_id` unique: whoever writes this item first owns the id.
#[derive(Serialize, Deserialize)]
struct ExternalIdClaim {
    pk: String,
    sk: String,
    user_id: UserId,
}

/// A user with the default account it owns.
pub struct UserWithAccount {
    pub user: User,
    pub account: BillingAccount,
}

pub enum CreatedUser {
    Created(UserWithAccount),
    /// The external id was taken already: here is its user, unchanged.
    Existing(UserWithAccount),
}

impl Store {
    /// Creates the user, its default account and the account's opening grant in one transaction,
    /// unless a user with this external id exists, which is then returned instead.
    pub async fn create_user(
        &self,
        user: &User,
        account: &BillingAccount,
        opening_grant: Option<&Transaction>,
    ) -> Result<CreatedUser, StoreError> {
        let mut items = vec![
            self.put(
                ExternalIdClaim {
                    pk: keys::user_external(&user.external_id),
                    sk: keys::USER_EXT_SK.to_owned(),
                    user_id: user.id.clone(),
                },
                Some(NEW_ITEM),
            )?,
            self.put(
                UserItem {
                    pk: keys::user(user.id.as_str()),
                    sk: keys::USER_SK.to_owned(),
                    user: user.clone(),
                },
                Some(NEW_ITEM),
            )?,
            self.put(
                match opening_grant {
                    Some(grant) => AccountItem::new(account)
                        .opened_with(month_of(&grant.created_at)?, grant.amount_cents),
                    None => AccountItem::new(account),
                },
                Some(NEW_ITEM),
            )?,
        ];
        if let Some(grant) = opening_grant {
            items.push(self.put(TransactionItem::new(grant), Some(NEW_ITEM))?);
        }
        match self.transact(items).await? {
            Transacted::Committed => Ok(CreatedUser::Created(UserWithAccount {
                user: user.clone(),
                account: account.clone(),
            })),
            Transacted::Refused(_) => self
                .find_user_by_external_id(&user.external_id)
                .await?
                .map(CreatedUser::Existing)
                .ok_or_else(|| {
                    StoreError::Corrupt(
                        "user creation refused but no user holds its external id".into(),
                    )
                }),
        }
    }

    pub async fn find_user_by_external_id(
        &self,
        external_id: &str,
    ) -> Result<Option<UserWithAccount>, StoreError> {
        let claim: Option<ExternalIdClaim> = self
            .get(keys::user_external(external_id), keys::USER_EXT_SK)
            .await?;
        match claim {
            Some(claim) => self.get_user_with_account(&claim.user_id).await,
            None => Ok(None),
        }
    }

    pub async fn get_user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        let item: Option<UserItem> = self.get(keys::user(id.as_str()), keys::USER_SK).await?;
        Ok(item.map(|i| i.user))
    }

    async fn get_user_with_account(
        &self,
        id: &UserId,
    ) -> Result<Option<UserWithAccount>, StoreError> {
        let Some(user) = self.get_user(id).await? else {
            return Ok(None);
        };
        let account = self
            .get_account(&user.default_billing_account_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("user {id} has no default account")))?;
        Ok(Some(UserWithAccount { user, account }))
    }
}
