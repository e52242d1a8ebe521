//! The audit log: who did what. Its [`layer`] sits between the request id and the auth
//! layer, so it sees every answer, refusals included, and records each answered request
//! that [`audited`] keeps: every state-changing request
//! (POST/PUT/PATCH/DELETE) except the high-volume runner and agent traffic whose routes
//! say `x-aof-audit: refusals`, every refused one (401/403), and admin-only reads
//! (listing keys, reading this log). An entry holds the actor (never a secret), the
//! route's action name from the policy table ([`action`]), the target id, the status,
//! the request id and the peer.
//!
//! Writes leave the request path: entries go over a bounded channel to one writer task
//! that stores them in batches (on SQLite one group-commit job per batch). A failed batch
//! is retried; if the store still refuses it, each entry is logged at error level with
//! all its fields, so nothing disappears silently.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    extract::{ConnectInfo, RawPathParams},
    http::{request::Parts, Method},
    response::{IntoResponseParts, Response, ResponseParts},
};
use chrono::Utc;
use tokio::sync::{mpsc, oneshot};

use aof_store::{prelude::*, NewAuditEntry};
use aof_wire::audit::ActorKind;

use crate::{
    auth::{
        policy,
        policy::{Audit, Grant},
        Actor, Principal,
    },
    AppState,
};

/// Entries waiting for the writer at most; past this, requests wait (backpressure,
/// never loss).
const QUEUE: usize = 8192;
/// Entries per store write at most.
const BATCH: usize = 512;
/// Store attempts per batch before its entries are logged as lost.
const ATTEMPTS: u32 = 4;

/// The stable action name of a route: the table's (declared in the route's
/// `x-aof-audit-action`, else [`policy::derived_action`]). `None` (no route matched) is
/// `unknown`.
pub fn action(method: &Method, template: Option<&str>) -> String {
    let Some(t) = template else {
        return "unknown".into();
    };
    match policy::rule(method, Some(t)) {
        Some(r) => r.action.into(),
        None => policy::derived_action(method, t),
    }
}

/// Whether a request is kept in the log (see the module doc): refusals always; on a
/// matched route, writes and admin-only reads, unless the route keeps only refusals
/// ([`Audit::Refusals`]).
pub fn audited(method: &Method, template: Option<&str>, status: u16) -> bool {
    if status == 401 || status == 403 {
        return true;
    }
    if template.is_none() {
        return false;
    }
    let rule = policy::rule(method, template);
    if rule.is_some_and(|r| r.audit == Audit::Refusals) {
        return false;
    }
    match *method {
        Method::GET | Method::HEAD => rule.map_or(policy::DEFAULT, |r| r.grants) == [Grant::Admin],
        Method::OPTIONS => false,
        _ => true,
    }
}

/// What a handler adds to its answer so the entry names the resource it created
/// (the route has no id for it yet).
#[derive(Debug, Clone)]
pub struct Target(pub String);

impl IntoResponseParts for Target {
    type Error = std::convert::Infallible;
    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        res.extensions_mut().insert(self);
        Ok(res)
    }
}

/// What the middleware notes about a request before it runs.
pub struct RequestInfo {
    pub method: Method,
    pub template: Option<String>,
    pub request_id: String,
    target: Option<String>,
    remote_addr: Option<String>,
}

