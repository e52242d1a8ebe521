//! Cross-process end-to-end tests: real `aof` coordinators and runners on loopback.

mod harness;
// The chromium driver of the browser tests, for `shutdown`'s live dashboard page.
#[allow(dead_code)]
#[path = "../browser/driver.rs"]
mod driver;

mod approvals;
mod backup;
mod blueprints;
mod budgets;
mod claude;
mod cli;
mod command;
mod crash;
mod drain;
mod event_batch;
mod faults;
mod isolation;
mod leases;
mod limits;
mod logs;
mod longpoll;
mod mcp;
mod mcp_client;
mod model;
mod multi_coordinator;
mod orchestration;
mod otel;
mod partition;
mod protocol;
mod resources;
mod retention;
mod runners;
mod shutdown;
mod sse_replay;
mod storage;
mod workspaces;
