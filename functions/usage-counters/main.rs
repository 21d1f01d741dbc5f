//! The `usage-counters` Lambda: a job; its work is in billing-core's job table.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    billing_core::lambda::serve_job(&billing_core::routes::USAGE_COUNTERS).await
}
