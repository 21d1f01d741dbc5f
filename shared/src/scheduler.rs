//! EventBridge Scheduler: each workspace's next lifecycle deadline as one one-time schedule
//! (`lifecycle-<workspace id>`), which calls the target with [`payload`] when it is due and then
//! deletes itself. Tests run it against moto_server.

use aws_sdk_scheduler::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_scheduler::types::{
    ActionAfterCompletion, FlexibleTimeWindow, FlexibleTimeWindowMode, RetryPolicy, ScheduleState,
    Target,
};
use aws_sdk_scheduler::Client;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime, UtcOffset};

/// One workspace's next lifecycle deadline, as a one-time schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deadline {
    pub workspace_id: String,
    pub at: OffsetDateTime,
    pub trigger: String,
    /// The workspace's lifecycle version the deadline was computed from, so the target can
    /// ignore a schedule that a later change has made stale.
    pub version: i64,
}

/// Something EventBridge Scheduler could not do.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("eventbridge scheduler request failed: {0}")]
    Request(String),
    #[error("schedule request could not be built: {0}")]
    Build(String),
    #[error("schedule {0} kept appearing and vanishing; gave up after retries")]
    Contention(String),
}

impl SchedulerError {
    fn sdk<E, R>(error: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::fmt::Debug,
        R: std::fmt::Debug,
    {
        let detail = match error.as_service_error() {
            Some(service) => format!(
                "{}: {}",
                service.code().unwrap_or("unknown"),
                service.message().unwrap_or("")
            ),
            None => format!("{error:?}"),
        };
        SchedulerError::Request(detail)
    }

    fn build(error: aws_sdk_scheduler::error::BuildError) -> Self {
        SchedulerError::Build(error.to_string())
    }
}

/// Create-or-update rounds before `put` gives up: each lost race (the schedule appeared, or
/// vanished, between two calls) costs one.
const PUT_ATTEMPTS: usize = 4;

/// Retries when the target fails. Lifecycle transitions are idempotent (a stale or repeated
/// one is refused by the store), so retrying is safe; a day covers a long target outage.
const TARGET_RETRY_ATTEMPTS: i32 = 5;
const TARGET_MAX_EVENT_AGE_SECONDS: i32 = 24 * 60 * 60;

/// Schedule names: `[0-9a-zA-Z-_.]+`, at most 64 characters.
const NAME_PREFIX: &str = "lifecycle-";
const NAME_MAX_LEN: usize = 64;

/// A handle on one schedule group. Cheap to clone; built once per cold start.
#[derive(Clone, Debug)]
pub struct Scheduler {
    client: Client,
    group: String,
    target_arn: String,
    role_arn: String,
}

impl Scheduler {
    /// endpoint: Some(url) for moto in tests, None for the real service.
    pub async fn connect(
        endpoint: Option<&str>,
        group: &str,
        target_arn: &str,
        role_arn: &str,
    ) -> Self {
        Self {
            client: Client::new(&crate::aws::sdk_config(endpoint).await),
            group: group.to_owned(),
            target_arn: target_arn.to_owned(),
            role_arn: role_arn.to_owned(),
        }
    }

    /// `lifecycle-<workspace id>`: one schedule per workspace (names: [0-9a-zA-Z-_.]+, max 64).
    ///
    /// Minted workspace ids (`ws_` + 26 characters) always fit. An id that doesn't (too long, or
    /// with characters a name can't hold) keeps a readable head and ends in a hash of the whole
    /// id, so the name stays valid, stable and distinct per workspace.
    pub fn schedule_name(workspace_id: &str) -> String {
        let fits = NAME_PREFIX.len() + workspace_id.len() <= NAME_MAX_LEN
            && !workspace_id.is_empty()
            && workspace_id.bytes().all(is_name_byte);
        if fits {
            return format!("{NAME_PREFIX}{workspace_id}");
        }
        let digest = Sha256::digest(workspace_id.as_bytes());
        let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        let head_len = NAME_MAX_LEN - NAME_PREFIX.len() - 1 - hash.len();
        let head: String = workspace_id
            .chars()
            .filter(|c| c.is_ascii() && is_name_byte(*c as u8))
            .take(head_len)
            .collect();
        format!("{NAME_PREFIX}{head}-{hash}")
    }

    /// Creates the workspace's schedule, or replaces it (UpdateSchedule) when one exists.
    ///
    /// A deadline in the past is still scheduled: EventBridge fires a past `at()` soon after.
    /// Concurrent puts for one workspace end with whichever wrote last; the payload's `version`
    /// lets the target tell a stale one apart.
    pub async fn put(&self, deadline: &Deadline) -> Result<(), SchedulerError> {
        let name = Self::schedule_name(&deadline.workspace_id);
        let expression = at_expression(deadline.at);
        let target = self.target(deadline)?;
        let window = FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()
            .map_err(SchedulerError::build)?;

        // Between our calls the schedule can appear (another put) or vanish (it fired and
        // deleted itself, or a remove): each round starts again from create.
        for _ in 0..PUT_ATTEMPTS {
            let created = self
                .client
                .create_schedule()
                .name(&name)
                .group_name(&self.group)
                .schedule_expression(&expression)
                .schedule_expression_timezone("UTC")
                .flexible_time_window(window.clone())
                .action_after_completion(ActionAfterCompletion::Delete)
                .state(ScheduleState::Enabled)
                .target(target.clone())
                .send()
                .await;
            match created {
                Ok(_) => {
                    tracing::info!(schedule = %name, %expression, "lifecycle schedule created");
                    return Ok(());
                }
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|e| e.is_conflict_exception()) => {}
                Err(error) => return Err(SchedulerError::sdk(error)),
            }

            // UpdateSchedule replaces every field, and resets any it isn't given (a missing
            // ActionAfterCompletion becomes NONE), so it gets the whole definition again.
            let updated = self
                .client
                .update_schedule()
                .name(&name)
                .group_name(&self.group)
                .schedule_expression(&expression)
                .schedule_expression_timezone("UTC")
                .flexible_time_window(window.clone())
                .action_after_completion(ActionAfterCompletion::Delete)
                .state(ScheduleState::Enabled)
                .target(target.clone())
                .send()
                .await;
            match updated {
                Ok(_) => {
                    tracing::info!(schedule = %name, %expression, "lifecycle schedule replaced");
                    return Ok(());
                }
                Err(error)
                    if error.as_service_error().is_some_and(|e| {
                        e.is_resource_not_found_exception() || e.is_conflict_exception()
                    }) => {}
                Err(error) => return Err(SchedulerError::sdk(error)),
            }
        }
        Err(SchedulerError::Contention(name))
    }

