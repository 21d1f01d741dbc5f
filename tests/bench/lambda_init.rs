//! Cold start of every Lambda against a hello-world baseline, measured on loopback:
//! `make bench-init` (also part of `make bench`), which builds the release binaries and runs
//! `cargo bench -p billing-tests --bench lambda-init`.
//!
//! For each function (every route and job of `billing_core::routes`):
//! - the release binary's size, the arm64 `bootstrap.zip` from `make package` if present, and
//!   whether the binary links the Stripe client;
//! - init: the median of [`BOOTS`] boots, from just before `spawn()` to the function's first
//!   `GET /2018-06-01/runtime/invocation/next` on a fresh [`RuntimeApi`], each boot paired with a
//!   boot of the hello-world `lambda_http` binary (`tests/bench/hello_world.rs`, same profile)
//!   so that the ratio of the two medians is measured under the same conditions;
//! - init + first request: from `spawn()` to the answer of one real request against DynamoDB
//!   Local (the route's own method and path with an invalid key, so the function looks the key
//!   up and answers 401; a job runs once on an empty table);
//! - peak RSS: `VmHWM` after that request.
//!
//! The table is printed and written into `docs/BENCHMARKS.md` between the `lambda-init` markers.
//! Function output goes to `target/bench-logs/lambda-init/<name>.log`.
//!
//! Names after `--` (`cargo bench -p billing-tests --bench lambda-init -- health`) measure only
//! those functions and print the table without writing the document.

use billing_core::routes::{Access, Invocation, Job, Route, JOBS, ROUTES};
use billing_tests::binaries::links_stripe;
use billing_tests::report::{machine, write_section};
use billing_tests::runtime_api::{http_api_event, lambda_env, InvokeError, RuntimeApi};
use serde_json::Value;
use std::fs::{self, File};
use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// Boots per function (and as many of the baseline) for the init medians.
const BOOTS: usize = 15;
/// The baseline binary (`tests/bench/hello_world.rs`).
const HELLO_WORLD: &str = "hello-world";
/// Configuration handed to the functions when the bench process has it.
const PASS_THROUGH: [&str; 4] = ["TABLE_NAME", "DYNAMODB_ENDPOINT", "SERVICE_KEY", "STAGE"];
/// Init ÷ the hello-world baseline's init, both medians of the same run.
const INIT_RATIO_TARGET: f64 = 2.0;
const RSS_TARGET_MB: f64 = 16.0;
/// The largest zip before each function linked only its own route (issue 9).
const ZIP_TARGET_MB: f64 = 4.94;
/// How long a boot may take before it counts as hung.
const BOOT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the RSS request may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);
const MB: f64 = 1024.0 * 1024.0;

/// A function to measure: a route (an HTTP API event) or a job (a scheduled event).
#[derive(Clone, Copy)]
enum Function {
    Route(&'static Route),
    Job(&'static Job),
}

impl Function {
    fn name(self) -> &'static str {
        match self {
            Function::Route(route) => route.name,
            Function::Job(job) => job.name,
        }
    }
}

/// One function's numbers.
struct Row {
    name: &'static str,
    binary_mb: f64,
    zip_mb: Option<f64>,
    links_stripe: bool,
    init_ms: f64,
    baseline_ms: f64,
    first_request_ms: f64,
    rss_mb: f64,
    /// Set when the RSS request did not get the expected answer.
    probe_note: Option<String>,
}

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("lambda-init: cannot start tokio: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("lambda-init: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("the tests crate has no parent directory")?
        .to_path_buf();
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    };

    // Cargo passes `--bench`; other arguments are names to measure.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let all: Vec<Function> = ROUTES
        .iter()
        .map(|&route| Function::Route(route))
        .chain(JOBS.iter().map(|&job| Function::Job(job)))
        .collect();
    if let Some(unknown) = only
        .iter()
        .find(|n| !all.iter().any(|f| f.name() == n.as_str()))
    {
        return Err(format!("no function is named {unknown}"));
    }
    let functions: Vec<Function> = all
        .into_iter()
        .filter(|f| only.is_empty() || only.iter().any(|n| n == f.name()))
        .collect();

