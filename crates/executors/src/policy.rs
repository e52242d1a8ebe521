//! What an agent blueprint's `executor` may change on a runner
//! (`runner.allow_blueprint_executors`).
//!
//! Allowed: the blueprint's executor is used as it stands; `claude_code` settings on a
//! `claude_code` runner go over the runner's (`ClaudeCodeConfig::merged_over`).
//!
//! Not allowed: a blueprint may only *narrow* the runner's own `claude_code` profile
//! (`refine_claude`), and naming any other executor fails the run:
//!
//! | blueprint field | with the policy off |
//! |---|---|
//! | `allowed_tools` | intersection with the runner's (none given: the runner's); a rule `T(spec)` counts as narrowing a runner's bare `T` |
//! | `disallowed_tools` | union with the runner's |
//! | `max_turns`, `timeout_seconds`, `stall_timeout_seconds` | the smaller of the two |
//! | `permission_mode` | only one no wider than the runner's: plan < dontAsk < default/manual < acceptEdits < auto < bypassPermissions |
//! | `program`, `model`, `setting_sources` | refused unless equal to the runner's (settings files may hold deny rules as well as allow rules, so fewer is not narrower) |
//! | `command` / `model_api` / `echo` executors (program, args, URL, key) | refused |
//!
//! A blueprint has no way to set the agent's environment (it is the runner's
//! allow-list, `isolation`); its `mcp_servers` are HTTP servers only (never a local
//! command), and their tools are subject to the tool lists above.

use serde_json::Value;

use crate::{claude::ClaudeCodeConfig, ExecError, ExecutorConfig};

/// The executor for a run whose blueprint is `blueprint`, on a runner whose own
/// executor is `profile`: `None` for the runner's own, unchanged. `Err` fails the run.
pub fn for_run(
    allow_blueprint_executors: bool,
    profile: &ExecutorConfig,
    blueprint: Option<&Value>,
) -> Result<Option<ExecutorConfig>, ExecError> {
    let Some(chosen) = ExecutorConfig::from_blueprint(blueprint)? else {
        return Ok(None);
    };
    match (chosen, profile) {
        (ExecutorConfig::ClaudeCode(bp), ExecutorConfig::ClaudeCode(mine)) => {
            if allow_blueprint_executors {
                Ok(Some(ExecutorConfig::ClaudeCode(bp.merged_over(mine))))
            } else {
                refine_claude(mine, &bp)
                    .map(|c| Some(ExecutorConfig::ClaudeCode(c)))
                    .map_err(|m| {
                        ExecError::Blueprint(format!(
                            "{m} (allow_blueprint_executors is off: an agent may only narrow \
                             this runner's claude_code settings)"
                        ))
                    })
            }
        }
        (chosen, _) if allow_blueprint_executors => Ok(Some(chosen)),
        _ => Err(ExecError::Blueprint(
            "this runner does not run executors chosen by agent blueprints \
             (allow_blueprint_executors is off); remove `executor` from the agent or run it \
             on a runner that allows them"
                .into(),
        )),
    }
}

