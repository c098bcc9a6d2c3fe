//! The store contract, run against PostgreSQL: each test on a database of its own.
//! Skipped (passing, with a notice) unless `FILEINTEL_TEST_DATABASE_URL` names a server.

mod common;

use common::fresh;

fileintel_store::contract_suite!(optional fresh);