    let missing: Vec<&str> = functions
        .iter()
        .map(|f| f.name())
        .chain([HELLO_WORLD])
        .filter(|name| !target.join("release").join(name).is_file())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "no release binary in {} for: {}. Run `cargo build --release -p functions -p billing-tests --bins` first (`make bench-init` does).",
            target.join("release").display(),
            missing.join(", ")
        ));
    }

    prepare_local_table().await?;
    let log_dir = target.join("bench-logs").join("lambda-init");
    fs::create_dir_all(&log_dir).map_err(|e| format!("create {}: {e}", log_dir.display()))?;
    let baseline = target.join("release").join(HELLO_WORLD);
    let baseline_log = log_dir.join(format!("{HELLO_WORLD}.log"));
    let baseline_log_file = File::create(&baseline_log)
        .map_err(|e| format!("create {}: {e}", baseline_log.display()))?;
    let hello = Boots {
        binary: &baseline,
        name: HELLO_WORLD,
        log: &baseline_log_file,
        log_path: &baseline_log,
    };
    let mut rows = Vec::new();
    for function in functions {
        eprintln!(
            "lambda-init: {} ({BOOTS} boots paired with {HELLO_WORLD}, + 1 request)",
            function.name()
        );
        rows.push(measure(function, &hello, &target, &log_dir).await?);
    }
    let baseline_rss_mb = {
        let booted = hello.boot().await?;
        let rss = booted.child.id().map(peak_rss_kb);
        booted.stop().await;
        rss.ok_or("hello-world exited")?? as f64 / 1024.0
    };

    let section = render(&rows, baseline_rss_mb);
    println!("{section}");
    if !only.is_empty() {
        eprintln!("lambda-init: a subset was measured; docs/BENCHMARKS.md left as it was");
        return Ok(());
    }
    let doc = write_section("lambda-init", &section)?;
    eprintln!("lambda-init: wrote {}", doc.display());
    Ok(())
}

/// Against DynamoDB Local (`DYNAMODB_ENDPOINT` and `TABLE_NAME` set), creates the table unless it
/// exists, so the key lookup behind the RSS request finds a table and answers 401, not 500.
async fn prepare_local_table() -> Result<(), String> {
    let (Ok(table), Ok(endpoint)) = (
        std::env::var("TABLE_NAME"),
        std::env::var("DYNAMODB_ENDPOINT"),
    ) else {
        return Ok(());
    };
    billing_core::store::Store::connect(&table, Some(&endpoint))
        .await
        .ensure_table()
        .await
        .map_err(|e| format!("create table {table} at {endpoint}: {e}"))
}

/// Sizes, init medians (the function's and the baseline's, boots paired), the first request
/// and peak RSS of one function.
async fn measure(
    function: Function,
    hello: &Boots<'_>,
    target: &Path,
    log_dir: &Path,
) -> Result<Row, String> {
    let name = function.name();
    let binary = target.join("release").join(name);
    let binary_bytes = fs::metadata(&binary)
        .map_err(|e| format!("{}: {e}", binary.display()))?
        .len();
    let zip = target.join("lambda").join(name).join("bootstrap.zip");
    let zip_bytes = fs::metadata(&zip).ok().map(|m| m.len());
    let log_path = log_dir.join(format!("{name}.log"));
    let log = File::create(&log_path).map_err(|e| format!("create {}: {e}", log_path.display()))?;
    let own = Boots {
        binary: &binary,
        name,
        log: &log,
        log_path: &log_path,
    };

    let mut init_ms = Vec::with_capacity(BOOTS);
    let mut baseline_ms = Vec::with_capacity(BOOTS);
    for boot in 0..BOOTS {
        // Alternate which goes first, so neither always meets a warmer machine.
        let order = if boot % 2 == 0 {
            [&own, hello]
        } else {
            [hello, &own]
        };
        for boots in order {
            let booted = boots.boot().await?;
            let ms = booted.init.as_secs_f64() * 1000.0;
            booted.stop().await;
            if std::ptr::eq(boots, &own) {
                init_ms.push(ms);
            } else {
                baseline_ms.push(ms);
            }
        }
    }

    let booted = own.boot().await?;
    let probe_note = match function {
        Function::Route(route) => probe(route, &booted.api).await,
        Function::Job(job) => run_job(job, &booted.api).await,
    };
    let first_request = booted.started.elapsed();
    let rss_kb = match booted.child.id() {
        Some(pid) => peak_rss_kb(pid),
        None => Err("the function has exited".to_owned()),
    };
    booted.stop().await;
    let rss_kb =
        rss_kb.map_err(|e| format!("{name}: peak RSS: {e} (see {})", log_path.display()))?;

    Ok(Row {
        name,
        binary_mb: binary_bytes as f64 / MB,
        zip_mb: zip_bytes.map(|b| b as f64 / MB),
        links_stripe: links_stripe(&binary)?,
        init_ms: median(&mut init_ms),
        baseline_ms: median(&mut baseline_ms),
        first_request_ms: first_request.as_secs_f64() * 1000.0,
        rss_mb: rss_kb as f64 / 1024.0,
        probe_note,
    })
}

