//! Input limits: sizes, name rules and the `project_dir` roots, checked by handlers
//! before they touch the store, so a refused request writes nothing.
//!
//! Too large → 413 with a `*_too_large` code; a malformed name or path → 400; a
//! `project_dir` outside `AOF_PROJECT_DIR_ROOTS` → 403. The request body as a whole is
//! capped by `AOF_MAX_BODY_BYTES` in the extractor (`body_too_large`).

use aof_wire::error::ErrorCode;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use aof_wire::{
    runner::RegisterRequest,
    session::{BindRequest, MetadataPatch},
    Event, RunCreate,
};

use crate::error::{ApiError, ApiResult};

/// One event, serialized.
pub const MAX_EVENT_BYTES: usize = 1 << 20;
/// A run's `parameters` (the prompt lives there), serialized.
pub const MAX_PARAMETERS_BYTES: usize = 1 << 20;
/// Metadata: a run's `scope` + `additional_demands`, a runner's `executor` + `tags`,
/// a session metadata patch — each group serialized.
pub const MAX_METADATA_BYTES: usize = 64 << 10;
/// Runner host names (DNS allows 253) and executor profiles.
pub const MAX_RUNNER_NAME: usize = 253;
/// Runner tags: how many, and how long each.
pub const MAX_TAGS: usize = 64;
pub const MAX_TAG: usize = 128;
/// `project_dir` (PATH_MAX on Linux).
pub const MAX_PATH: usize = 4096;
/// Free-form short metadata strings (`executor_session_id`, `last_resumed_at`).
pub const MAX_SHORT: usize = 1024;

fn json_len<T: Serialize + ?Sized>(v: &T) -> usize {
    serde_json::to_vec(v).map_or(usize::MAX, |b| b.len())
}

fn too_large(what: &str, len: usize, max: usize, code: ErrorCode) -> ApiError {
    ApiError::TooLarge(format!("{what} is {len} bytes; the limit is {max}"), code)
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Host names and executor profiles: `[A-Za-z0-9]` first, then `[A-Za-z0-9._-]`.
fn runner_name(field: &str, v: &str) -> ApiResult<()> {
    let ok = !v.is_empty()
        && v.len() <= MAX_RUNNER_NAME
        && v.starts_with(|c: char| c.is_ascii_alphanumeric())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        return Ok(());
    }
    Err(ApiError::BadRequest(
        format!(
            "{field} must be 1 to {MAX_RUNNER_NAME} characters of letters, digits, '.', '_' \
             and '-', starting with a letter or digit"
        ),
        ErrorCode::InvalidRunner,
    ))
}

/// Agent names follow the blueprint folder rule, so a run can only name an agent that
/// could exist.
fn agent_name(v: &str) -> ApiResult<()> {
    aof_blueprints::validate_name("Agent", v)
        .map_err(|e| ApiError::BadRequest(e.to_string(), ErrorCode::InvalidAgentName))
}

fn short(field: &str, v: &str) -> ApiResult<()> {
    if v.len() > MAX_SHORT || has_control(v) {
        return Err(ApiError::BadRequest(
            format!("{field} must be at most {MAX_SHORT} bytes without control characters"),
            ErrorCode::InvalidMetadata,
        ));
    }
    Ok(())
}

