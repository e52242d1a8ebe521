//! `Store::import_session`: a session from another system stored as it was, with its
//! runs (final statuses only, no lease) and its events (appended in order, one
//! idempotency key each), in one write transaction.

use aof_store::{ImportedSession, StoreResult};
use aof_wire::sse;

use crate::{
    events::append_in_tx,
    internal,
    rows::{feed_session, load_session},
    PgStore,
};

impl PgStore {
    pub(crate) async fn import_session_impl(&self, imp: ImportedSession) -> StoreResult<bool> {
        let mut w = self.begin().await?;
        let s = &imp.session;
        let inserted = sqlx::query(
            "INSERT INTO sessions(session_id, status, created_at, project_dir, agent_name, \
             last_resumed_at, parent_session_id, executor_session_id, executor_profile, hostname) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (session_id) DO NOTHING",
        )
        .bind(&s.session_id)
        .bind(imp.status.as_str())
        .bind(&s.created_at)
        .bind(&s.project_dir)
        .bind(&s.agent_name)
        .bind(&s.last_resumed_at)
        .bind(&s.parent_session_id)
        .bind(&s.executor_session_id)
        .bind(&s.executor_profile)
        .bind(&s.hostname)
        .execute(&mut *w.tx)
        .await
        .map_err(internal)?
        .rows_affected();
        if inserted == 0 {
            return Ok(false);
        }
        for r in &imp.runs {
            let run = &r.run;
            let demands = run
                .demands
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(internal)?;
            // A run id taken by another session is kept out rather than failing the session.
            sqlx::query(
                "INSERT INTO runs(run_id, run_type, session_id, agent_name, parameters, project_dir, \
                 parent_session_id, execution_mode, demands, scope, status, runner_id, error, created_at, \
                 claimed_at, started_at, completed_at, timeout_at, attempt, blueprint) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20) \
                 ON CONFLICT (run_id) DO NOTHING",
            )
            .bind(&run.run_id)
            .bind(run.run_type.as_str())
            .bind(&s.session_id)
            .bind(&run.agent_name)
            .bind(run.parameters.to_string())
            .bind(&run.project_dir)
            .bind(&run.parent_session_id)
            .bind(run.execution_mode.as_str())
            .bind(demands)
            .bind(run.scope.as_ref().map(|v| v.to_string()))
            .bind(r.status.as_str())
            .bind(&run.runner_id)
            .bind(&run.error)
            .bind(&run.created_at)
            .bind(&run.claimed_at)
            .bind(&run.started_at)
            .bind(&run.completed_at)
            .bind(&run.timeout_at)
            .bind(run.attempt)
            .bind(run.resolved_agent_blueprint.as_ref().map(|v| v.to_string()))
            .execute(&mut *w.tx)
            .await
            .map_err(internal)?;
        }
        for (i, event) in imp.events.iter().enumerate() {
            let key = imp.event_key(i);
            append_in_tx(&mut w, &s.session_id, event.clone(), None, Some(&key)).await?;
        }
        if let Some(stored) = load_session(&mut w.tx, &s.session_id).await? {
            feed_session(&mut w, sse::SESSION_CREATED, &stored).await?;
        }
        w.commit().await?;
        Ok(true)
    }
}
