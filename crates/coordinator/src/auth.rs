//! Authentication and the policy layer. One middleware ([`enforce`]) runs on every
//! request: it finds the route's grants in the policy table ([`policy::RULES`], read
//! from the route descriptions), reads the credential
//! (`Authorization: Bearer` or the `aof_session` cookie — never the query string, so
//! credentials stay out of access logs and browser history), resolves it to a
//! [`Principal`], and answers 401 (no or bad credential) or 403 (wrong role) before any
//! handler runs. Before the credential it refuses what a web page could have made the
//! browser send ([`browser`]: Host, Origin) and repeated query keys; after it, bodies
//! that are not JSON.
//!
//! Handlers never check roles. They may check what only they can see: a runner key
//! acting as a runner id it registered ([`check_runner`]), a session token's
//! `parent_session_id` ([`check_spawn`]).

pub mod browser;
pub mod oidc;
pub mod policy;
pub mod secrets;

use aof_wire::error::ErrorCode;
use axum::{
    extract::{FromRequestParts, RawPathParams, Request, State},
    http::{header, request::Parts, HeaderMap, HeaderValue},
    middleware::Next,
    response::{IntoResponse, Response},
};
use chrono::Utc;
use subtle::ConstantTimeEq;

use aof_store::SessionTokenRecord;
use aof_wire::auth::{KeyScope, Role, Whoami};

use crate::{config::AuthConfig, error::ApiError, AppState};
use policy::Grant;

/// The browser session cookie: holds a browser-session id (never a key; HttpOnly,
/// SameSite=Strict). With `auth.cookie_secure` it is [`SECURE_COOKIE`] instead.
pub const COOKIE: &str = "aof_session";
/// The cookie's name over HTTPS: the `__Host-` prefix makes browsers accept it only
/// Secure, for Path=/ and without Domain, so a sibling subdomain cannot plant one.
pub const SECURE_COOKIE: &str = "__Host-aof_session";

/// How long a browser session lasts at most; logout and key revocation end it earlier.
pub const BROWSER_SESSION_TTL: chrono::Duration = chrono::Duration::hours(12);

/// How long a run's session token lives at most; it also dies with its run.
pub const SESSION_TOKEN_TTL: chrono::Duration = chrono::Duration::hours(12);

/// Who is calling, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Auth is off: everything is allowed (the listener is loopback unless
    /// `--insecure-listen`).
    Open,
    Key {
        id: String,
        /// The key's name, if it was given one (for the audit log).
        name: Option<String>,
        role: Role,
    },
    /// The runner inside `aof up`, with a key that only exists in this process's memory.
    Internal,
    Oidc {
        subject: String,
        role: Role,
    },
    /// A run's session token: acts as that session only.
    Session {
        session_id: String,
        run_id: String,
    },
}

impl Principal {
    /// The key role this principal acts with (`None` for a session token).
    pub fn role(&self) -> Option<Role> {
        match self {
            Principal::Open => Some(Role::Admin),
            Principal::Key { role, .. } | Principal::Oidc { role, .. } => Some(*role),
            Principal::Internal => Some(Role::Runner),
            Principal::Session { .. } => None,
        }
    }

    /// What a runner id is bound to when this principal registers it; `None`: unbound
    /// (admin, auth off).
    fn runner_binding(&self) -> Option<String> {
        match self {
            // So no runner key can take over the in-process runner's id.
            Principal::Internal => Some(INTERNAL_BINDING.into()),
            Principal::Key {
                id,
                role: Role::Runner,
                ..
            } => Some(id.clone()),
            Principal::Oidc {
                subject,
                role: Role::Runner,
            } => Some(format!("oidc:{subject}")),
            _ => None,
        }
    }

    pub fn whoami(&self, auth_enabled: bool) -> Whoami {
        let (role, subject) = match self {
            Principal::Open => ("admin".to_string(), None),
            Principal::Key { id, role, .. } => (role.to_string(), Some(id.clone())),
            Principal::Internal => ("runner".into(), Some("internal".into())),
            Principal::Oidc { subject, role } => (role.to_string(), Some(subject.clone())),
            Principal::Session { session_id, .. } => ("session".into(), Some(session_id.clone())),
        };
        Whoami {
            role,
            subject,
            auth_enabled,
        }
    }
}

