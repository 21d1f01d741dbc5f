//! The EventBridge Scheduler adapter against moto_server: what `put` and `remove` leave behind,
//! read back with GetSchedule. moto keeps its state for the whole run, so each test works in a
//! schedule group of its own.

use aws_sdk_scheduler::operation::get_schedule::GetScheduleOutput;
use aws_sdk_scheduler::types::{ActionAfterCompletion, FlexibleTimeWindowMode};
use aws_sdk_scheduler::Client;
use billing_core::domain::ids::WorkspaceId;
use billing_core::scheduler::{Deadline, Scheduler};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use time::macros::datetime;
use time::OffsetDateTime;

const TARGET_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:lifecycle-deadline";
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/scheduler-invokes-lifecycle";

/// moto_server's address, set by `make test`.
fn scheduler_endpoint() -> String {
    std::env::var("SCHEDULER_ENDPOINT").expect(
        "SCHEDULER_ENDPOINT is not set: run the tests with `make test`, which starts moto_server",
    )
}

/// A bare client on moto, to read back what the adapter wrote.
async fn moto_client() -> Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(scheduler_endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_scheduler::config::Credentials::new(
            "local", "local", None, None, "local",
        ))
        .load()
        .await;
    Client::new(&config)
}

struct Fixture {
    scheduler: Scheduler,
    client: Client,
    group: String,
}

/// An adapter on a new, empty schedule group.
async fn fresh_scheduler() -> Fixture {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let group = format!(
        "test-{}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        OffsetDateTime::now_utc().unix_timestamp_nanos() % 1_000_000_000
    );
    let client = moto_client().await;
    client
        .create_schedule_group()
        .name(&group)
        .send()
        .await
        .expect("create a test schedule group");
    let scheduler =
        Scheduler::connect(Some(&scheduler_endpoint()), &group, TARGET_ARN, ROLE_ARN).await;
    Fixture {
        scheduler,
        client,
        group,
    }
}

fn new_workspace_id() -> String {
    let millis = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    WorkspaceId::generate(millis as u64).to_string()
}

impl Fixture {
    /// The workspace's schedule, or None when there is none.
    async fn schedule_of(&self, workspace_id: &str) -> Option<GetScheduleOutput> {
        let found = self
            .client
            .get_schedule()
            .name(Scheduler::schedule_name(workspace_id))
            .group_name(&self.group)
            .send()
            .await;
        match found {
            Ok(output) => Some(output),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                None
            }
            Err(error) => panic!("GetSchedule failed: {error:?}"),
        }
    }
}

fn input_of(schedule: &GetScheduleOutput) -> Value {
    let input = schedule
        .target()
        .expect("a target")
        .input()
        .expect("an input");
    serde_json::from_str(input).expect("the input is JSON")
}

#[tokio::test]
async fn a_put_creates_a_one_time_utc_schedule_that_calls_the_target_and_deletes_itself() {
    let fixture = fresh_scheduler().await;
    let workspace_id = new_workspace_id();
    let deadline = Deadline {
        workspace_id: workspace_id.clone(),
        // Given with an offset: the schedule reads it in UTC.
        at: datetime!(2026-03-01 01:00:00 +01:00),
        trigger: "trial_ended".into(),
        version: 3,
    };

    fixture.scheduler.put(&deadline).await.expect("put");

    let schedule = fixture
        .schedule_of(&workspace_id)
        .await
        .expect("the schedule exists");
    assert_eq!(
        schedule.name(),
        Some(format!("lifecycle-{workspace_id}").as_str())
    );
    assert_eq!(schedule.group_name(), Some(fixture.group.as_str()));
    assert_eq!(
        schedule.schedule_expression(),
        Some("at(2026-03-01T00:00:00)")
    );
    assert_eq!(schedule.schedule_expression_timezone(), Some("UTC"));
    assert_eq!(
        schedule.action_after_completion(),
        Some(&ActionAfterCompletion::Delete)
    );
    assert_eq!(
        schedule.flexible_time_window().map(|w| w.mode()),
        Some(&FlexibleTimeWindowMode::Off)
    );
    let target = schedule.target().expect("a target");
    assert_eq!(target.arn(), TARGET_ARN);
    assert_eq!(target.role_arn(), ROLE_ARN);
    let retries = target.retry_policy().expect("a retry policy");
    assert!(retries.maximum_retry_attempts().is_some_and(|n| n > 0));
    assert_eq!(
        input_of(&schedule),
        json!({
            "workspace_id": workspace_id,
            "trigger": "trial_ended",
            "due_at": "2026-03-01T00:00:00Z",
            "version": 3,
        })
    );
}

