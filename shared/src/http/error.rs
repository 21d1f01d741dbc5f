//! Every error the API can answer with, and the one place each becomes a status and a body.

use http::StatusCode;
use serde_json::json;

/// A refusal or failure, as the contract names it. Variants carry what the caller may see;
/// `Internal` carries what only the log may see.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("the cursor was not issued for this list")]
    InvalidCursor,
    #[error("{0}")]
    IdempotencyKeyReused(String),
    #[error("a valid API key is required")]
    Unauthorized,
    #[error("{0}")]
    InsufficientCredits(String),
    #[error("{0}")]
    HardCapReached(String),
    #[error("{0}")]
    PaymentRequired(String),
    #[error("{0}")]
    PlanInactive(String),
    /// The customer must authenticate the payment (3-D Secure) with this client secret.
    #[error("{message}")]
    RequiresAction {
        message: String,
        payment_intent_id: String,
        client_secret: String,
    },
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    PlanReadonly(String),
    #[error("{0}")]
    PlanSuspended(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    NoSubscription(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    SubscriptionCanceled(String),
    #[error("a request with this Idempotency-Key is still being processed")]
    IdempotencyKeyInUse,
    #[error(
        "the default billing account cannot be unlinked; make another account the default first"
    )]
    DefaultAccountUnlink,
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_secs: u64,
    },
    /// The billing portal could not be opened; the provider's detail is only logged.
    #[error("the billing portal is unavailable; retry shortly")]
    PortalError(String),
    #[error("the payment provider failed; retry shortly")]
    PaymentProviderError(String),
    #[error("the store is not answering")]
    Unavailable,
    /// The path exists with other methods; `allow` lists them (the `Allow` header).
    #[error("this method is not allowed here; use {allow}")]
    MethodNotAllowed { allow: &'static str },
    /// The cause is logged with the request id; the caller sees a generic message.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            InvalidRequest(_) | InvalidCursor | IdempotencyKeyReused(_) => StatusCode::BAD_REQUEST,
            Unauthorized => StatusCode::UNAUTHORIZED,
            InsufficientCredits(_)
            | HardCapReached(_)
            | PaymentRequired(_)
            | PlanInactive(_)
            | RequiresAction { .. } => StatusCode::PAYMENT_REQUIRED,
            Forbidden(_) | PlanReadonly(_) | PlanSuspended(_) => StatusCode::FORBIDDEN,
            NotFound(_) | NoSubscription(_) => StatusCode::NOT_FOUND,
            Conflict(_) | IdempotencyKeyInUse | DefaultAccountUnlink | SubscriptionCanceled(_) => {
                StatusCode::CONFLICT
            }
            PortalError(_) | PaymentProviderError(_) => StatusCode::BAD_GATEWAY,
            RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        use ApiError::*;
        match self {
            InvalidRequest(_) => "invalid_request",
            InvalidCursor => "invalid_cursor",
            IdempotencyKeyReused(_) => "idempotency_key_reused",
            Unauthorized => "unauthorized",
            InsufficientCredits(_) => "insufficient_credits",
            HardCapReached(_) => "hard_cap_reached",
            PaymentRequired(_) => "payment_required",
            PlanInactive(_) => "plan_inactive",
            RequiresAction { .. } => "requires_action",
            Forbidden(_) => "forbidden",
            PlanReadonly(_) => "plan_readonly",
            PlanSuspended(_) => "plan_suspended",
            NotFound(_) => "not_found",
            NoSubscription(_) => "no_subscription",
            Conflict(_) => "conflict",
            SubscriptionCanceled(_) => "subscription_canceled",
            IdempotencyKeyInUse => "idempotency_key_in_use",
            DefaultAccountUnlink => "default_account_unlink",
            RateLimited { .. } => "rate_limited",
            PortalError(_) => "portal_error",
            PaymentProviderError(_) => "payment_provider_error",
            Unavailable => "unavailable",
            MethodNotAllowed { .. } => "method_not_allowed",
            Internal(_) => "internal",
        }
    }

    /// Whether the same request would get this answer again, so it may be kept for replays
    /// under its `Idempotency-Key`. Contention, rate limits and server or provider failures
    /// pass: a retry must run afresh.
    pub fn is_final(&self) -> bool {
        use ApiError::*;
        match self {
            Conflict(_) | IdempotencyKeyInUse => false,
            // Authentication comes before a key is claimed; a 401 is never a request's outcome.
            Unauthorized => false,
            _ => self.status().is_client_error() && self.status() != StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// What the caller is told: never internal detail.
    pub fn public_message(&self) -> String {
        match self {
            ApiError::Internal(_) => {
                "an internal error occurred; quote the request id when reporting it".into()
            }
            other => other.to_string(),
        }
    }

    /// The contract's error body; `requires_action` also carries what the client needs to
    /// authenticate the payment.
    pub fn body(&self, request_id: &str) -> serde_json::Value {
        let mut body = json!({
            "error": {
                "code": self.code(),
                "message": self.public_message(),
                "request_id": request_id,
            }
        });
        if let ApiError::RequiresAction {
            payment_intent_id,
            client_secret,
            ..
        } = self
        {
            body["error"]["payment_intent_id"] = json!(payment_intent_id);
            body["error"]["client_secret"] = json!(client_secret);
        }
        body
    }

    pub fn not_found(what: &str) -> Self {
        ApiError::NotFound(format!("no such {what}"))
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> Self {
        match error {
            // Nothing was written: the caller may simply retry.
            crate::store::StoreError::Contention => {
                ApiError::Conflict("too many concurrent changes to the same account; retry".into())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<crate::domain::account::SettingsError> for ApiError {
    fn from(error: crate::domain::account::SettingsError) -> Self {
        ApiError::InvalidRequest(error.to_string())
    }
}

impl From<crate::domain::ledger::OwnerCapProtected> for ApiError {
    fn from(error: crate::domain::ledger::OwnerCapProtected) -> Self {
        ApiError::Forbidden(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_answers_a_retry_would_get_again_are_final() {
        let final_ones = [
            ApiError::InvalidRequest("x".into()),
            ApiError::InsufficientCredits("x".into()),
            ApiError::Forbidden("x".into()),
            ApiError::NotFound("x".into()),
            ApiError::DefaultAccountUnlink,
            ApiError::SubscriptionCanceled("x".into()),
        ];
        assert!(final_ones.iter().all(ApiError::is_final));
        let transient = [
            ApiError::Conflict("x".into()),
            ApiError::IdempotencyKeyInUse,
            ApiError::RateLimited {
                message: "x".into(),
                retry_after_secs: 1,
            },
            ApiError::PaymentProviderError("x".into()),
            ApiError::Unavailable,
            ApiError::Internal("x".into()),
        ];
        assert!(!transient.iter().any(ApiError::is_final));
    }

    #[test]
    fn internal_errors_keep_their_cause_out_of_the_body() {
        let body = ApiError::Internal("dynamodb: secret table name".into()).body("req_1");
        assert_eq!(body["error"]["code"], "internal");
        assert!(!body.to_string().contains("secret table name"));
        assert_eq!(body["error"]["request_id"], "req_1");
    }
}
