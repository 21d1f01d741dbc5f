//! `Idempotency-Key` for POSTs: the first final response is stored and replayed for a retry with
//! the same body (a transient one, such as contention, a rate limit or a server error, frees the
//! key instead); a secret the response shows once is stored as `null`; the same key with another
//! body is a 400; a retry while the first still runs is a 409. Handlers that move money also derive their transfer ids from the key, so even a crash
//! between the money moving and the response being stored cannot move it twice.

use super::error::ApiError;
use super::request::Reply;
use crate::app::App;
use crate::store::idempotency::{Claim, Lifetimes};
use http::HeaderMap;
use sha2::{Digest, Sha256};

pub const HEADER: &str = "idempotency-key";
pub const MAX_KEY_LEN: usize = 255;

const LIFETIMES: Lifetimes = Lifetimes {
    // Longer than any request can run (functions time out at 10 s; money moves retry for
    // seconds at most), so a lease lapses only for a request that is gone.
    lease_secs: 60,
    retain_secs: 48 * 3600,
};

/// A claimed key: the request runs under it and its response is then recorded.
pub struct Held {
    pub scope: String,
    pub key: String,
    /// A random token naming this request as the claim's holder.
    pub owner: String,
}

/// What to do with a POST carrying a key.
pub enum Admission {
    Run(Held),
    Replay {
        status: u16,
        body: String,
        headers: Vec<(String, String)>,
    },
}

/// The key from the headers, if any, checked for length and visibility.
pub fn key_from(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(HEADER) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| (1..=MAX_KEY_LEN).contains(&k.len()))
        .ok_or_else(|| {
            ApiError::InvalidRequest(format!(
                "`Idempotency-Key` must be 1 to {MAX_KEY_LEN} visible ASCII characters"
            ))
        })?;
    Ok(Some(key.to_owned()))
}

/// What makes two requests "the same": method, path, body bytes and, where the route says so,
/// one header (x402's payment: `name: value`).
pub fn fingerprint(method: &str, path: &str, body: &[u8], header: Option<(&str, &[u8])>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(method.as_bytes());
    hasher.update(b" ");
    hasher.update(path.as_bytes());
    hasher.update(b"\n");
    hasher.update(body);
    if let Some((name, value)) = header {
        hasher.update(b"\n");
        hasher.update(name.as_bytes());
        hasher.update(b": ");
        hasher.update(value);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub async fn admit(
    app: &App,
    scope: String,
    key: String,
    fingerprint: String,
) -> Result<Admission, ApiError> {
    let now = app.clock.now();
    let owner = crate::domain::ids::time_ordered_suffix(crate::clock::unix_millis(now));
    match app
        .store
        .claim_idempotency_key(
            &scope,
            &key,
            &fingerprint,
            &owner,
            now.unix_timestamp(),
            &LIFETIMES,
        )
        .await?
    {
        Claim::Claimed => Ok(Admission::Run(Held { scope, key, owner })),
        Claim::Replay {
            status,
            body,
            headers,
        } => Ok(Admission::Replay {
            status,
            body,
            headers,
        }),
        Claim::InProgress => Err(ApiError::IdempotencyKeyInUse),
        Claim::Mismatch => Err(ApiError::IdempotencyKeyReused(
            "this Idempotency-Key was used with a different request".into(),
        )),
    }
}

/// Records a final outcome (kept and replayed, without its secrets shown once) or, for a
/// transient one, frees the key so a retry is processed afresh.
pub async fn settle(
    app: &App,
    held: &Held,
    outcome: &Result<Reply, ApiError>,
    request_id: &str,
) -> Result<(), ApiError> {
    let kept = match outcome {
        Ok(reply) if reply.is_final => Some((
            reply.status,
            reply.replayable_body(),
            reply.headers.as_slice(),
        )),
        Ok(_) => None,
        Err(error) if error.is_final() => Some((error.status(), error.body(request_id), &[][..])),
        Err(_) => None,
    };
    match kept {
        Some((status, body, headers)) => {
            app.store
                .complete_idempotency_key(
                    &held.scope,
                    &held.key,
                    &held.owner,
                    status.as_u16(),
                    &body.to_string(),
                    headers,
                )
                .await?
        }
        None => {
            app.store
                .release_idempotency_key(&held.scope, &held.key, &held.owner)
                .await?
        }
    }
    Ok(())
}