/// How to boot one binary, with its output going to its log.
struct Boots<'a> {
    binary: &'a Path,
    name: &'a str,
    log: &'a File,
    log_path: &'a Path,
}

impl Boots<'_> {
    async fn boot(&self) -> Result<Booted, String> {
        boot(self.binary, self.name, self.log, self.log_path).await
    }
}

/// A function that has finished init, and the emulator it polls.
struct Booted {
    child: Child,
    api: RuntimeApi,
    /// Just before `spawn()`.
    started: Instant,
    /// From `started` to the first `/next`.
    init: Duration,
}

impl Booted {
    async fn stop(mut self) {
        // It may already have exited; either way it is gone afterwards.
        let _ = self.child.kill().await;
        drop(self.api);
    }
}

/// Starts `binary` against a fresh emulator and waits for its first `/next`.
async fn boot(binary: &Path, name: &str, log: &File, log_path: &Path) -> Result<Booted, String> {
    let api = RuntimeApi::start().await;
    let output = |what: &str| {
        log.try_clone()
            .map(Stdio::from)
            .map_err(|e| format!("{} for {what}: {e}", log_path.display()))
    };
    let mut command = Command::new(binary);
    command
        .env_clear()
        .envs(lambda_env(&api, name))
        .envs(
            PASS_THROUGH
                .iter()
                .filter_map(|var| Some((*var, std::env::var(var).ok()?))),
        )
        .stdin(Stdio::null())
        .stdout(output("stdout")?)
        .stderr(output("stderr")?)
        .kill_on_drop(true);

    let started = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", binary.display()))?;
    let outcome = tokio::select! {
        first = api.wait_for_first_next(BOOT_TIMEOUT) => Ok(first),
        status = child.wait() => Err(status),
    };
    match outcome {
        Ok(Some(first_next)) => Ok(Booted {
            child,
            api,
            started,
            init: first_next.saturating_duration_since(started),
        }),
        Ok(None) => {
            let _ = child.kill().await;
            Err(format!(
                "{name} did not poll /next within {BOOT_TIMEOUT:?}; its output is in {}",
                log_path.display()
            ))
        }
        Err(status) => Err(format!(
            "{name} exited during init ({}); its output is in {}. Functions read {} from the environment.",
            status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
            log_path.display(),
            PASS_THROUGH.join(", ")
        )),
    }
}

