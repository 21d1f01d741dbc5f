//! x402 authorization claims: one item per EIP-3009 authorization (network, payer, nonce), so
//! an authorization credits once. With an HTTP facilitator the claim is written `pending`
//! before `/settle` and becomes `settled` in the same transaction as the credit; a pending
//! claim stays in the `gsi2` index `X402_PENDING` (by claim time) until then, so one that
//! outlives its request can be found for reconciliation.

use super::{keys, s, Store, StoreError, NEW_ITEM};
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimState {
    /// Written before `/settle`: the money may be moving on chain.
    Pending,
    /// Credited.
    Settled,
}

/// An authorization's claim as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct X402Claim {
    pub pk: String,
    pub sk: String,
    pub state: ClaimState,
    /// The request that wrote it (a random token): only it may turn its pending claim into a
    /// settled one.
    pub owner: String,
    pub claimed_epoch: i64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub gsi2pk: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub gsi2sk: Option<String>,
    /// The settlement's transaction, once settled.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub transaction: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub payer: Option<String>,
}

/// A pending claim older than the reconciliation age.
#[derive(Debug)]
pub struct StaleClaim {
    pub key: String,
    pub claimed_epoch: i64,
}

impl Store {
    pub async fn x402_claim(&self, key: &str) -> Result<Option<X402Claim>, StoreError> {
        self.get(key.to_owned(), keys::X402_CLAIM_SK).await
    }

    /// Claims the authorization as pending for `owner`; `false` if it is claimed already.
    pub async fn claim_x402_pending(
        &self,
        key: &str,
        owner: &str,
        now_epoch: i64,
    ) -> Result<bool, StoreError> {
        let claim = X402Claim {
            pk: key.to_owned(),
            sk: keys::X402_CLAIM_SK.to_owned(),
            state: ClaimState::Pending,
            owner: owner.to_owned(),
            claimed_epoch: now_epoch,
            gsi2pk: Some(keys::DueIndex::X402Pending.partition(key)),
            gsi2sk: Some(keys::deadline_sk(now_epoch, key)),
            transaction: None,
            payer: None,
        };
        Ok(matches!(
            self.transact(vec![self.put(claim, Some(NEW_ITEM))?])
                .await?,
            super::Transacted::Committed
        ))
    }

    /// Drops `owner`'s pending claim: the facilitator said the payment did not settle, so the
    /// authorization moved nothing.
    pub async fn release_x402_pending(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        let mut delete = aws_sdk_dynamodb::types::Delete::builder()
            .table_name(self.table_name())
            .set_key(Some(super::key_item(
                key.to_owned(),
                keys::X402_CLAIM_SK.to_owned(),
            )))
            .condition_expression("#state = :pending AND #owner = :owner")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#owner", "owner");
        delete = delete
            .expression_attribute_values(":pending", s("pending"))
            .expression_attribute_values(":owner", s(owner));
        let item = TransactWriteItem::builder()
            .delete(delete.build().map_err(StoreError::build)?)
            .build();
        // Refused: not ours or not pending any more; nothing to release.
        self.transact(vec![item]).await.map(|_| ())
    }

    /// The settled claim, for the credit's transaction: conditional on no claim existing or,
    /// when `owner` wrote it pending before `/settle`, on that pending claim.
    pub(crate) fn x402_settled_put(
        &self,
        key: &str,
        owner: &str,
        pending_first: bool,
        claimed_epoch: i64,
        transaction: &str,
        payer: &str,
    ) -> Result<TransactWriteItem, StoreError> {
        let claim = X402Claim {
            pk: key.to_owned(),
            sk: keys::X402_CLAIM_SK.to_owned(),
            state: ClaimState::Settled,
            owner: owner.to_owned(),
            claimed_epoch,
            gsi2pk: None,
            gsi2sk: None,
            transaction: Some(transaction.to_owned()),
            payer: Some(payer.to_owned()),
        };
        let mut put = Put::builder()
            .table_name(self.table_name())
            .set_item(Some(super::to_item(&claim)?));
        put = if pending_first {
            put.condition_expression("#state = :pending AND #owner = :owner")
                .expression_attribute_names("#state", "state")
                .expression_attribute_names("#owner", "owner")
                .expression_attribute_values(":pending", s("pending"))
                .expression_attribute_values(":owner", s(owner))
        } else {
            put.condition_expression(NEW_ITEM)
        };
        Ok(TransactWriteItem::builder()
            .put(put.build().map_err(StoreError::build)?)
            .build())
    }

    /// Pending claims written at or before `before_epoch` (at most `limit`), oldest first.
    pub async fn stale_x402_claims(
        &self,
        before_epoch: i64,
        limit: usize,
    ) -> Result<Vec<StaleClaim>, StoreError> {
        let due = self
            .due_items(keys::DueIndex::X402Pending, before_epoch, limit)
            .await?;
        Ok(due
            .into_iter()
            .filter_map(|item| {
                // The index may project keys only: the epoch is read from its sort key.
                let Some(AttributeValue::S(since)) = item.get("gsi2sk") else {
                    return None;
                };
                let (epoch, key) = since.split_once('#')?;
                Some(StaleClaim {
                    key: key.to_owned(),
                    claimed_epoch: epoch.parse().ok()?,
                })
            })
            .collect())
    }
}
