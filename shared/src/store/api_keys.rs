//! API keys: the listable record, and the hash item that authentication looks up.

use super::{keys, s, Page, PageKey, Query, Store, StoreError, Transacted, NEW_ITEM};
use crate::domain::api_key::{ApiKey, KeyOwner};
use crate::domain::ids::ApiKeyId;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct ApiKeyItem {
    pk: String,
    sk: String,
    gsi1pk: String,
    gsi1sk: String,
    /// The SHA-256 of the plaintext, to find the hash item on revocation.
    hash: String,
    #[serde(flatten)]
    key: ApiKey,
}

/// Present exactly while the key is valid: revoking deletes it.
#[derive(Serialize, Deserialize)]
struct KeyHashItem {
    pk: String,
    sk: String,
    key_id: ApiKeyId,
    owner: KeyOwner,
}

fn owner_id(owner: &KeyOwner) -> String {
    match owner {
        KeyOwner::User { id } => id.to_string(),
        KeyOwner::Workspace { id, .. } => id.to_string(),
    }
}

impl Store {
    pub async fn create_api_key(&self, key: &ApiKey, hash: &str) -> Result<(), StoreError> {
        let items = vec![
            self.put(
                ApiKeyItem {
                    pk: keys::api_key(key.id.as_str()),
                    sk: keys::API_KEY_SK.to_owned(),
                    gsi1pk: keys::key_owner(&owner_id(&key.owner)),
                    gsi1sk: keys::api_key(key.id.as_str()),
                    hash: hash.to_owned(),
                    key: key.clone(),
                },
                Some(NEW_ITEM),
            )?,
            self.put(
                KeyHashItem {
                    pk: keys::key_hash(hash),
                    sk: keys::KEY_HASH_SK.to_owned(),
                    key_id: key.id.clone(),
                    owner: key.owner.clone(),
                },
                Some(NEW_ITEM),
            )?,
        ];
        match self.transact(items).await? {
            Transacted::Committed => Ok(()),
            Transacted::Refused(_) => Err(StoreError::Corrupt(
                "a fresh key id or hash already exists".into(),
            )),
        }
    }

    /// Who a valid key (by its hash) belongs to; `None` for unknown or revoked keys.
    pub async fn find_key_owner(&self, hash: &str) -> Result<Option<KeyOwner>, StoreError> {
        let item: Option<KeyHashItem> = self.get(keys::key_hash(hash), keys::KEY_HASH_SK).await?;
        Ok(item.map(|i| i.owner))
    }

    pub async fn get_api_key(&self, id: &ApiKeyId) -> Result<Option<ApiKey>, StoreError> {
        let item: Option<ApiKeyItem> = self
            .get(keys::api_key(id.as_str()), keys::API_KEY_SK)
            .await?;
        Ok(item.map(|i| i.key))
    }

    /// Keys owned by a user or a workspace (by its id), newest first, revoked ones included.
    pub async fn list_api_keys(
        &self,
        owner_id: &str,
        limit: usize,
        start: Option<PageKey>,
    ) -> Result<Page<ApiKey>, StoreError> {
        let query = Query::prefix(Some(keys::GSI1), keys::key_owner(owner_id), "KEY#");
        let page: Page<ApiKeyItem> = self.query_page(query, limit, start).await?;
        Ok(Page {
            items: page.items.into_iter().map(|i| i.key).collect(),
            next: page.next,
        })
    }

    /// Marks the key revoked and deletes its hash item, so it stops authenticating at once.
    /// Revoking again changes nothing and returns the key as first revoked.
    pub async fn revoke_api_key(
        &self,
        id: &ApiKeyId,
        revoked_at: &str,
    ) -> Result<Option<ApiKey>, StoreError> {
        let item: Option<ApiKeyItem> = self
            .get(keys::api_key(id.as_str()), keys::API_KEY_SK)
            .await?;
        let Some(item) = item else {
            return Ok(None);
        };
        if item.key.revoked_at.is_some() {
            return Ok(Some(item.key));
        }
        let items = vec![
            self.update(
                keys::api_key(id.as_str()),
                keys::API_KEY_SK,
                "SET revoked_at = :at",
                Some("attribute_exists(pk) AND attribute_type(revoked_at, :null)"),
                &[(":at", s(revoked_at)), (":null", s("NULL"))],
            )?,
            self.delete(keys::key_hash(&item.hash), keys::KEY_HASH_SK, None)?,
        ];
        match self.transact(items).await? {
            Transacted::Committed => Ok(Some(ApiKey {
                revoked_at: Some(revoked_at.to_owned()),
                ..item.key
            })),
            // Revoked concurrently: report the winner's revocation.
            Transacted::Refused(_) => self.get_api_key(id).await,
        }
    }
}
