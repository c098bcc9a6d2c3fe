//! Helpers for fileintel's tests, shared by every crate's test binaries.
//!
//! A test that needs something the machine may lack (a PostgreSQL, a Redis, a Python with
//! reference tools, the fetched Windows files) calls [`skip`] instead of returning early on
//! its own: on a developer's machine that prints a notice and the test passes without running;
//! under CI (`CI=true`, which CI services set), where everything is provided, a test that
//! would skip fails instead, so a missing variable or tool can never turn a suite green.
//!
//! ```
//! fn redis_url() -> Option<String> {
//!     std::env::var("FILEINTEL_TEST_REDIS").ok().or_else(|| fileintel_testing::skip("set FILEINTEL_TEST_REDIS"))
//! }
//! # let _ = redis_url;
//! ```

use std::fmt::Display;

/// Whether this run is CI's: `CI` set to `true` or `1` (any case), as CI services set it.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| matches!(value.trim().to_ascii_lowercase().as_str(), "true" | "1"))
}

/// Skips the calling test with `reason` printed, or fails it under CI. Returns `None`, so a
/// lookup can end in `.or_else(|| skip("..."))` and a test in `let Some(x) = ... else { return }`.
#[track_caller]
pub fn skip<T>(reason: impl Display) -> Option<T> {
    if in_ci() {
        panic!("not skipped under CI=true: {reason}");
    }
    eprintln!("skipped: {reason}");
    None
}

/// The value of the environment variable `name`, or a skip (a failure under CI) naming it and
/// what it is for.
#[track_caller]
pub fn env_or_skip(name: &str, purpose: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Some(value),
        _ => skip(format!("set {name} {purpose}")),
    }
}

/// Replays every input kept in `<crate>/tests/fuzz-regressions/<target>/` (fuzz findings once
/// fixed, and interesting inputs) through `check`, the same check the fuzz target runs, in name
/// order. `crate_dir` is the calling crate's `env!("CARGO_MANIFEST_DIR")`. An empty or missing
/// folder fails: a replay with nothing to replay would pass by having nothing to do.
pub fn replay(crate_dir: &str, target: &str, check: impl Fn(&[u8])) {
    let folder = std::path::Path::new(crate_dir).join("tests/fuzz-regressions").join(target);
    let mut inputs: Vec<_> = std::fs::read_dir(&folder)
        .unwrap_or_else(|error| panic!("{}: {error}", folder.display()))
        .map(|entry| entry.expect("a folder entry").path())
        .filter(|path| path.is_file())
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "{} holds no input to replay", folder.display());
    for input in inputs {
        let data = std::fs::read(&input).expect("a kept input reads");
        // Named first, so that a failure says which input it was.
        eprintln!("replaying {}", input.display());
        check(&data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skip_outside_ci_gives_none_and_under_ci_fails() {
        // Whichever this run is, the half that applies to it.
        if in_ci() {
            assert!(std::panic::catch_unwind(|| skip::<()>("x")).is_err(), "under CI a skip fails");
        } else {
            assert_eq!(skip::<u8>("nothing to see"), None);
        }
    }
}
