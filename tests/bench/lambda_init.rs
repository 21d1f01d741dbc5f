//! Cold start of every Lambda, measured on loopback: `make bench`, which builds the release
//! binaries and runs `cargo bench -p billing-tests --bench lambda-init`.
//!
//! For each function of the route table (`billing_core::routes::ROUTES`):
//! - the release binary's size, and the arm64 `bootstrap.zip` from `make package` if present;
//! - init time: the median of 20 boots, from just before `spawn()` to the function's first
//!   `GET /2018-06-01/runtime/invocation/next` on a fresh [`RuntimeApi`];
//! - peak RSS: `VmHWM` after one more boot has answered one request (the route's own method and
//!   path with an invalid key, so the function runs its whole request path and answers 401).
//!
//! The table is printed and written into `docs/BENCHMARKS.md` between the `lambda-init` markers.
//! Function output goes to `target/bench-logs/lambda-init/<name>.log`.
//!
//! Names after `--` (`cargo bench -p billing-tests --bench lambda-init -- health`) measure only
//! those functions and print the table without writing the document.

use billing_core::routes::{Access, Route, ROUTES};
use billing_tests::report::{machine, write_section};
use billing_tests::runtime_api::{http_api_event, lambda_env, InvokeError, RuntimeApi};
use serde_json::Value;
use std::fs::{self, File};
use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// Boots per function for the init median.
const BOOTS: usize = 20;
/// Configuration handed to the functions when the bench process has it.
const PASS_THROUGH: [&str; 4] = ["TABLE_NAME", "DYNAMODB_ENDPOINT", "SERVICE_KEY", "STAGE"];
const INIT_TARGET_MS: f64 = 15.0;
const RSS_TARGET_MB: f64 = 30.0;
const ZIP_TARGET_MB: f64 = 5.0;
/// How long a boot may take before it counts as hung.
const BOOT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the RSS request may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);
const MB: f64 = 1024.0 * 1024.0;

/// One function's numbers.
struct Row {
    name: &'static str,
    binary_mb: f64,
    zip_mb: Option<f64>,
    init_ms: f64,
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
    if let Some(unknown) = only
        .iter()
        .find(|n| !ROUTES.iter().any(|r| r.name == n.as_str()))
    {
        return Err(format!("no function is named {unknown}"));
    }
    let routes: Vec<&Route> = ROUTES
        .iter()
        .filter(|r| only.is_empty() || only.iter().any(|n| n == r.name))
        .collect();

    let missing: Vec<&str> = routes
        .iter()
        .map(|r| r.name)
        .filter(|name| !target.join("release").join(name).is_file())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "no release binary in {} for: {}. Run `cargo build --release -p functions` first (`make bench` does).",
            target.join("release").display(),
            missing.join(", ")
        ));
    }

    prepare_local_table().await?;
    let log_dir = target.join("bench-logs").join("lambda-init");
    fs::create_dir_all(&log_dir).map_err(|e| format!("create {}: {e}", log_dir.display()))?;
    let mut rows = Vec::new();
    for route in routes {
        eprintln!("lambda-init: {} ({BOOTS} boots + 1 request)", route.name);
        rows.push(measure(route, &target, &log_dir).await?);
    }

    let section = render(&rows);
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

/// Sizes, init median and peak RSS of one function.
async fn measure(route: &Route, target: &Path, log_dir: &Path) -> Result<Row, String> {
    let binary = target.join("release").join(route.name);
    let binary_bytes = fs::metadata(&binary)
        .map_err(|e| format!("{}: {e}", binary.display()))?
        .len();
    let zip = target.join("lambda").join(route.name).join("bootstrap.zip");
    let zip_bytes = fs::metadata(&zip).ok().map(|m| m.len());
    let log_path = log_dir.join(format!("{}.log", route.name));
    let log = File::create(&log_path).map_err(|e| format!("create {}: {e}", log_path.display()))?;

    let mut init_ms = Vec::with_capacity(BOOTS);
    for _ in 0..BOOTS {
        let booted = boot(&binary, route.name, &log, &log_path).await?;
        init_ms.push(booted.init.as_secs_f64() * 1000.0);
        booted.stop().await;
    }

    let booted = boot(&binary, route.name, &log, &log_path).await?;
    let probe_note = probe(route, &booted.api).await;
    let rss_kb = match booted.child.id() {
        Some(pid) => peak_rss_kb(pid),
        None => Err("the function has exited".to_owned()),
    };
    booted.stop().await;
    let rss_kb = rss_kb
        .map_err(|e| format!("{}: peak RSS: {e} (see {})", route.name, log_path.display()))?;

    Ok(Row {
        name: route.name,
        binary_mb: binary_bytes as f64 / MB,
        zip_mb: zip_bytes.map(|b| b as f64 / MB),
        init_ms: median(&mut init_ms),
        rss_mb: rss_kb as f64 / 1024.0,
        probe_note,
    })
}

/// A function that has finished init, and the emulator it polls.
struct Booted {
    child: Child,
    api: RuntimeApi,
    /// From just before `spawn()` to the first `/next`.
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
fn render(rows: &[Row]) -> String {
    let date_format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    let date = time::OffsetDateTime::now_utc()
        .format(&date_format)
        .unwrap_or_else(|_| "unknown date".into());
    let mut out = String::new();
    out.push_str("## Lambda cold start (`lambda-init`)\n\n");
    out.push_str(
        "Command: `make bench` (runs `cargo bench -p billing-tests --bench lambda-init`)  \n",
    );
    out.push_str(&format!("Date: {date}  \n"));
    out.push_str(&format!("Machine: {}  \n", machine()));
    out.push_str(&format!(
        "Targets: init < {INIT_TARGET_MS} ms, peak RSS < {RSS_TARGET_MB} MB, zip < {ZIP_TARGET_MB} MB\n\n"
    ));
    out.push_str(&format!(
        "Init is the median of {BOOTS} boots of the host release binary, from just before `spawn()` to its first \
         `GET /2018-06-01/runtime/invocation/next` on a loopback Runtime API emulator (`tests/support/runtime_api.rs`). \
         Peak RSS is `VmHWM` after one request (the route's own method and path with an invalid key). \
         Zip is the arm64 `target/lambda/<name>/bootstrap.zip` from `make package`. MB = 2^20 bytes.\n\n"
    ));
    out.push_str("| function | binary MB | zip MB | init median ms | peak RSS MB | targets |\n");
    out.push_str("|---|---:|---:|---:|---:|---|\n");
    for row in rows {
        let zip = row
            .zip_mb
            .map_or("not built: run make package".to_owned(), |mb| {
                format!("{mb:.2}")
            });
        out.push_str(&format!(
            "| {} | {:.2} | {zip} | {:.1} | {:.1} | {} |\n",
            row.name,
            row.binary_mb,
            row.init_ms,
            row.rss_mb,
            verdict(row)
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
    if row.init_ms >= INIT_TARGET_MS {
        missed.push("init");
    }
    if row.rss_mb >= RSS_TARGET_MB {
        missed.push("RSS");
    }
    if row.zip_mb.is_some_and(|mb| mb >= ZIP_TARGET_MB) {
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
