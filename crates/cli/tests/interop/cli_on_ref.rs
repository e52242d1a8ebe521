//! The `aof` CLI and `aof bench --url` against the reference coordinator.
