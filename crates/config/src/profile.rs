//! AOF reference executor profiles (the reference runner's `profiles/<name>.json`:
//! `type`, `command`, `config`, optional `lifecycle` and `agents_dir`) loaded as this
//! runner's executor. Only what AOF runs the same way is accepted — the reference's echo
//! and Claude Code executors; anything else is refused saying what to do instead, never
//! run differently from what the profile asks.

use std::path::{Path, PathBuf};

use aof_executors::{claude::ClaudeCodeConfig, ExecutorConfig};
use serde::Deserialize;
use serde_json::{Map, Value};

/// A loaded profile.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RefProfile {
    /// The file's stem: the `executor_profile` the reference runner announces.
    pub name: String,
    /// The reference's executor type (`autonomous`), announced as is.
    pub kind: String,
    pub executor: ExecutorConfig,
}

/// The file. Unknown keys are refused, so nothing in a profile is silently dropped.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    #[serde(rename = "type")]
    kind: String,
    command: String,
    #[serde(default)]
    config: Map<String, Value>,
    #[serde(default)]
    lifecycle: Option<String>,
    #[serde(default)]
    agents_dir: Option<String>,
}

/// The reference's executors, by the file name of their `command`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefExecutor {
    Echo,
    ClaudeCode,
    Procedural,
}

impl RefExecutor {
    fn from_command(command: &str) -> Option<RefExecutor> {
        match Path::new(command).file_name()?.to_str()? {
            "ao-echo-exec" => Some(RefExecutor::Echo),
            "ao-claude-code-exec" => Some(RefExecutor::ClaudeCode),
            "ao-procedural-exec" => Some(RefExecutor::Procedural),
            _ => None,
        }
    }
}

/// Where `spec` points: a path (it has a `/` or ends in `.json`), else
/// `<dir>/<spec>.json`, as the reference's `--profile NAME` reads `profiles/NAME.json`.
fn locate(spec: &str, dir: &Path) -> (String, PathBuf) {
    let spec = spec.trim();
    let path = if spec.contains('/') || spec.ends_with(".json") {
        PathBuf::from(spec)
    } else {
        dir.join(format!("{spec}.json"))
    };
    let name = path
        .file_stem()
        .map_or_else(|| spec.to_string(), |s| s.to_string_lossy().into_owned());
    (name, path)
}

/// The profile names in `dir`, for the error when one is missing.
fn available(dir: &Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            if p.extension()? != "json" {
                return None;
            }
            Some(p.file_stem()?.to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// Reads and maps the profile `spec` names (blocking file IO: call it off the async
/// threads). The error says which file and what to do.
pub(crate) fn load(spec: &str, dir: &Path) -> Result<RefProfile, String> {
    let (name, path) = locate(spec, dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "no profile {} (profiles in {}: {}); set AOF_PROFILES_DIR to the folder of your profiles or give the file's path",
                path.display(),
                dir.display(),
                available(dir)
            ))
        }
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    parse(&name, &text).map_err(|m| format!("profile {}: {m}", path.display()))
}

/// Maps a profile's JSON (see the module doc).
pub(crate) fn parse(name: &str, text: &str) -> Result<RefProfile, String> {
    let f: ProfileFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    match f.lifecycle.as_deref() {
        // AOF keeps no executor process between runs; a Claude session continues
        // with `--resume` either way, so both mean the same here.
        None | Some("one_shot" | "persistent") => {}
        Some(other) => {
            return Err(format!(
                "lifecycle {other:?} is neither one_shot nor persistent"
            ))
        }
    }
    let which = RefExecutor::from_command(&f.command);
    if f.kind == "procedural" || which == Some(RefExecutor::Procedural) {
        return Err(
            "the procedural executor (scripts as runner-owned agents, `agents_dir`) \
                    is not supported by AOF: make each script an agent whose blueprint has a \
                    `command` executor, or run one program for every run with \
                    AOF_EXECUTOR=command and AOF_COMMAND"
                .into(),
        );
    }
    if f.kind != "autonomous" {
        return Err(format!(
            "unknown executor type {:?} (the reference's are autonomous and procedural)",
            f.kind
        ));
    }
    if f.agents_dir.is_some() {
        return Err(
            "`agents_dir` (runner-owned agents) is not supported by AOF: put the \
                    agents in the coordinator (`aof agents apply DIR`)"
                .into(),
        );
    }
    let executor = match which {
        Some(RefExecutor::Echo) if f.config.is_empty() => ExecutorConfig::Echo,
        Some(RefExecutor::Echo) => {
            return Err("the echo executor takes no `config`".into());
        }
        Some(RefExecutor::ClaudeCode) => {
            // The reference's keys (model, permission_mode, setting_sources) are AOF's
            // `claude_code` keys too; AOF's others are accepted, anything else refused.
            let c: ClaudeCodeConfig = serde_json::from_value(Value::Object(f.config))
                .map_err(|e| format!("config: {e}"))?;
            ExecutorConfig::ClaudeCode(c)
        }
        Some(RefExecutor::Procedural) | None => {
            return Err(format!(
                "executor command {:?} is not one AOF runs (AOF runs the reference's echo and \
                 Claude Code profiles); for a program of your own use AOF_EXECUTOR=command \
                 with AOF_COMMAND (prompt on stdin, output lines become events)",
                f.command
            ))
        }
    };
    aof_executors::build(&executor).map_err(|e| e.to_string())?;
    Ok(RefProfile {
        name: name.to_string(),
        kind: f.kind,
        executor,
    })
}

/// The `executor` object a runner with this profile announces at registration: the
/// reference's type, the command AOF runs, and the executor's settings as `config`.
pub(crate) fn announce(kind: &str, executor: &ExecutorConfig) -> Map<String, Value> {
    let config = match executor {
        ExecutorConfig::ClaudeCode(c) => serde_json::to_value(c).unwrap_or_default(),
        _ => Value::Object(Map::new()),
    };
    Map::from_iter([
        ("type".to_string(), Value::from(kind)),
        ("command".to_string(), Value::from(executor.command_line())),
        ("config".to_string(), config),
    ])
}

#[cfg(test)]
mod tests;
