//! Money is integer US cents. Nothing here is ever a float.

/// The only currency this backend bills in.
pub const CURRENCY: &str = "usd";
