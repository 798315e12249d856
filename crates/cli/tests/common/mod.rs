//! Shared by the integration tests: running the real binary.

use std::path::Path;
use std::process::Command;

/// Runs `pipewise args` in `dir` (without a `PIPEWISE_DB` from the
/// environment); returns (success, stdout, stderr).
pub fn pipewise(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pipewise"))
        .current_dir(dir)
        .args(args)
        .env_remove("PIPEWISE_DB")
        .output()
        .expect("run pipewise");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
