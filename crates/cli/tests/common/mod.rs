//! Shared by the integration tests: running the real binary.

use std::path::Path;
use std::process::Command;

/// Runs `pipewise args` in `dir` (without a `PIPEWISE_DB` from the
/// environment); returns (success, stdout, stderr).
pub fn pipewise(dir: &Path, args: &[&str]) -> (bool, String, String) {
    pipewise_env(dir, args, &[])
}

/// [`pipewise`] with environment variables set (and the key variables
/// removed unless given).
#[allow(dead_code)]
pub fn pipewise_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pipewise"));
    cmd.current_dir(dir)
        .args(args)
        .env_remove("PIPEWISE_DB")
        .env_remove("PIPEWISE_KEY")
        .env_remove("PIPEWISE_KEY_FILE")
        .env_remove("PIPEWISE_NEW_KEY")
        .env_remove("PIPEWISE_NEW_KEY_FILE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run pipewise");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Simulates a 40-rep, 24-month org of `seed` (with `extra` switches) into
/// `dir/org`, imports it into `dir/org.db` and trains the win and slip
/// models.
#[allow(dead_code)]
pub fn trained_org(dir: &Path, seed: &str, extra: &[&str]) {
    imported_org(dir, seed, extra);
    let (ok, _, err) = pipewise(dir, &["--db", "org.db", "train", "--json"]);
    assert!(ok, "{err}");
}

/// Simulates a 40-rep, 24-month org of `seed` (with `extra` switches) into
/// `dir/org` and imports it into `dir/org.db`.
#[allow(dead_code)]
pub fn imported_org(dir: &Path, seed: &str, extra: &[&str]) {
    let mut args = vec![
        "simulate",
        "--seed",
        seed,
        "--vtt-sample",
        "0",
        "--out",
        "org",
    ];
    args.extend(extra);
    let (ok, _, err) = pipewise(dir, &args);
    assert!(ok, "{err}");
    let (ok, _, err) = pipewise(dir, &["--db", "org.db", "import", "dir", "org"]);
    assert!(ok, "{err}");
}
