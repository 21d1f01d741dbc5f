//! Runs a script of `tests/python/` with the project's venv (`.tools/venv`, made by
//! `infra/python-tools.sh` from `infra/requirements.txt`, as `make test` does), against a
//! server a test started; the script prints one JSON line, which is returned.

use serde_json::Value;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_owned()
}

/// `tests/python/<script> <args…>` under `.tools/venv/bin/python`; panics with its output
/// when it fails.
pub async fn run(script: &str, args: &[&str]) -> Value {
    let python = root().join(".tools/venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `bash infra/python-tools.sh` (make test does)",
        python.display()
    );
    let output = tokio::process::Command::new(&python)
        .arg(root().join("tests/python").join(script))
        .args(args)
        .output()
        .await
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}):\n{stdout}\n{stderr}"))
}
