//! `make dev`: every route on one port (default 3000) against DynamoDB Local, through the same
//! handlers the Lambdas run.

use billing_core::app::App;
use billing_core::clock::SystemClock;
use billing_core::config::{
    allowed_origins, Config, FacilitatorConfig, PaymentsConfig, ServiceKeySource, Stage, X402Config,
};
use billing_core::domain::api_key::mint_key;
use billing_core::store::Store;
use std::sync::Arc;

/// How often the dev server runs the scheduled jobs.
/// How often the scheduled jobs run here: often enough that a short local trial visibly ends
/// (the lifecycle sweep stands in for EventBridge Scheduler's one-time schedules).
const JOB_INTERVAL_SECS: u64 = 5;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,aws_config=warn,aws_smithy_runtime=warn".into()),
        )
        .init();
    if let Err(message) = run().await {
        eprintln!("dev server: {message}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let port: u16 = std::env::var("BILLING_PORT")
        .unwrap_or_else(|_| "3000".into())
        .parse()
        .map_err(|_| "BILLING_PORT must be a port number")?;
    let endpoint = std::env::var("DYNAMODB_ENDPOINT")
        .map_err(|_| "DYNAMODB_ENDPOINT is not set: start it with `make dev`")?;
    let table = std::env::var("TABLE_NAME").unwrap_or_else(|_| "billing-local".into());
    let service_key = std::env::var("BILLING_SERVICE_KEY")
        .ok()
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| mint_key().plaintext);

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| {
            format!("cannot listen on 127.0.0.1:{port} ({e}). Is another `make dev` running? Set BILLING_PORT to use another port.")
        })?;
    let store = Store::connect(&table, Some(&endpoint)).await;
    store
        .ensure_table()
        .await
        .map_err(|e| format!("cannot create table {table} in DynamoDB Local at {endpoint}: {e}"))?;
    let mut config = Config::local(&table, &endpoint, &service_key);
    // Stripe when its keys are given, else the offline gateway on this server's address.
    config.payments = PaymentsConfig::from_vars(
        &Stage::Local,
        &ServiceKeySource::Plain(service_key.clone()),
        |name| match name {
            "LOCAL_BASE_URL" => Some(format!("http://127.0.0.1:{port}")),
            other => std::env::var(other).ok(),
        },
    )
    .map_err(|e| e.to_string())?;
    // The lifecycle in minutes instead of months: BILLING_TRIAL_SECONDS and the others.
    let lengths = [
        ("BILLING_TRIAL_SECONDS", "Trial length"),
        ("BILLING_PROMO_SECONDS", "Promo length"),
        ("BILLING_GRACE_SECONDS", "Grace length"),
        ("BILLING_PERIOD_SECONDS", "Plan period"),
    ];
    let mut shortened = Vec::new();
    for (name, what) in lengths {
        let secs = billing_core::config::seconds_var(name).map_err(|e| e.to_string())?;
        match name {
            "BILLING_TRIAL_SECONDS" => config.trial_secs = secs,
            "BILLING_PROMO_SECONDS" => config.promo_secs = secs,
            "BILLING_GRACE_SECONDS" => config.grace_secs = secs,
            _ => config.period_secs = secs,
        }
        if let Some(secs) = secs {
            shortened.push(format!("  {what}: {secs} s ({name})"));
        }
    }
    // x402 and MCP read the same settings as a deployed function (X402_*, MCP_ALLOWED_ORIGINS).
    config.x402 = X402Config::from_vars(&Stage::Local, |name| std::env::var(name).ok())
        .map_err(|e| e.to_string())?;
    config.allowed_origins = allowed_origins(|name| std::env::var(name).ok());
    // With an EventBridge endpoint (moto_server), committed events are also published there.
    config.events = billing_core::config::EventsConfig::from_vars(&Stage::Local, |name| {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    });
    let events = config.events.clone();
    let payments = config.payments.clone();
    let x402 = config.x402.clone();
    let app = Arc::new(App::new(config, store, Arc::new(SystemClock)));
    let app_for_jobs = app.clone();

    let base = format!("http://127.0.0.1:{port}");
    println!();
    println!("  Billing API (local stage) on {base}");
    println!("  DynamoDB Local: {endpoint}, table {table}");
    println!("  Service key:    {service_key}");
    match &payments {
        PaymentsConfig::Offline { webhook_secret, .. } => {
            println!("  Payments:       offline gateway (no Stripe keys); complete checkouts with POST .../billing/dev/complete-local");
            println!("  Webhook secret: {webhook_secret} (STRIPE_WEBHOOK_SECRET)");
        }
        PaymentsConfig::Stripe { .. } => println!("  Payments:       Stripe (STRIPE_SECRET_KEY)"),
    }
    match &x402.facilitator {
        FacilitatorConfig::Offline => println!(
            "  x402:           offline facilitator, {} USDC ({}) to {}",
            x402.network.caip2(),
            x402.asset,
            x402.pay_to
        ),
        FacilitatorConfig::Http { url, .. } => println!("  x402:           facilitator {url}"),
    }
    println!("  MCP:            POST {base}/v1/mcp (any key, read keys included)");
    match &events {
        Some(events) => println!(
            "  Events:         webhooks delivered in-process, published to bus {} at {} (AWS_ENDPOINT_URL_EVENTBRIDGE)",
            events.bus_name,
            events.endpoint.as_deref().unwrap_or("EventBridge")
        ),
        None => println!("  Events:         webhooks delivered in-process (set AWS_ENDPOINT_URL_EVENTBRIDGE to also publish)"),
    }
    for line in &shortened {
        println!("{line}");
    }
    println!();
    println!("  Try it:");
    println!("    curl -s -X POST {base}/v1/users -H 'Authorization: Bearer {service_key}' -H 'Content-Type: application/json' -d '{{\"external_id\": \"alice\"}}'");
    println!();
    println!("  OpenAPI: {base}/v1/openapi.json   Stop: Ctrl-C");
    println!();

    // Events out: deliveries and retries in-process, never on a request's path.
    billing_core::events::local::start(app.clone());
    // The scheduled jobs (EventBridge schedules in AWS) run in-process here.
    let jobs_app = app_for_jobs.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(JOB_INTERVAL_SECS));
        loop {
            tick.tick().await;
            for job in billing_core::routes::JOBS
                .iter()
                // Webhook retries run every second in the events pipeline instead.
                .filter(|j| {
                    j.schedule().is_some() && j.name != billing_core::routes::WEBHOOKS_RETRY.name
                })
            {
                match job.invoke(&jobs_app, serde_json::Value::Null).await {
                    Ok(outcome) if outcome.handled == 0 => {}
                    Ok(outcome) => {
                        tracing::info!(job = job.name, handled = outcome.handled, "job done")
                    }
                    Err(error) => tracing::error!(job = job.name, %error, "job failed"),
                }
            }
        }
    });

    tokio::select! {
        served = billing_core::dev_server::serve(app, listener) => served.map_err(|e| format!("server stopped: {e}")),
        _ = tokio::signal::ctrl_c() => {
            println!("dev server: stopped");
            Ok(())
        }
    }
}
