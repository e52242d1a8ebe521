//! Cross-process end-to-end tests: real `aof` coordinators and runners on loopback.

mod harness;

mod backup;
mod blueprints;
mod claude;
mod cli;
mod command;
mod crash;
mod leases;
mod longpoll;
mod model;
mod resources;
mod sse_replay;
