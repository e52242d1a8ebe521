//! Our runner (`aof runner`, echo and command executors) against the reference coordinator.
