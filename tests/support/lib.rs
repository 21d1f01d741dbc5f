//! Test support: the app on a fresh DynamoDB Local table ([`app`]) and a minimal Lambda Runtime
//! API that boots the real function binaries ([`runtime_api`]).

pub mod app;
pub mod fake_stripe;
pub mod fault_proxy;
pub mod report;
pub mod runtime_api;
