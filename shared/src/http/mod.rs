//! The HTTP layer shared by every route: requests and replies, authentication, the error
//! format, pagination cursors, idempotency and the dispatch that ties them together.

pub mod auth;
pub mod cursor;
pub mod dispatch;
pub mod error;
pub mod idempotency;
pub mod origin;
pub mod pagination;
pub mod request;

pub use error::ApiError;
pub use request::{ApiRequest, ApiResponse, Ctx, Reply};
