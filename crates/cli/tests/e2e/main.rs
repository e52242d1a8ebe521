//! Cross-process end-to-end tests: real `aof` coordinators and runners on loopback.

mod harness;

mod backup;
mod blueprints;
mod claude;
mod cli;
mod command;
mod crash;
mod faults;
mod leases;
mod limits;
mod logs;
mod longpoll;
mod mcp;
mod mcp_client;
mod model;
mod orchestration;
mod otel;
mod partition;
mod protocol;
mod resources;
mod retention;
mod sse_replay;
mod storage;