/// Auth settings plus what was loaded for them. Shared read-only by every request.
pub struct Auth {
    pub cfg: AuthConfig,
    /// The in-process runner's key (`aof up`); `None` when auth is off.
    internal: Option<String>,
    oidc: Option<oidc::Oidc>,
    /// Exact origins allowed to send writes (`CORS_ORIGINS` without `*`), besides the
    /// coordinator's own origin.
    origins: Vec<String>,
    /// `CORS_ORIGINS=*`: any origin may send bearer-authenticated writes (auth on only).
    any_origin: bool,
    /// Foreign origins already named in a warning (`browser::note_foreign_reader`).
    warned_origins: std::sync::Mutex<Vec<String>>,
}

impl Auth {
    pub async fn load(cfg: AuthConfig, cors_origins: &str) -> anyhow::Result<Auth> {
        let oidc = match (&cfg.oidc, cfg.enabled) {
            (Some(o), true) => Some(oidc::Oidc::load(o.clone()).await?),
            _ => None,
        };
        Ok(Auth {
            internal: cfg.enabled.then(secrets::internal_key),
            origins: cors_origins
                .split(',')
                .map(|o| o.trim().to_string())
                .filter(|o| !o.is_empty() && o != "*")
                .map(|o| o.trim_end_matches('/').to_string())
                .collect(),
            any_origin: cors_origins.trim() == "*",
            warned_origins: Default::default(),
            oidc,
            cfg,
        })
    }

    /// The key the in-process runner of `aof up` uses (auth on only).
    pub fn internal_key(&self) -> Option<&str> {
        self.internal.as_deref()
    }

    /// Resolves a credential. Every failure is the same 401 so probing learns nothing.
    pub async fn authenticate(&self, st: &AppState, token: &str) -> Result<Principal, ApiError> {
        let invalid =
            || ApiError::Unauthorized("Invalid credential".into(), ErrorCode::Unauthenticated);
        if let Some((id, secret)) = secrets::split(token, secrets::KEY_PREFIX) {
            let key = st.store.find_key(id).await?.ok_or_else(invalid)?;
            if key.revoked_at.is_some() || !secrets::matches(secret, &key.hash) {
                return Err(invalid());
            }
            return Ok(Principal::Key {
                id: key.id,
                name: key.name,
                role: key.role,
            });
        }
        if let Some((id, secret)) = secrets::split(token, secrets::SESSION_PREFIX) {
            let t = st.store.find_session_token(id).await?.ok_or_else(invalid)?;
            if !secrets::matches(secret, &t.hash) || t.expires_at < Utc::now() {
                return Err(invalid());
            }
            // The token dies with its run: once the run ends, so does the agent's access.
            let live = st
                .store
                .get_run(&t.run_id)
                .await?
                .is_some_and(|r| r.status.is_leased() && r.run.session_id == t.session_id);
            if !live {
                return Err(invalid());
            }
            return Ok(Principal::Session {
                session_id: t.session_id,
                run_id: t.run_id,
            });
        }
        if let Some(secret) = secrets::browser_secret(token) {
            // The cookie: valid while unexpired, not logged out and its key not revoked.
            let s = st
                .store
                .find_browser_session(&secrets::hash(secret))
                .await?
                .ok_or_else(invalid)?;
            if s.expires_at <= Utc::now() {
                return Err(invalid());
            }
            let key = st.store.find_key(&s.key_id).await?.ok_or_else(invalid)?;
            if key.revoked_at.is_some() {
                return Err(invalid());
            }
            return Ok(Principal::Key {
                id: key.id,
                name: key.name,
                role: key.role,
            });
        }
        if let Some(internal) = &self.internal {
            if token.starts_with(secrets::INTERNAL_PREFIX) {
                return if bool::from(token.as_bytes().ct_eq(internal.as_bytes())) {
                    Ok(Principal::Internal)
                } else {
                    Err(invalid())
                };
            }
        }
        if let Some(o) = &self.oidc {
            if token.split('.').count() == 3 {
                return match o.verify(token).await {
                    Ok((subject, role)) => Ok(Principal::Oidc { subject, role }),
                    Err(e @ oidc::OidcError::NoRole(_)) => {
                        Err(ApiError::Forbidden(e.to_string(), ErrorCode::Forbidden))
                    }
                    Err(e) => Err(ApiError::Unauthorized(
                        e.to_string(),
                        ErrorCode::Unauthenticated,
                    )),
                };
            }
        }
        Err(invalid())
    }

