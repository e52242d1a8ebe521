//! The error envelope: `detail` as AOF clients read it, plus our stable `code`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A human message (string) or, for validation errors, a FastAPI-style list.
    pub detail: serde_json::Value,
    /// Stable snake_case code, documented in docs/errors.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// Every `code` an AOF error body can carry, with its HTTP status. docs/errors.md
/// documents each one; a test keeps the two in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    ValidationError,
    ParameterValidationFailed,
    SessionIdRequired,
    InvalidSessionId,
    SessionIdMismatch,
    InvalidEventType,
    EmptyBatch,
    TooManyEvents,
    TooManyStreams,
    TooManyPolls,
    TooManyWaits,
    InvalidIdempotencyKey,
    InvalidLastEventId,
    InvalidRunner,
    InvalidAgentName,
    InvalidProjectDir,
    InvalidMetadata,
    IllegalTransition,
    SessionNotFinished,
    BodyTooLarge,
    EventTooLarge,
    ParametersTooLarge,
    MetadataTooLarge,
    BadBody,
    InvalidBlueprint,
    UnsafePath,
    AgentInactive,
    McpRefResolutionFailed,
    MissingRequiredMcpConfig,
    RunnerNotRegistered,
    Unauthenticated,
    Forbidden,
    ProjectDirNotAllowed,
    RunnerNotBound,
    OriginNotAllowed,
    HostNotAllowed,
    RunnerOutOfScope,
    InvalidKeyScope,
    UnsupportedMediaType,
    RepeatedQueryKey,
    AuthDisabled,
    InvalidKeyName,
    KeyNotFound,
    RouteNotFound,
    SessionNotFound,
    RunNotFound,
    RunnerNotFound,
    NoResult,
    BlueprintNotFound,
    MethodNotAllowed,
    BlueprintConflict,
    BlueprintUnresolvable,
    InvalidLimits,
    SessionExists,
    SessionBusy,
    DuplicateRunner,
    LeaseConflict,
    Unavailable,
    StorageFull,
    StorageUnavailable,
    InternalError,
    UpstreamUnavailable,
    UpstreamInvalid,
    InvalidPurge,
    InvalidProtocolVersion,
    ProtocolUnsupported,
    RunRejected,
    InvalidApproval,
    ApprovalNotFound,
    ApprovalDecided,
}

