//! The application: configuration and clients, built once per cold start and borrowed by every
//! request.

use crate::catalog::Catalog;
use crate::clock::{Clock, SystemClock};
use crate::config::{
    Config, ConfigError, FacilitatorConfig, PaymentsConfig, ServiceKeySource, StripeKeys,
};
use crate::domain::lifecycle::Durations;
use crate::events::publish::Publisher;
use crate::http::cursor::CursorKey;
use crate::http::ApiError;
use crate::payments::offline::OfflineGateway;
use crate::payments::stripe::StripeGateway;
use crate::payments::Gateway;
use crate::scheduler::Scheduler;
use crate::store::counters::Counting;
use crate::store::Store;
use crate::x402::facilitator::{Facilitator, HttpFacilitator};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tokio::sync::OnceCell;

pub struct App {
    pub config: Config,
    pub catalog: Catalog,
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    /// The lifecycle's durations (the catalog's, with the configured trial length).
    pub durations: Durations,
    /// Where lifecycle deadlines are scheduled, when configured: built on first use, as most
    /// functions never schedule one.
    deadlines: OnceCell<Option<Scheduler>>,
    /// The event bus, when configured: built on first use, as only the publisher needs it.
    publisher: OnceCell<Option<Publisher>>,
    secrets: OnceCell<Secrets>,
    payments: OnceCell<Payments>,
    facilitator: OnceCell<Facilitator>,
}

/// The payment gateway and the webhook secret, built once per cold start (on first use: in a
/// deployed stack their keys come from Secrets Manager).
pub struct Payments {
    pub gateway: Gateway,
    pub webhook_secret: String,
}

/// Key material derived from the service key, read once per cold start (from Secrets Manager in
/// a deployed stack: on first use, so the fetch is not on the init path).
pub struct Secrets {
    /// SHA-256 of the service key: authentication compares hashes in constant time.
    pub service_key_hash: [u8; 32],
    /// Signs pagination cursors.
    pub cursor: CursorKey,
}

impl Secrets {
    pub fn from_service_key(service_key: &str) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(service_key.as_bytes())
            .expect("HMAC takes any key length");
        mac.update(b"billing cursor signing key v1");
        Self {
            service_key_hash: Sha256::digest(service_key.as_bytes()).into(),
            cursor: CursorKey::new(mac.finalize().into_bytes().into()),
        }
    }
}

impl App {
    pub fn new(config: Config, store: Store, clock: Arc<dyn Clock>) -> Self {
        let catalog = Catalog::builtin().expect("the built-in catalog is checked by its tests");
        let store = store.with_clock(clock.clone());
        Self {
            durations: catalog.durations(&config),
            catalog,
            config,
            store,
            clock,
            deadlines: OnceCell::new(),
            publisher: OnceCell::new(),
            secrets: OnceCell::new(),
            payments: OnceCell::new(),
            facilitator: OnceCell::new(),
        }
    }

    /// Reads the environment and builds the store's client; other clients are built on first
    /// use.
    pub async fn from_env() -> Result<Self, ConfigError> {
        let config = Config::from_env()?;
        let counting = match config.stage {
            crate::config::Stage::Local => Counting::InProcess,
            crate::config::Stage::Deployed(_) => Counting::Stream,
        };
        let store = Store::connect(&config.table_name, config.dynamodb_endpoint.as_deref())
            .await
            .with_counting(counting);
        Ok(Self::new(config, store, Arc::new(SystemClock)))
    }

    /// The Scheduler client, when the configuration names one.
    pub async fn deadlines(&self) -> Option<&Scheduler> {
        self.deadlines
            .get_or_init(|| async {
                let s = self.config.scheduler.as_ref()?;
                Some(
                    Scheduler::connect(s.endpoint.as_deref(), &s.group, &s.target_arn, &s.role_arn)
                        .await,
                )
            })
            .await
            .as_ref()
    }

    /// The EventBridge publisher, when the configuration names a bus.
    pub async fn publisher(&self) -> Option<&Publisher> {
        self.publisher
            .get_or_init(|| async {
                let events = self.config.events.as_ref()?;
                Some(Publisher::connect(events.endpoint.as_deref(), &events.bus_name).await)
            })
            .await
            .as_ref()
    }

    pub async fn secrets(&self) -> Result<&Secrets, ApiError> {
        self.secrets
            .get_or_try_init(|| async {
                let service_key = match &self.config.service_key {
                    ServiceKeySource::Plain(key) => key.clone(),
                    ServiceKeySource::Secret { arn } => read_secret(arn).await?,
                };
                Ok(Secrets::from_service_key(&service_key))
            })
            .await
    }
}

impl App {
    pub async fn payments(&self) -> Result<&Payments, ApiError> {
        self.payments
            .get_or_try_init(|| async {
                Ok(match &self.config.payments {
                    PaymentsConfig::Offline {
                        base_url,
                        webhook_secret,
                    } => Payments {
                        gateway: Gateway::Offline(OfflineGateway::new(base_url)),
                        webhook_secret: webhook_secret.clone(),
                    },
                    PaymentsConfig::Stripe { keys, api_base } => {
                        let keys = match keys {
                            StripeKeys::Plain {
                                secret_key,
                                publishable_key,
                                webhook_secret,
                            } => StripeSecret {
                                secret_key: secret_key.clone(),
                                publishable_key: publishable_key.clone(),
                                webhook_secret: webhook_secret.clone(),
                            },
                            StripeKeys::Secret { arn } => {
                                serde_json::from_str(&read_secret(arn).await?).map_err(|e| {
                                    ApiError::Internal(format!(
                                        "the Stripe secret is malformed: {e}"
                                    ))
                                })?
                            }
                        };
                        Payments {
                            gateway: Gateway::Stripe(StripeGateway::new(
                                &keys.secret_key,
                                &keys.publishable_key,
                                api_base.as_deref(),
                            )),
                            webhook_secret: keys.webhook_secret,
                        }
                    }
                })
            })
            .await
    }
}

impl App {
    /// Who settles x402 payments, built on first use (its token, if any, comes from Secrets
    /// Manager).
    pub async fn x402_facilitator(&self) -> Result<&Facilitator, ApiError> {
        self.facilitator
            .get_or_try_init(|| async {
                Ok(match &self.config.x402.facilitator {
                    FacilitatorConfig::Offline => Facilitator::Offline,
                    FacilitatorConfig::Http { url, token_arn } => {
                        let token = match token_arn {
                            Some(arn) => Some(read_secret(arn).await?),
                            None => None,
                        };
                        Facilitator::Http(Box::new(HttpFacilitator::new(url, token)))
                    }
                })
            })
            .await
    }
}

/// The Stripe secret's value in Secrets Manager.
#[derive(serde::Deserialize)]
struct StripeSecret {
    secret_key: String,
    publishable_key: String,
    webhook_secret: String,
}

async fn read_secret(arn: &str) -> Result<String, ApiError> {
    let output = aws_sdk_secretsmanager::Client::new(&crate::aws::sdk_config(None).await)
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| ApiError::Internal(format!("reading the service key secret: {e:?}")))?;
    output
        .secret_string
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::Internal("the service key secret is empty".into()))
}
