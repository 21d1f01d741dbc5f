//! Stripe's webhook signature: `Stripe-Signature: t=<unix>,v1=<hex hmac>[,v1=…]`, where each
//! `v1` is HMAC-SHA256 over `<t>.<raw body>` keyed with the endpoint secret. During a secret
//! rotation Stripe sends one `v1` per active secret, so any matching `v1` is enough.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far the signed time may be from now.
pub const TOLERANCE_SECS: i64 = 300;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing")]
    Missing,
    #[error("the Stripe-Signature header is malformed")]
    Malformed,
    #[error("the Stripe-Signature timestamp is outside the {TOLERANCE_SECS} s tolerance")]
    Stale,
    #[error("no signature in the Stripe-Signature header matches")]
    Mismatch,
}

/// Checks `header` over `body` at `now` (unix seconds).
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secret: &str,
    now: i64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => signatures.push(value),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now - timestamp).abs() > TOLERANCE_SECS {
        return Err(SignatureError::Stale);
    }
    let matches = signatures.iter().any(|signature| {
        let Some(expected) = decode_hex(signature) else {
            return false;
        };
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        // Constant time.
        mac.verify_slice(&expected).is_ok()
    });
    if matches {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The header Stripe would send for `body` at `timestamp` (tests and the offline gateway).
pub fn sign(body: &[u8], secret: &str, timestamp: i64) -> String {
    format!("t={timestamp},v1={}", signature(body, secret, timestamp))
}

pub fn signature(body: &[u8], secret: &str, timestamp: i64) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test";
    const BODY: &[u8] = br#"{"id":"evt_1"}"#;

    #[test]
    fn a_valid_signature_within_tolerance_passes() {
        let header = sign(BODY, SECRET, 1000);
        assert_eq!(
            verify(Some(&header), BODY, SECRET, 1000 + TOLERANCE_SECS),
            Ok(())
        );
    }

    #[test]
    fn the_second_v1_may_be_the_right_one() {
        let header = format!(
            "t=1000,v1={},v1={}",
            "ab".repeat(32),
            signature(BODY, SECRET, 1000)
        );
        assert_eq!(verify(Some(&header), BODY, SECRET, 1000), Ok(()));
    }

    #[test]
    fn every_other_case_is_refused() {
        let header = sign(BODY, SECRET, 1000);
        assert_eq!(
            verify(None, BODY, SECRET, 1000),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(Some("v1=00"), BODY, SECRET, 1000),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(Some(&header), BODY, SECRET, 1000 + TOLERANCE_SECS + 1),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(Some(&header), br#"{"id":"evt_2"}"#, SECRET, 1000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(Some(&header), BODY, "whsec_other", 1000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(Some("t=1000,v1=zz"), BODY, SECRET, 1000),
            Err(SignatureError::Mismatch)
        );
    }
}
