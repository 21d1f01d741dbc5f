//! Prefixed, opaque identifiers (`usr_…`, `ba_…`). Each kind is its own type, so a workspace id can
//! never be passed where a billing account id is expected, and `parse` rejects a malformed one
//! before it reaches the store.

use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::{Mutex, PoisonError};

/// Crockford's base32: sortable as text, no ambiguous letters.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// 26 characters: 48 bits of milliseconds then 80 random bits, so ids made later sort later
/// (what "newest first" listings rely on) and never collide in practice. Within one process the
/// order is strict: an id made in the same (or an earlier) millisecond as the last one continues
/// from it, like a monotonic ULID.
pub fn time_ordered_suffix(unix_millis: u64) -> String {
    static LAST: Mutex<u128> = Mutex::new(0);
    let mut random = [0u8; 10];
    rand::rng().fill_bytes(&mut random);
    let mut value: u128 = (u128::from(unix_millis) & 0xFFFF_FFFF_FFFF) << 80;
    for (i, byte) in random.iter().enumerate() {
        value |= u128::from(*byte) << (72 - 8 * i);
    }
    {
        let mut last = LAST.lock().unwrap_or_else(PoisonError::into_inner);
        if value >> 80 <= *last >> 80 {
            // Same or earlier millisecond: step just past the previous id.
            value = *last + 1 + u128::from(random[0]);
        }
        *last = value;
    }
    let mut out = [0u8; 26];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(value & 31) as usize];
        value >>= 5;
    }
    String::from_utf8(out.to_vec()).expect("alphabet is ASCII")
}

fn valid_suffix(suffix: &str) -> bool {
    (8..=64).contains(&suffix.len())
        && suffix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl schemars::JsonSchema for $name {
            fn inline_schema() -> bool {
                true
            }
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "string",
                    "pattern": concat!("^", $prefix, "[0-9A-Za-z_-]{8,64}$"),
                })
            }
        }

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new id whose text sorts by creation time.
            pub fn generate(unix_millis: u64) -> Self {
                Self(format!("{}{}", $prefix, time_ordered_suffix(unix_millis)))
            }

            /// Accepts only text with this kind's prefix and a plausible suffix.
            pub fn parse(text: &str) -> Option<Self> {
                let suffix = text.strip_prefix($prefix)?;
                valid_suffix(suffix).then(|| Self(text.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id for `seed`, always the same (see [`derived_suffix`]).
            pub fn derived(seed: &str) -> Self {
                Self(format!("{}{}", $prefix, derived_suffix(seed)))
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(text: String) -> Result<Self, String> {
                Self::parse(&text).ok_or_else(|| format!("`{text}` is not a valid {} id", $prefix.trim_end_matches('_')))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

prefixed_id!(
    /// A person.
    UserId, "usr_");
prefixed_id!(
    /// A billing account: the holder of money.
    BillingAccountId, "ba_");
prefixed_id!(
    /// A workspace: where agents run.
    WorkspaceId, "ws_");
prefixed_id!(
    /// An API key's public id (never the key itself).
    ApiKeyId, "key_");
prefixed_id!(
    /// One immutable ledger entry.
    TransactionId, "txn_");
prefixed_id!(
    /// An agent run: a hold, its captured usage and its settlement.
    RunId, "run_");
prefixed_id!(
    /// A billing event (outbox item).
    EventId, "evt_");
prefixed_id!(
    /// A webhook endpoint.
    WebhookEndpointId, "whe_");
prefixed_id!(
    /// One webhook delivery attempt.
    DeliveryAttemptId, "whd_");

/// An id whose suffix is derived from `seed`: the same seed always gives the same id, so a
/// retried request (same idempotency key) names the same transfer and can't apply twice.
pub fn derived_suffix(seed: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(seed.as_bytes());
    digest[..16]
        .iter()
        .map(|b| ALPHABET[usize::from(b & 31)] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_and_sort_by_time() {
        let earlier = UserId::generate(1_000);
        let later = UserId::generate(2_000);
        assert!(earlier < later);
        assert_eq!(UserId::parse(earlier.as_str()), Some(earlier));
    }

    #[test]
    fn ids_made_in_one_millisecond_still_sort_in_order() {
        let ids: Vec<TransactionId> = (0..200).map(|_| TransactionId::generate(5_000)).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }

    #[test]
    fn parse_rejects_other_prefixes_and_junk() {
        assert!(UserId::parse("ba_0123456789abcdef").is_none());
        assert!(UserId::parse("usr_").is_none());
        assert!(UserId::parse("usr_abc def ghi").is_none());
        assert!(WorkspaceId::parse("ws_0123456789abcdef").is_some());
    }
}
