//! What a runner-role write must prove (issue #20). With auth on, a runner key, an OIDC
//! runner and the in-process runner write to a session or a run only with the lease of a
//! run they hold: `x-aof-lease-token` + `x-aof-run-id` naming a run of THAT session (for a
//! report: the run in the path), the token equal to the run's current lease, and the run
//! held by a runner id bound to the caller. The store then checks the lease again in the
//! write's own transaction (a lease that moves on in between fails there).
//!
//! Everyone else keeps the old rule: a lease, if sent, is checked by the store. That is
//! auth off (the AOF reference runner sends no lease), an admin, and a session token
//! (which acts as its own session only).
//!
//! [`RunnerLease`] runs this before the body is read: a refusal does not depend on what
//! the body holds, and nothing is parsed for a caller who may not write.

use aof_wire::error::ErrorCode;
use axum::{
    extract::{FromRequestParts, RawPathParams},
    http::{request::Parts, HeaderMap},
};
use subtle::ConstantTimeEq;

use aof_wire::auth::Role;

use super::lease_headers;
use crate::{
    auth::{self, Caller},
    error::{ApiError, ApiResult},
    AppState,
};

/// The lease a write carries, as handed to the store.
pub(crate) struct Lease {
    pub token: Option<String>,
    pub run_id: Option<String>,
}

/// What the write is to.
#[derive(Clone, Copy)]
pub(crate) enum Target<'a> {
    /// Events, bind, or a session's final status: a run of this session.
    Session(&'a str),
    /// A run report: this run.
    Run(&'a str),
}

/// The write's lease, proven as the module doc says for a runner-role caller.
async fn check(
    st: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    target: Target<'_>,
) -> ApiResult<Lease> {
    let (token, run_id) = lease_headers(headers);
    if caller.0.role() != Some(Role::Runner) {
        return Ok(Lease { token, run_id });
    }
    let run_id = match (target, run_id) {
        (Target::Run(path), Some(h)) if h != path => {
            return Err(ApiError::Conflict(
                "x-aof-run-id names another run than the path".into(),
                ErrorCode::LeaseConflict,
            ))
        }
        (Target::Run(path), _) => Some(path.to_string()),
        (Target::Session(_), r) => r,
    };
    // The same answer the policy table gives a session write without lease headers.
    let (Some(token), Some(run_id)) = (token, run_id) else {
        return Err(ApiError::Forbidden(
            "A runner credential writes only with the lease of a run it holds \
             (x-aof-lease-token and x-aof-run-id)"
                .into(),
            ErrorCode::Forbidden,
        ));
    };
    // One answer for "no such run", "another session's run" and "not its lease": a
    // runner key learns nothing about runs it does not hold.
    let conflict = || {
        ApiError::Conflict(
            format!("This lease of run {run_id} is not held for this write"),
            ErrorCode::LeaseConflict,
        )
    };
    let run = st.store.get_run(&run_id).await?.ok_or_else(conflict)?;
    if let Target::Session(sid) = target {
        if run.run.session_id != sid {
            return Err(conflict());
        }
    }
    // The run's current lease: cleared when the coordinator resolved the run without its
    // runner (expired, requeued, runner removed), replaced when another runner claimed it.
    let current = run
        .lease_token
        .as_deref()
        .is_some_and(|t| bool::from(t.as_bytes().ct_eq(token.as_bytes())));
    if !current {
        return Err(conflict());
    }
    // A leaked token is useless to another key: the holder must be one of the caller's runners.
    let holder = run.run.runner_id.as_deref().ok_or_else(conflict)?;
    auth::check_runner(st, caller, holder).await?;
    Ok(Lease {
        token: Some(token),
        run_id: Some(run_id),
    })
}

/// The extractor form of [`check`]: the route's `{run_id}` (a report) or else its `{id}`
/// (a session) is the target. Put it before the body extractor.
pub(crate) struct RunnerLease(pub Lease);

impl FromRequestParts<AppState> for RunnerLease {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, st).await?;
        let params = RawPathParams::from_request_parts(parts, st)
            .await
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("path params: {e}")))?;
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        };
        let lease = match (param("run_id"), param("id")) {
            (Some(run), _) => check(st, &caller, &parts.headers, Target::Run(&run)).await?,
            (None, Some(sid)) => check(st, &caller, &parts.headers, Target::Session(&sid)).await?,
            // A route without either is a wiring bug: fail closed.
            (None, None) => {
                return Err(ApiError::Internal(anyhow::anyhow!(
                    "RunnerLease on a route without {{run_id}} or {{id}}"
                )))
            }
        };
        Ok(RunnerLease(lease))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};

    use super::lease_headers;

    #[test]
    fn empty_blank_non_utf8_and_repeated_lease_headers_are_absent() {
        let of = |pairs: &[(&'static str, &[u8])]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.append(*k, HeaderValue::from_bytes(v).unwrap());
            }
            lease_headers(&h)
        };
        let (l, r) = (aof_wire::LEASE_HEADER, aof_wire::RUN_HEADER);
        assert_eq!(
            of(&[(l, b"tok"), (r, b"run_1")]),
            (Some("tok".into()), Some("run_1".into()))
        );
        assert_eq!(of(&[(l, b""), (r, b" ")]), (None, None));
        assert_eq!(
            of(&[(l, b"\xff\xfe"), (r, b"run_1")]),
            (None, Some("run_1".into()))
        );
        assert_eq!(of(&[(l, b"tok"), (l, b"tok"), (r, b"run_1")]).0, None);
        assert_eq!(of(&[]), (None, None));
    }
}