impl RequestInfo {
    /// Reads the route, its id parameter, the peer and the request id (which the
    /// request id layer outside this one set).
    pub async fn read(parts: &mut Parts) -> RequestInfo {
        use axum::extract::{FromRequestParts, MatchedPath};
        let template = parts
            .extensions
            .get::<MatchedPath>()
            .map(|m| m.as_str().to_string());
        let target = RawPathParams::from_request_parts(parts, &())
            .await
            .ok()
            .and_then(|p| p.iter().next().map(|(_, v)| v.chars().take(256).collect()));
        let remote_addr = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.to_string());
        let request_id = crate::request_id::of(&parts.headers);
        RequestInfo {
            method: parts.method.clone(),
            template,
            request_id,
            target,
            remote_addr,
        }
    }

    /// The entry for this request answered with `resp`, acted by the response's
    /// [`Actor`] (`None`: no credential was accepted).
    fn entry(&self, resp: &Response) -> NewAuditEntry {
        let who = resp.extensions().get::<Actor>().map(|a| &a.0);
        let (actor_kind, actor_id, actor_name) = match who {
            None | Some(Principal::Open) => (ActorKind::Anonymous, None, None),
            Some(Principal::Key { id, name, .. }) => {
                (ActorKind::Key, Some(id.clone()), name.clone())
            }
            Some(Principal::Internal) => (ActorKind::Internal, None, None),
            Some(Principal::Oidc { subject, .. }) => (ActorKind::Oidc, Some(subject.clone()), None),
            Some(Principal::Session { session_id, .. }) => {
                (ActorKind::Session, Some(session_id.clone()), None)
            }
        };
        let target = resp
            .extensions()
            .get::<Target>()
            .map(|t| t.0.clone())
            .or_else(|| self.target.clone());
        NewAuditEntry {
            at: Utc::now(),
            actor_kind,
            actor_id,
            actor_name,
            role: who.and_then(Principal::role),
            action: action(&self.method, self.template.as_deref()),
            target,
            status: resp.status().as_u16(),
            request_id: self.request_id.clone(),
            remote_addr: self.remote_addr.clone(),
        }
    }
}

/// The audit layer: notes the request, lets the auth layer and the handler answer, and
/// records the answer if [`audited`] keeps it. The auth layer puts who acted on the
/// response ([`Actor`]), its refusals included.
pub async fn layer(
    axum::extract::State(st): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (mut parts, body) = req.into_parts();
    let info = RequestInfo::read(&mut parts).await;
    let resp = next
        .run(axum::extract::Request::from_parts(parts, body))
        .await;
    if audited(
        &info.method,
        info.template.as_deref(),
        resp.status().as_u16(),
    ) {
        st.audit.push(info.entry(&resp)).await;
    }
    resp
}

enum Msg {
    Entry(Box<NewAuditEntry>),
    /// Answered once every entry queued before it is stored (or logged as lost).
    Flush(oneshot::Sender<()>),
}

/// The sending side of the audit writer. Cheap to share; the writer task ends when the
/// last `AuditLog` is dropped, after storing what was queued.
pub struct AuditLog {
    /// Requests → writer task. The writer drains it; dropping every sender ends it.
    tx: mpsc::Sender<Msg>,
}

impl AuditLog {
    /// Starts the writer task on the current runtime.
    pub fn start(store: Arc<dyn Store>) -> AuditLog {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(writer(store, rx));
        AuditLog { tx }
    }

    pub async fn push(&self, e: NewAuditEntry) {
        if let Err(mpsc::error::SendError(Msg::Entry(e))) =
            self.tx.send(Msg::Entry(Box::new(e))).await
        {
            lost(&e, "the audit writer has stopped");
        }
    }

    /// Waits until everything recorded so far is stored, so a reader sees it.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

fn lost(e: &NewAuditEntry, why: &str) {
    tracing::error!(
        audit.at = %e.at.to_rfc3339(),
        audit.actor_kind = e.actor_kind.as_str(),
        audit.actor_id = e.actor_id.as_deref().unwrap_or(""),
        audit.actor_name = e.actor_name.as_deref().unwrap_or(""),
        audit.action = %e.action,
        audit.target = e.target.as_deref().unwrap_or(""),
        audit.status = e.status,
        audit.request_id = %e.request_id,
        reason = why,
        "audit entry could not be stored"
    );
}

/// The writer task: takes what is queued (up to [`BATCH`]), stores it in one call,
/// answers the flushes that were behind it.
async fn writer(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Msg>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut flushes = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Entry(e) => batch.push(*e),
                Msg::Flush(f) => flushes.push(f),
            }
            if batch.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            store_batch(store.as_ref(), &batch).await;
            batch.clear();
        }
        for f in flushes.drain(..) {
            let _ = f.send(());
        }
    }
}

