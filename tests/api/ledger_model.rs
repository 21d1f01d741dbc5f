//! A model-based test of the ledger, through the HTTP API against DynamoDB Local: random
//! sequences of usage events, runs (hold, capture, complete, expire), service credits and caps,
//! with retries and a few concurrent bursts, checked against a plain in-memory model of the
//! contract's rules (`API.md`, "Billing accounts", "Metering and agent runs", service credits).
//!
//! The model is written from the contract alone: it shares no code with `billing_core`'s ledger.
//! After every step the stored balance, holds and availability equal the model's; every few steps
//! and at the end, the account's transactions (every page) sum to the balance and are, as a
//! multiset of `(type, amount)`, exactly the money movements the model made.
//!
//! Each case is one seed: a fresh app (introductory credit 0–500), one workspace, 40 steps. A
//! mismatch names the seed, the step and the operation, and how to replay it. Environment:
//! - `LEDGER_MODEL_SEED=<n>` runs that seed alone (decimal or `0x…`);
//! - `LEDGER_MODEL_CASES=<n>` runs n seeds instead of the default 8;
//! - `LEDGER_MODEL_STEPS=<n>` changes the steps per case;
//! - `LEDGER_MODEL_PARALLEL=<n>` runs n cases at a time (default 4).

use billing_core::clock::Clock;
use billing_tests::app::{spawn_app_with, TestApp, TestResponse};
use futures::future::join_all;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Debug;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

const DEFAULT_CASES: u64 = 8;
const DEFAULT_STEPS: usize = 40;
/// Open runs at once: well under any per-tier concurrency limit.
const MAX_OPEN_RUNS: usize = 3;
const MICROS_PER_CENT: u128 = 1_000_000;
/// Usage kept under the Free plan's limits (and the trial's 1,000 actions), so plan rules never
/// interfere with the money rules tested here.
const QUANTITY_BUDGET: [(&str, u64); 3] = [
    ("actions", 800),
    ("api_calls", 800),
    ("agent_invocations", 40),
];

// ---------------------------------------------------------------------------------------------
// A tiny deterministic PRNG (splitmix64): no dependency, the same sequence on every machine.

struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as i64
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The model: the contract's money rules, plainly.

#[derive(Clone, Copy, Debug, Default)]
struct Caps {
    soft: Option<i64>,
    hard: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RunState {
    Open,
    Completed,
    Expired,
}

impl RunState {
    fn name(self) -> &'static str {
        match self {
            RunState::Open => "authorized",
            RunState::Completed => "completed",
            RunState::Expired => "expired",
        }
    }
}

#[derive(Clone, Debug)]
struct Settlement {
    cost: i64,
    released: i64,
    /// The balance after it; several candidates when runs expired together in one sweep (the
    /// contract does not order them).
    balance_after: Vec<i64>,
}

#[derive(Debug)]
struct ModelRun {
    id: String,
    tier: String,
    hold: i64,
    /// Exact cost of what was captured.
    micros: u128,
    last_sequence: i64,
    /// Epoch seconds.
    expires_at: i64,
    state: RunState,
    settlement: Option<Settlement>,
    /// The first answer to a completion, which every later one repeats.
    first_completion: Option<Value>,
    /// Usage reports sent (for retries).
    reports: Vec<Value>,
}

struct Model {
    /// tier → category → micro-cents per unit.
    prices: BTreeMap<String, BTreeMap<String, u128>>,
    default_tier: String,
    balance: i64,
    /// `YYYY-MM` that `spent` counts.
    month: String,
    spent: i64,
    account_caps: Caps,
    workspace_caps: Caps,
    runs: Vec<ModelRun>,
    /// Every money movement: (transaction type, signed amount).
    ledger: Vec<(String, i64)>,
}

fn cents(micros: u128) -> i64 {
    micros.div_ceil(MICROS_PER_CENT) as i64
}

impl Model {
    fn held(&self) -> i64 {
        self.runs
            .iter()
            .filter(|r| r.state == RunState::Open)
            .map(|r| r.hold)
            .sum()
    }

    fn available(&self) -> i64 {
        self.balance - self.held()
    }

    /// Spend this month plus holds: what the hard caps count.
    fn committed(&self) -> i64 {
        self.spent + self.held()
    }

    fn hard_caps(&self) -> Vec<i64> {
        [self.account_caps.hard, self.workspace_caps.hard]
            .into_iter()
            .flatten()
            .collect()
    }

    /// A new calendar month (UTC) starts with nothing spent.
    fn enter_month(&mut self, month: &str) {
        if self.month != month {
            self.month = month.to_owned();
            self.spent = 0;
        }
    }

    fn price(&self, tier: &str, category: &str) -> u128 {
        self.prices[tier][category]
    }

    fn micros(&self, tier: &str, usage: &Value) -> u128 {
        ["input_tokens", "output_tokens", "actions"]
            .iter()
            .map(|c| u128::from(usage[c].as_u64().unwrap_or(0)) * self.price(tier, c))
            .sum()
    }

    fn event_cost(&self, event: &Value) -> i64 {
        let tier = event["agent_tier"].as_str().unwrap_or(&self.default_tier);
        let category = event["category"].as_str().unwrap();
        cents(u128::from(event["quantity"].as_u64().unwrap()) * self.price(tier, category))
    }

