//! `POST /v1/users`: a user, its default billing account and the introductory grant.

use super::access::require_service;
use crate::clock::{rfc3339, unix_millis};
use crate::domain::account::{validate_email, BillingAccount};
use crate::domain::ids::{BillingAccountId, TransactionId, UserId};
use crate::domain::transaction::{Transaction, TransactionType};
use crate::domain::user::{validate_external_id, User};
use crate::http::{ApiError, Ctx, Reply};
use crate::store::users::{CreatedUser, UserWithAccount};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// The platform's id for this person. Creating the same external id again returns the
    /// existing user (200) and grants nothing.
    #[schemars(
        length(min = 1, max = 255),
        pattern(crate::domain::user::NO_CONTROL_CHARS_PATTERN)
    )]
    pub external_id: String,
    #[schemars(length(max = 254), pattern(crate::domain::account::EMAIL_PATTERN))]
    pub email: Option<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct UserCreated {
    pub user: User,
    pub default_billing_account: BillingAccount,
}

pub const DEFAULT_ACCOUNT_NAME: &str = "Default";

pub async fn create(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    require_service(&cx)?;
    let body: CreateUser = cx.body()?;
    validate_external_id(&body.external_id).map_err(ApiError::InvalidRequest)?;
    let email = body
        .email
        .map(|e| validate_email("email", &e))
        .transpose()?;
    // A retry must not pay for a second round of writes: answer from the store if we can.
    if let Some(existing) = cx
        .app
        .store
        .find_user_by_external_id(&body.external_id)
        .await?
    {
        return Reply::ok(&created(existing));
    }
    let now = cx.now();
    let (millis, created_at) = (unix_millis(now), rfc3339(now));
    let user_id = UserId::generate(millis);
    let mut account = BillingAccount::open(
        BillingAccountId::generate(millis),
        user_id.clone(),
        DEFAULT_ACCOUNT_NAME.to_owned(),
        true,
        created_at.clone(),
    );
    let intro = cx.app.config.intro_credit_cents;
    let grant = (intro > 0).then(|| Transaction {
        id: TransactionId::generate(millis),
        billing_account_id: account.id.clone(),
        workspace_id: None,
        kind: TransactionType::Grant,
        amount_cents: intro,
        balance_after_cents: intro,
        description: "introductory credit".to_owned(),
        category: None,
        agent_id: None,
        run_id: None,
        reference: None,
        created_at: created_at.clone(),
    });
    account.balance_cents = intro;
    account.available_cents = intro;
    let user = User {
        id: user_id,
        external_id: body.external_id,
        email,
        default_billing_account_id: account.id.clone(),
        created_at,
    };
    match cx
        .app
        .store
        .create_user(&user, &account, grant.as_ref())
        .await?
    {
        CreatedUser::Created(made) => Reply::created(&created(made)),
        CreatedUser::Existing(existing) => Reply::ok(&created(existing)),
    }
}

fn created(made: UserWithAccount) -> UserCreated {
    UserCreated {
        user: made.user,
        default_billing_account: made.account,
    }
}
