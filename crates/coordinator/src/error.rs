//! The API error: one type, each variant with its status and stable `code`; one
//! `IntoResponse` writes `{"detail": …, "code": …}`.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};

use aof_store::StoreError;
use aof_wire::ErrorBody;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(String, &'static str),
    #[error("{0}")]
    BadRequest(String, &'static str),
    /// A FastAPI-style validation error: `detail` is a list.
    #[error("validation failed")]
    Validation(serde_json::Value),
    /// A 400 whose `detail` is an object, as the reference sends for parameter errors.
    #[error("bad request")]
    BadRequestObject(serde_json::Value, &'static str),
    #[error("{0}")]
    Conflict(String, &'static str),
    #[error("conflict")]
    ConflictObject(serde_json::Value, &'static str),
    #[error("{0}")]
    Unauthorized(String, &'static str),
    /// Authenticated, but this credential may not do this.
    #[error("{0}")]
    Forbidden(String, &'static str),
    /// 422 with a string `detail` (a stored blueprint that cannot be resolved).
    #[error("{0}")]
    Unprocessable(String, &'static str),
    /// 413: a body, event, or metadata over its limit (`crate::limits`).
    #[error("{0}")]
    TooLarge(String, &'static str),
    /// 415: a body that is not JSON (`auth::browser`, `extract`).
    #[error("Request bodies must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("{0}")]
    Unavailable(String),
    /// 429: a credential over its cap of long-lived requests (`crate::caps`); the
    /// number is the `Retry-After` in seconds.
    #[error("{0}")]
    TooMany(String, &'static str, u64),
    /// 507 when the disk is full, else 503: the store refused the write whole.
    #[error("{1}")]
    Storage(bool, String),
    #[error(transparent)]
    Internal(anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound(..) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(..) | ApiError::BadRequestObject(..) => StatusCode::BAD_REQUEST,
            ApiError::Validation(_) | ApiError::Unprocessable(..) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::Conflict(..) | ApiError::ConflictObject(..) => StatusCode::CONFLICT,
            ApiError::Unauthorized(..) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(..) => StatusCode::FORBIDDEN,
            ApiError::TooLarge(..) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::TooMany(..) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Storage(true, _) => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::Storage(false, _) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::NotFound(_, c)
            | ApiError::BadRequest(_, c)
            | ApiError::BadRequestObject(_, c)
            | ApiError::Conflict(_, c)
            | ApiError::ConflictObject(_, c)
            | ApiError::Unauthorized(_, c)
            | ApiError::Forbidden(_, c)
            | ApiError::TooLarge(_, c)
            | ApiError::Unprocessable(_, c)
            | ApiError::TooMany(_, c, _) => c,
            ApiError::Validation(_) => "validation_error",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Storage(true, _) => "storage_full",
            ApiError::Storage(false, _) => "storage_unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::SessionNotFound(_) => {
                ApiError::NotFound("Session not found".into(), "session_not_found")
            }
            StoreError::SessionExists(id) => {
                ApiError::Conflict(format!("Session '{id}' already exists"), "session_exists")
            }
            StoreError::RunNotFound => ApiError::NotFound("Run not found".into(), "run_not_found"),
            StoreError::RunnerNotRegistered => {
                ApiError::Unauthorized("Runner not registered".into(), "runner_not_registered")
            }
            StoreError::RunnerNotFound => {
                ApiError::NotFound("Runner not found".into(), "runner_not_found")
            }
            StoreError::DuplicateRunner(id) => ApiError::ConflictObject(
                serde_json::json!({
                    "error": "duplicate_runner",
                    "message": format!("Runner {id} is already registered and online"),
                    "runner_id": id,
                }),
                "duplicate_runner",
            ),
            StoreError::LeaseConflict(m) => ApiError::Conflict(m, "lease_conflict"),
            StoreError::Illegal(m) => ApiError::BadRequest(m, "illegal_transition"),
            StoreError::Busy(m) => ApiError::Conflict(m, "session_busy"),
            StoreError::Storage { full, message } => ApiError::Storage(full, message),
            StoreError::ForeignSchema(m) => ApiError::Internal(anyhow::anyhow!(m)),
            StoreError::Internal(e) => ApiError::Internal(e),
        }
    }
}

impl From<aof_blueprints::BlueprintError> for ApiError {
    fn from(e: aof_blueprints::BlueprintError) -> Self {
        use aof_blueprints::BlueprintError as B;
        match e {
            B::Invalid(m) => ApiError::BadRequest(m, "invalid_blueprint"),
            B::NotFound(m) => ApiError::NotFound(m, "blueprint_not_found"),
            B::Conflict(m) => ApiError::Conflict(m, "blueprint_conflict"),
            B::Unresolvable(m) => ApiError::Unprocessable(m, "blueprint_unresolvable"),
            B::UnsafePath(m) => ApiError::BadRequest(m, "unsafe_path"),
            B::InvalidLimits(m) => ApiError::Unprocessable(m, "invalid_limits"),
            B::RunRejected(detail) => {
                let code = match detail["error"].as_str() {
                    Some("parameter_validation_failed") => "parameter_validation_failed",
                    Some("mcp_ref_resolution_failed") => "mcp_ref_resolution_failed",
                    Some("missing_required_mcp_config") => "missing_required_mcp_config",
                    _ => "run_rejected",
                };
                ApiError::BadRequestObject(detail, code)
            }
            B::Io(e) => ApiError::Internal(e.into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let code = self.code();
        let retry_after = match &self {
            ApiError::TooMany(_, _, secs) => Some(*secs),
            _ => None,
        };
        let detail = match self {
            ApiError::Validation(list) => list,
            ApiError::BadRequestObject(v, _) | ApiError::ConflictObject(v, _) => v,
            ApiError::Internal(e) => {
                // The cause stays in the log; clients get a generic message.
                tracing::error!(error = ?e, "internal error");
                serde_json::Value::String("Internal server error".into())
            }
            ApiError::Unavailable(m) | ApiError::Storage(_, m) => {
                tracing::warn!(error = %m, "store unavailable");
                serde_json::Value::String(m)
            }
            other => serde_json::Value::String(other.to_string()),
        };
        let body = ErrorBody {
            detail,
            code: Some(code.to_string()),
            details: None,
        };
        let mut resp = (status, Json(body)).into_response();
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
