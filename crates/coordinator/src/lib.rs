//! aof-coordinator: the HTTP API (AOF-compatible), SSE feed, runner long-poll and the
//! background sweeps for leases, unmatched runs and silent runners.
//!
//! Owns no state of its own beyond wake-ups and metrics: all truth is in the `Store`.

pub mod api;
mod approvals;
pub mod audit;
pub mod auth;
mod callbacks;
pub mod caps;
pub mod config;
pub mod error;
pub mod extract;
pub mod limits;
pub mod mcp;
pub mod metrics;
pub mod request_id;
pub(crate) mod retention;
pub mod runs;
pub mod stopping;
mod sweeper;
mod telemetry;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::{net::TcpListener, sync::watch};
use tokio_util::sync::CancellationToken;

use aof_store::prelude::*;
use aof_store_postgres::{PgOptions, PgStore};
use aof_store_sqlite::{SqliteOptions, SqliteStore};

pub use config::CoordinatorConfig;

/// Shared by every handler (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub cfg: Arc<CoordinatorConfig>,
    /// Bumped when work may have appeared for runners (new run, stop, requeue).
    /// Handlers write it; long-polls wait on it instead of sleeping.
    pub wake: Arc<watch::Sender<u64>>,
    pub metrics: Arc<metrics::Metrics>,
    /// Agent blueprints, capabilities and MCP servers (folders on disk).
    pub registry: Arc<aof_blueprints::Registry>,
    /// Auth settings, OIDC keys and the in-process runner's key; read-only after bind.
    pub auth: Arc<auth::Auth>,
    /// Queue to the audit writer task (the auth middleware records; `GET /audit` flushes).
    pub audit: Arc<audit::AuditLog>,
    /// Per-credential counts of streams, long-polls and MCP waits (`caps`).
    pub caps: Arc<caps::Caps>,
    /// The stop in progress, if any: `/ready`, long-polls and MCP waits look at it.
    pub stopping: stopping::Stopping,
}

impl AppState {
    /// Wakes the long-polls parked here and, through the store, on every other
    /// coordinator sharing it (see `forward_remote_wakes`).
    pub fn wake_runners(&self) {
        self.wake.send_modify(|g| *g = g.wrapping_add(1));
        self.store.publish_wake();
    }

    /// Runs blocking registry IO off the async threads.
    pub async fn registry<T: Send + 'static>(
        &self,
        f: impl FnOnce(&aof_blueprints::Registry) -> aof_blueprints::Result<T> + Send + 'static,
    ) -> Result<T, error::ApiError> {
        let reg = self.registry.clone();
        tokio::task::spawn_blocking(move || f(&reg))
            .await
            .map_err(|e| error::ApiError::Internal(e.into()))?
            .map_err(error::ApiError::from)
    }
}

/// The store by its concrete type, for what the `Store` trait leaves out: the last
/// commit and checkpoint of a stop.
enum Backend {
    Sqlite(Arc<SqliteStore>),
    Postgres(Arc<PgStore>),
}

impl Backend {
    /// Commits what is batched and checkpoints the WAL (SQLite), so the database file
    /// alone is complete; closes the pool (PostgreSQL).
    async fn close(&self) {
        match self {
            Backend::Sqlite(s) => {
                s.close().await;
                if let Err(e) = s.checkpoint().await {
                    tracing::warn!(error = %e, "stopping: WAL checkpoint failed; the next start replays the WAL");
                }
            }
            Backend::Postgres(p) => p.close().await,
        }
    }
}

