//! Wire compatibility proven against the real AOF reference (issue #21's interop matrix):
//! our parts and the reference's, as real processes on loopback, in both directions.
//! The reference's parts are prepared by `scripts/ci/reference.sh` (see `reference.rs`).
#![allow(dead_code)]
#[path = "../browser/driver.rs"]
mod driver;
#[path = "../e2e/harness.rs"]
mod harness;

mod reference;

mod cli_on_ref;
mod dashboard;
mod import;
mod ref_runner_on_ours;
mod runner_on_ref;
mod settings;
