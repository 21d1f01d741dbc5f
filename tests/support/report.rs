//! Writing benchmark results into `docs/BENCHMARKS.md`: each benchmark owns the section between
//! its `<!-- name:start -->` and `<!-- name:end -->` markers, so the others' sections survive.

use std::fs;
use std::path::{Path, PathBuf};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_owned()
}

/// Replaces benchmark `name`'s section of docs/BENCHMARKS.md with `section`.
pub fn write_section(name: &str, section: &str) -> Result<PathBuf, String> {
    let path = workspace_root().join("docs").join("BENCHMARKS.md");
    let (start_marker, end_marker) = (
        format!("<!-- {name}:start -->"),
        format!("<!-- {name}:end -->"),
    );
    let existing = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            "# Benchmarks\n\nMeasured numbers. Each section is rewritten by the program its command runs; \
             edit outside the markers.\n"
                .to_owned()
        }
        Err(error) => return Err(format!("read {}: {error}", path.display())),
    };
    let block = format!("{start_marker}\n{section}{end_marker}");
    let updated = match (existing.find(&start_marker), existing.find(&end_marker)) {
        (Some(start), Some(end)) if start < end => format!(
            "{}{block}{}",
            &existing[..start],
            &existing[end + end_marker.len()..]
        ),
        _ => format!("{}\n\n{block}\n", existing.trim_end()),
    };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("create {}: {e}", parent.display()))?;
    }
    fs::write(&path, updated).map_err(|e| format!("write {}: {e}", path.display()))?;
    Ok(path)
}

/// "2 × <CPU model> (x86_64)", from /proc/cpuinfo.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cores} × {model} ({})", std::env::consts::ARCH)
}

/// The value at quantile `q` (0–1) of sorted `values`.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index]
}
