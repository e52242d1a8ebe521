//! `/auth`: API keys (admin), browser login/logout, and `GET /auth/me`. Roles are
//! enforced by the policy layer; these handlers only do the work.

use crate::auth::policy::Grant;
use aof_wire::error::ErrorCode;
use axum::{
    extract::{Path, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use chrono::Utc;

use aof_store::BrowserSessionRecord;
use aof_wire::{
    api::OkResponse,
    auth::{KeyCreate, KeyCreated, KeyInfo, KeyList, LoginRequest, Whoami},
};

use crate::{
    audit::Target,
    auth::{secrets, Actor, Caller, Principal, BROWSER_SESSION_TTL},
    error::{ApiError, ApiResult},
    extract::JsonBody,
    AppState,
};

#[utoipa::path(post, path = "/auth/keys", extensions(("x-aof-grants" = json!([Grant::Admin])), ("x-aof-audit-action" = json!("key.create"))), tag = "auth", request_body = aof_wire::auth::KeyCreate, responses((status = 201, description = "Created; `key` is shown this once", body = aof_wire::auth::KeyCreated), (status = 400, description = "invalid_key_name, or invalid_key_scope: tags/agents on a role other than runner, or an empty entry", body = aof_wire::ErrorBody), (status = 401, description = "No or invalid credential", body = aof_wire::ErrorBody), (status = 403, description = "Not an admin", body = aof_wire::ErrorBody), (status = 422, description = "Validation error", body = aof_wire::ErrorBody)))]
pub(crate) async fn create_key(
    State(st): State<AppState>,
    JsonBody(req): JsonBody<KeyCreate>,
) -> ApiResult<(StatusCode, Target, Json<KeyCreated>)> {
    if req.name.as_ref().is_some_and(|n| n.len() > 200) {
        return Err(ApiError::BadRequest(
            "name must be at most 200 characters".into(),
            ErrorCode::InvalidKeyName,
        ));
    }
    let scope = req
        .scope()
        .validated(req.role)
        .map_err(|m| ApiError::BadRequest(m, ErrorCode::InvalidKeyScope))?;
    let (info, key) = secrets::create_key(st.store.as_ref(), req.role, req.name, scope).await?;
    tracing::info!(key_id = %info.id, role = %info.role, tags = ?info.tags, agents = ?info.agents, "api key created");
    Ok((
        StatusCode::CREATED,
        Target(info.id.clone()),
        Json(KeyCreated { info, key }),
    ))
}

#[utoipa::path(get, path = "/auth/keys", extensions(("x-aof-grants" = json!([Grant::Admin])), ("x-aof-audit-action" = json!("key.list"))), tag = "auth", responses((status = 200, description = "Every key, newest first, without secrets", body = aof_wire::auth::KeyList), (status = 401, description = "No or invalid credential", body = aof_wire::ErrorBody), (status = 403, description = "Not an admin", body = aof_wire::ErrorBody)))]
pub(crate) async fn list_keys(State(st): State<AppState>) -> ApiResult<Json<KeyList>> {
    let keys = st.store.list_keys().await?;
    Ok(Json(KeyList {
        keys: keys.iter().map(secrets::info).collect(),
    }))
}

#[utoipa::path(delete, path = "/auth/keys/{id}", extensions(("x-aof-grants" = json!([Grant::Admin])), ("x-aof-audit-action" = json!("key.revoke"))), tag = "auth", params(("id" = String, Path, description = "Key id (the part after `aof_`)")), responses((status = 200, description = "Revoked (requests with it now get 401)", body = aof_wire::auth::KeyInfo), (status = 401, description = "No or invalid credential", body = aof_wire::ErrorBody), (status = 403, description = "Not an admin", body = aof_wire::ErrorBody), (status = 404, description = "No such key", body = aof_wire::ErrorBody)))]
pub(crate) async fn revoke_key(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<KeyInfo>> {
    let not_found = || ApiError::NotFound("Key not found".into(), ErrorCode::KeyNotFound);
    if !st.store.revoke_key(&id).await? {
        return Err(not_found());
    }
    let key = st.store.find_key(&id).await?.ok_or_else(not_found)?;
    // Its browser sessions end too (authentication also checks the key, so a failure
    // here would not keep them alive).
    let ended = st.store.delete_browser_sessions_of_key(&id).await?;
    tracing::info!(key_id = %id, browser_sessions = ended, "api key revoked");
    Ok(Json(secrets::info(&key)))
}

#[utoipa::path(post, path = "/auth/login", extensions(("x-aof-grants" = json!([Grant::Public])), ("x-aof-audit-action" = json!("auth.login"))), tag = "auth", request_body = aof_wire::auth::LoginRequest, responses((status = 200, description = "Logged in; sets the HttpOnly session cookie", body = aof_wire::auth::Whoami), (status = 400, description = "Auth is off", body = aof_wire::ErrorBody), (status = 401, description = "Invalid key", body = aof_wire::ErrorBody), (status = 403, description = "Origin not allowed", body = aof_wire::ErrorBody), (status = 422, description = "Validation error", body = aof_wire::ErrorBody)))]
pub(crate) async fn login(
    State(st): State<AppState>,
    headers: axum::http::HeaderMap,
    JsonBody(req): JsonBody<LoginRequest>,
) -> ApiResult<Response> {
    if !st.auth.cfg.enabled {
        return Err(ApiError::BadRequest(
            "Auth is off: there is nothing to log in to".into(),
            ErrorCode::AuthDisabled,
        ));
    }
    // A page on another origin must not log the browser in (login CSRF).
    if headers.contains_key(header::ORIGIN) && !st.auth.origin_ok(&headers) {
        return Err(ApiError::Forbidden(
            "Origin not allowed".into(),
            ErrorCode::OriginNotAllowed,
        ));
    }
    // Only API keys become cookies: session tokens and the in-process key stay machine-only.
    if secrets::split(&req.key, secrets::KEY_PREFIX).is_none() {
        return Err(ApiError::Unauthorized(
            "Invalid credential".into(),
            ErrorCode::Unauthenticated,
        ));
    }
    let principal = st.auth.authenticate(&st, &req.key).await?;
    let Principal::Key { id, .. } = &principal else {
        return Err(ApiError::Unauthorized(
            "Invalid credential".into(),
            ErrorCode::Unauthenticated,
        ));
    };
    // The cookie is a server-side session of this key, never the key itself: it can
    // expire, be logged out, and dies with the key.
    let (cookie, hash) = secrets::mint_browser_session();
    let now = Utc::now();
    st.store
        .create_browser_session(&BrowserSessionRecord {
            hash,
            key_id: id.clone(),
            created_at: now,
            expires_at: now + BROWSER_SESSION_TTL,
        })
        .await?;
    let mut resp = Json(principal.whoami(true)).into_response();
    // The audit entry names the key that logged in (the middleware saw no credential).
    resp.extensions_mut().insert(Actor(principal));
    resp.headers_mut()
        .insert(header::SET_COOKIE, st.auth.cookie(Some(&cookie)));
    Ok(resp)
}

#[utoipa::path(post, path = "/auth/logout", extensions(("x-aof-grants" = json!([Grant::Public])), ("x-aof-audit-action" = json!("auth.logout"))), tag = "auth", responses((status = 200, description = "Session cookie cleared", body = aof_wire::api::OkResponse)))]
pub(crate) async fn logout(
    State(st): State<AppState>,
    headers: axum::http::HeaderMap,
) -> ApiResult<Response> {
    // Ends the session server-side: a copy of the cookie kept elsewhere is dead too.
    if let Some(secret) = st
        .auth
        .session_cookie(&headers)
        .and_then(secrets::browser_secret)
    {
        st.store
            .delete_browser_session(&secrets::hash(secret))
            .await?;
    }
    let mut resp = Json(OkResponse { ok: true }).into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, st.auth.cookie(None));
    Ok(resp)
}

#[utoipa::path(get, path = "/auth/me", extensions(("x-aof-grants" = json!([Grant::Authenticated])), ("x-aof-audit-action" = json!("auth.me"))), tag = "auth", responses((status = 200, description = "Who the credential is", body = aof_wire::auth::Whoami), (status = 401, description = "No or invalid credential", body = aof_wire::ErrorBody)))]
pub(crate) async fn me(State(st): State<AppState>, Caller(p): Caller) -> Json<Whoami> {
    Json(p.whoami(st.auth.cfg.enabled))
}
