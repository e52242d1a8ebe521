//! Every coordinator route, with good and bad input, against [`app::TestApp`]: the
//! coordinator in this process on a loopback port, through the real router and layers,
//! on SQLite or (`AOF_TEST_STORE=postgres`) PostgreSQL.

mod app;
mod approvals;
mod client;
mod events;
mod helpers;
mod ops;
mod paging;
mod runners;
mod runs;
mod sessions;
