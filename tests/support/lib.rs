//! Test support: the app on a fresh DynamoDB Local table ([`app`]), a minimal Lambda Runtime
//! API that boots the real function binaries ([`runtime_api`]), and facts read off those
//! binaries ([`binaries`]), and the official Python clients run against a spawned app
//! ([`python`]).

pub mod app;
pub mod binaries;
pub mod dev_server;
pub mod fake_stripe;
pub mod fault_proxy;
pub mod python;
pub mod receiver;
pub mod report;
pub mod runtime_api;
