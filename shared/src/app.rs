//! The application: configuration and clients, built once per cold start and borrowed by every
//! request.

use crate::catalog::Catalog;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ConfigError, ServiceKeySource};
use crate::domain::lifecycle::Durations;
use crate::http::cursor::CursorKey;
use crate::http::ApiError;
use crate::scheduler::Scheduler;
use crate::store::Store;
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
    /// Where lifecycle deadlines are scheduled, when configured.
    pub deadlines: Option<Scheduler>,
    secrets: OnceCell<Secrets>,
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
        Self {
            durations: catalog.durations(config.trial_secs),
            catalog,
            config,
            store,
            clock,
            deadlines: None,
            secrets: OnceCell::new(),
        }
    }

    /// Reads the environment and builds the clients.
    pub async fn from_env() -> Result<Self, ConfigError> {
        let config = Config::from_env()?;
        let store = Store::connect(&config.table_name, config.dynamodb_endpoint.as_deref()).await;
        let mut app = Self::new(config, store, Arc::new(SystemClock));
        app.connect_scheduler().await;
        Ok(app)
    }

    /// Builds the Scheduler client when the configuration names one.
    pub async fn connect_scheduler(&mut self) {
        if let Some(s) = &self.config.scheduler {
            self.deadlines = Some(
                Scheduler::connect(s.endpoint.as_deref(), &s.group, &s.target_arn, &s.role_arn)
                    .await,
            );
        }
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

async fn read_secret(arn: &str) -> Result<String, ApiError> {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let output = aws_sdk_secretsmanager::Client::new(&config)
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