/// `project_dir`: a bounded path without control characters; with roots configured,
/// absolute, without `.`/`..`, and inside one of them (compared by path components,
/// lexically: the coordinator does not share the runners' file system).
pub fn project_dir(roots: &[PathBuf], v: &str) -> ApiResult<()> {
    if v.is_empty() || v.len() > MAX_PATH || has_control(v) {
        return Err(ApiError::BadRequest(
            format!("project_dir must be 1 to {MAX_PATH} bytes without control characters"),
            ErrorCode::InvalidProjectDir,
        ));
    }
    if roots.is_empty() {
        return Ok(());
    }
    let path = Path::new(v);
    let plain = path.is_absolute()
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if plain && roots.iter().any(|r| path.starts_with(r)) {
        return Ok(());
    }
    Err(ApiError::Forbidden(
        format!(
            "project_dir '{v}' is not inside an allowed root (AOF_PROJECT_DIR_ROOTS: {})",
            roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        ErrorCode::ProjectDirNotAllowed,
    ))
}

pub fn run_create(roots: &[PathBuf], req: &RunCreate) -> ApiResult<()> {
    let n = json_len(&req.parameters);
    if n > MAX_PARAMETERS_BYTES {
        return Err(too_large(
            "parameters",
            n,
            MAX_PARAMETERS_BYTES,
            ErrorCode::ParametersTooLarge,
        ));
    }
    let n = json_len(&(&req.scope, &req.additional_demands));
    if n > MAX_METADATA_BYTES {
        return Err(too_large(
            "scope and additional_demands",
            n,
            MAX_METADATA_BYTES,
            ErrorCode::MetadataTooLarge,
        ));
    }
    if let Some(a) = &req.agent_name {
        agent_name(a)?;
    }
    if let Some(p) = &req.project_dir {
        project_dir(roots, p)?;
    }
    Ok(())
}

pub fn register(roots: &[PathBuf], req: &RegisterRequest) -> ApiResult<()> {
    runner_name("hostname", &req.hostname)?;
    runner_name("executor_profile", &req.executor_profile)?;
    let n = json_len(&(&req.executor, &req.tags, &req.instance_id));
    if n > MAX_METADATA_BYTES {
        return Err(too_large(
            "executor, tags and instance_id",
            n,
            MAX_METADATA_BYTES,
            ErrorCode::MetadataTooLarge,
        ));
    }
    let tags = req.tags.as_deref().unwrap_or_default();
    if tags.len() > MAX_TAGS
        || tags
            .iter()
            .any(|t| t.is_empty() || t.len() > MAX_TAG || has_control(t) || t.contains(','))
    {
        return Err(ApiError::BadRequest(
            format!(
                "tags: at most {MAX_TAGS}, each 1 to {MAX_TAG} bytes without ',' or control characters"
            ),
            ErrorCode::InvalidRunner,
        ));
    }
    if let Some(i) = &req.instance_id {
        short("instance_id", i)?;
    }
    project_dir(roots, &req.project_dir)
}

pub fn bind(roots: &[PathBuf], req: &BindRequest) -> ApiResult<()> {
    runner_name("hostname", &req.hostname)?;
    runner_name("executor_profile", &req.executor_profile)?;
    short("executor_session_id", &req.executor_session_id)?;
    if let Some(p) = &req.project_dir {
        project_dir(roots, p)?;
    }
    Ok(())
}

pub fn metadata(roots: &[PathBuf], patch: &MetadataPatch) -> ApiResult<()> {
    let n = json_len(patch);
    if n > MAX_METADATA_BYTES {
        return Err(too_large(
            "metadata",
            n,
            MAX_METADATA_BYTES,
            ErrorCode::MetadataTooLarge,
        ));
    }
    if let Some(a) = &patch.agent_name {
        agent_name(a)?;
    }
    if let Some(h) = &patch.hostname {
        runner_name("hostname", h)?;
    }
    if let Some(p) = &patch.executor_profile {
        runner_name("executor_profile", p)?;
    }
    for (field, v) in [
        ("executor_session_id", &patch.executor_session_id),
        ("last_resumed_at", &patch.last_resumed_at),
    ] {
        if let Some(v) = v {
            short(field, v)?;
        }
    }
    if let Some(p) = &patch.project_dir {
        project_dir(roots, p)?;
    }
    Ok(())
}

pub fn event(ev: &Event) -> ApiResult<()> {
    let n = json_len(ev);
    if n > MAX_EVENT_BYTES {
        return Err(too_large(
            "the event",
            n,
            MAX_EVENT_BYTES,
            ErrorCode::EventTooLarge,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_dir_roots() {
        let roots = vec![PathBuf::from("/srv/projects"), PathBuf::from("/home/ci")];
        for ok in ["/srv/projects", "/srv/projects/a/b", "/home/ci/x"] {
            assert!(project_dir(&roots, ok).is_ok(), "{ok}");
            assert!(project_dir(&[], ok).is_ok(), "{ok}");
        }
        for (bad, code) in [
            ("/srv/projects/../etc", "project_dir_not_allowed"),
            ("/srv/projectsX", "project_dir_not_allowed"),
            ("srv/projects/a", "project_dir_not_allowed"),
            ("/etc", "project_dir_not_allowed"),
            ("", "invalid_project_dir"),
            ("/srv/projects/a\nb", "invalid_project_dir"),
        ] {
            let e = project_dir(&roots, bad).unwrap_err();
            assert_eq!(e.code(), code, "{bad}");
        }
        // Unset roots keep the old behaviour: any sane path, relative too.
        assert!(project_dir(&[], "relative/../dir").is_ok());
        assert_eq!(
            project_dir(&[], &"a".repeat(MAX_PATH + 1))
                .unwrap_err()
                .code(),
            "invalid_project_dir"
        );
    }

    #[test]
    fn runner_names() {
        for ok in ["h1", "gpu-box", "ip-10-0-0-1.ec2.internal", "claude_code"] {
            assert!(runner_name("hostname", ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "a b", "a/b", "ü", &"a".repeat(254)] {
            assert!(runner_name("hostname", bad).is_err(), "{bad}");
        }
    }
}