/// SQLite at `db_path`, or PostgreSQL when `postgres_url` is set; migrations run here.
async fn open_store(cfg: &CoordinatorConfig) -> anyhow::Result<(Arc<dyn Store>, Backend)> {
    let stale_after = chrono::Duration::from_std(cfg.stale_threshold)?;
    if let Some(url) = &cfg.postgres_url {
        let store = PgStore::connect(
            &url.0,
            PgOptions {
                stale_after,
                ..PgOptions::default()
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("opening PostgreSQL {url:?}: {e}"))?;
        tracing::info!(store = "postgres", "store opened");
        let store = Arc::new(store);
        return Ok((store.clone(), Backend::Postgres(store)));
    }
    let store = SqliteStore::open(
        &cfg.db_path,
        SqliteOptions {
            durability: cfg.durability,
            stale_after,
            ..SqliteOptions::default()
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("opening {}: {e}", cfg.db_path.display()))?;
    let store = Arc::new(store);
    Ok((store.clone(), Backend::Sqlite(store)))
}

/// A coordinator bound to its listener, ready to serve.
pub struct Coordinator {
    pub state: AppState,
    listener: TcpListener,
    backend: Backend,
}

impl Coordinator {
    /// Opens the store, recovers leases, binds the listen address.
    pub async fn bind(cfg: CoordinatorConfig) -> anyhow::Result<Coordinator> {
        cfg.validate().map_err(anyhow::Error::msg)?;
        let (store, backend) = open_store(&cfg).await?;
        let ttl = chrono::Duration::from_std(cfg.lease_ttl)?;
        // A restart must not kill work in progress: every live lease gets a fresh term.
        let graced = store.grace_leases(ttl).await?;
        if graced > 0 {
            tracing::info!(leases = graced, "extended live leases after restart");
        }
        let auth = auth::Auth::load(cfg.auth.clone(), &cfg.cors_origins).await?;
        if !cfg.auth.enabled && !cfg.listen.ip().is_loopback() {
            // validate() let this through only with --insecure-listen.
            tracing::warn!(listen = %cfg.listen, "auth is off and the API listens beyond loopback (--insecure-listen): anyone who reaches it can run agents");
        }
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cfg.listen))?;
        let (wake, _) = watch::channel(0u64);
        let registry = aof_blueprints::Registry::new(&cfg.agents_dir, cfg.placeholder_env.clone());
        let state = AppState {
            registry: Arc::new(registry),
            audit: Arc::new(audit::AuditLog::start(store.clone())),
            caps: caps::Caps::new(cfg.caps, cfg.poll_timeout),
            store,
            cfg: Arc::new(cfg),
            wake: Arc::new(wake),
            metrics: Arc::new(metrics::Metrics::default()),
            auth: Arc::new(auth),
            stopping: stopping::Stopping::new(),
        };
        Ok(Coordinator {
            state,
            listener,
            backend,
        })
    }

    /// With auth on, the key for a runner in this same process (`aof up`): role runner,
    /// held in memory only, gone when the process ends.
    pub fn internal_runner_key(&self) -> Option<String> {
        self.state.auth.internal_key().map(str::to_string)
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Its stop: `aof up` announces it (`/ready` 503) while its runner drains.
    pub fn stopping(&self) -> stopping::Stopping {
        self.state.stopping.clone()
    }

    /// Serves until `shutdown` is cancelled, then stops within
    /// `coordinator.shutdown_timeout` (`stopping`): open requests get most of it, the
    /// audit writer's flush and the store's checkpoint the rest. Whatever is still open
    /// at the bound is cut and named in the log; that is still a clean exit.
    pub async fn serve(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Coordinator {
            state,
            listener,
            backend,
        } = self;
        let sweeps = tokio::spawn(sweeper::run(state.clone(), shutdown.clone()));
        let remote_wakes = tokio::spawn(forward_remote_wakes(state.clone(), shutdown.clone()));
        let callbacks = tokio::spawn(callbacks::run(state.clone(), shutdown.clone()));
        let (keep, keep_audit) = (state.cfg.retention, state.cfg.audit_retention);
        let retention = (keep.is_some() || keep_audit.is_some()).then(|| {
            tokio::spawn(retention::run(
                state.clone(),
                keep,
                keep_audit,
                shutdown.clone(),
            ))
        });
        // MCP sessions are closed (by rmcp) once the requests have drained: earlier, a
        // call waiting for a child would lose the answer that says why it ends.
        let mcp_sessions = CancellationToken::new();
        let app = api::router_with_shutdown(state.clone(), mcp_sessions.clone());
        let addr = listener.local_addr()?;
        tracing::info!(%addr, "coordinator listening");
        let stopping = state.stopping.clone();
        let link = tokio::spawn({
            let (stopping, shutdown) = (stopping.clone(), shutdown.clone());
            async move {
                shutdown.cancelled().await;
                stopping.drain();
            }
        });
        let bound = state.cfg.shutdown_timeout;
        // Requests get most of the bound; the flush and the checkpoint need little.
        let reserve = (bound / 4).min(Duration::from_secs(2));
        let served = stopping::serve(listener, app, &stopping, bound - reserve).await;
        mcp_sessions.cancel();
        link.abort();
        shutdown.cancel();
        stopping.drain();
        let (mut cut, spent) = match &served {
            Ok(s) => (s.cut.clone(), s.drained_in),
            Err(_) => (Vec::new(), Duration::ZERO),
        };
        let deadline = tokio::time::Instant::now() + bound.saturating_sub(spent);
        // What the last requests recorded is stored before the process may exit.
        if tokio::time::timeout_at(deadline, state.audit.flush())
            .await
            .is_err()
        {
            cut.push("the audit writer's flush".into());
        }
        let tasks = async {
            let _ = sweeps.await;
            let _ = remote_wakes.await;
            let _ = callbacks.await;
            if let Some(r) = retention {
                let _ = r.await;
            }
        };
        if tokio::time::timeout_at(deadline, tasks).await.is_err() {
            cut.push("the background sweeps".into());
        }
        if tokio::time::timeout_at(deadline, backend.close())
            .await
            .is_err()
        {
            cut.push("the store's last commit and checkpoint".into());
        }
        if cut.is_empty() {
            tracing::info!("coordinator stopped");
        } else {
            tracing::warn!(
                shutdown_timeout_s = bound.as_secs_f64(),
                "coordinator stopped at the shutdown bound (coordinator.shutdown_timeout); cut: {}",
                cut.join(", ")
            );
        }
        served?;
        Ok(())
    }
}

/// Wake-ups other coordinators published through the store (a run created, a stop
/// taken, a run requeued there) wake the long-polls parked here. Only the local watch
/// is bumped: re-publishing would echo between coordinators.
async fn forward_remote_wakes(state: AppState, shutdown: CancellationToken) {
    let Some(mut remote) = state.store.remote_wakes() else {
        return;
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = remote.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
        state.wake.send_modify(|g| *g = g.wrapping_add(1));
    }
}
