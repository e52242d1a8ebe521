//! Cross-process end-to-end tests: real `aof` coordinators and runners on loopback.

mod harness;

mod backup;
mod blueprints;
mod cli;
mod command;
mod crash;
mod leases;
mod logs;
mod longpoll;
mod resources;
mod sse_replay;
