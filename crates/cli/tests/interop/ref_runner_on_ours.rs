//! The reference runner (`agent-runner --profile echo-executor`) against our coordinator, SQLite and PostgreSQL.