async fn store_batch(store: &dyn Store, batch: &[NewAuditEntry]) {
    let mut wait = Duration::from_millis(100);
    for attempt in 1..=ATTEMPTS {
        match store.append_audit(batch).await {
            Ok(()) => return,
            Err(e) if attempt < ATTEMPTS => {
                tracing::warn!(error = %e, entries = batch.len(), attempt, "audit write failed; retrying");
                tokio::time::sleep(wait).await;
                wait *= 4;
            }
            Err(e) => {
                let why = format!("store refused it {ATTEMPTS} times: {e}");
                for entry in batch {
                    lost(entry, &why);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::auth::policy::RULES;

    #[test]
    fn every_route_has_one_distinct_action_name() {
        let mut seen = BTreeMap::new();
        // Public reads (dashboard pages, health) are never refused nor audited.
        let public_read =
            |r: &&policy::Rule| r.method == Method::GET && r.grants == [Grant::Public];
        for r in RULES.iter().filter(|r| !public_read(r)) {
            let a = action(&r.method, Some(r.path));
            assert_eq!(a, r.action);
            assert!(
                a.bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_'),
                "{} {}: {a}",
                r.method,
                r.path
            );
            if let Some(other) = seen.insert(a.clone(), format!("{} {}", r.method, r.path)) {
                panic!("{a}: both {other} and {} {}", r.method, r.path);
            }
        }
        let get = |m: Method, p| action(&m, Some(p));
        assert_eq!(get(Method::POST, "/runs"), "run.create");
        assert_eq!(get(Method::POST, "/runs/{run_id}/stop"), "run.stop");
        assert_eq!(get(Method::DELETE, "/sessions/{id}"), "session.delete");
        assert_eq!(
            get(Method::PATCH, "/sessions/{id}/metadata"),
            "session.metadata.update"
        );
        assert_eq!(
            get(Method::PUT, "/mcp-servers/{server_id}"),
            "mcp_server.update"
        );
        assert_eq!(get(Method::POST, "/capabilities"), "capability.create");
        assert_eq!(
            get(Method::POST, "/runner/runs/{run_id}/stopped"),
            "runner.run.stopped"
        );
        // Declared names (`x-aof-audit-action`) and the undocumented routes' own.
        assert_eq!(get(Method::HEAD, "/auth/keys"), "key.list");
        assert_eq!(get(Method::POST, "/runner/register"), "runner.register");
        assert_eq!(get(Method::GET, "/docs/{*rest}"), "docs.file");
        assert_eq!(get(Method::DELETE, "/mcp"), "mcp.close");
        assert_eq!(action(&Method::GET, None), "unknown");
        // A matched route missing from the table (none today) still gets a name.
        assert_eq!(get(Method::GET, "/not/in/table"), "not.in.table.list");
    }

    #[test]
    fn what_is_kept() {
        assert!(audited(&Method::POST, Some("/runs"), 201));
        assert!(
            audited(&Method::DELETE, Some("/sessions/{id}"), 404),
            "failed writes too"
        );
        assert!(!audited(&Method::GET, Some("/runs"), 200));
        assert!(audited(&Method::GET, Some("/runs"), 401));
        assert!(
            audited(&Method::GET, Some("/auth/keys"), 200),
            "admin-only read"
        );
        assert!(!audited(&Method::POST, Some("/runner/heartbeat"), 200));
        assert!(audited(&Method::POST, Some("/runner/heartbeat"), 403));
        assert!(audited(&Method::POST, Some("/runner/register"), 200));
        assert!(!audited(&Method::POST, None, 404), "no route, not refused");
        assert!(audited(&Method::GET, None, 401));
        // High-volume runner traffic keeps refusals only.
        let refusals: BTreeSet<String> = RULES
            .iter()
            .filter(|r| r.audit == Audit::Refusals)
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        assert_eq!(
            refusals,
            [
                "POST /runner/heartbeat",
                "POST /sessions/{id}/events",
                "POST /sessions/{id}/events/batch",
                "POST /sessions/{id}/bind",
                "POST /runner/runs/{run_id}/started",
                "POST /runner/runs/{run_id}/completed",
                "POST /runner/runs/{run_id}/failed",
                "POST /runner/sessions/{id}/status",
            ]
            .into_iter()
            .map(String::from)
            .collect()
        );
    }
}
