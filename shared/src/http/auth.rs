//! Bearer-key authentication.

use super::error::ApiError;
use crate::app::App;
use crate::domain::api_key::{hash_key, looks_like_key, Principal};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The principal behind `Authorization: Bearer <key>`: the service key, or a stored, unrevoked
/// key. Anything else (missing, malformed, unknown, revoked) is a 401.
pub async fn authenticate(app: &App, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let key = bearer(headers).ok_or(ApiError::Unauthorized)?;
    let secrets = app.secrets().await?;
    let presented: [u8; 32] = Sha256::digest(key.as_bytes()).into();
    if bool::from(presented.ct_eq(&secrets.service_key_hash)) {
        return Ok(Principal::Service);
    }
    if !looks_like_key(key) {
        return Err(ApiError::Unauthorized);
    }
    match app.store.find_key_owner(&hash_key(key)).await? {
        Some(owner) => Ok(owner.into()),
        None => Err(ApiError::Unauthorized),
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = value.split_once(' ')?;
    let key = key.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty()).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_takes_the_key_after_the_scheme() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert("authorization", "Bearer bk_abc".parse().unwrap());
        assert_eq!(bearer(&headers), Some("bk_abc"));
        headers.insert("authorization", "bearer bk_abc".parse().unwrap());
        assert_eq!(bearer(&headers), Some("bk_abc"));
        headers.insert("authorization", "Basic bk_abc".parse().unwrap());
        assert_eq!(bearer(&headers), None);
        headers.insert("authorization", "Bearer ".parse().unwrap());
        assert_eq!(bearer(&headers), None);
    }
}
