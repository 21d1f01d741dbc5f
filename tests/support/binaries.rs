//! Facts read off a built function binary, for the tests and the benchmarks alike.

use std::path::Path;
use std::process::Command;

/// Whether a function binary links the Stripe client: the gateway's API host
/// (`https://api.stripe.com/`) is in its data only when code that can reach the client is
/// linked. `grep`, because a byte scan of 50 MB debug binaries in an unoptimised test takes
/// seconds each.
pub fn links_stripe(binary: &Path) -> Result<bool, String> {
    let status = Command::new("grep")
        .args(["-q", "-F", "api.stripe.com"])
        .arg(binary)
        .status()
        .map_err(|e| format!("run grep: {e}"))?;
    match status.code() {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => Err(format!("grep failed on {}: {status}", binary.display())),
    }
}
