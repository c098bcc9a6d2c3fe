//! The per-test database guard, shared with the binary's tests through the crate.

pub use fileintel_postgres::testing::*;