impl ErrorCode {
    pub const ALL: &[ErrorCode] = &[
        ErrorCode::ValidationError,
        ErrorCode::ParameterValidationFailed,
        ErrorCode::SessionIdRequired,
        ErrorCode::InvalidSessionId,
        ErrorCode::SessionIdMismatch,
        ErrorCode::InvalidEventType,
        ErrorCode::EmptyBatch,
        ErrorCode::TooManyEvents,
        ErrorCode::TooManyStreams,
        ErrorCode::TooManyPolls,
        ErrorCode::TooManyWaits,
        ErrorCode::InvalidIdempotencyKey,
        ErrorCode::InvalidLastEventId,
        ErrorCode::InvalidRunner,
        ErrorCode::InvalidAgentName,
        ErrorCode::InvalidProjectDir,
        ErrorCode::InvalidMetadata,
        ErrorCode::IllegalTransition,
        ErrorCode::SessionNotFinished,
        ErrorCode::BodyTooLarge,
        ErrorCode::EventTooLarge,
        ErrorCode::ParametersTooLarge,
        ErrorCode::MetadataTooLarge,
        ErrorCode::BadBody,
        ErrorCode::InvalidBlueprint,
        ErrorCode::UnsafePath,
        ErrorCode::AgentInactive,
        ErrorCode::McpRefResolutionFailed,
        ErrorCode::MissingRequiredMcpConfig,
        ErrorCode::RunnerNotRegistered,
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::ProjectDirNotAllowed,
        ErrorCode::RunnerNotBound,
        ErrorCode::OriginNotAllowed,
        ErrorCode::HostNotAllowed,
        ErrorCode::RunnerOutOfScope,
        ErrorCode::InvalidKeyScope,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::RepeatedQueryKey,
        ErrorCode::AuthDisabled,
        ErrorCode::InvalidKeyName,
        ErrorCode::KeyNotFound,
        ErrorCode::RouteNotFound,
        ErrorCode::SessionNotFound,
        ErrorCode::RunNotFound,
        ErrorCode::RunnerNotFound,
        ErrorCode::NoResult,
        ErrorCode::BlueprintNotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::BlueprintConflict,
        ErrorCode::BlueprintUnresolvable,
        ErrorCode::InvalidLimits,
        ErrorCode::SessionExists,
        ErrorCode::SessionBusy,
        ErrorCode::DuplicateRunner,
        ErrorCode::LeaseConflict,
        ErrorCode::Unavailable,
        ErrorCode::StorageFull,
        ErrorCode::StorageUnavailable,
        ErrorCode::InternalError,
        ErrorCode::UpstreamUnavailable,
        ErrorCode::UpstreamInvalid,
        ErrorCode::InvalidPurge,
        ErrorCode::InvalidProtocolVersion,
        ErrorCode::ProtocolUnsupported,
        ErrorCode::RunRejected,
        ErrorCode::InvalidApproval,
        ErrorCode::ApprovalNotFound,
        ErrorCode::ApprovalDecided,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ValidationError => "validation_error",
            ErrorCode::ParameterValidationFailed => "parameter_validation_failed",
            ErrorCode::SessionIdRequired => "session_id_required",
            ErrorCode::InvalidSessionId => "invalid_session_id",
            ErrorCode::SessionIdMismatch => "session_id_mismatch",
            ErrorCode::InvalidEventType => "invalid_event_type",
            ErrorCode::EmptyBatch => "empty_batch",
            ErrorCode::TooManyEvents => "too_many_events",
            ErrorCode::TooManyStreams => "too_many_streams",
            ErrorCode::TooManyPolls => "too_many_polls",
            ErrorCode::TooManyWaits => "too_many_waits",
            ErrorCode::InvalidIdempotencyKey => "invalid_idempotency_key",
            ErrorCode::InvalidLastEventId => "invalid_last_event_id",
            ErrorCode::InvalidRunner => "invalid_runner",
            ErrorCode::InvalidAgentName => "invalid_agent_name",
            ErrorCode::InvalidProjectDir => "invalid_project_dir",
            ErrorCode::InvalidMetadata => "invalid_metadata",
            ErrorCode::IllegalTransition => "illegal_transition",
            ErrorCode::SessionNotFinished => "session_not_finished",
            ErrorCode::BodyTooLarge => "body_too_large",
            ErrorCode::EventTooLarge => "event_too_large",
            ErrorCode::ParametersTooLarge => "parameters_too_large",
            ErrorCode::MetadataTooLarge => "metadata_too_large",
            ErrorCode::BadBody => "bad_body",
            ErrorCode::InvalidBlueprint => "invalid_blueprint",
            ErrorCode::UnsafePath => "unsafe_path",
            ErrorCode::AgentInactive => "agent_inactive",
            ErrorCode::McpRefResolutionFailed => "mcp_ref_resolution_failed",
            ErrorCode::MissingRequiredMcpConfig => "missing_required_mcp_config",
            ErrorCode::RunnerNotRegistered => "runner_not_registered",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::ProjectDirNotAllowed => "project_dir_not_allowed",
            ErrorCode::RunnerNotBound => "runner_not_bound",
            ErrorCode::OriginNotAllowed => "origin_not_allowed",
            ErrorCode::HostNotAllowed => "host_not_allowed",
            ErrorCode::RunnerOutOfScope => "runner_out_of_scope",
            ErrorCode::InvalidKeyScope => "invalid_key_scope",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::RepeatedQueryKey => "repeated_query_key",
            ErrorCode::AuthDisabled => "auth_disabled",
            ErrorCode::InvalidKeyName => "invalid_key_name",
            ErrorCode::KeyNotFound => "key_not_found",
            ErrorCode::RouteNotFound => "route_not_found",
            ErrorCode::SessionNotFound => "session_not_found",
            ErrorCode::RunNotFound => "run_not_found",
            ErrorCode::RunnerNotFound => "runner_not_found",
            ErrorCode::NoResult => "no_result",
            ErrorCode::BlueprintNotFound => "blueprint_not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::BlueprintConflict => "blueprint_conflict",
            ErrorCode::BlueprintUnresolvable => "blueprint_unresolvable",
            ErrorCode::InvalidLimits => "invalid_limits",
            ErrorCode::SessionExists => "session_exists",
            ErrorCode::SessionBusy => "session_busy",
            ErrorCode::DuplicateRunner => "duplicate_runner",
            ErrorCode::LeaseConflict => "lease_conflict",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::StorageFull => "storage_full",
            ErrorCode::StorageUnavailable => "storage_unavailable",
            ErrorCode::InternalError => "internal_error",
            ErrorCode::UpstreamUnavailable => "upstream_unavailable",
            ErrorCode::UpstreamInvalid => "upstream_invalid",
            ErrorCode::InvalidPurge => "invalid_purge",
            ErrorCode::InvalidProtocolVersion => "invalid_protocol_version",
            ErrorCode::ProtocolUnsupported => "protocol_unsupported",
            ErrorCode::RunRejected => "run_rejected",
            ErrorCode::InvalidApproval => "invalid_approval",
            ErrorCode::ApprovalNotFound => "approval_not_found",
            ErrorCode::ApprovalDecided => "approval_decided",
        }
    }

    /// The HTTP status a response with this code has. `too_many_waits` is an MCP
    /// tool error, not a response; 429 is what it would be.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::ParameterValidationFailed
            | ErrorCode::SessionIdRequired
            | ErrorCode::InvalidSessionId
            | ErrorCode::SessionIdMismatch
            | ErrorCode::InvalidEventType
            | ErrorCode::EmptyBatch
            | ErrorCode::InvalidIdempotencyKey
            | ErrorCode::InvalidLastEventId
            | ErrorCode::InvalidRunner
            | ErrorCode::InvalidAgentName
            | ErrorCode::InvalidProjectDir
            | ErrorCode::InvalidMetadata
            | ErrorCode::IllegalTransition
            | ErrorCode::SessionNotFinished
            | ErrorCode::BadBody
            | ErrorCode::InvalidBlueprint
            | ErrorCode::UnsafePath
            | ErrorCode::AgentInactive
            | ErrorCode::McpRefResolutionFailed
            | ErrorCode::MissingRequiredMcpConfig
            | ErrorCode::InvalidKeyScope
            | ErrorCode::RepeatedQueryKey
            | ErrorCode::AuthDisabled
            | ErrorCode::InvalidKeyName
            | ErrorCode::InvalidPurge
            | ErrorCode::InvalidProtocolVersion
            | ErrorCode::ProtocolUnsupported
            | ErrorCode::RunRejected => 400,
            ErrorCode::RunnerNotRegistered | ErrorCode::Unauthenticated => 401,
            ErrorCode::Forbidden
            | ErrorCode::ProjectDirNotAllowed
            | ErrorCode::RunnerNotBound
            | ErrorCode::OriginNotAllowed
            | ErrorCode::HostNotAllowed
            | ErrorCode::RunnerOutOfScope => 403,
            ErrorCode::KeyNotFound
            | ErrorCode::RouteNotFound
            | ErrorCode::SessionNotFound
            | ErrorCode::RunNotFound
            | ErrorCode::RunnerNotFound
            | ErrorCode::NoResult
            | ErrorCode::BlueprintNotFound
            | ErrorCode::ApprovalNotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::BlueprintConflict
            | ErrorCode::SessionExists
            | ErrorCode::SessionBusy
            | ErrorCode::DuplicateRunner
            | ErrorCode::LeaseConflict
            | ErrorCode::ApprovalDecided => 409,
            ErrorCode::TooManyEvents
            | ErrorCode::BodyTooLarge
            | ErrorCode::EventTooLarge
            | ErrorCode::ParametersTooLarge
            | ErrorCode::MetadataTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::ValidationError
            | ErrorCode::BlueprintUnresolvable
            | ErrorCode::InvalidLimits
            | ErrorCode::InvalidApproval => 422,
            ErrorCode::TooManyStreams | ErrorCode::TooManyPolls | ErrorCode::TooManyWaits => 429,
            ErrorCode::InternalError => 500,
            ErrorCode::UpstreamUnavailable | ErrorCode::UpstreamInvalid => 502,
            ErrorCode::Unavailable | ErrorCode::StorageUnavailable => 503,
            ErrorCode::StorageFull => 507,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Compares with the code as written on the wire (`e.code() == "lease_conflict"`).
impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::str::FromStr for ErrorCode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorCode::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown error code '{s}'"))
    }
}

impl ErrorBody {
    /// The code as the enum; `None` when absent or not one this build knows (a newer
    /// coordinator's, or none from the AOF reference).
    pub fn error_code(&self) -> Option<ErrorCode> {
        self.code.as_deref()?.parse().ok()
    }

    /// The message to show a person, whatever shape `detail` has.
    pub fn message(&self) -> String {
        match &self.detail {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(items) => items
                .iter()
                .map(|i| {
                    let loc = i
                        .get("loc")
                        .and_then(|l| l.as_array())
                        .map(|l| {
                            l.iter()
                                .map(|p| p.as_str().map(str::to_string).unwrap_or(p.to_string()))
                                .collect::<Vec<_>>()
                                .join(".")
                        })
                        .unwrap_or_default();
                    let msg = i.get("msg").and_then(|m| m.as_str()).unwrap_or("invalid");
                    format!("{loc}: {msg}")
                })
                .collect::<Vec<_>>()
                .join("; "),
            other => {
                let head = other
                    .get("message")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
                    .unwrap_or_else(|| other.to_string());
                // Parameter errors carry the specifics in a list; show them on the same line.
                let specifics: Vec<String> = other
                    .get("validation_errors")
                    .and_then(|v| v.as_array())
                    .map(|errs| {
                        errs.iter()
                            .filter_map(|e| {
                                let path = e.get("path")?.as_str()?;
                                let msg = e.get("message")?.as_str()?;
                                Some(format!("{path}: {msg}"))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                if specifics.is_empty() {
                    head
                } else {
                    format!("{head} ({})", specifics.join("; "))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/errors.md lists every code once with the status `ErrorCode::status` gives it,
    /// and no code this build does not have.
    #[test]
    fn docs_errors_md_matches_the_enum() {
        let doc = include_str!("../../../docs/errors.md");
        let mut documented = Vec::new();
        for line in doc.lines().filter(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = line.split(" | ").collect();
            let status = cells[1].trim();
            for code in cells[0].split('`').skip(1).step_by(2) {
                let parsed: ErrorCode = code
                    .parse()
                    .unwrap_or_else(|e| panic!("docs/errors.md: {e}"));
                match status.parse::<u16>() {
                    Ok(n) => assert_eq!(n, parsed.status(), "status of {code}"),
                    // An MCP tool error: no HTTP response carries it.
                    Err(_) => assert_eq!(parsed, ErrorCode::TooManyWaits, "{code}: {status}"),
                }
                documented.push(parsed);
            }
        }
        for code in ErrorCode::ALL {
            let n = documented.iter().filter(|d| *d == code).count();
            assert_eq!(n, 1, "{code} is documented {n} times in docs/errors.md");
        }
    }

    #[test]
    fn codes_round_trip_as_their_wire_strings() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, serde_json::Value::String(code.as_str().into()));
            assert_eq!(code.as_str().parse::<ErrorCode>().unwrap(), *code);
        }
        assert!("no_such_code".parse::<ErrorCode>().is_err());
        let body = ErrorBody {
            detail: "x".into(),
            code: Some("lease_conflict".into()),
            details: None,
        };
        assert_eq!(body.error_code(), Some(ErrorCode::LeaseConflict));
    }
}