    /// A cookie-authenticated write must come from an allowed page: the coordinator's
    /// own origin or one listed in `CORS_ORIGINS`. SameSite=Strict already keeps the
    /// cookie off cross-site requests; this is the second lock.
    pub fn origin_ok(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        self.origin_known(origin, host)
    }

    /// The session cookie's name: exactly one is accepted, the one matching
    /// `auth.cookie_secure`.
    pub fn cookie_name(&self) -> &'static str {
        if self.cfg.cookie_secure {
            SECURE_COOKIE
        } else {
            COOKIE
        }
    }

    /// The session cookie's value in a request, if any.
    pub fn session_cookie<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        cookie_value(headers, self.cookie_name())
    }

    /// `Set-Cookie` for a login (`Some(browser session id)`) or a logout (`None`).
    pub fn cookie(&self, session: Option<&str>) -> HeaderValue {
        let name = self.cookie_name();
        let secure = if self.cfg.cookie_secure {
            "; Secure"
        } else {
            ""
        };
        let v = match session {
            Some(id) => format!(
                "{name}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
                BROWSER_SESSION_TTL.num_seconds()
            ),
            None => format!("{name}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}"),
        };
        let mut h = HeaderValue::from_str(&v).unwrap_or(HeaderValue::from_static(""));
        h.set_sensitive(true);
        h
    }
}

/// The credential of a request and whether it came from the cookie named `cookie`. A
/// malformed `Authorization` header yields an empty token (a 401), not a fallback to
/// the cookie. Each kind travels one way only: a browser-session id as the cookie,
/// everything else as a bearer token (an empty token, a 401, otherwise).
fn credential(headers: &HeaderMap, cookie: &str) -> Option<(String, bool)> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let v = v.to_str().unwrap_or("");
        let token = match v.split_once(' ') {
            Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim(),
            _ => "",
        };
        let token = if token.starts_with(secrets::BROWSER_PREFIX) {
            ""
        } else {
            token
        };
        return Some((token.to_string(), false));
    }
    // A cookie holding anything else (an API key, as cookies did before browser
    // sessions were server-side) is refused.
    cookie_value(headers, cookie).map(|v| {
        let v = if secrets::browser_secret(v).is_some() {
            v
        } else {
            ""
        };
        (v.to_string(), true)
    })
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn unauthenticated() -> Response {
    let mut r =
        ApiError::Unauthorized("Authentication required".into(), ErrorCode::Unauthenticated)
            .into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

fn forbidden() -> Response {
    ApiError::Forbidden(
        "This credential may not do this".into(),
        ErrorCode::Forbidden,
    )
    .into_response()
}

/// Who acted, on a response: set by [`enforce`] (refusals of a valid credential too),
/// or by a handler when only it knows (a login names its key in the body). The audit
/// layer outside reads it.
#[derive(Debug, Clone)]
pub struct Actor(pub Principal);

/// Marks `resp` as acted by `who` unless the handler named the actor itself.
fn acted(mut resp: Response, who: Option<Principal>) -> Response {
    if let Some(p) = who {
        if resp.extensions().get::<Actor>().is_none() {
            resp.extensions_mut().insert(Actor(p));
        }
    }
    resp
}

/// The policy middleware, innermost of the request layers (request id → audit → auth):
/// every request passes here (see the module doc).
pub async fn enforce(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let template = parts
        .extensions
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_string());
    let grants = policy::grants(&parts.method, template.as_deref());
    // Before the credential: where the request comes from, and a query that means one
    // thing to the policy and another to the handler.
    let early = browser::check_source(&st.cfg, &st.auth, &parts, template.as_deref())
        .map_err(ApiError::from)
        .and_then(|()| crate::extract::unique_query_pairs(parts.uri.query().unwrap_or("")));
    if let Err(e) = early {
        return e.into_response();
    }
    let principal = match admit(&st, &mut parts, grants).await {
        Ok(p) => p,
        Err((resp, who)) => return acted(resp, who),
    };
    // After it (an anonymous caller learns 401 first), before any handler parses.
    if let Err(r) = browser::check_body(&parts.headers, &body) {
        return acted(r.into_response(), principal);
    }
    if let Some(p) = &principal {
        parts.extensions.insert(p.clone());
    }
    let resp = next.run(Request::from_parts(parts, body)).await;
    acted(resp, principal)
}

