//! Billing accounts: who owns the money, how much there is, and the owner's spending settings.

use super::ids::{BillingAccountId, UserId};
use super::money::CURRENCY;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A holder of prepaid credit. `available_cents = balance_cents - held_cents`, never negative.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BillingAccount {
    pub id: BillingAccountId,
    pub name: String,
    pub owner_user_id: UserId,
    pub is_user_default: bool,
    pub currency: String,
    pub balance_cents: i64,
    pub held_cents: i64,
    pub available_cents: i64,
    pub has_payment_method: bool,
    pub settings: AccountSettings,
    pub created_at: String,
}

impl BillingAccount {
    /// A fresh account with nothing in it; credit arrives only as ledger transactions.
    pub fn open(
        id: BillingAccountId,
        owner_user_id: UserId,
        name: String,
        is_user_default: bool,
        created_at: String,
    ) -> Self {
        Self {
            id,
            name,
            owner_user_id,
            is_user_default,
            currency: CURRENCY.to_owned(),
            balance_cents: 0,
            held_cents: 0,
            available_cents: 0,
            has_payment_method: false,
            settings: AccountSettings::default(),
            created_at,
        }
    }
}

/// What the owner decided about spending. Caps are per calendar month (UTC); `None` is no cap.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AccountSettings {
    pub soft_cap_cents: Option<i64>,
    pub hard_cap_cents: Option<i64>,
    pub auto_recharge: AutoRecharge,
    pub billing_email: Option<String>,
}

impl Default for AccountSettings {
    fn default() -> Self {
        Self {
            soft_cap_cents: None,
            hard_cap_cents: None,
            auto_recharge: AutoRecharge {
                enabled: false,
                threshold_cents: 500,
                amount_cents: 2000,
                monthly_limit_cents: None,
            },
            billing_email: None,
        }
    }
}

/// Refill the account off-session when a debit leaves it under `threshold_cents`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AutoRecharge {
    pub enabled: bool,
    pub threshold_cents: i64,
    pub amount_cents: i64,
    pub monthly_limit_cents: Option<i64>,
}

/// A partial update of an account. For the nullable fields, `Some(None)` clears the value and
/// `None` leaves it as it is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AccountPatch {
    pub name: Option<String>,
    pub billing_email: Option<Option<String>>,
    pub soft_cap_cents: Option<Option<i64>>,
    pub hard_cap_cents: Option<Option<i64>>,
    pub auto_recharge: Option<AutoRechargePatch>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct AutoRechargePatch {
    pub enabled: Option<bool>,
    pub threshold_cents: Option<i64>,
    pub amount_cents: Option<i64>,
    pub monthly_limit_cents: Option<Option<i64>>,
}

/// Why a settings change was refused; the text names the field for the caller.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("{0}")]
    Invalid(String),
}

fn invalid(message: impl Into<String>) -> SettingsError {
    SettingsError::Invalid(message.into())
}

pub const MAX_NAME_LEN: usize = 200;

/// Unicode's `White_Space` characters (what `str::trim` and `char::is_whitespace` take) as the
/// inside of a regular-expression class, so a schema's pattern and the check agree on each one.
macro_rules! white_space {
    () => {
        r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
    };
}
pub(crate) use white_space;

/// What [`validate_name`] takes, for the schema: some character that is not white space (and
/// 1 to [`MAX_NAME_LEN`] characters).
pub const NAME_PATTERN: &str = concat!("[^", white_space!(), "]");

/// A display name: non-empty once trimmed, at most 200 characters as given (so the schema's
/// `maxLength` is the bound), stored trimmed.
pub fn validate_name(field: &str, name: &str) -> Result<String, SettingsError> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(invalid(format!("`{field}` must not be empty")));
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(invalid(format!(
            "`{field}` must be at most {MAX_NAME_LEN} characters"
        )));
    }
    Ok(trimmed.to_owned())
}

pub const MAX_EMAIL_LEN: usize = 254;

/// What [`validate_email`] takes, for the schema (with `maxLength` [`MAX_EMAIL_LEN`]).
pub const EMAIL_PATTERN: &str = concat!(
    "^[^@",
    white_space!(),
    "]+@[^@",
    white_space!(),
    r"]*\.[^@",
    white_space!(),
    "]*$"
);

/// A plausible e-mail address: one `@` with text on both sides, a `.` in the domain, no white
/// space (none around it either: the address is taken as given), at most 254 characters.
pub fn validate_email(field: &str, email: &str) -> Result<String, SettingsError> {
    let plausible = email.chars().count() <= MAX_EMAIL_LEN
        && !email.contains(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.contains('@')
        });
    if plausible {
        Ok(email.to_owned())
    } else {
        Err(invalid(format!("`{field}` is not a valid e-mail address")))
    }
}

