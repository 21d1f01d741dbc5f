//! Configuration, read once per cold start from the environment.

use crate::x402::evm::Address;
use crate::x402::Network;
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
    /// Exact origins allowed to call MCP (`MCP_ALLOWED_ORIGINS`, comma-separated); the local
    /// stage also allows loopback `http` origins.
    pub allowed_origins: Vec<String>,
    pub x402: X402Config,
}

/// x402 checkout: what a payment must pay, to whom, and who settles it (`X402_*`).
#[derive(Clone, Debug)]
pub struct X402Config {
    pub network: Network,
    /// The token contract (USDC), which is also the EIP-712 `verifyingContract`.
    pub asset: Address,
    /// The token's EIP-712 domain `name` and `version`.
    pub asset_name: String,
    pub asset_version: String,
    /// The treasury that receives the payments.
    pub pay_to: Address,
    pub max_timeout_seconds: u64,
    pub facilitator: FacilitatorConfig,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FacilitatorConfig {
    /// Local stage only: the server verifies the signature and settles by crediting.
    Offline,
    /// `X402_FACILITATOR_URL`'s `/verify` and `/settle`, with an optional bearer token read
    /// from Secrets Manager (`X402_FACILITATOR_TOKEN_ARN`).
    Http {
        url: String,
        token_arn: Option<String>,
    },
}

impl X402Config {
    /// The local defaults: Base Sepolia's USDC, a throwaway treasury, the offline facilitator.
    pub fn local() -> Self {
        Self::from_vars(&Stage::Local, |_| None).expect("the local defaults are valid")
    }

    /// From `lookup` (the environment, or a test's table). A deployed stage must name the
    /// network, the treasury and a facilitator: it never runs the offline one.
    pub fn from_vars(
        stage: &Stage,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let var = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let deployed = matches!(stage, Stage::Deployed(_));
        let required = |name: &'static str, local: &str| match var(name) {
            Some(value) => Ok(value),
            None if deployed => Err(ConfigError::Missing(name)),
            None => Ok(local.to_owned()),
        };
        let invalid = |name: &'static str, reason: &str| ConfigError::Invalid {
            name,
            reason: reason.to_owned(),
        };
        let network_text = required("X402_NETWORK", "eip155:84532")?;
        let network = Network::parse(&network_text).ok_or_else(|| {
            invalid(
                "X402_NETWORK",
                "must be a known EVM network as `eip155:<chain id>` (8453 Base, 84532 Base Sepolia, …)",
            )
        })?;
        let asset_default = network.default_asset();
        let address = |name: &'static str, text: String| {
            Address::parse(&text).ok_or_else(|| invalid(name, "must be 0x and 40 hex digits"))
        };
        let asset = match (var("X402_ASSET"), asset_default) {
            (Some(text), _) => address("X402_ASSET", text)?,
            (None, Some(default)) => default.address,
            (None, None) => return Err(ConfigError::Missing("X402_ASSET")),
        };
        let (default_name, default_version) = asset_default
            .filter(|d| d.address == asset)
            .map_or(("USDC", "2"), |d| (d.name, d.version));
        let pay_to = address(
            "X402_PAY_TO",
            required("X402_PAY_TO", "0x209693Bc6afc0C5328bA36FaF03C514EF312287C")?,
        )?;
        let max_timeout_seconds = match var("X402_MAX_TIMEOUT_SECONDS") {
            Some(text) => text
                .parse::<u64>()
                .ok()
                .filter(|s| (1..=86_400).contains(s))
                .ok_or_else(|| invalid("X402_MAX_TIMEOUT_SECONDS", "must be 1 to 86400 seconds"))?,
            None => 300,
        };
        let facilitator =
            match var("X402_FACILITATOR_URL") {
                Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                    FacilitatorConfig::Http {
                        url: url.trim_end_matches('/').to_owned(),
                        token_arn: var("X402_FACILITATOR_TOKEN_ARN"),
                    }
                }
                Some(_) => return Err(invalid("X402_FACILITATOR_URL", "must be an http(s) URL")),
                None if deployed => return Err(ConfigError::Missing(
                    "X402_FACILITATOR_URL (a deployed stage never runs the offline facilitator)",
                )),
                None => FacilitatorConfig::Offline,
            };
        Ok(Self {
            network,
            asset,
            asset_name: var("X402_ASSET_NAME").unwrap_or_else(|| default_name.to_owned()),
            asset_version: var("X402_ASSET_VERSION").unwrap_or_else(|| default_version.to_owned()),
            pay_to,
            max_timeout_seconds,
            facilitator,
        })
    }
}

/// `MCP_ALLOWED_ORIGINS`: comma-separated exact origins.
pub fn allowed_origins(lookup: impl Fn(&str) -> Option<String>) -> Vec<String> {
    lookup("MCP_ALLOWED_ORIGINS")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(str::to_owned)
        .collect()
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
        let lookup = |name: &str| env::var(name).ok();
        Ok(Self {
            allowed_origins: allowed_origins(lookup),
            x402: X402Config::from_vars(&stage, lookup)?,
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
            allowed_origins: Vec::new(),
            x402: X402Config::local(),
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
    fn x402_defaults_locally_and_requires_its_settings_when_deployed() {
        let local = X402Config::from_vars(&Stage::Local, lookup(&[])).unwrap();
        assert_eq!(local.network.caip2(), "eip155:84532");
        assert_eq!(
            local.asset.checksummed(),
            "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
        );
        assert_eq!(
            (local.asset_name.as_str(), local.asset_version.as_str()),
            ("USDC", "2")
        );
        assert_eq!(local.facilitator, FacilitatorConfig::Offline);
        let deployed = Stage::Deployed("prod".into());
        assert!(X402Config::from_vars(&deployed, lookup(&[])).is_err());
        // Everything but a facilitator: still refused, never offline.
        assert!(matches!(
            X402Config::from_vars(
                &deployed,
                lookup(&[
                    ("X402_NETWORK", "eip155:8453"),
                    ("X402_PAY_TO", "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"),
                ])
            ),
            Err(ConfigError::Missing(_))
        ));
        let base = X402Config::from_vars(
            &deployed,
            lookup(&[
                ("X402_NETWORK", "eip155:8453"),
                ("X402_PAY_TO", "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"),
                ("X402_FACILITATOR_URL", "https://facilitator.example/"),
            ]),
        )
        .unwrap();
        assert_eq!(
            base.asset.checksummed(),
            "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
        );
        assert_eq!(base.asset_name, "USD Coin");
        assert_eq!(base.network.v1_name(), "base");
        assert!(
            matches!(base.facilitator, FacilitatorConfig::Http { ref url, .. } if url == "https://facilitator.example")
        );
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
