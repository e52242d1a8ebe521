//! The API error: one type, each variant with its status and stable `code`; one
//! `IntoResponse` writes `{"detail": …, "code": …}`.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};

use aof_store::StoreError;
use aof_wire::{error::ErrorCode, ErrorBody};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(String, ErrorCode),
    #[error("{0}")]
    BadRequest(String, ErrorCode),
    /// A FastAPI-style validation error: `detail` is a list.
    #[error("validation failed")]
    Validation(serde_json::Value),
    /// A 400 whose `detail` is an object, as the reference sends for parameter errors.
    #[error("bad request")]
    BadRequestObject(serde_json::Value, ErrorCode),
    #[error("{0}")]
    Conflict(String, ErrorCode),
    #[error("conflict")]
    ConflictObject(serde_json::Value, ErrorCode),
    #[error("{0}")]
    Unauthorized(String, ErrorCode),
    /// Authenticated, but this credential may not do this.
    #[error("{0}")]
    Forbidden(String, ErrorCode),
    /// 422 with a string `detail` (a stored blueprint that cannot be resolved).
    #[error("{0}")]
    Unprocessable(String, ErrorCode),
    /// 413: a body, event, or metadata over its limit (`crate::limits`).
    #[error("{0}")]
    TooLarge(String, ErrorCode),
    /// 415: a body that is not JSON (`auth::browser`, `extract`).
    #[error("Request bodies must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("{0}")]
    Unavailable(String),
    /// 429: a credential over its cap of long-lived requests (`crate::caps`); the
    /// number is the `Retry-After` in seconds.
    #[error("{0}")]
    TooMany(String, ErrorCode, u64),
    /// 507 when the disk is full, else 503: the store refused the write whole.
    #[error("{1}")]
    Storage(bool, String),
    #[error(transparent)]
    Internal(anyhow::Error),
}

impl ApiError {
    /// One source: the code's own status (`ErrorCode::status`).
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code().status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub fn code(&self) -> ErrorCode {
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
            | ApiError::TooMany(_, c, _) => *c,
            ApiError::Validation(_) => ErrorCode::ValidationError,
            ApiError::UnsupportedMediaType => ErrorCode::UnsupportedMediaType,
            ApiError::Unavailable(_) => ErrorCode::Unavailable,
            ApiError::Storage(true, _) => ErrorCode::StorageFull,
            ApiError::Storage(false, _) => ErrorCode::StorageUnavailable,
            ApiError::Internal(_) => ErrorCode::InternalError,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::SessionNotFound(_) => {
                ApiError::NotFound("Session not found".into(), ErrorCode::SessionNotFound)
            }
            StoreError::SessionExists(id) => ApiError::Conflict(
                format!("Session '{id}' already exists"),
                ErrorCode::SessionExists,
            ),
            StoreError::RunNotFound => {
                ApiError::NotFound("Run not found".into(), ErrorCode::RunNotFound)
            }
            StoreError::RunnerNotRegistered => ApiError::Unauthorized(
                "Runner not registered".into(),
                ErrorCode::RunnerNotRegistered,
            ),
            StoreError::RunnerNotFound => {
                ApiError::NotFound("Runner not found".into(), ErrorCode::RunnerNotFound)
            }
            StoreError::DuplicateRunner(id) => ApiError::ConflictObject(
                serde_json::json!({
                    "error": "duplicate_runner",
                    "message": format!("Runner {id} is already registered and online"),
                    "runner_id": id,
                }),
                ErrorCode::DuplicateRunner,
            ),
            StoreError::LeaseConflict(c) => {
                ApiError::Conflict(c.to_string(), ErrorCode::LeaseConflict)
            }
            StoreError::Illegal(i) => {
                ApiError::BadRequest(i.to_string(), ErrorCode::IllegalTransition)
            }
            StoreError::Busy(b) => ApiError::Conflict(b.to_string(), ErrorCode::SessionBusy),
            StoreError::ApprovalNotFound => {
                ApiError::NotFound("Approval not found".into(), ErrorCode::ApprovalNotFound)
            }
            e @ StoreError::ApprovalDecided { .. } => {
                ApiError::Conflict(e.to_string(), ErrorCode::ApprovalDecided)
            }
            StoreError::Storage(s) => ApiError::Storage(s.full(), s.to_string()),
            // Only at open or in `aof backup`, never behind a route.
            e @ (StoreError::ForeignSchema(_)
            | StoreError::BackupExists(_)
            | StoreError::NoDatabase(_)
            | StoreError::InvalidUrl(_)) => ApiError::Internal(e.into()),
            StoreError::Internal(e) => ApiError::Internal(e),
        }
    }
}

impl From<aof_blueprints::BlueprintError> for ApiError {
    fn from(e: aof_blueprints::BlueprintError) -> Self {
        use aof_blueprints::BlueprintError as B;
        match e {
            B::Invalid(m) => ApiError::BadRequest(m, ErrorCode::InvalidBlueprint),
            B::NotFound(m) => ApiError::NotFound(m, ErrorCode::BlueprintNotFound),
            B::Conflict(m) => ApiError::Conflict(m, ErrorCode::BlueprintConflict),
            B::Unresolvable(m) => ApiError::Unprocessable(m, ErrorCode::BlueprintUnresolvable),
            B::UnsafePath(m) => ApiError::BadRequest(m, ErrorCode::UnsafePath),
            B::InvalidLimits(m) => ApiError::Unprocessable(m, ErrorCode::InvalidLimits),
            B::InvalidApproval(m) => ApiError::Unprocessable(m, ErrorCode::InvalidApproval),
            B::RunRejected(detail) => {
                // The reference's `error` names the code; anything else is a plain rejection.
                let code = match detail["error"].as_str().map(str::parse) {
                    Some(Ok(
                        c @ (ErrorCode::ParameterValidationFailed
                        | ErrorCode::McpRefResolutionFailed
                        | ErrorCode::MissingRequiredMcpConfig),
                    )) => c,
                    _ => ErrorCode::RunRejected,
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