/// Who the request acts as (`None`: a public route with auth on), or the refusal and,
/// when the credential was valid but not enough, whose it was.
async fn admit(
    st: &AppState,
    parts: &mut Parts,
    grants: &'static [Grant],
) -> Result<Option<Principal>, (Response, Option<Principal>)> {
    let auth = &st.auth;
    if !auth.cfg.enabled {
        return Ok(Some(Principal::Open));
    }
    let public = grants
        .iter()
        .any(|g| *g == Grant::Public || (*g == Grant::Metrics && auth.cfg.metrics_public));
    if public {
        return Ok(None);
    }
    let Some((token, via_cookie)) = credential(&parts.headers, auth.cookie_name()) else {
        return Err((unauthenticated(), None));
    };
    let principal = match auth.authenticate(st, &token).await {
        Ok(p) => p,
        Err(e @ ApiError::Unauthorized(..)) => {
            let mut r = e.into_response();
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return Err((r, None));
        }
        Err(e) => return Err((e.into_response(), None)),
    };
    // `browser::check_source` refused a foreign Origin already; the cookie also needs one.
    if via_cookie && browser::is_write(&parts.method) && !auth.origin_ok(&parts.headers) {
        let r = ApiError::Forbidden(
            "Cookie-authenticated writes need an Origin header from an allowed origin".into(),
            ErrorCode::OriginNotAllowed,
        )
        .into_response();
        return Err((r, Some(principal)));
    }
    let id = RawPathParams::from_request_parts(parts, &())
        .await
        .ok()
        .and_then(|p| {
            p.iter()
                .find(|(k, _)| *k == "id")
                .map(|(_, v)| v.to_string())
        });
    for g in grants {
        if granted(st, *g, &principal, id.as_deref(), parts).await {
            return Ok(Some(principal));
        }
    }
    Err((forbidden(), Some(principal)))
}

/// Whether `grant` admits `p` for this request (`id`: the route's `{id}`, if any).
async fn granted(
    st: &AppState,
    grant: Grant,
    p: &Principal,
    id: Option<&str>,
    parts: &Parts,
) -> bool {
    let role = p.role();
    let is = |roles: &[Role]| role.is_some_and(|r| roles.contains(&r));
    let own = match p {
        Principal::Session { session_id, .. } => Some(session_id.as_str()),
        _ => None,
    };
    match grant {
        Grant::Public => true,
        Grant::Authenticated => true,
        Grant::Metrics | Grant::Viewer => is(&[Role::Viewer, Role::Operator, Role::Admin]),
        Grant::Operator => is(&[Role::Operator, Role::Admin]),
        Grant::Runner => is(&[Role::Runner, Role::Admin]),
        // Headers that are empty, not UTF-8 or repeated do not count (issue #20); the
        // handler then checks the lease is of this session and the caller's (`api::fence`).
        Grant::LeasedRunner => {
            is(&[Role::Admin])
                || (is(&[Role::Runner])
                    && matches!(
                        crate::api::lease_headers(&parts.headers),
                        (Some(_), Some(_))
                    ))
        }
        Grant::Admin => is(&[Role::Admin]),
        Grant::OwnSession => own.is_some() && own == id,
        // Repeated keys were refused before (`enforce`), and are again here: the handler
        // must read the very `session_id` this grant checked (it also forces its own).
        Grant::OwnSessionFeed => {
            let q = crate::extract::unique_query_pairs(parts.uri.query().unwrap_or(""));
            own.is_some()
                && q.is_ok_and(|q| {
                    q.iter()
                        .any(|(k, v)| k == "session_id" && Some(v.as_str()) == own)
                })
        }
        Grant::SessionSpawn | Grant::AnySession => own.is_some(),
        Grant::ChildSession => match (own, id) {
            (Some(own), Some(id)) => st
                .store
                .get_session(id)
                .await
                .ok()
                .flatten()
                .is_some_and(|s| s.parent_session_id.as_deref() == Some(own)),
            _ => false,
        },
    }
}

