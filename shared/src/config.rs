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
    /// Shortens the promo (`PROMO_SECONDS`), the grace (`GRACE_SECONDS`) and the plan period
    /// (`PERIOD_SECONDS`), so a person can watch a subscription renew in minutes.
    pub promo_secs: Option<i64>,
    pub grace_secs: Option<i64>,
    pub period_secs: Option<i64>,
    /// Where lifecycle deadlines are scheduled; `None`: nowhere (the sweep alone fires them, as
    /// the dev server does every few seconds).
    pub scheduler: Option<SchedulerConfig>,
    /// Where billing events are published; `None`: nowhere (the local stage without an
    /// EventBridge endpoint still delivers webhooks in-process).
    pub events: Option<EventsConfig>,
    pub payments: PaymentsConfig,
    /// What one credit purchase (checkout or top-up) may be, in cents.
    pub purchase_limits: PurchaseLimits,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PurchaseLimits {
    pub min_cents: i64,
    pub max_cents: i64,
}

impl Default for PurchaseLimits {
    /// $5 to $10,000 (`PURCHASE_MIN_CENTS`, `PURCHASE_MAX_CENTS`).
    fn default() -> Self {
        Self {
            min_cents: 500,
            max_cents: 1_000_000,
        }
    }
}

/// Which payment gateway runs, and its keys.
#[derive(Clone, Debug)]
pub enum PaymentsConfig {
    /// The local stage without Stripe keys: checkouts complete through `dev/complete-local`.
    Offline {
        /// The dev server's address, for the URLs the offline gateway hands out.
        base_url: String,
        /// Webhooks are still verified locally, with this secret.
        webhook_secret: String,
    },
    Stripe {
        keys: StripeKeys,
        /// Stripe's API address; `None` is api.stripe.com (tests point it at a fake server).
        api_base: Option<String>,
    },
}

#[derive(Clone, Debug)]
pub enum StripeKeys {
    /// From the environment (local stage).
    Plain {
        secret_key: String,
        publishable_key: String,
        webhook_secret: String,
    },
    /// A Secrets Manager secret holding `{"secret_key", "publishable_key", "webhook_secret"}`,
    /// read once per cold start.
    Secret { arn: String },
}

impl PaymentsConfig {
    /// The local default: offline, on the dev server's usual address.
    pub fn offline(webhook_secret: &str) -> Self {
        PaymentsConfig::Offline {
            base_url: "http://127.0.0.1:3000".into(),
            webhook_secret: webhook_secret.to_owned(),
        }
    }

    /// The local webhook secret when none is configured: derived from the service key, so the
    /// dev server and the functions it runs agree without another setting.
    pub fn derived_webhook_secret(service_key: &str) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(format!("local webhook secret|{service_key}").as_bytes());
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("whsec_{hex}")
    }

    fn from_env(stage: &Stage, service_key: &ServiceKeySource) -> Result<Self, ConfigError> {
        Self::from_vars(stage, service_key, |name| env::var(name).ok())
    }

    /// The payments configuration from `lookup` (the environment, or a test's table).
    pub fn from_vars(
        stage: &Stage,
        service_key: &ServiceKeySource,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let var = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let api_base = var("STRIPE_API_BASE");
        if let Some(arn) = var("STRIPE_SECRET_ARN") {
            return Ok(PaymentsConfig::Stripe {
                keys: StripeKeys::Secret { arn },
                api_base,
            });
        }
        if let Some(secret_key) = var("STRIPE_SECRET_KEY") {
            let required = |name: &'static str| var(name).ok_or(ConfigError::Missing(name));
            return Ok(PaymentsConfig::Stripe {
                keys: StripeKeys::Plain {
                    secret_key,
                    publishable_key: required("STRIPE_PUBLISHABLE_KEY")?,
                    webhook_secret: required("STRIPE_WEBHOOK_SECRET")?,
                },
                api_base,
            });
        }
        // The offline gateway is for the local stage only: a deployed stage without Stripe
        // keys doesn't start.
        match stage {
            Stage::Local => Ok(PaymentsConfig::Offline {
                base_url: var("LOCAL_BASE_URL").unwrap_or_else(|| "http://127.0.0.1:3000".into()),
                webhook_secret: match (var("STRIPE_WEBHOOK_SECRET"), service_key) {
                    (Some(secret), _) => secret,
                    (None, ServiceKeySource::Plain(key)) => Self::derived_webhook_secret(key),
                    (None, ServiceKeySource::Secret { .. }) => {
                        return Err(ConfigError::Missing("STRIPE_WEBHOOK_SECRET"))
                    }
                },
            }),
            Stage::Deployed(_) => Err(ConfigError::Missing(
                "STRIPE_SECRET_ARN (a deployed stage never uses the offline gateway)",
            )),
        }
    }
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

/// The EventBridge bus billing events are published on.
#[derive(Clone, Debug)]
pub struct EventsConfig {
    /// `AWS_ENDPOINT_URL_EVENTBRIDGE` (moto); `None` means the real service.
    pub endpoint: Option<String>,
    /// `EVENT_BUS_NAME`.
    pub bus_name: String,
}