    /// Deletes the workspace's schedule; one that doesn't exist is not an error.
    pub async fn remove(&self, workspace_id: &str) -> Result<(), SchedulerError> {
        let name = Self::schedule_name(workspace_id);
        let deleted = self
            .client
            .delete_schedule()
            .name(&name)
            .group_name(&self.group)
            .send()
            .await;
        match deleted {
            Ok(_) => {
                tracing::info!(schedule = %name, "lifecycle schedule removed");
                Ok(())
            }
            // Already fired (and deleted itself), or never made: the outcome asked for.
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(())
            }
            Err(error) => Err(SchedulerError::sdk(error)),
        }
    }

    fn target(&self, deadline: &Deadline) -> Result<Target, SchedulerError> {
        Target::builder()
            .arn(&self.target_arn)
            .role_arn(&self.role_arn)
            .input(payload(deadline).to_string())
            .retry_policy(
                RetryPolicy::builder()
                    .maximum_retry_attempts(TARGET_RETRY_ATTEMPTS)
                    .maximum_event_age_in_seconds(TARGET_MAX_EVENT_AGE_SECONDS)
                    .build(),
            )
            .build()
            .map_err(SchedulerError::build)
    }
}

/// The payload the target receives.
pub fn payload(deadline: &Deadline) -> serde_json::Value {
    serde_json::json!({
        "workspace_id": deadline.workspace_id,
        "trigger": deadline.trigger,
        "due_at": format!("{}Z", utc_seconds_text(deadline.at)),
        "version": deadline.version,
    })
}

/// `at(yyyy-mm-ddThh:mm:ss)`, read in the schedule's timezone (UTC).
fn at_expression(at: OffsetDateTime) -> String {
    format!("at({})", utc_seconds_text(at))
}

/// `yyyy-mm-ddThh:mm:ss` in UTC, rounded up to a whole second: `at()` has no fractions, and a
/// schedule firing before its deadline would find it not yet due.
fn utc_seconds_text(at: OffsetDateTime) -> String {
    let utc = at.to_offset(UtcOffset::UTC);
    let whole = utc - Duration::nanoseconds(i64::from(utc.nanosecond()));
    let due = if whole == utc {
        whole
    } else {
        whole.checked_add(Duration::SECOND).unwrap_or(whole)
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        due.year(),
        u8::from(due.month()),
        due.day(),
        due.hour(),
        due.minute(),
        due.second()
    )
}

fn is_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn deadline(at: OffsetDateTime) -> Deadline {
        Deadline {
            workspace_id: "ws_01hzy3k9q2m4n5p6r7s8t9v0wx".into(),
            at,
            trigger: "trial_ended".into(),
            version: 7,
        }
    }

    #[test]
    fn the_payload_carries_the_deadline_in_utc_whole_seconds() {
        let value = payload(&deadline(datetime!(2026-03-01 01:00:00 +01:00)));
        assert_eq!(
            value,
            serde_json::json!({
                "workspace_id": "ws_01hzy3k9q2m4n5p6r7s8t9v0wx",
                "trigger": "trial_ended",
                "due_at": "2026-03-01T00:00:00Z",
                "version": 7,
            })
        );
    }

    #[test]
    fn the_expression_is_the_utc_time_rounded_up_to_a_second() {
        assert_eq!(
            at_expression(datetime!(2026-02-28 19:00:00 -05:00)),
            "at(2026-03-01T00:00:00)"
        );
        assert_eq!(
            at_expression(datetime!(2026-02-28 23:59:59.25 UTC)),
            "at(2026-03-01T00:00:00)"
        );
    }

    #[test]
    fn a_minted_workspace_id_becomes_the_name_as_it_is() {
        assert_eq!(
            Scheduler::schedule_name("ws_01hzy3k9q2m4n5p6r7s8t9v0wx"),
            "lifecycle-ws_01hzy3k9q2m4n5p6r7s8t9v0wx"
        );
    }

    #[test]
    fn an_id_too_long_or_odd_for_a_name_still_gets_a_valid_distinct_one() {
        let long_a = format!("ws_{}", "a".repeat(64));
        let long_b = format!("ws_{}b", "a".repeat(63));
        for id in [long_a.as_str(), long_b.as_str(), "ws_with space", "ws_ü"] {
            let name = Scheduler::schedule_name(id);
            assert!(name.len() <= NAME_MAX_LEN, "{name}");
            assert!(name.bytes().all(is_name_byte), "{name}");
            assert!(name.starts_with(NAME_PREFIX), "{name}");
        }
        assert_ne!(
            Scheduler::schedule_name(&long_a),
            Scheduler::schedule_name(&long_b)
        );
    }
}