    /// Why `needed` more cents can't be spent or held now: every error code that applies
    /// (empty: allowed). Nothing is ever refused for 0.
    fn refusals(&self, needed: i64) -> Vec<&'static str> {
        let mut codes = Vec::new();
        if needed <= 0 {
            return codes;
        }
        if needed > self.available() {
            codes.push("insufficient_credits");
        }
        if self
            .hard_caps()
            .iter()
            .any(|cap| self.committed() + needed > *cap)
        {
            codes.push("hard_cap_reached");
        }
        codes
    }

    /// How much more could be spent or held now.
    fn room(&self) -> i64 {
        self.hard_caps()
            .iter()
            .fold(self.available(), |room, cap| {
                room.min(cap - self.committed())
            })
            .max(0)
    }

    fn soft_cap_reached_at(&self, spent: i64) -> bool {
        [self.account_caps.soft, self.workspace_caps.soft]
            .into_iter()
            .flatten()
            .any(|soft| spent >= soft)
    }

    /// Spends `amount` now: one `usage` transaction when it is not zero.
    fn spend(&mut self, amount: i64) {
        self.balance -= amount;
        self.spent += amount;
        if amount != 0 {
            self.ledger.push(("usage".into(), -amount));
        }
    }

    fn open_runs(&self) -> Vec<usize> {
        (0..self.runs.len())
            .filter(|i| self.runs[*i].state == RunState::Open)
            .collect()
    }

    fn settled_runs(&self) -> Vec<usize> {
        (0..self.runs.len())
            .filter(|i| self.runs[*i].state != RunState::Open)
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// One case: the app, the model, and the operations.

/// A usage event sent (for retries), with its first successful answer.
struct EventRecord {
    body: Value,
    first: Option<Value>,
}

/// A request sent under an `Idempotency-Key`, with its first answer.
struct KeyRecord {
    key: String,
    path: String,
    auth: String,
    body: Value,
    status: StatusCode,
    response: Value,
    at: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Event,
    EventRetry,
    Authorize,
    KeyedRetry,
    Report,
    ReportRetry,
    ReportSettled,
    Complete,
    CompleteAgain,
    Advance,
    Credit,
    AccountCaps,
    WorkspaceCaps,
    ConcurrentEvents,
    ConcurrentRun,
    ConcurrentCredit,
    NextMonth,
}

struct Case {
    seed: u64,
    rng: Rng,
    /// A separate stream for page sizes, so checks don't shift the operations.
    page_rng: Rng,
    app: TestApp,
    key: String,
    account: String,
    workspace: String,
    hold_secs: i64,
    model: Model,
    events: Vec<EventRecord>,
    keys: Vec<KeyRecord>,
    used: BTreeMap<&'static str, u64>,
    money_moved: bool,
    jumped_month: bool,
    counter: u64,
    step: usize,
    op: String,
    history: Vec<String>,
    /// How often each kind of outcome happened: what the seeds covered.
    outcomes: BTreeMap<String, u32>,
}

fn month_of(at: OffsetDateTime) -> String {
    format!("{:04}-{:02}", at.year(), u8::from(at.month()))
}

impl Case {
    async fn start(seed: u64) -> Case {
        let mut rng = Rng(seed);
        let intro = rng.range(0, 500);
        let app = spawn_app_with(|c| c.intro_credit_cents = intro).await;
        // Whole seconds from here on, so expiry comparisons are exact.
        let nanos = app.clock.now().nanosecond();
        if nanos > 0 {
            app.clock
                .advance(Duration::nanoseconds(1_000_000_000 - i64::from(nanos)));
        }
        let (_, account, key) = app.user_with_key("model-owner").await;
        let workspace = app.create_workspace(&key, "Model").await;
        let pricing = app.get("/v1/pricing", &key).await;
        assert_eq!(pricing.status, StatusCode::OK, "{:?}", pricing.body);
        let mut prices = BTreeMap::new();
        for tier in pricing.body["tiers"].as_array().unwrap() {
            let table = tier["prices"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(c, p)| (c.clone(), u128::from(p.as_u64().unwrap())))
                .collect();
            prices.insert(tier["id"].as_str().unwrap().to_owned(), table);
        }
        let now = app.clock.now();
        let model = Model {
            prices,
            default_tier: pricing.body["default_tier"].as_str().unwrap().to_owned(),
            balance: intro,
            month: month_of(now),
            spent: 0,
            account_caps: Caps::default(),
            workspace_caps: Caps::default(),
            runs: Vec::new(),
            ledger: if intro > 0 {
                vec![("grant".into(), intro)]
            } else {
                Vec::new()
            },
        };
        let hold_secs = app.app.config.run_hold_secs;
        Case {
            seed,
            page_rng: Rng(seed ^ 0x5A5A_5A5A_5A5A_5A5A),
            rng,
            app,
            key,
            account,
            workspace,
            hold_secs,
            model,
            events: Vec::new(),
            keys: Vec::new(),
            used: BTreeMap::new(),
            money_moved: false,
            jumped_month: false,
            counter: 0,
            step: 0,
            op: format!("start (introductory credit {intro})"),
            history: Vec::new(),
            outcomes: BTreeMap::new(),
        }
    }

    // -- reporting ------------------------------------------------------------------------------

    fn fail(&self, detail: impl std::fmt::Display) -> ! {
        let recent: Vec<String> = self.history.iter().rev().take(15).rev().cloned().collect();
        panic!(
            "ledger model mismatch: seed {seed} step {step} op {op}\n  {detail}\n  \
             replay: LEDGER_MODEL_SEED={seed} cargo test -p billing-tests --test api \
             ledger_model -- --nocapture\n  recent steps:\n    {}",
            recent.join("\n    "),
            seed = self.seed,
            step = self.step,
            op = self.op,
        )
    }

    fn same<T: PartialEq + Debug>(&self, what: &str, actual: T, expected: T) {
        if actual != expected {
            self.fail(format!("{what}: expected {expected:?}, got {actual:?}"));
        }
    }

    fn field(&self, response: &TestResponse, name: &str, expected: i64) {
        self.same(
            &format!("`{name}` in {}", response.body),
            response.body[name].as_i64(),
            Some(expected),
        );
    }

    fn status(&self, response: &TestResponse, expected: StatusCode) {
        if response.status != expected {
            self.fail(format!(
                "status: expected {expected}, got {} with {}",
                response.status, response.body
            ));
        }
    }

    fn refused(&self, response: &TestResponse, codes: &[&str]) {
        if response.status != StatusCode::PAYMENT_REQUIRED
            || !codes.contains(&response.error_code())
        {
            self.fail(format!(
                "expected 402 with one of {codes:?} (nothing changes), got {} with {}",
                response.status, response.body
            ));
        }
    }

    fn model_invariants(&self) {
        if self.model.available() < 0 {
            self.fail(format!(
                "the model itself went below zero available: {}",
                self.model.available()
            ));
        }
        for run in self.model.runs.iter().filter(|r| r.state == RunState::Open) {
            if cents(run.micros) > run.hold {
                self.fail(format!("the model captured beyond {}'s hold", run.id));
            }
        }
    }

    // -- plumbing -------------------------------------------------------------------------------

    fn note(&mut self, outcome: impl Into<String>) {
        *self.outcomes.entry(outcome.into()).or_default() += 1;
    }

    fn next_id(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}-{}-{}", self.step, self.counter)
    }

    fn now(&self) -> OffsetDateTime {
        self.app.clock.now()
    }

    fn enter_current_month(&mut self) {
        let month = month_of(self.now());
        self.model.enter_month(&month);
    }

    fn events_path(&self) -> String {
        format!("/v1/workspaces/{}/usage-events", self.workspace)
    }

    fn runs_path(&self) -> String {
        format!("/v1/workspaces/{}/runs", self.workspace)
    }

    fn credits_path(&self) -> String {
        format!("/v1/workspaces/{}/billing/credits", self.workspace)
    }

    async fn send(&self, path: &str, auth: &str, key: Option<&str>, body: &Value) -> TestResponse {
        let mut call = self.app.call(Method::POST, path).key(auth);
        if let Some(key) = key {
            call = call.header("idempotency-key", key);
        }
        call.json(body.clone()).send().await
    }

    /// A category and quantity for usage, within the plan-safe budget.
    fn usage_quantity(&mut self, category: &'static str, scale: i64) -> (&'static str, u64) {
        let quantity = match category {
            "input_tokens" => self.rng.range(1, 20_000),
            "output_tokens" => self.rng.range(1, 6_000),
            "actions" => self.rng.range(1, 15),
            "api_calls" => self.rng.range(1, 60),
            _ => self.rng.range(1, 3),
        } as u64
            * scale as u64;
        match QUANTITY_BUDGET.iter().find(|(c, _)| *c == category) {
            Some((_, budget))
                if self.used.get(category).copied().unwrap_or(0) + quantity > *budget =>
            {
                ("input_tokens", quantity.min(50_000))
            }
            Some(_) => {
                *self.used.entry(category).or_default() += quantity;
                (category, quantity)
            }
            None => (category, quantity),
        }
    }

    fn run_usage(&mut self, big: bool) -> Value {
        let scale = if big { self.rng.range(5, 20) } else { 1 };
        let mut usage = serde_json::Map::new();
        for category in ["input_tokens", "output_tokens", "actions"] {
            if self.rng.chance(60) {
                let (category, quantity) = self.usage_quantity(category, scale);
                let entry = usage.entry(category).or_insert(json!(0));
                *entry = json!(entry.as_u64().unwrap() + quantity);
            }
        }
        Value::Object(usage)
    }

    fn tiers(&self) -> Vec<String> {
        self.model.prices.keys().cloned().collect()
    }

    // -- checks after steps ---------------------------------------------------------------------

    async fn check_balance(&self) {
        self.model_invariants();
        let path = format!("/v1/billing-accounts/{}/balance", self.account);
        let stored = self.app.get(&path, &self.key).await;
        self.status(&stored, StatusCode::OK);
        self.field(&stored, "balance_cents", self.model.balance);
        self.field(&stored, "held_cents", self.model.held());
        self.field(&stored, "available_cents", self.model.available());
    }

    async fn check_workspace_balance(&self) {
        let path = format!("/v1/workspaces/{}/billing/balance", self.workspace);
        let stored = self.app.get(&path, &self.key).await;
        self.status(&stored, StatusCode::OK);
        self.field(&stored, "balance_cents", self.model.balance);
        self.field(&stored, "held_cents", self.model.held());
        self.field(&stored, "available_cents", self.model.available());
    }

    /// Every transaction, over every page: they sum to the balance and are exactly the model's
    /// money movements.
    async fn check_ledger(&mut self) {
        let limit = self.page_rng.range(5, 50);
        let mut cursor: Option<String> = None;
        let mut found: Vec<(String, i64)> = Vec::new();
        let mut newest_first: Vec<String> = Vec::new();
        let mut pages = 0;
        loop {
            let mut path = format!(
                "/v1/billing-accounts/{}/transactions?limit={limit}",
                self.account
            );
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = self.app.get(&path, &self.key).await;
            self.status(&page, StatusCode::OK);
            pages += 1;
            for txn in page.body["data"].as_array().unwrap() {
                self.same(
                    "a transaction's account",
                    txn["billing_account_id"].as_str(),
                    Some(self.account.as_str()),
                );
                newest_first.push(txn["created_at"].as_str().unwrap_or("").to_owned());
                let amount = txn["amount_cents"].as_i64().unwrap();
                if amount != 0 {
                    found.push((txn["type"].as_str().unwrap().to_owned(), amount));
                }
            }
            match page.body["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
            if pages > 1000 {
                self.fail("the transaction pages never end");
            }
        }
        if newest_first.windows(2).any(|pair| pair[0] < pair[1]) {
            self.fail(format!("transactions not newest first: {newest_first:?}"));
        }
        let sum: i64 = found.iter().map(|(_, a)| a).sum();
        self.same(
            "the sum of the transactions (every page)",
            sum,
            self.model.balance,
        );
        let mut expected = self.model.ledger.clone();
        expected.sort();
        found.sort();
        self.same("the transactions as (type, amount)", found, expected);
    }

    async fn check_run(&self, index: usize) {
        let run = &self.model.runs[index];
        let fetched = self
            .app
            .get(&format!("{}/{}", self.runs_path(), run.id), &self.key)
            .await;
        self.status(&fetched, StatusCode::OK);
        self.same(
            &format!("run {} status", run.id),
            fetched.body["status"].as_str(),
            Some(run.state.name()),
        );
        match &run.settlement {
            None => {
                self.field(&fetched, "hold_cents", run.hold);
                self.field(&fetched, "captured_cost_cents", cents(run.micros));
            }
            Some(settlement) => self.same(
                &format!("run {} settled cost", run.id),
                fetched.body["settlement"]["cost_cents"].as_i64(),
                Some(settlement.cost),
            ),
        }
    }

    // -- operations -----------------------------------------------------------------------------

    fn choose(&mut self) -> Op {
        let open = self.model.open_runs().len();
        let settled = self.model.settled_runs().len();
        let now = self.app.clock.now().unix_timestamp();
        let retryable_keys = self.keys.iter().any(|k| now - k.at < 23 * 3600);
        let reported = self
            .model
            .runs
            .iter()
            .any(|r| r.state == RunState::Open && !r.reports.is_empty());
        let table = [
            (Op::Event, 18, true),
            (Op::EventRetry, 7, !self.events.is_empty()),
            (Op::Authorize, 16, open < MAX_OPEN_RUNS),
            (Op::KeyedRetry, 6, retryable_keys),
            (Op::Report, 14, open > 0),
            (Op::ReportRetry, 5, reported),
            (Op::ReportSettled, 2, settled > 0),
            (Op::Complete, 8, open > 0),
            (Op::CompleteAgain, 4, settled > 0),
            (Op::Advance, 6, true),
            (Op::Credit, 10, true),
            (Op::AccountCaps, 4, true),
            (Op::WorkspaceCaps, 4, true),
            (Op::ConcurrentEvents, 4, true),
            (Op::ConcurrentRun, 3, open > 0),
            (Op::ConcurrentCredit, 2, true),
            // Only while the month ends within 20 days, so a case never spans the 30-day trial.
            (
                Op::NextMonth,
                1,
                !self.jumped_month && self.next_month_start() - self.now() < Duration::days(20),
            ),
        ];
        let total: u64 = table.iter().filter(|t| t.2).map(|t| t.1).sum();
        let mut ticket = self.rng.next_u64() % total;
        for (op, weight, allowed) in table {
            if !allowed {
                continue;
            }
            if ticket < weight {
                return op;
            }
            ticket -= weight;
        }
        unreachable!("the tickets cover the table")
    }

    async fn run_step(&mut self) {
        let op = self.choose();
        self.enter_current_month();
        match op {
            Op::Event => self.new_event().await,
            Op::EventRetry => {
                let index = self.rng.below(self.events.len());
                self.send_event(index, "retry of").await;
            }
            Op::Authorize => self.authorize().await,
            Op::KeyedRetry => self.keyed_retry().await,
            Op::Report => self.report().await,
            Op::ReportRetry => self.report_retry().await,
            Op::ReportSettled => self.report_settled().await,
            Op::Complete => {
                let open = self.model.open_runs();
                let index = *self.rng.pick(&open);
                self.complete(index).await;
            }
            Op::CompleteAgain => {
                let settled = self.model.settled_runs();
                let index = *self.rng.pick(&settled);
                self.complete(index).await;
            }
            Op::Advance => self.advance().await,
            Op::Credit => self.credit().await,
            Op::AccountCaps => self.set_caps(true).await,
            Op::WorkspaceCaps => self.set_caps(false).await,
            Op::ConcurrentEvents => self.concurrent_events().await,
            Op::ConcurrentRun => self.concurrent_run().await,
            Op::ConcurrentCredit => self.concurrent_credit().await,
            Op::NextMonth => self.next_month().await,
        }
        // Any other operation may have moved money (a hold, a free event, a credit…).
        if !matches!(op, Op::AccountCaps | Op::WorkspaceCaps) {
            self.money_moved = true;
        }
        self.history
            .push(format!("step {}: {}", self.step, self.op));
        self.check_balance().await;
        if self.step % 5 == 4 {
            self.check_ledger().await;
            self.check_workspace_balance().await;
        }
    }

    fn event_body(&mut self, id: &str) -> Value {
        let tiers = self.tiers();
        let tier = (!self.rng.chance(15)).then(|| self.rng.pick(&tiers).clone());
        let category = *self.rng.pick(&[
            "input_tokens",
            "input_tokens",
            "output_tokens",
            "output_tokens",
            "actions",
            "api_calls",
            "agent_invocations",
        ]);
        let scale = if self.rng.chance(10) { 12 } else { 1 };
        let (category, quantity) = self.usage_quantity(category, scale);
        let mut body = json!({"event_id": id, "category": category, "quantity": quantity});
        if let Some(tier) = tier {
            body["agent_tier"] = json!(tier);
        }
        if self.rng.chance(50) {
            body["agent_id"] = json!(format!("agent-{}", self.rng.below(3)));
        }
        body
    }

    async fn new_event(&mut self) {
        let id = self.next_id("evt");
        let body = self.event_body(&id);
        self.events.push(EventRecord { body, first: None });
        self.send_event(self.events.len() - 1, "new").await;
    }

    /// Sends event `index` (again): a repeat of a charged event answers its first result;
    /// otherwise it is charged now if credit and caps allow.
    async fn send_event(&mut self, index: usize, what: &str) {
        let body = self.events[index].body.clone();
        let cost = self.model.event_cost(&body);
        self.op = format!("{what} usage event {body} (costs {cost})");
        let response = self.app.post(&self.events_path(), &self.key, body).await;
        if let Some(first) = &self.events[index].first {
            self.status(&response, StatusCode::OK);
            self.same("a repeated event's answer", &response.body, first);
            return self.note("event: repeated, first answer");
        }
        let refusals = self.model.refusals(cost);
        if !refusals.is_empty() {
            self.refused(&response, &refusals);
            return self.note(format!("event: refused {}", response.error_code()));
        }
        self.note(if cost == 0 {
            "event: free"
        } else {
            "event: charged"
        });
        self.model.spend(cost);
        self.status(&response, StatusCode::CREATED);
        self.same(
            "event_id",
            response.body["event_id"].as_str(),
            self.events[index].body["event_id"].as_str(),
        );
        self.field(&response, "cost_cents", cost);
        self.field(&response, "balance_after_cents", self.model.balance);
        self.same(
            "soft_cap_reached",
            response.body["soft_cap_reached"].as_bool(),
            Some(self.model.soft_cap_reached_at(self.model.spent)),
        );
        self.events[index].first = Some(response.body);
    }

    async fn authorize(&mut self) {
        let tiers = self.tiers();
        let tier = self.rng.pick(&tiers).clone();
        // Mostly affordable, sometimes just at or over what is available, sometimes far over.
        let available = self.model.available();
        let max = match self.rng.below(10) {
            0 => self.rng.range(60, 600),
            1 if available > 0 => available + self.rng.range(0, 1),
            _ => self.rng.range(1, 40),
        };
        let body = json!({
            "agent_id": format!("agent-{}", self.rng.below(3)),
            "agent_tier": tier,
            "max_cost_cents": max,
        });
        let key = self.rng.chance(40).then(|| self.next_id("run-key"));
        self.op = format!("authorize a run {body} (key {key:?})");
        let now = self.now().unix_timestamp();
        let path = self.runs_path();
        let response = self.send(&path, &self.key, key.as_deref(), &body).await;
        let refusals = self.model.refusals(max);
        if refusals.is_empty() {
            self.status(&response, StatusCode::CREATED);
            self.field(&response, "hold_cents", max);
            self.same(
                "status",
                response.body["status"].as_str(),
                Some("authorized"),
            );
            let expires = response.body["expires_at"]
                .as_str()
                .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
                .map(|t| t.unix_timestamp());
            self.same("expires_at", expires, Some(now + self.hold_secs));
            let id = response.body["run_id"].as_str().unwrap_or("").to_owned();
            if !id.starts_with("run_") {
                self.fail(format!("a run id: {}", response.body));
            }
            self.note("run: authorized");
            self.model.runs.push(ModelRun {
                id,
                tier,
                hold: max,
                micros: 0,
                last_sequence: 0,
                expires_at: now + self.hold_secs,
                state: RunState::Open,
                settlement: None,
                first_completion: None,
                reports: Vec::new(),
            });
        } else {
            self.refused(&response, &refusals);
            self.note(format!("run: refused {}", response.error_code()));
        }
        if let Some(key) = key {
            self.keys.push(KeyRecord {
                key,
                path,
                auth: self.key.clone(),
                body,
                status: response.status,
                response: response.body,
                at: now,
            });
        }
    }

    /// A request sent again under its `Idempotency-Key`: with the same body, the first answer
    /// again and nothing moves; with another body, 400 `idempotency_key_reused`.
    async fn keyed_retry(&mut self) {
        let now = self.now().unix_timestamp();
        let fresh: Vec<usize> = (0..self.keys.len())
            .filter(|i| now - self.keys[*i].at < 23 * 3600)
            .collect();
        let index = *self.rng.pick(&fresh);
        let altered = self.rng.chance(20);
        let record = &self.keys[index];
        let mut body = record.body.clone();
        if altered {
            for field in ["amount_cents", "max_cost_cents"] {
                if let Some(n) = body[field].as_i64() {
                    body[field] = json!(n + 1);
                }
            }
        }
        self.op = format!("retry under key {} of {} {body}", record.key, record.path);
        let response = self
            .send(&record.path, &record.auth, Some(&record.key), &body)
            .await;
        let outcome = if altered {
            self.status(&response, StatusCode::BAD_REQUEST);
            self.same(
                "error code",
                response.error_code(),
                "idempotency_key_reused",
            );
            "keyed retry: another body, 400".to_owned()
        } else {
            self.status(&response, record.status);
            self.same("the replayed answer", &response.body, &record.response);
            format!("keyed retry: replayed {}", record.status.as_u16())
        };
        self.note(outcome);
    }

    /// Applies a usage report to run `index` in the model and checks the answer.
    fn expect_report(&mut self, index: usize, body: &Value, response: &TestResponse) {
        let run = &self.model.runs[index];
        if run.state != RunState::Open {
            self.status(response, StatusCode::CONFLICT);
            return self.note("report: to a settled run, 409");
        }
        let sequence = body["sequence"].as_i64().unwrap();
        if sequence <= run.last_sequence {
            self.note("report: sequence already applied, no change");
        } else {
            let micros = run.micros + self.model.micros(&run.tier, body);
            let extension = cents(micros) - run.hold;
            let refusals = self.model.refusals(extension);
            if !refusals.is_empty() {
                self.refused(response, &refusals);
                return self.note(format!(
                    "report: extension refused {}",
                    response.error_code()
                ));
            }
            self.note(if extension > 0 {
                "report: hold extended"
            } else {
                "report: within the hold"
            });
            let run = &mut self.model.runs[index];
            run.hold += extension.max(0);
            run.micros = micros;
            run.last_sequence = sequence;
        }
        let run = &self.model.runs[index];
        self.status(response, StatusCode::OK);
        self.field(response, "hold_cents", run.hold);
        self.field(response, "captured_cost_cents", cents(run.micros));
        self.same(
            "status",
            response.body["status"].as_str(),
            Some("authorized"),
        );
    }

    async fn report_to(&mut self, index: usize, body: Value, what: &str) {
        let run = &self.model.runs[index];
        self.op = format!(
            "{what} usage report {body} to {} (hold {}, captured {} µ¢, last sequence {})",
            run.id, run.hold, run.micros, run.last_sequence
        );
        let path = format!("{}/{}/usage", self.runs_path(), run.id);
        let response = self.app.post(&path, &self.key, body.clone()).await;
        self.model.runs[index].reports.push(body.clone());
        self.expect_report(index, &body, &response);
        self.check_run(index).await;
    }

    async fn report(&mut self) {
        let open = self.model.open_runs();
        let index = *self.rng.pick(&open);
        let sequence = self.model.runs[index].last_sequence + self.rng.range(1, 2);
        let big = self.rng.chance(20);
        let mut body = self.run_usage(big);
        body["sequence"] = json!(sequence);
        self.report_to(index, body, "new").await;
    }

    async fn report_retry(&mut self) {
        let candidates: Vec<usize> = self
            .model
            .open_runs()
            .into_iter()
            .filter(|i| !self.model.runs[*i].reports.is_empty())
            .collect();
        let index = *self.rng.pick(&candidates);
        let body = self.rng.pick(&self.model.runs[index].reports).clone();
        self.report_to(index, body, "repeated").await;
    }

    async fn report_settled(&mut self) {
        let settled = self.model.settled_runs();
        let index = *self.rng.pick(&settled);
        let mut body = self.run_usage(false);
        body["sequence"] = json!(self.model.runs[index].last_sequence + 1);
        self.report_to(index, body, "late").await;
    }

    /// Settles run `index` by completion in the model (what it debits, releases and leaves).
    fn settle_by_completion(&mut self, index: usize, usage: &Value) -> Settlement {
        let room = self.model.room();
        let run = &self.model.runs[index];
        let micros = run.micros + self.model.micros(&run.tier, usage);
        let hold = run.hold;
        let spend = cents(micros).min(hold + room);
        self.note(if spend < cents(micros) {
            "complete: capped at hold + affordable"
        } else if spend > hold {
            "complete: beyond the hold, affordable"
        } else {
            "complete: within the hold"
        });
        let run = &mut self.model.runs[index];
        run.micros = micros;
        run.state = RunState::Completed;
        self.model.spend(spend);
        let settlement = Settlement {
            cost: spend,
            released: (hold - spend).max(0),
            balance_after: vec![self.model.balance],
        };
        self.model.runs[index].settlement = Some(settlement.clone());
        settlement
    }

    fn expect_completion(&self, index: usize, settlement: &Settlement, response: &TestResponse) {
        let run = &self.model.runs[index];
        self.status(response, StatusCode::OK);
        if let Some(first) = &run.first_completion {
            return self.same(
                "completing again answers the first result",
                &response.body,
                first,
            );
        }
        self.same(
            "run_id",
            response.body["run_id"].as_str(),
            Some(run.id.as_str()),
        );
        self.field(response, "cost_cents", settlement.cost);
        self.field(response, "released_cents", settlement.released);
        let balance_after = response.body["balance_after_cents"].as_i64().unwrap_or(-1);
        if !settlement.balance_after.contains(&balance_after) {
            self.fail(format!(
                "balance_after_cents {balance_after}, expected one of {:?}: {}",
                settlement.balance_after, response.body
            ));
        }
        self.same(
            "status",
            response.body["status"].as_str(),
            Some(run.state.name()),
        );
    }

    async fn complete(&mut self, index: usize) {
        let usage = if self.rng.chance(50) {
            json!({})
        } else {
            let big = self.rng.chance(25);
            self.run_usage(big)
        };
        let run = &self.model.runs[index];
        self.op = format!(
            "complete {} ({}, hold {}, captured {} µ¢) with {usage}",
            run.id,
            run.state.name(),
            run.hold,
            run.micros
        );
        let path = format!("{}/{}/complete", self.runs_path(), run.id);
        let response = self.app.post(&path, &self.key, usage.clone()).await;
        let settlement = match &self.model.runs[index].settlement {
            Some(settled) => {
                let settled = settled.clone();
                let outcome = format!(
                    "complete: again, {} run",
                    self.model.runs[index].state.name()
                );
                self.note(outcome);
                settled
            }
            None => self.settle_by_completion(index, &usage),
        };
        self.expect_completion(index, &settlement, &response);
        if self.model.runs[index].first_completion.is_none() {
            self.model.runs[index].first_completion = Some(response.body);
        }
        self.check_run(index).await;
    }

    /// Moves the clock forward by `seconds`, then runs the expiry sweep: every open run whose
    /// `expires_at` has passed is settled for what was reported, the rest of its hold released.
    async fn advance_by(&mut self, seconds: i64) {
        self.app.clock.advance(Duration::seconds(seconds));
        self.enter_current_month();
        let now = self.now().unix_timestamp();
        let due: Vec<usize> = self
            .model
            .open_runs()
            .into_iter()
            .filter(|i| self.model.runs[*i].expires_at <= now)
            .collect();
        let costs: Vec<i64> = due
            .iter()
            .map(|i| cents(self.model.runs[*i].micros))
            .collect();
        let before = self.model.balance;
        for (slot, index) in due.iter().enumerate() {
            // Settled in any order: before it, any subset of the others.
            let others: Vec<i64> = (0..costs.len())
                .filter(|j| *j != slot)
                .map(|j| costs[j])
                .collect();
            let mut balance_after: Vec<i64> = (0..1u32 << others.len())
                .map(|mask| {
                    let earlier: i64 = (0..others.len())
                        .filter(|k| mask & (1 << k) != 0)
                        .map(|k| others[k])
                        .sum();
                    before - costs[slot] - earlier
                })
                .collect();
            balance_after.sort_unstable();
            balance_after.dedup();
            let run = &mut self.model.runs[*index];
            run.state = RunState::Expired;
            run.settlement = Some(Settlement {
                cost: costs[slot],
                released: run.hold - costs[slot],
                balance_after,
            });
        }
        for cost in &costs {
            self.model.spend(*cost);
            self.note("sweep: run expired");
        }
        let sweep = billing_core::routes::job_by_name("runs-expire").unwrap();
        let settled = (sweep.run)(&self.app.app, serde_json::Value::Null).await;
        self.same(
            "runs the sweep settled",
            settled.map(|o| o.handled).map_err(|e| e.to_string()),
            Ok(due.len()),
        );
        let again = (sweep.run)(&self.app.app, serde_json::Value::Null).await;
        self.same(
            "runs a second sweep settled",
            again.map(|o| o.handled).map_err(|e| e.to_string()),
            Ok(0),
        );
        for index in due {
            self.check_run(index).await;
        }
    }

    async fn advance(&mut self) {
        let open = self.model.open_runs();
        let now = self.now().unix_timestamp();
        let seconds = if open.is_empty() || self.rng.chance(35) {
            self.rng.range(1, 50 * 60)
        } else {
            // To one open run's expiry, at its boundary or beyond.
            let target = self.model.runs[*self.rng.pick(&open)].expires_at;
            let offset = *self.rng.pick(&[-1, 0, 1, 30, 600]);
            (target - now + offset).max(1)
        };
        self.op = format!(
            "advance the clock {seconds} s and sweep (open runs expire at {:?}, now {now})",
            open.iter()
                .map(|i| self.model.runs[*i].expires_at)
                .collect::<Vec<_>>()
        );
        self.advance_by(seconds).await;
    }

    /// When the next calendar month (UTC) starts.
    fn next_month_start(&self) -> OffsetDateTime {
        let now = self.now();
        let (year, month) = if u8::from(now.month()) == 12 {
            (now.year() + 1, 1u8)
        } else {
            (now.year(), u8::from(now.month()) + 1)
        };
        time::Date::from_calendar_date(year, time::Month::try_from(month).unwrap(), 1)
            .unwrap()
            .midnight()
            .assume_utc()
    }

    async fn next_month(&mut self) {
        self.jumped_month = true;
        self.note("clock: into the next month");
        let seconds =
            (self.next_month_start() - self.now()).whole_seconds() + self.rng.range(0, 6 * 3600);
        self.op = format!("advance {seconds} s into the next month and sweep");
        self.advance_by(seconds.max(1)).await;
    }

    fn credit_body(&mut self) -> (Value, Option<i64>) {
        let kind = *self
            .rng
            .pick(&["grant", "grant", "refund", "adjustment", "adjustment"]);
        let invalid = self.rng.chance(7);
        let amount = match (kind, invalid) {
            ("adjustment", true) => 0,
            (_, true) => self.rng.range(-50, 0),
            ("grant", false) => self.rng.range(1, 250),
            ("refund", false) => self.rng.range(1, 100),
            _ => {
                let a = self.rng.range(-200, 149);
                if a >= 0 {
                    a + 1
                } else {
                    a
                }
            }
        };
        let body = json!({
            "amount_cents": amount,
            "type": kind,
            "reason": format!("model step {}", self.step),
        });
        (body, (!invalid).then_some(amount))
    }

    /// What the model says a service credit does: (status, error codes); applied when 201.
    fn apply_credit(
        &mut self,
        body: &Value,
        valid: Option<i64>,
    ) -> (StatusCode, Vec<&'static str>) {
        let Some(amount) = valid else {
            self.note("credit: invalid, 400");
            return (StatusCode::BAD_REQUEST, vec!["invalid_request"]);
        };
        if amount < 0 && -amount > self.model.available() {
            self.note("credit: adjustment refused, 402");
            return (StatusCode::PAYMENT_REQUIRED, vec!["insufficient_credits"]);
        }
        let kind = body["type"].as_str().unwrap();
        self.note(format!(
            "credit: {kind}{}",
            if amount < 0 { " (negative)" } else { "" }
        ));
        self.model.balance += amount;
        self.model
            .ledger
            .push((body["type"].as_str().unwrap().to_owned(), amount));
        (StatusCode::CREATED, Vec::new())
    }

    fn expect_credit(
        &self,
        body: &Value,
        expected: &(StatusCode, Vec<&'static str>),
        response: &TestResponse,
    ) {
        self.status(response, expected.0);
        if expected.0 != StatusCode::CREATED {
            if !expected.1.contains(&response.error_code()) {
                self.fail(format!(
                    "error code: expected {:?}, got {}",
                    expected.1, response.body
                ));
            }
            return;
        }
        self.same(
            "type",
            response.body["type"].as_str(),
            body["type"].as_str(),
        );
        self.field(
            response,
            "amount_cents",
            body["amount_cents"].as_i64().unwrap(),
        );
        self.field(response, "balance_after_cents", self.model.balance);
        self.same(
            "workspace_id",
            response.body["workspace_id"].as_str(),
            Some(self.workspace.as_str()),
        );
    }

    async fn credit(&mut self) {
        let (body, valid) = self.credit_body();
        let key = self.rng.chance(50).then(|| self.next_id("credit-key"));
        self.op = format!("service credit {body} (key {key:?})");
        let path = self.credits_path();
        let service = self.app.service_key.clone();
        let response = self.send(&path, &service, key.as_deref(), &body).await;
        let expected = self.apply_credit(&body, valid);
        self.expect_credit(&body, &expected, &response);
        if let Some(key) = key {
            if response.status != StatusCode::BAD_REQUEST {
                self.keys.push(KeyRecord {
                    key,
                    path,
                    auth: service,
                    body,
                    status: response.status,
                    response: response.body,
                    at: self.now().unix_timestamp(),
                });
            }
        }
    }

    async fn set_caps(&mut self, account: bool) {
        let committed = self.model.committed();
        let hard = (!self.rng.chance(30)).then(|| (committed + self.rng.range(-10, 80)).max(0));
        let invalid = hard.is_some() && self.rng.chance(10);
        let soft = if invalid {
            hard.map(|h| h + self.rng.range(1, 20))
        } else if self.rng.chance(40) {
            None
        } else {
            Some(match hard {
                Some(h) => self.rng.range(0, h),
                None => (self.model.spent + self.rng.range(-5, 60)).max(0),
            })
        };
        let body = json!({"soft_cap_cents": soft, "hard_cap_cents": hard});
        let path = if account {
            format!("/v1/billing-accounts/{}", self.account)
        } else {
            format!("/v1/workspaces/{}/billing", self.workspace)
        };
        self.op = format!(
            "set the {} caps {body} (spent {}, held {})",
            if account { "account" } else { "workspace" },
            self.model.spent,
            self.model.held()
        );
        let response = self.app.patch(&path, &self.key, body).await;
        self.note(format!(
            "caps: {} {}",
            if account { "account" } else { "workspace" },
            if invalid { "invalid, 400" } else { "set" }
        ));
        if invalid {
            self.status(&response, StatusCode::BAD_REQUEST);
            return self.same("error code", response.error_code(), "invalid_request");
        }
        self.status(&response, StatusCode::OK);
        let shown = if account {
            &response.body["settings"]
        } else {
            &response.body
        };
        self.same(
            "caps answered",
            (
                shown["soft_cap_cents"].as_i64(),
                shown["hard_cap_cents"].as_i64(),
            ),
            (soft, hard),
        );
        let caps = Caps { soft, hard };
        if account {
            self.model.account_caps = caps;
        } else {
            self.model.workspace_caps = caps;
        }
    }

    /// Several distinct events (some sent twice) fired at once: any serialization will do, so
    /// exactly as many are charged as the room allows, each once.
    async fn concurrent_events(&mut self) {
        let distinct = self.rng.range(2, 6) as usize;
        let quantity = self.rng.range(1, 60_000);
        let tiers = self.tiers();
        let tier = self.rng.pick(&tiers).clone();
        let category = if self.rng.chance(70) {
            "input_tokens"
        } else {
            "output_tokens"
        };
        let mut ids = Vec::new();
        let mut requests = Vec::new();
        for _ in 0..distinct {
            let id = self.next_id("burst");
            let body = json!({"event_id": id, "category": category, "quantity": quantity, "agent_tier": tier});
            for _ in 0..self.rng.range(1, 2) {
                requests.push(body.clone());
            }
            ids.push(body);
        }
        self.rng.shuffle(&mut requests);
        let cost = self.model.event_cost(&ids[0]);
        let room = self.model.room();
        let charged = if cost == 0 {
            distinct
        } else {
            distinct.min((room / cost) as usize)
        };
        self.op = format!(
            "{} concurrent requests for {distinct} events of {cost} cents each (room {room}: \
             {charged} should be charged)",
            requests.len()
        );
        let path = self.events_path();
        let responses = join_all(
            requests
                .iter()
                .map(|body| self.app.post(&path, &self.key, body.clone())),
        )
        .await;
        let before = (self.model.balance, self.model.spent);
        let mut balances_after = Vec::new();
        for body in &ids {
            let id = body["event_id"].as_str().unwrap();
            let answers: Vec<&TestResponse> = requests
                .iter()
                .zip(&responses)
                .filter(|(sent, _)| sent["event_id"] == id)
                .map(|(_, r)| r)
                .collect();
            let created: Vec<&&TestResponse> = answers
                .iter()
                .filter(|r| r.status == StatusCode::CREATED)
                .collect();
            match created.as_slice() {
                [] => {
                    for answer in &answers {
                        self.refused(answer, &["insufficient_credits", "hard_cap_reached"]);
                    }
                    self.events.push(EventRecord {
                        body: body.clone(),
                        first: None,
                    });
                }
                [first] => {
                    for answer in &answers {
                        if answer.status != StatusCode::CREATED {
                            self.status(answer, StatusCode::OK);
                            self.same("a repeat's answer", &answer.body, &first.body);
                        }
                    }
                    self.field(first, "cost_cents", cost);
                    let after = first.body["balance_after_cents"].as_i64().unwrap();
                    let nth = if cost == 0 {
                        0
                    } else {
                        (before.0 - after) / cost
                    };
                    self.same(
                        &format!("soft_cap_reached in {}", first.body),
                        first.body["soft_cap_reached"].as_bool(),
                        Some(self.model.soft_cap_reached_at(before.1 + nth * cost)),
                    );
                    balances_after.push(after);
                    self.events.push(EventRecord {
                        body: body.clone(),
                        first: Some(first.body.clone()),
                    });
                }
                _ => self.fail(format!("event {id} was charged {} times", created.len())),
            }
        }
        self.same("events charged", balances_after.len(), charged);
        self.note(if charged == distinct {
            "burst of events: all charged"
        } else if charged == 0 {
            "burst of events: none charged"
        } else {
            "burst of events: some charged, the rest refused"
        });
        for _ in 0..charged {
            self.model.spend(cost);
        }
        if charged < distinct {
            let codes = self.model.refusals(cost);
            for response in &responses {
                if response.status == StatusCode::PAYMENT_REQUIRED {
                    self.refused(response, &codes);
                }
            }
        }
        balances_after.sort_unstable();
        let mut expected: Vec<i64> = (1..=charged as i64).map(|j| before.0 - j * cost).collect();
        expected.sort_unstable();
        self.same("the balances after each charge", balances_after, expected);
    }

    /// The same report, or the same completion, fired several times at once: it applies once,
    /// and every copy answers alike.
    async fn concurrent_run(&mut self) {
        let open = self.model.open_runs();
        let index = *self.rng.pick(&open);
        let copies = self.rng.range(2, 4) as usize;
        let completing = self.rng.chance(50);
        let (path, body) = if completing {
            let path = format!(
                "{}/{}/complete",
                self.runs_path(),
                self.model.runs[index].id
            );
            (path, self.run_usage(false))
        } else {
            let path = format!("{}/{}/usage", self.runs_path(), self.model.runs[index].id);
            let big = self.rng.chance(30);
            let mut body = self.run_usage(big);
            body["sequence"] = json!(self.model.runs[index].last_sequence + 1);
            (path, body)
        };
        let run = &self.model.runs[index];
        self.op = format!(
            "{copies} concurrent {} of {} (hold {}, captured {} µ¢) with {body}",
            if completing {
                "completions"
            } else {
                "usage reports"
            },
            run.id,
            run.hold,
            run.micros
        );
        let responses =
            join_all((0..copies).map(|_| self.app.post(&path, &self.key, body.clone()))).await;
        self.note(if completing {
            "concurrent: same completion"
        } else {
            "concurrent: same usage report"
        });
        if completing {
            let settlement = self.settle_by_completion(index, &body);
            for response in &responses {
                self.expect_completion(index, &settlement, response);
                self.same(
                    "every completion's answer",
                    &response.body,
                    &responses[0].body,
                );
            }
            self.model.runs[index].first_completion = Some(responses[0].body.clone());
        } else {
            self.model.runs[index].reports.push(body.clone());
            let refusals = {
                let run = &self.model.runs[index];
                let micros = run.micros + self.model.micros(&run.tier, &body);
                self.model.refusals(cents(micros) - run.hold)
            };
            self.expect_report(index, &body, &responses[0]);
            for response in &responses[1..] {
                if refusals.is_empty() {
                    // A retry of an applied sequence: the run as it is now.
                    self.expect_report(index, &body, response);
                } else {
                    self.refused(response, &refusals);
                }
            }
        }
        self.check_run(index).await;
    }

    /// One service credit sent several times at once under one `Idempotency-Key`: applied once;
    /// each copy answers its result, or 409 `idempotency_key_in_use` while the first runs.
    async fn concurrent_credit(&mut self) {
        let (body, valid) = self.credit_body();
        let key = self.next_id("credit-key");
        let copies = self.rng.range(2, 5) as usize;
        self.op = format!("{copies} concurrent service credits {body} under key {key}");
        let path = self.credits_path();
        let service = self.app.service_key.clone();
        let responses =
            join_all((0..copies).map(|_| self.send(&path, &service, Some(&key), &body))).await;
        let expected = self.apply_credit(&body, valid);
        let answered: Vec<&TestResponse> = responses
            .iter()
            .filter(|r| {
                !(r.status == StatusCode::CONFLICT && r.error_code() == "idempotency_key_in_use")
            })
            .collect();
        if answered.is_empty() {
            self.fail("every copy answered 409 idempotency_key_in_use");
        }
        let in_use = copies - answered.len();
        self.note(format!(
            "concurrent: same keyed credit ({})",
            if in_use > 0 {
                "some 409 in use"
            } else {
                "all replayed"
            }
        ));
        for response in &answered {
            self.expect_credit(&body, &expected, response);
            if expected.0 == StatusCode::CREATED {
                self.same(
                    "every copy's transaction",
                    &response.body,
                    &answered[0].body,
                );
            }
        }
        if expected.0 != StatusCode::BAD_REQUEST {
            self.keys.push(KeyRecord {
                key,
                path,
                auth: service,
                body,
                status: answered[0].status,
                response: answered[0].body.clone(),
                at: self.now().unix_timestamp(),
            });
        }
    }

    async fn finish(&mut self) {
        self.op = "final checks".into();
        self.check_balance().await;
        self.check_workspace_balance().await;
        self.check_ledger().await;
        for index in 0..self.model.runs.len() {
            self.check_run(index).await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Running cases.

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let text = text.trim();
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={text} is not a number")))
}

/// The default seeds: fixed, so every run checks the same histories.
fn default_seeds(cases: u64) -> Vec<u64> {
    let mut rng = Rng(0x1ED6_E200_0DE1);
    (0..cases).map(|_| rng.next_u64() % 1_000_000_000).collect()
}

async fn run_case(seed: u64, steps: usize) -> (String, BTreeMap<String, u32>) {
    let mut case = Case::start(seed).await;
    for step in 0..steps {
        case.step = step;
        case.run_step().await;
    }
    case.step = steps;
    case.finish().await;
    let summary = format!(
        "seed {seed}: {steps} steps, {} runs, {} transactions, balance {}, held {}",
        case.model.runs.len(),
        case.model.ledger.len(),
        case.model.balance,
        case.model.held()
    );
    (summary, case.outcomes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_histories_of_money_movements_agree_with_a_model_of_the_rules() {
    let steps = env_number("LEDGER_MODEL_STEPS").map_or(DEFAULT_STEPS, |n| n as usize);
    let seeds = match env_number("LEDGER_MODEL_SEED") {
        Some(seed) => vec![seed],
        None => default_seeds(env_number("LEDGER_MODEL_CASES").unwrap_or(DEFAULT_CASES)),
    };
    println!("ledger_model: seeds {seeds:?}, {steps} steps each");
    let started = std::time::Instant::now();
    let mut outcomes: BTreeMap<String, u32> = BTreeMap::new();
    // A few cases at a time: each is sequential, so this keeps DynamoDB Local busy.
    let parallel = env_number("LEDGER_MODEL_PARALLEL").unwrap_or(4).max(1) as usize;
    for pair in seeds.chunks(parallel) {
        let summaries = join_all(pair.iter().map(|seed| run_case(*seed, steps))).await;
        for (summary, counted) in summaries {
            println!("ledger_model: {summary}");
            for (outcome, n) in counted {
                *outcomes.entry(outcome).or_default() += n;
            }
        }
    }
    for (outcome, n) in &outcomes {
        println!("ledger_model: {n:5} × {outcome}");
    }
    println!("ledger_model: {:.1} s", started.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------------------------------------
// Regressions this model found, kept as small reproductions and as the seeds that found them.

/// An account's hard cap lowered after money moved is enforced at once, also by the process
/// that remembers the account's state (a settings change moves the account's ledger version).
#[tokio::test]
async fn an_account_hard_cap_lowered_after_money_moved_is_enforced_at_once() {
    let app = spawn_app_with(|c| c.intro_credit_cents = 100).await;
    let (_, account, key) = app.user_with_key("capped").await;
    let workspace = app.create_workspace(&key, "Capped").await;
    let events = format!("/v1/workspaces/{workspace}/usage-events");
    // One cent at the basic tier: 10 actions × 100 000 µ¢.
    let one_cent = |id: &str| json!({"event_id": id, "category": "actions", "quantity": 10, "agent_tier": "basic"});
    let first = app.post(&events, &key, one_cent("first")).await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    let capped = app
        .patch(
            &format!("/v1/billing-accounts/{account}"),
            &key,
            json!({"soft_cap_cents": 1, "hard_cap_cents": 2}),
        )
        .await;
    assert_eq!(capped.status, StatusCode::OK, "{:?}", capped.body);
    let second = app.post(&events, &key, one_cent("second")).await;
    assert_eq!(second.status, StatusCode::CREATED, "{:?}", second.body);
    assert_eq!(
        second.body["soft_cap_reached"], true,
        "2 cents spent against a 1-cent soft cap: {:?}",
        second.body
    );
    let third = app.post(&events, &key, one_cent("third")).await;
    assert_eq!(
        (third.status, third.error_code()),
        (StatusCode::PAYMENT_REQUIRED, "hard_cap_reached"),
        "a third cent crosses the 2-cent hard cap: {:?}",
        third.body
    );
}

/// The expiry sweep leaves a run alone until its `expires_at` (it once took runs expiring in the
/// next second).
#[tokio::test]
async fn the_sweep_leaves_a_run_alone_until_its_expires_at() {
    let app = spawn_app_with(|c| c.intro_credit_cents = 100).await;
    let (_, _, key) = app.user_with_key("early").await;
    let workspace = app.create_workspace(&key, "Early").await;
    let runs = format!("/v1/workspaces/{workspace}/runs");
    let created = app
        .post(
            &runs,
            &key,
            json!({"agent_id": "a", "agent_tier": "basic", "max_cost_cents": 10}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let run = created.body["run_id"].as_str().unwrap();
    app.clock
        .advance(Duration::seconds(app.app.config.run_hold_secs - 1));
    let sweep = billing_core::routes::job_by_name("runs-expire").unwrap();
    let settled = (sweep.run)(&app.app, serde_json::Value::Null)
        .await
        .unwrap()
        .handled;
    let fetched = app.get(&format!("{runs}/{run}"), &key).await;
    assert_eq!(
        (settled, fetched.body["status"].as_str()),
        (0, Some("authorized")),
        "now is before expires_at {}: {:?}",
        created.body["expires_at"],
        fetched.body
    );
}

/// The seed that found a lowered account cap ignored (at step 3).
#[tokio::test]
async fn the_seed_that_lowers_an_account_cap_after_money_moved() {
    run_case(998_623_553, DEFAULT_STEPS).await;
}

/// The seed that found the sweep settling a run a second early (at step 21).
#[tokio::test]
async fn the_seed_that_sweeps_one_second_before_an_expiry() {
    run_case(639_000_536, DEFAULT_STEPS).await;
}
