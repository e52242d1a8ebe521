//! `TestApp::spawn()`: the coordinator in this process, on a real loopback port, through
//! the real router and layers (`Coordinator::bind` + `serve`, as `aof coordinator` runs
//! it), over a real store: a SQLite file in a temp dir, or with `AOF_TEST_STORE=postgres`
//! a fresh database on the server `AOF_TEST_DATABASE_URL` names (scripts/test.sh runs
//! this binary both ways). Crash, drain, multi-coordinator and CLI tests stay in
//! `aof-cli`, where they need a process.

use std::time::Duration;

use aof_coordinator::{config::PostgresUrl, Coordinator, CoordinatorConfig};
use tokio_util::sync::CancellationToken;

use crate::client::Client;

pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    shutdown: CancellationToken,
    /// Holds the SQLite file (and the agents dir) until the test ends.
    _dir: tempfile::TempDir,
}

/// Which store: SQLite (default) or PostgreSQL (`AOF_TEST_STORE=postgres`).
fn postgres_mode() -> bool {
    match std::env::var("AOF_TEST_STORE").as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Err(_) => false,
        Ok(other) => panic!("AOF_TEST_STORE={other}: must be sqlite or postgres"),
    }
}

impl TestApp {
    /// With the settings the API tests always ran under (`aof-cli`'s `fast_env()` with a
    /// 120 s lease): a run held by a test that never heartbeats is never re-queued by the
    /// sweeper on a loaded machine, and sweeps still run every 0.2 s.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// As [`spawn`](Self::spawn), with `tune` applied to the settings last.
    pub async fn spawn_with(tune: impl FnOnce(&mut CoordinatorConfig)) -> TestApp {
        let dir = tempfile::Builder::new()
            .prefix("aof-api-")
            .tempdir()
            .expect("tempdir");
        let postgres_url = if postgres_mode() {
            let base = std::env::var("AOF_TEST_DATABASE_URL").expect(
                "AOF_TEST_STORE=postgres needs AOF_TEST_DATABASE_URL (scripts/ci/postgres.sh)",
            );
            let url = aof_store_postgres::testing::fresh_database(&base)
                .await
                .expect("create a test database");
            Some(PostgresUrl(url))
        } else {
            None
        };
        let mut cfg = CoordinatorConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            db_path: dir.path().join("observability.db"),
            postgres_url,
            agents_dir: dir.path().join("agents"),
            heartbeat_interval: Duration::from_secs(1),
            lease_ttl: Duration::from_secs(120),
            poll_timeout: Duration::from_secs(5),
            sweep_interval: Duration::from_millis(200),
            ..CoordinatorConfig::default()
        };
        tune(&mut cfg);
        let coord = Coordinator::bind(cfg).await.expect("coordinator starts");
        let url = format!("http://{}", coord.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        tokio::spawn(coord.serve(shutdown.clone()));
        TestApp {
            url,
            shutdown,
            _dir: dir,
        }
    }

    /// A typed client of this coordinator.
    pub fn client(&self) -> Client {
        Client::new(&self.url)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