/// The runner's Claude profile narrowed by a blueprint's settings (see the module's
/// table). `Err` names the field that would widen or replace the profile.
pub fn refine_claude(
    profile: &ClaudeCodeConfig,
    bp: &ClaudeCodeConfig,
) -> Result<ClaudeCodeConfig, String> {
    for (field, mine, theirs) in [
        ("program", &profile.program, &bp.program),
        ("model", &profile.model, &bp.model),
    ] {
        if theirs.is_some() && theirs != mine {
            return Err(format!(
                "`{field}` {:?} differs from the runner's ({})",
                theirs.as_deref().unwrap_or_default(),
                mine.as_deref().unwrap_or("none set")
            ));
        }
    }
    if bp.setting_sources.is_some() && bp.setting_sources != profile.setting_sources {
        return Err(format!(
            "`setting_sources` {:?} differs from the runner's ({})",
            bp.setting_sources.as_deref().unwrap_or_default(),
            profile
                .setting_sources
                .as_ref()
                .map_or("the CLI's default".to_string(), |s| format!("{s:?}"))
        ));
    }
    let permission_mode = match &bp.permission_mode {
        None => profile.permission_mode.clone(),
        Some(m) if narrower_mode(m, profile.permission_mode.as_deref()) => Some(m.clone()),
        Some(m) => {
            return Err(format!(
                "`permission_mode` {m:?} is wider than the runner's ({})",
                profile
                    .permission_mode
                    .as_deref()
                    .unwrap_or("the CLI's default")
            ))
        }
    };
    let allowed_tools = if bp.allowed_tools.is_empty() {
        profile.allowed_tools.clone()
    } else {
        dedup(
            bp.allowed_tools
                .iter()
                .filter(|t| profile.allowed_tools.iter().any(|p| covers(p, t))),
        )
    };
    Ok(ClaudeCodeConfig {
        program: profile.program.clone(),
        model: profile.model.clone(),
        permission_mode,
        allowed_tools,
        disallowed_tools: dedup(profile.disallowed_tools.iter().chain(&bp.disallowed_tools)),
        setting_sources: profile.setting_sources.clone(),
        max_turns: smaller(profile.max_turns, bp.max_turns, |a, b| a <= b),
        stall_timeout_seconds: match (profile.stall_timeout_seconds, bp.stall_timeout_seconds) {
            // The runner's is the default when it sets none: a blueprint may only shorten it.
            (None, Some(b)) => Some(b.min(crate::claude::DEFAULT_STALL_TIMEOUT.as_secs_f64())),
            (p, b) => smaller(p, b, |a, b| a <= b),
        },
        timeout_seconds: smaller(profile.timeout_seconds, bp.timeout_seconds, |a, b| a <= b),
    })
}

/// The tighter of two optional limits (`None` = no limit).
fn smaller<T: Copy>(a: Option<T>, b: Option<T>, le: impl Fn(T, T) -> bool) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if le(a, b) { a } else { b }),
        (a, b) => a.or(b),
    }
}

fn dedup<'a>(items: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for i in items {
        if !out.contains(i) {
            out.push(i.clone());
        }
    }
    out
}

/// Whether the runner's allow rule `mine` permits everything the blueprint's `theirs`
/// does: the same rule, or `theirs` is `T(spec)` under a bare `T`. The spec may not hold
/// `,` or parentheses: the CLI reads a joined list, so `Read(x),Bash(y)` would smuggle a
/// second rule in.
fn covers(mine: &str, theirs: &str) -> bool {
    if mine == theirs {
        return true;
    }
    let Some(spec) = theirs
        .strip_prefix(mine)
        .and_then(|r| r.strip_prefix('('))
        .and_then(|r| r.strip_suffix(')'))
    else {
        return false;
    };
    !mine.is_empty()
        && mine
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        && !spec.is_empty()
        && !spec.contains([',', '(', ')'])
}

/// How much a permission mode lets the CLI do without asking (headless, asking means
/// refusing). Unknown modes have no rank: only the runner's own mode may be repeated.
fn mode_rank(mode: &str) -> Option<u8> {
    Some(match mode {
        "plan" => 0,
        "dontAsk" => 1,
        "default" | "manual" => 2,
        "acceptEdits" => 3,
        "auto" => 4,
        "bypassPermissions" => 5,
        _ => return None,
    })
}

/// `theirs` is no wider than `mine` (`None`: the CLI's default mode).
fn narrower_mode(theirs: &str, mine: Option<&str>) -> bool {
    if Some(theirs) == mine {
        return true;
    }
    match (mode_rank(theirs), mode_rank(mine.unwrap_or("default"))) {
        (Some(t), Some(m)) => t <= m,
        _ => false,
    }
}

#[cfg(test)]
mod tests;
