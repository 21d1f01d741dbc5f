//! API keys and the principals they stand for. Only a SHA-256 hash of a key is ever stored; the
//! plaintext exists once, in the response that creates it.

use super::ids::{ApiKeyId, UserId, WorkspaceId};
use rand::distr::{Alphanumeric, SampleString};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const KEY_PREFIX: &str = "bk_";
/// How much of a key is kept in the clear, to tell keys apart in a list.
const SHOWN_PREFIX_LEN: usize = 11;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceRole {
    Admin,
    Read,
}

/// Who a key belongs to, as the API names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum KeyOwner {
    User {
        id: UserId,
    },
    Workspace {
        id: WorkspaceId,
        role: WorkspaceRole,
    },
}

/// Who is calling, once the bearer key has been checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// The platform's own backend: may do everything.
    Service,
    User(UserId),
    Workspace {
        id: WorkspaceId,
        role: WorkspaceRole,
    },
}

impl Principal {
    /// Read keys may only read (and use the MCP tool); everything else may write.
    pub fn may_write(&self) -> bool {
        !matches!(
            self,
            Principal::Workspace {
                role: WorkspaceRole::Read,
                ..
            }
        )
    }

    /// A stable text for scoping per-caller state such as idempotency keys.
    pub fn scope(&self) -> String {
        match self {
            Principal::Service => "service".into(),
            Principal::User(id) => id.to_string(),
            Principal::Workspace { id, role } => format!("{id}:{role:?}"),
        }
    }
}

impl From<KeyOwner> for Principal {
    fn from(owner: KeyOwner) -> Self {
        match owner {
            KeyOwner::User { id } => Principal::User(id),
            KeyOwner::Workspace { id, role } => Principal::Workspace { id, role },
        }
    }
}

/// A stored key: everything but the secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub name: Option<String>,
    pub prefix: String,
    pub owner: KeyOwner,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// A newly minted key: the plaintext (to show once) and the hash (to store).
pub struct MintedKey {
    pub plaintext: String,
    pub prefix: String,
    pub hash: String,
}

pub fn mint_key() -> MintedKey {
    let secret = Alphanumeric.sample_string(&mut rand::rng(), 40);
    let plaintext = format!("{KEY_PREFIX}{secret}");
    MintedKey {
        prefix: plaintext[..SHOWN_PREFIX_LEN].to_owned(),
        hash: hash_key(&plaintext),
        plaintext,
    }
}

/// The lowercase hex SHA-256 of a key: what the store keeps and looks keys up by.
pub fn hash_key(plaintext: &str) -> String {
    let digest = Sha256::digest(plaintext.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether text is shaped like one of our keys, before spending a lookup on it.
pub fn looks_like_key(text: &str) -> bool {
    text.starts_with(KEY_PREFIX)
        && text.len() <= 200
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_keys_are_distinct_and_hash_to_what_is_stored() {
        let a = mint_key();
        let b = mint_key();
        assert_ne!(a.plaintext, b.plaintext);
        assert!(looks_like_key(&a.plaintext));
        assert_eq!(hash_key(&a.plaintext), a.hash);
        assert!(a.plaintext.starts_with(&a.prefix));
        assert_eq!(a.hash.len(), 64);
    }

    #[test]
    fn only_read_keys_are_read_only() {
        let ws = WorkspaceId::generate(1);
        assert!(Principal::Service.may_write());
        assert!(Principal::Workspace {
            id: ws.clone(),
            role: WorkspaceRole::Admin
        }
        .may_write());
        assert!(!Principal::Workspace {
            id: ws,
            role: WorkspaceRole::Read
        }
        .may_write());
    }
}