/// The authenticated caller, for the few handlers that check ownership.
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, ApiError> {
        match parts.extensions.get::<Principal>() {
            Some(p) => Ok(Caller(p.clone())),
            None if !st.auth.cfg.enabled => Ok(Caller(Principal::Open)),
            // Fail closed: a handler that needs a caller behind no middleware is a bug.
            None => Err(ApiError::Internal(anyhow::anyhow!(
                "no principal: auth middleware did not run"
            ))),
        }
    }
}

/// The binding of the in-process runner's ids. No key has this id (key ids are 12 hex
/// characters) and it cannot be revoked.
const INTERNAL_BINDING: &str = "internal";

/// A runner key may act only as runner ids it registered.
pub async fn check_runner(st: &AppState, caller: &Caller, runner_id: &str) -> Result<(), ApiError> {
    let Some(binding) = caller.0.runner_binding() else {
        return Ok(());
    };
    if st.store.runner_key(runner_id).await?.as_deref() == Some(binding.as_str()) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            format!("This key did not register runner {runner_id}"),
            ErrorCode::RunnerNotBound,
        ))
    }
}

/// What the caller's key may serve (`KeyScope::default()`: anything). Only API keys
/// carry a scope; OIDC runners, the in-process runner and admins are unscoped.
pub async fn runner_scope(st: &AppState, caller: &Caller) -> Result<KeyScope, ApiError> {
    match &caller.0 {
        Principal::Key {
            id,
            role: Role::Runner,
            ..
        } => Ok(st
            .store
            .find_key(id)
            .await?
            .map(|k| k.scope)
            .unwrap_or_default()),
        _ => Ok(KeyScope::default()),
    }
}

/// At registration: binds the runner id to the caller's key. A runner id held by
/// another live key is refused, so one runner key cannot take over another's runner;
/// so is a runner carrying a tag outside a scoped key's tags (refused, not narrowed:
/// the operator sees the mistake instead of a runner that silently serves less).
pub async fn bind_runner(
    st: &AppState,
    caller: &Caller,
    runner_id: &str,
    tags: &[String],
) -> Result<(), ApiError> {
    let Some(binding) = caller.0.runner_binding() else {
        return Ok(());
    };
    let scope = runner_scope(st, caller).await?;
    let foreign = scope.foreign_tags(tags);
    if !foreign.is_empty() {
        return Err(ApiError::Forbidden(
            format!(
                "This key registers runners with tags [{}] only; not: {}",
                scope.tags.join(", "),
                foreign.join(", ")
            ),
            ErrorCode::RunnerOutOfScope,
        ));
    }
    if let Some(other) = st.store.runner_key(runner_id).await? {
        if other == binding {
            return Ok(());
        }
        let other_live = match st.store.find_key(&other).await? {
            Some(k) => k.revoked_at.is_none(),
            // An OIDC subject cannot be revoked here, nor can the in-process runner;
            // their bindings stay.
            None => other.starts_with("oidc:") || other == INTERNAL_BINDING,
        };
        if other_live {
            return Err(ApiError::Forbidden(
                format!("Runner {runner_id} is registered with another key"),
                ErrorCode::RunnerNotBound,
            ));
        }
    }
    st.store.bind_runner_key(runner_id, &binding).await?;
    Ok(())
}

/// A session token may only start runs whose parent is its own session.
pub fn check_spawn(caller: &Principal, parent: Option<&str>) -> Result<(), ApiError> {
    match caller {
        Principal::Session { session_id, .. } if parent != Some(session_id.as_str()) => {
            Err(ApiError::Forbidden(
                "A session token may only create runs whose parent_session_id is its own session"
                    .into(),
                ErrorCode::Forbidden,
            ))
        }
        _ => Ok(()),
    }
}

/// A new session token for a run just claimed (auth on only). Stored hashed.
pub async fn mint_session_token(
    st: &AppState,
    run_id: &str,
    session_id: &str,
) -> Result<Option<String>, ApiError> {
    if !st.auth.cfg.enabled {
        return Ok(None);
    }
    let (id, secret, token) = secrets::mint(secrets::SESSION_PREFIX);
    st.store
        .create_session_token(&SessionTokenRecord {
            id,
            hash: secrets::hash(&secret),
            run_id: run_id.to_string(),
            session_id: session_id.to_string(),
            expires_at: Utc::now() + SESSION_TOKEN_TTL,
        })
        .await?;
    Ok(Some(token))
}
