//! The local stage's events pipeline, in the dev server's (or a test's) process: every event
//! this process commits is published (when an EventBridge endpoint is configured) and its first
//! attempts made within moments of the commit, and due retries run every second. None of it is
//! on a request's path: requests only hand the committed event over.

use super::publish::publish_and_mark;
use crate::app::App;
use crate::domain::events::Event;
use std::sync::Arc;
use std::time::Duration;

/// How often due retries are looked for (the contract: within 2 s of their due time).
const RETRY_TICK: Duration = Duration::from_secs(1);

/// Starts the pipeline on the current runtime; it runs as long as the runtime does.
pub fn start(app: Arc<App>) {
    let mut committed = app.store.events.listen();
    let events_app = app.clone();
    tokio::spawn(async move {
        while let Some(text) = committed.recv().await {
            let app = events_app.clone();
            // Each event on its own task: a slow receiver delays nothing else.
            tokio::spawn(async move {
                let event = match Event::from_json(&text) {
                    Ok(event) => event,
                    Err(error) => {
                        tracing::error!(%error, "a committed event does not parse");
                        return;
                    }
                };
                if let Some(publisher) = app.publisher().await {
                    match publish_and_mark(&app, publisher, std::slice::from_ref(&event)).await {
                        Ok(refused) if refused.is_empty() => {}
                        Ok(_) => tracing::warn!(event = %event.id, "eventbridge refused the event"),
                        Err(error) => {
                            tracing::warn!(event = %event.id, %error, "publishing failed")
                        }
                    }
                }
                if let Err(error) = super::deliver(&app, &event).await {
                    tracing::error!(event = %event.id, %error, "delivering failed");
                }
            });
        }
    });
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RETRY_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match super::retry_due(&app).await {
                Ok(0) => {}
                Ok(sent) => tracing::info!(sent, "webhook retries sent"),
                Err(error) => tracing::error!(%error, "webhook retries failed"),
            }
        }
    });
}
