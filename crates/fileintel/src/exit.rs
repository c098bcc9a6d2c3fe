//! The exit codes of `fileintel`, one definition for every command (README, "Exit codes"): an
//! import that took everything, one that failed, a command line that was wrong, and an import
//! that took what it could but rejected some records.

use std::process::ExitCode;

/// The command failed: nothing, or not everything, was done (the error says what).
pub const FAILED: u8 = 1;
/// The command line was wrong (clap's own code for it).
pub const USAGE: u8 = 2;
/// An import took every record it could, but rejected some (each is reported).
pub const REJECTIONS: u8 = 3;

/// The exit code of an import (`ingest`, `feeds import`, `analyze`) that ran to its end.
pub fn import(rejected: bool) -> ExitCode {
    if rejected { ExitCode::from(REJECTIONS) } else { ExitCode::SUCCESS }
}