#[tokio::test]
async fn a_second_put_replaces_the_schedule_with_the_new_time_and_payload() {
    let fixture = fresh_scheduler().await;
    let workspace_id = new_workspace_id();
    let first = Deadline {
        workspace_id: workspace_id.clone(),
        at: datetime!(2026-03-01 00:00:00 UTC),
        trigger: "trial_ended".into(),
        version: 1,
    };
    fixture.scheduler.put(&first).await.expect("first put");

    let later = Deadline {
        at: datetime!(2026-04-15 12:30:45 UTC),
        trigger: "promo_ended".into(),
        version: 2,
        ..first
    };
    fixture.scheduler.put(&later).await.expect("second put");

    let schedule = fixture
        .schedule_of(&workspace_id)
        .await
        .expect("the schedule exists");
    assert_eq!(
        schedule.name(),
        Some(Scheduler::schedule_name(&workspace_id).as_str())
    );
    assert_eq!(
        schedule.schedule_expression(),
        Some("at(2026-04-15T12:30:45)")
    );
    assert_eq!(schedule.schedule_expression_timezone(), Some("UTC"));
    assert_eq!(
        schedule.action_after_completion(),
        Some(&ActionAfterCompletion::Delete)
    );
    let target = schedule.target().expect("a target");
    assert_eq!(target.arn(), TARGET_ARN);
    assert_eq!(target.role_arn(), ROLE_ARN);
    assert_eq!(
        input_of(&schedule),
        json!({
            "workspace_id": workspace_id,
            "trigger": "promo_ended",
            "due_at": "2026-04-15T12:30:45Z",
            "version": 2,
        })
    );

    // Still one schedule for the workspace, not two.
    let listed = fixture
        .client
        .list_schedules()
        .group_name(&fixture.group)
        .send()
        .await
        .expect("ListSchedules");
    assert_eq!(listed.schedules().len(), 1);
}

#[tokio::test]
async fn remove_deletes_the_schedule_and_removing_it_again_is_ok() {
    let fixture = fresh_scheduler().await;
    let workspace_id = new_workspace_id();
    let deadline = Deadline {
        workspace_id: workspace_id.clone(),
        at: datetime!(2026-03-01 00:00:00 UTC),
        trigger: "grace_ended".into(),
        version: 5,
    };
    fixture.scheduler.put(&deadline).await.expect("put");
    assert!(fixture.schedule_of(&workspace_id).await.is_some());

    fixture
        .scheduler
        .remove(&workspace_id)
        .await
        .expect("remove");
    assert!(fixture.schedule_of(&workspace_id).await.is_none());

    fixture
        .scheduler
        .remove(&workspace_id)
        .await
        .expect("removing a schedule that is gone is not an error");

    // And a put after a remove creates it afresh.
    fixture.scheduler.put(&deadline).await.expect("put again");
    assert!(fixture.schedule_of(&workspace_id).await.is_some());
}