impl EventsConfig {
    /// From `EVENT_BUS_NAME` and `AWS_ENDPOINT_URL_EVENTBRIDGE`. Deployed, the bus name alone
    /// turns publishing on; locally, the endpoint does (the bus defaults to `default`).
    pub fn from_vars(stage: &Stage, var: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let endpoint = var("AWS_ENDPOINT_URL_EVENTBRIDGE");
        let bus_name = var("EVENT_BUS_NAME");
        match stage {
            Stage::Local => endpoint.map(|endpoint| Self {
                endpoint: Some(endpoint),
                bus_name: bus_name.unwrap_or_else(|| "default".into()),
            }),
            Stage::Deployed(_) => bus_name.map(|bus_name| Self { endpoint, bus_name }),
        }
    }
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
        let trial_secs = seconds_var("TRIAL_SECONDS")?;
        let promo_secs = seconds_var("PROMO_SECONDS")?;
        let grace_secs = seconds_var("GRACE_SECONDS")?;
        let period_secs = seconds_var("PERIOD_SECONDS")?;
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
        let payments = PaymentsConfig::from_env(&stage, &service_key)?;
        let events = EventsConfig::from_vars(&stage, var);
        let cents = |name: &'static str, default: i64| match env::var(name) {
            Ok(text) if !text.is_empty() => {
                text.parse::<i64>()
                    .ok()
                    .filter(|c| *c > 0)
                    .ok_or(ConfigError::Invalid {
                        name,
                        reason: "must be a whole number of cents, 1 or more".into(),
                    })
            }
            _ => Ok(default),
        };
        let defaults = PurchaseLimits::default();
        let purchase_limits = PurchaseLimits {
            min_cents: cents("PURCHASE_MIN_CENTS", defaults.min_cents)?,
            max_cents: cents("PURCHASE_MAX_CENTS", defaults.max_cents)?,
        };
        if purchase_limits.min_cents > purchase_limits.max_cents {
            return Err(ConfigError::Invalid {
                name: "PURCHASE_MIN_CENTS",
                reason: "must not exceed PURCHASE_MAX_CENTS".into(),
            });
        }
        Ok(Self {
            purchase_limits,
            payments,
            stage,
            table_name,
            dynamodb_endpoint: env::var("DYNAMODB_ENDPOINT").ok().filter(|e| !e.is_empty()),
            service_key,
            intro_credit_cents,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            run_hold_secs: DEFAULT_RUN_HOLD_SECS,
            trial_secs,
            promo_secs,
            grace_secs,
            period_secs,
            scheduler,
            events,
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
            promo_secs: None,
            grace_secs: None,
            period_secs: None,
            scheduler: None,
            events: None,
            payments: PaymentsConfig::offline(&PaymentsConfig::derived_webhook_secret(service_key)),
            purchase_limits: PurchaseLimits::default(),
        }
    }
}

/// A length in seconds from the environment (unset or empty: `None`), 1 or more.
pub fn seconds_var(name: &'static str) -> Result<Option<i64>, ConfigError> {
    match env::var(name) {
        Ok(text) if !text.is_empty() => text
            .parse::<i64>()
            .ok()
            .filter(|s| *s > 0)
            .map(Some)
            .ok_or(ConfigError::Invalid {
                name,
                reason: "must be a whole number of seconds, 1 or more".into(),
            }),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn a_deployed_stage_never_runs_the_offline_gateway() {
        let key = ServiceKeySource::Secret {
            arn: "arn:secret".into(),
        };
        let deployed = Stage::Deployed("prod".into());
        assert!(matches!(
            PaymentsConfig::from_vars(&deployed, &key, lookup(&[])),
            Err(ConfigError::Missing(_))
        ));
        assert!(matches!(
            PaymentsConfig::from_vars(
                &deployed,
                &key,
                lookup(&[("STRIPE_SECRET_ARN", "arn:stripe")])
            ),
            Ok(PaymentsConfig::Stripe {
                keys: StripeKeys::Secret { .. },
                ..
            })
        ));
    }

    #[test]
    fn the_local_stage_is_offline_without_stripe_keys_and_online_with_them() {
        let key = ServiceKeySource::Plain("bk_local".into());
        let offline = PaymentsConfig::from_vars(&Stage::Local, &key, lookup(&[])).unwrap();
        match offline {
            PaymentsConfig::Offline { webhook_secret, .. } => {
                assert_eq!(
                    webhook_secret,
                    PaymentsConfig::derived_webhook_secret("bk_local")
                )
            }
            other => panic!("{other:?}"),
        }
        let online = PaymentsConfig::from_vars(
            &Stage::Local,
            &key,
            lookup(&[
                ("STRIPE_SECRET_KEY", "sk_test_1"),
                ("STRIPE_PUBLISHABLE_KEY", "pk_test_1"),
                ("STRIPE_WEBHOOK_SECRET", "whsec_1"),
            ]),
        );
        assert!(matches!(
            online,
            Ok(PaymentsConfig::Stripe {
                keys: StripeKeys::Plain { .. },
                ..
            })
        ));
        let half = PaymentsConfig::from_vars(
            &Stage::Local,
            &key,
            lookup(&[("STRIPE_SECRET_KEY", "sk_test_1")]),
        );
        assert!(matches!(
            half,
            Err(ConfigError::Missing("STRIPE_PUBLISHABLE_KEY"))
        ));
    }
}
