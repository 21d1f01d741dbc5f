//! Opaque, tamper-proof pagination cursors: where a list stopped, bound to that list and signed
//! with a server key, so a cursor that was edited, truncated or taken from another list is
//! refused instead of reading something else.

use super::error::ApiError;
use crate::store::PageKey;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;
const TAG_LEN: usize = 16;

#[derive(Serialize, Deserialize)]
struct Payload {
    /// The list this cursor belongs to (route and filters).
    l: String,
    /// The store's position.
    k: PageKey,
}

pub struct CursorKey([u8; 32]);

impl CursorKey {
    pub fn new(key: [u8; 32]) -> Self {
        Self(key)
    }

    fn tag(&self, payload: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(payload);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }

    pub fn encode(&self, list: &str, position: &PageKey) -> String {
        let payload = serde_json::to_vec(&Payload {
            l: list.to_owned(),
            k: position.clone(),
        })
        .expect("a map of strings serializes");
        let mut bytes = self.tag(&payload).to_vec();
        bytes.extend_from_slice(&payload);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn decode(&self, list: &str, cursor: &str) -> Result<PageKey, ApiError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(cursor)
            .map_err(|_| ApiError::InvalidCursor)?;
        if bytes.len() <= TAG_LEN {
            return Err(ApiError::InvalidCursor);
        }
        let (tag, payload) = bytes.split_at(TAG_LEN);
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(payload);
        mac.verify_truncated_left(tag)
            .map_err(|_| ApiError::InvalidCursor)?;
        let payload: Payload =
            serde_json::from_slice(payload).map_err(|_| ApiError::InvalidCursor)?;
        if payload.l != list {
            return Err(ApiError::InvalidCursor);
        }
        Ok(payload.k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position() -> PageKey {
        PageKey::from([
            ("pk".into(), "ACCOUNT#ba_1".into()),
            ("sk".into(), "TXN#2".into()),
        ])
    }

    #[test]
    fn a_cursor_round_trips_on_its_own_list() {
        let key = CursorKey::new([7; 32]);
        let cursor = key.encode("txns:ba_1", &position());
        assert_eq!(key.decode("txns:ba_1", &cursor).unwrap(), position());
    }

    #[test]
    fn tampered_truncated_foreign_and_other_list_cursors_are_refused() {
        let key = CursorKey::new([7; 32]);
        let cursor = key.encode("txns:ba_1", &position());
        let mut tampered = cursor.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        for bad in [
            tampered.as_str(),
            &cursor[..cursor.len() / 2],
            "not base64 !",
            "",
        ] {
            assert!(
                matches!(key.decode("txns:ba_1", bad), Err(ApiError::InvalidCursor)),
                "{bad}"
            );
        }
        assert!(key.decode("txns:ba_2", &cursor).is_err());
        assert!(CursorKey::new([8; 32])
            .decode("txns:ba_1", &cursor)
            .is_err());
    }
}