#[tokio::test]
async fn a_deadline_already_passed_is_still_scheduled() {
    let fixture = fresh_scheduler().await;
    let workspace_id = new_workspace_id();
    // Whole seconds, so the expected expression needs no rounding.
    let an_hour_ago = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("0 is a valid nanosecond")
        - time::Duration::HOUR;
    let deadline = Deadline {
        workspace_id: workspace_id.clone(),
        at: an_hour_ago,
        trigger: "period_ended".into(),
        version: 9,
    };

    fixture.scheduler.put(&deadline).await.expect("put");

    let schedule = fixture
        .schedule_of(&workspace_id)
        .await
        .expect("the schedule exists");
    let expected_time = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        an_hour_ago.year(),
        u8::from(an_hour_ago.month()),
        an_hour_ago.day(),
        an_hour_ago.hour(),
        an_hour_ago.minute(),
        an_hour_ago.second()
    );
    assert_eq!(
        schedule.schedule_expression(),
        Some(format!("at({expected_time})").as_str())
    );
    assert_eq!(input_of(&schedule)["due_at"], format!("{expected_time}Z"));
    assert_eq!(input_of(&schedule)["version"], 9);
}

/// The whole path: the API keeps each workspace's one-time schedule on its next deadline.
#[tokio::test]
async fn a_workspace_schedule_follows_its_lifecycle_deadlines() {
    use billing_core::api::lifecycle::{fire, Fired};
    use billing_core::clock::Clock;
    use billing_core::config::SchedulerConfig;
    use billing_core::domain::lifecycle::Trigger;
    let fixture = fresh_scheduler().await;
    let group = fixture.group.clone();
    let app = billing_tests::app::spawn_app_with(move |config| {
        config.scheduler = Some(SchedulerConfig {
            endpoint: Some(scheduler_endpoint()),
            group,
            target_arn: TARGET_ARN.into(),
            role_arn: ROLE_ARN.into(),
        })
    })
    .await;
    let (_, _, key) = app.user_with_key("scheduled").await;
    let workspace = app.create_workspace(&key, "Scheduled").await;
    let trial = app
        .get(
            &format!("/v1/workspaces/{workspace}/billing/subscription"),
            &key,
        )
        .await
        .body;
    let trial_end = OffsetDateTime::parse(
        trial["trial_ends_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let schedule = fixture
        .schedule_of(&workspace)
        .await
        .expect("a trial schedule");
    assert_eq!(
        schedule.schedule_expression(),
        Some(format!("at({})", &trial["trial_ends_at"].as_str().unwrap()[..19]).as_str())
    );
    assert_eq!(schedule.target().unwrap().arn(), TARGET_ARN);
    let input = input_of(&schedule);
    assert_eq!(
        (&input["workspace_id"], &input["trigger"]),
        (&json!(workspace), &json!("trial_ended"))
    );

    // The trial ends (the schedule's own function fires it): the schedule moves to the grace end.
    let until_trial_end = trial_end - app.clock.now();
    app.clock
        .advance(time::Duration::seconds(until_trial_end.whole_seconds() + 1));
    let id = WorkspaceId::parse(&workspace).unwrap();
    assert!(matches!(
        fire(&app.app, &id, Trigger::TrialEnded).await.unwrap(),
        Fired::Applied(_)
    ));
    let grace = app
        .get(
            &format!("/v1/workspaces/{workspace}/billing/subscription"),
            &key,
        )
        .await
        .body;
    let schedule = fixture
        .schedule_of(&workspace)
        .await
        .expect("a grace schedule");
    assert_eq!(input_of(&schedule)["trigger"], "grace_ended");
    assert_eq!(
        schedule.schedule_expression(),
        Some(format!("at({})", &grace["grace_ends_at"].as_str().unwrap()[..19]).as_str())
    );

    // Deleted: no deadline left, so no schedule.
    app.clock.advance(time::Duration::days(30));
    assert!(matches!(
        fire(&app.app, &id, Trigger::GraceEnded).await.unwrap(),
        Fired::Applied(_)
    ));
    assert!(fixture.schedule_of(&workspace).await.is_none(), "removed");
}
