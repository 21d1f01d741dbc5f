//! The `webhook-endpoints-list` Lambda: its route, handler and schemas are in billing-core's route table.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    billing_core::lambda::serve(&billing_core::routes::WEBHOOK_ENDPOINTS_LIST).await
}