/// Sends the route its own request with an invalid key; `None` if the answer was the expected
/// one (401 JSON for routes behind a key, any HTTP answer for public ones), else a note.
async fn probe(route: &Route, api: &RuntimeApi) -> Option<String> {
    let method = route.method.as_str();
    let (raw_path, params) = fill_path(route.path);
    let params: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let body = matches!(method, "POST" | "PUT" | "PATCH").then_some("{}");
    let mut headers = vec![("accept", "application/json")];
    if body.is_some() {
        headers.push(("content-type", "application/json"));
    }
    if route.name != "health" {
        headers.push(("authorization", "Bearer bk_invalid"));
    }
    let path_params = (!params.is_empty()).then_some(params.as_slice());
    let event = http_api_event(
        method,
        route.path,
        &raw_path,
        "",
        &headers,
        body,
        path_params,
    );

    let request = format!("{method} {raw_path}");
    let response = match api.invoke(event, PROBE_TIMEOUT).await {
        Ok(response) => response,
        Err(InvokeError::Timeout) => {
            return Some(format!(
                "`{request}` got no answer within {PROBE_TIMEOUT:?}"
            ))
        }
        Err(InvokeError::FunctionError(e) | InvokeError::InitError(e)) => {
            return Some(format!("`{request}` failed in the function: {e}"))
        }
    };
    let status = response["statusCode"].as_u64();
    let is_json = response["body"]
        .as_str()
        .is_some_and(|b| serde_json::from_str::<Value>(b).is_ok());
    let expected = route.access == Access::Public || (status == Some(401) && is_json);
    (!expected).then(|| {
        let status = status.map_or("no status".to_owned(), |s| s.to_string());
        format!("`{request}` answered {status}, expected a 401 JSON error")
    })
}

/// Invokes a job once with a scheduled event (a one-time schedule's payload for the job that
/// takes one: a deadline of a workspace that does not exist); `None` if it answered.
async fn run_job(job: &Job, api: &RuntimeApi) -> Option<String> {
    let event = match job.invoked_by {
        Invocation::TableStream => serde_json::json!({"Records": []}),
        Invocation::Schedule(_) | Invocation::BusRule => {
            serde_json::json!({"source": "aws.scheduler", "detail": {}})
        }
        Invocation::OneTimeSchedule => serde_json::json!({
            "workspace_id": "ws_01jbench0000000000000000",
            "trigger": "trial_ended",
            "due_at": "2026-03-01T00:00:00Z",
            "version": 1
        }),
    };
    match api.invoke(event, PROBE_TIMEOUT).await {
        Ok(_) => None,
        Err(InvokeError::Timeout) => Some(format!("no answer within {PROBE_TIMEOUT:?}")),
        Err(InvokeError::FunctionError(e) | InvokeError::InitError(e)) => {
            Some(format!("the job failed: {e}"))
        }
    }
}

/// The route's path with each `{param}` replaced by a plausible id of its kind, and the params.
fn fill_path(template: &str) -> (String, Vec<(String, String)>) {
    let mut params = Vec::new();
    let path = template
        .split('/')
        .map(
            |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => {
                    let name = name.trim_end_matches('+');
                    let value = format!("{}01jbench0000000000000000", id_prefix(name));
                    params.push((name.to_owned(), value.clone()));
                    value
                }
                None => segment.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/");
    (path, params)
}

/// The id prefix a path parameter's name implies (`workspaceId` → `ws_`).
fn id_prefix(param: &str) -> &'static str {
    let name = param.to_ascii_lowercase();
    [
        ("workspace", "ws_"),
        ("account", "ba_"),
        ("key", "key_"),
        ("user", "usr_"),
        ("transaction", "txn_"),
        ("run", "run_"),
        ("endpoint", "whe_"),
        ("event", "evt_"),
    ]
    .into_iter()
    .find(|(word, _)| name.contains(word))
    .map_or("id_", |(_, prefix)| prefix)
}

/// `VmHWM` (peak resident set) of a running process, in kB.
fn peak_rss_kb(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|kb| kb.parse().ok())
        .ok_or_else(|| format!("no VmHWM line in {path}"))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

