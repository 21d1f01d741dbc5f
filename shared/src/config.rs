//! Configuration, read once per cold start from the environment.

use std::env;

/// Where this process runs. The local stage is the dev server and the tests; anything else is a
/// deployed stack, where local-only conveniences are off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stage {
    Local,
    Deployed(String),
}

/// Where the service principal's key comes from.
#[derive(Clone, Debug)]
pub enum ServiceKeySource {
    /// The key itself (local stage).
    Plain(String),
    /// A Secrets Manager secret whose value is the key (deployed stack), read once.
    Secret { arn: String },
}

#[derive(Clone, Debug)]
pub struct Config {
    pub stage: Stage,
    pub table_name: String,
    /// DynamoDB Local's address; `None` means the real service.
    pub dynamodb_endpoint: Option<String>,
    pub service_key: ServiceKeySource,
    /// The `grant` a new user's default account opens with.
    pub intro_credit_cents: i64,
    /// Larger request bodies are refused before parsing.
    pub max_body_bytes: usize,
    /// How long a run's hold lasts before the sweep settles it.
    pub run_hold_secs: i64,
    /// Shortens the catalog's trial (`TRIAL_SECONDS`), so a local trial visibly ends.
    pub trial_secs: Option<i64>,
    /// Where lifecycle deadlines are scheduled; `None`: nowhere (the sweep alone fires them, as
    /// the dev server does every few seconds).
    pub scheduler: Option<SchedulerConfig>,
}

/// EventBridge Scheduler: one-time schedules in `group` that invoke `target_arn` (the
/// `lifecycle-transition` function) as `role_arn`.
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// moto's address in tests; `None` means the real service.
    pub endpoint: Option<String>,
    pub group: String,
    pub target_arn: String,
    pub role_arn: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

pub const DEFAULT_INTRO_CREDIT_CENTS: i64 = 1000;
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
pub const DEFAULT_RUN_HOLD_SECS: i64 = 3600;

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let stage = match env::var("STAGE")
            .unwrap_or_else(|_| "local".into())
            .as_str()
        {
            "local" => Stage::Local,
            other => Stage::Deployed(other.to_owned()),
        };
        let table_name = env::var("TABLE_NAME").map_err(|_| ConfigError::Missing("TABLE_NAME"))?;
        let service_key = match (env::var("SERVICE_KEY"), env::var("SERVICE_KEY_SECRET_ARN")) {
            (_, Ok(arn)) if !arn.is_empty() => ServiceKeySource::Secret { arn },
            (Ok(key), _) if !key.is_empty() => ServiceKeySource::Plain(key),
            _ => {
                return Err(ConfigError::Missing(
                    "SERVICE_KEY or SERVICE_KEY_SECRET_ARN",
                ))
            }
        };
        let intro_credit_cents = match env::var("INTRO_CREDIT_CENTS") {
            Ok(text) => {
                text.parse::<i64>()
                    .ok()
                    .filter(|c| *c >= 0)
                    .ok_or(ConfigError::Invalid {
                        name: "INTRO_CREDIT_CENTS",
                        reason: "must be a whole number of cents, 0 or more".into(),
                    })?
            }
            Err(_) => DEFAULT_INTRO_CREDIT_CENTS,
        };
        let trial_secs = match env::var("TRIAL_SECONDS") {
            Ok(text) if !text.is_empty() => Some(
                text.parse::<i64>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or(ConfigError::Invalid {
                        name: "TRIAL_SECONDS",
                        reason: "must be a whole number of seconds, 1 or more".into(),
                    })?,
            ),
            _ => None,
        };
        let var = |name: &str| env::var(name).ok().filter(|v| !v.is_empty());
        let scheduler = match (var("LIFECYCLE_TARGET_ARN"), var("SCHEDULER_ROLE_ARN")) {
            (Some(target_arn), Some(role_arn)) => Some(SchedulerConfig {
                endpoint: var("SCHEDULER_ENDPOINT"),
                group: var("SCHEDULER_GROUP").unwrap_or_else(|| "default".into()),
                target_arn,
                role_arn,
            }),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Missing(
                    "LIFECYCLE_TARGET_ARN and SCHEDULER_ROLE_ARN (both or neither)",
                ))
            }
        };
        Ok(Self {
            stage,
            table_name,
            dynamodb_endpoint: env::var("DYNAMODB_ENDPOINT").ok().filter(|e| !e.is_empty()),
            service_key,
            intro_credit_cents,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            run_hold_secs: DEFAULT_RUN_HOLD_SECS,
            trial_secs,
            scheduler,
        })
    }

    /// A local-stage configuration, for the dev server and the tests.
    pub fn local(table_name: &str, dynamodb_endpoint: &str, service_key: &str) -> Self {
        Self {
            stage: Stage::Local,
            table_name: table_name.to_owned(),
            dynamodb_endpoint: Some(dynamodb_endpoint.to_owned()),
            service_key: ServiceKeySource::Plain(service_key.to_owned()),
            intro_credit_cents: DEFAULT_INTRO_CREDIT_CENTS,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            run_hold_secs: DEFAULT_RUN_HOLD_SECS,
            trial_secs: None,
            scheduler: None,
        }
    }
}