impl BillingAccount {
    /// The account as it would be after `patch`, or why the patch is refused. Checks the result
    /// as a whole, so a patch that lowers the hard cap under an existing soft cap is refused too.
    pub fn patched(&self, patch: AccountPatch) -> Result<BillingAccount, SettingsError> {
        let mut next = self.clone();
        if let Some(name) = patch.name {
            next.name = validate_name("name", &name)?;
        }
        if let Some(email) = patch.billing_email {
            next.settings.billing_email = email
                .map(|e| validate_email("billing_email", &e))
                .transpose()?;
        }
        if let Some(soft) = patch.soft_cap_cents {
            next.settings.soft_cap_cents = soft;
        }
        if let Some(hard) = patch.hard_cap_cents {
            next.settings.hard_cap_cents = hard;
        }
        if let Some(recharge) = patch.auto_recharge {
            let target = &mut next.settings.auto_recharge;
            if let Some(enabled) = recharge.enabled {
                target.enabled = enabled;
            }
            if let Some(threshold) = recharge.threshold_cents {
                target.threshold_cents = threshold;
            }
            if let Some(amount) = recharge.amount_cents {
                target.amount_cents = amount;
            }
            if let Some(limit) = recharge.monthly_limit_cents {
                target.monthly_limit_cents = limit;
            }
        }
        next.settings.validate()?;
        Ok(next)
    }
}

/// Monthly caps, of an account or a workspace: each 0 or more, soft ≤ hard.
pub fn validate_caps(soft: Option<i64>, hard: Option<i64>) -> Result<(), SettingsError> {
    for (field, cap) in [("soft_cap_cents", soft), ("hard_cap_cents", hard)] {
        if cap.is_some_and(|c| c < 0) {
            return Err(invalid(format!("`{field}` must be 0 or more")));
        }
    }
    if let (Some(soft), Some(hard)) = (soft, hard) {
        if soft > hard {
            return Err(invalid(
                "`soft_cap_cents` must not be greater than `hard_cap_cents`",
            ));
        }
    }
    Ok(())
}

impl AccountSettings {
    /// Soft cap ≤ hard cap, caps ≥ 0, recharge amounts > 0, threshold ≥ 0.
    pub fn validate(&self) -> Result<(), SettingsError> {
        validate_caps(self.soft_cap_cents, self.hard_cap_cents)?;
        let recharge = &self.auto_recharge;
        if recharge.threshold_cents < 0 {
            return Err(invalid("`auto_recharge.threshold_cents` must be 0 or more"));
        }
        if recharge.amount_cents <= 0 {
            return Err(invalid(
                "`auto_recharge.amount_cents` must be greater than 0",
            ));
        }
        if recharge.monthly_limit_cents.is_some_and(|l| l <= 0) {
            return Err(invalid(
                "`auto_recharge.monthly_limit_cents` must be greater than 0",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> BillingAccount {
        BillingAccount::open(
            BillingAccountId::generate(1),
            UserId::generate(1),
            "Main".into(),
            true,
            "2026-01-01T00:00:00Z".into(),
        )
    }

    #[test]
    fn soft_cap_above_hard_cap_is_refused() {
        let patch = AccountPatch {
            soft_cap_cents: Some(Some(500)),
            hard_cap_cents: Some(Some(100)),
            ..Default::default()
        };
        assert!(account().patched(patch).is_err());
    }

    #[test]
    fn lowering_the_hard_cap_under_an_existing_soft_cap_is_refused() {
        let with_soft = account()
            .patched(AccountPatch {
                soft_cap_cents: Some(Some(500)),
                ..Default::default()
            })
            .unwrap();
        let lower_hard = AccountPatch {
            hard_cap_cents: Some(Some(400)),
            ..Default::default()
        };
        assert!(with_soft.patched(lower_hard).is_err());
    }

    #[test]
    fn null_clears_a_cap_and_absent_keeps_it() {
        let capped = account()
            .patched(AccountPatch {
                hard_cap_cents: Some(Some(900)),
                ..Default::default()
            })
            .unwrap();
        let kept = capped.patched(AccountPatch::default()).unwrap();
        assert_eq!(kept.settings.hard_cap_cents, Some(900));
        let cleared = capped
            .patched(AccountPatch {
                hard_cap_cents: Some(None),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(cleared.settings.hard_cap_cents, None);
    }

    #[test]
    fn recharge_amounts_must_be_positive_and_threshold_not_negative() {
        for recharge in [
            AutoRechargePatch {
                amount_cents: Some(0),
                ..Default::default()
            },
            AutoRechargePatch {
                threshold_cents: Some(-1),
                ..Default::default()
            },
            AutoRechargePatch {
                monthly_limit_cents: Some(Some(0)),
                ..Default::default()
            },
        ] {
            let patch = AccountPatch {
                auto_recharge: Some(recharge),
                ..Default::default()
            };
            assert!(account().patched(patch).is_err());
        }
    }

    #[test]
    fn emails_and_names_are_checked() {
        assert!(validate_email("e", "a@b.co").is_ok());
        assert!(validate_email("e", "nope").is_err());
        assert!(validate_email("e", "a b@c.d").is_err());
        assert!(validate_name("n", "   ").is_err());
        assert_eq!(validate_name("n", " Ops ").unwrap(), "Ops");
    }
}