/// The Markdown section: how it was produced, on what, the targets, the table and any notes.
fn render(rows: &[Row], baseline_rss_mb: f64) -> String {
    let date_format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    let date = time::OffsetDateTime::now_utc()
        .format(&date_format)
        .unwrap_or_else(|_| "unknown date".into());
    let mut out = String::new();
    out.push_str("## Lambda cold start (`lambda-init`)\n\n");
    out.push_str(
        "Command: `make bench-init` (builds `cargo build --release -p functions -p billing-tests --bins`, \
         starts DynamoDB Local, runs `cargo bench -p billing-tests --bench lambda-init`; zips from `make package`)  \n",
    );
    out.push_str(&format!("Date: {date}  \n"));
    out.push_str(&format!("Machine: {}  \n", machine()));
    out.push_str(&format!(
        "Targets: init ≤ {INIT_RATIO_TARGET}× the hello-world baseline, peak RSS < {RSS_TARGET_MB} MB, zip ≤ {ZIP_TARGET_MB} MB\n\n"
    ));
    out.push_str(&format!(
        "Init is the median of {BOOTS} boots of the host release binary, from just before `spawn()` to its first \
         `GET /2018-06-01/runtime/invocation/next` on a loopback Runtime API emulator (`tests/support/runtime_api.rs`); \
         each boot is paired with a boot of `{HELLO_WORLD}` (a hello-world `lambda_http` binary, `tests/bench/hello_world.rs`, \
         same release profile, same harness), and the ratio is of the two medians. \
         *Init + 1st request* is from `spawn()` to the answer of one request against DynamoDB Local (the route's own method \
         and path with an invalid key: the key lookup answers 401; a job runs once on the empty table). \
         Peak RSS is `VmHWM` after that request ({HELLO_WORLD}: {baseline_rss_mb:.1} MB). \
         *Stripe* says whether the binary contains the Stripe gateway's API host (`api.stripe.com`), i.e. links the Stripe client. \
         Zip is the arm64 `target/lambda/<name>/bootstrap.zip` from `make package`. MB = 2^20 bytes.\n\n"
    ));
    out.push_str("| function | binary MB | zip MB | Stripe | init ms | hello-world ms | init ratio | init + 1st request ms | peak RSS MB | targets |\n");
    out.push_str("|---|---:|---:|:---:|---:|---:|---:|---:|---:|---|\n");
    for row in rows {
        let zip = row
            .zip_mb
            .map_or("not built: run make package".to_owned(), |mb| {
                format!("{mb:.2}")
            });
        out.push_str(&format!(
            "| {} | {:.2} | {zip} | {} | {:.2} | {:.2} | {:.2}× | {:.1} | {:.1} | {} |\n",
            row.name,
            row.binary_mb,
            if row.links_stripe { "yes" } else { "no" },
            row.init_ms,
            row.baseline_ms,
            row.init_ms / row.baseline_ms,
            row.first_request_ms,
            row.rss_mb,
            verdict(row)
        ));
    }
    let ratios: Vec<f64> = rows.iter().map(|r| r.init_ms / r.baseline_ms).collect();
    if let Some(worst) = ratios.iter().copied().reduce(f64::max) {
        let mut sorted = ratios.clone();
        out.push_str(&format!(
            "\nInit ratio over {} functions: median {:.2}×, worst {worst:.2}×. Largest zip: {}. Largest peak RSS: {:.1} MB.\n",
            rows.len(),
            median(&mut sorted),
            rows.iter()
                .filter_map(|r| r.zip_mb)
                .reduce(f64::max)
                .map_or("not built".to_owned(), |mb| format!("{mb:.2} MB")),
            rows.iter().map(|r| r.rss_mb).fold(0.0, f64::max),
        ));
    }
    let notes: Vec<String> = rows
        .iter()
        .filter_map(|row| Some(format!("- {}: {}", row.name, row.probe_note.as_ref()?)))
        .collect();
    if !notes.is_empty() {
        out.push_str("\nRequest notes (the RSS figure still stands):\n\n");
        out.push_str(&notes.join("\n"));
        out.push('\n');
    }
    out
}

/// ✅ when every measured target is met, else ❌ and what missed.
fn verdict(row: &Row) -> String {
    let mut missed = Vec::new();
    if row.init_ms / row.baseline_ms > INIT_RATIO_TARGET {
        missed.push("init");
    }
    if row.rss_mb >= RSS_TARGET_MB {
        missed.push("RSS");
    }
    if row.zip_mb.is_some_and(|mb| mb > ZIP_TARGET_MB) {
        missed.push("zip");
    }
    let mut verdict = if missed.is_empty() {
        "✅ pass".to_owned()
    } else {
        format!("❌ fail: {}", missed.join(", "))
    };
    if row.zip_mb.is_none() {
        verdict.push_str(" (zip not checked)");
    }
    verdict
}
