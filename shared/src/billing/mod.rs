//! Billing operations shared by several entry points: the routes, the Stripe webhook and the
//! lifecycle jobs. Each is one function however it is reached, so an offline invoice and a
//! Stripe one, or a method saved by a route and by a webhook, take the same path.

pub mod invoices;
pub mod subscriptions;
