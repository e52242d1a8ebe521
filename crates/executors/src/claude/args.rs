//! The `claude` command line and environment for one run: flags from the settings and
//! the job, the `--mcp-config` document, and the allow-listed environment.

use std::{collections::BTreeMap, path::Path};

use serde_json::{json, Map, Value};

use super::ClaudeCodeConfig;
use crate::{
    isolation::{self, ExecutorEnv},
    ExecCx, Job,
};

/// Name of the coordinator's MCP server as Claude sees it (`mcp__agent-orchestrator__…`).
pub const ORCHESTRATOR_SERVER: &str = "agent-orchestrator";

/// What the `claude` process needs of the runner's environment besides the base
/// allow-list (`isolation`): its credentials (`ANTHROPIC_API_KEY`,
/// `CLAUDE_CODE_OAUTH_TOKEN`), endpoint and switches, and Node's extra CA roots.
const CLAUDE_ENV: ExecutorEnv = ExecutorEnv {
    names: &["NODE_EXTRA_CA_CERTS"],
    prefixes: &["ANTHROPIC_", "CLAUDE_CODE_"],
};

/// The `claude` process's environment: the allow-listed part of `inherited` and the
/// run's variables (`isolation::environment`; never the runner's `AOF_API_KEY`), then
/// the session identity and this session's own CLI config dir.
pub(crate) fn environment(
    inherited: impl IntoIterator<Item = (String, String)>,
    cx: &ExecCx,
    job: &Job,
    config_dir: &Path,
) -> BTreeMap<String, String> {
    let mut env =
        isolation::environment(inherited, CLAUDE_ENV, &cx.agent, &cx.session_dir, &cx.env);
    env.insert("AOF_SESSION_ID".into(), job.session_id.clone());
    env.insert("AOF_RUN_ID".into(), job.run_id.clone());
    env.insert(
        "CLAUDE_CONFIG_DIR".into(),
        config_dir.to_string_lossy().into_owned(),
    );
    env
}

/// The `--mcp-config` document: the blueprint's resolved `mcp_servers` (`{name: {url,
/// config}}`, `config.headers` becoming HTTP headers) plus the coordinator's
/// orchestrator as `agent-orchestrator`, unless the blueprint defines that name, with
/// the runner's approval floor when there is one (`approval::FLOOR_HEADER`).
pub(crate) fn mcp_config(job: &Job, session_token: Option<&str>, floor: Option<&str>) -> Value {
    let mut servers = Map::new();
    let resolved = job
        .blueprint
        .as_ref()
        .and_then(|b| b.get("mcp_servers"))
        .and_then(Value::as_object);
    for (name, entry) in resolved.into_iter().flatten() {
        let Some(url) = entry.get("url").and_then(Value::as_str) else {
            continue;
        };
        let mut server = json!({"type": "http", "url": url});
        if let Some(headers) = entry
            .get("config")
            .and_then(|c| c.get("headers"))
            .filter(|h| h.is_object())
        {
            server["headers"] = headers.clone();
        }
        servers.insert(name.clone(), server);
    }
    if let (false, Some(url)) = (
        servers.contains_key(ORCHESTRATOR_SERVER),
        job.orchestrator_mcp_url.as_deref(),
    ) {
        let mut headers = Map::new();
        if let Some(token) = session_token {
            headers.insert("Authorization".into(), format!("Bearer {token}").into());
        }
        headers.insert("X-Agent-Session-Id".into(), job.session_id.clone().into());
        if let Some(f) = floor {
            headers.insert(super::approval::FLOOR_HEADER.into(), f.into());
        }
        servers.insert(
            ORCHESTRATOR_SERVER.into(),
            json!({"type": "http", "url": url, "headers": headers}),
        );
    }
    json!({ "mcpServers": servers })
}

/// The arguments after the program. The prompt goes to stdin, so no prompt text is
/// ever parsed as a flag or shows in the process list.
pub(crate) fn arguments(cfg: &ClaudeCodeConfig, job: &Job, mcp_config_path: &Path) -> Vec<String> {
    let mut args: Vec<String> = ["-p", "--output-format", "stream-json", "--verbose"]
        .map(String::from)
        .to_vec();
    let mut flag = |name: &str, value: String| {
        args.push(name.to_string());
        args.push(value);
    };
    if let Some(id) = &job.resume {
        flag("--resume", id.clone());
    }
    if let Some(m) = &cfg.model {
        flag("--model", m.clone());
    }
    if let Some(m) = &cfg.permission_mode {
        flag("--permission-mode", m.clone());
    }
    if let Some(p) = &job.system_prompt {
        // Appended: Claude Code's own prompt (tools, conventions) stays in place.
        flag("--append-system-prompt", p.clone());
    }
    if !cfg.allowed_tools.is_empty() {
        flag("--allowedTools", cfg.allowed_tools.join(","));
    }
    if !cfg.disallowed_tools.is_empty() {
        flag("--disallowedTools", cfg.disallowed_tools.join(","));
    }
    if let Some(n) = cfg.max_turns {
        flag("--max-turns", n.to_string());
    }
    if let Some(sources) = &cfg.setting_sources {
        // Empty: no settings files at all (the CLI takes the empty list as such).
        flag("--setting-sources", sources.join(","));
    }
    flag(
        "--mcp-config",
        mcp_config_path.to_string_lossy().into_owned(),
    );
    // Only the servers above: none from the user's or the project's settings.
    args.push("--strict-mcp-config".into());
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        Job {
            run_id: "run_1".into(),
            session_id: "ses_1".into(),
            agent_name: None,
            prompt: "p".into(),
            parameters: json!({}),
            project_dir: None,
            resume: None,
            blueprint: None,
            system_prompt: None,
            orchestrator_mcp_url: Some("http://127.0.0.1:9/mcp".into()),
            history: None,
        }
    }

    #[test]
    fn environment_is_allow_listed() {
        let inherited = [
            ("PATH", "/bin"),
            ("HOME", "/root"),
            ("LC_TIME", "C"),
            ("AOF_API_KEY", "runner-secret"),
            ("AOF_DATABASE_URL", "postgres://x"),
            ("ANTHROPIC_API_KEY", "sk"),
            ("CLAUDE_CODE_OAUTH_TOKEN", "oauth"),
            ("CLAUDE_CONFIG_DIR", "/shared/config"),
            ("OPENAI_API_KEY", "x"),
            ("AWS_SECRET_ACCESS_KEY", "x"),
            ("GOOGLE_APPLICATION_CREDENTIALS", "x"),
            ("DATABASE_URL", "x"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        let cx = ExecCx {
            workdir: "/w".into(),
            env: BTreeMap::from([
                ("AOF_SESSION_TOKEN".to_string(), "tok".to_string()),
                ("AOF_API_KEY".to_string(), "never".to_string()),
            ]),
            cancel: Default::default(),
            events: tx,
            stop_grace: std::time::Duration::from_secs(1),
            state_dir: "/state".into(),
            session_dir: "/state/ses_1".into(),
            agent: Default::default(),
            approval: Default::default(),
        };
        let env = environment(inherited, &cx, &job(), Path::new("/state/ses_1/claude"));
        let keys: Vec<&str> = env.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "ANTHROPIC_API_KEY",
                "AOF_RUN_ID",
                "AOF_SESSION_ID",
                "AOF_SESSION_TOKEN",
                "CLAUDE_CODE_OAUTH_TOKEN",
                "CLAUDE_CONFIG_DIR",
                "HOME",
                "LC_TIME",
                "PATH"
            ]
        );
        assert_eq!(env["CLAUDE_CONFIG_DIR"], "/state/ses_1/claude");
    }

    #[test]
    fn mcp_config_adds_the_orchestrator() {
        let mut j = job().with_blueprint(Some(json!({
            "mcp_servers": {
                "docs": {"url": "http://docs/mcp", "config": {"headers": {"X-Key": "k"}}},
                "bare": {"url": "http://bare/mcp", "config": {}},
                "broken": {"config": {}},
            }
        })));
        j.orchestrator_mcp_url = Some("http://coord:8765/mcp".into());
        let cfg = mcp_config(&j, Some("tok"), None);
        assert_eq!(
            cfg,
            json!({"mcpServers": {
                "docs": {"type": "http", "url": "http://docs/mcp", "headers": {"X-Key": "k"}},
                "bare": {"type": "http", "url": "http://bare/mcp"},
                "agent-orchestrator": {"type": "http", "url": "http://coord:8765/mcp", "headers": {
                    "Authorization": "Bearer tok", "X-Agent-Session-Id": "ses_1"
                }},
            }})
        );
        // Without a session token, no Authorization header; a runner floor is a header.
        let cfg = mcp_config(&job(), None, Some(r#"{"tools":["Bash"]}"#));
        assert_eq!(
            cfg["mcpServers"][ORCHESTRATOR_SERVER]["headers"],
            json!({"X-Agent-Session-Id": "ses_1", "x-aof-approval-floor": r#"{"tools":["Bash"]}"#})
        );
        // The blueprint's own `agent-orchestrator` wins.
        let j = job().with_blueprint(Some(json!({
            "mcp_servers": {"agent-orchestrator": {"url": "http://mine/mcp", "config": {}}}
        })));
        assert_eq!(
            mcp_config(&j, Some("tok"), None)["mcpServers"][ORCHESTRATOR_SERVER],
            json!({"type": "http", "url": "http://mine/mcp"})
        );
    }

    #[test]
    fn arguments_follow_settings_and_job() {
        let cfg = ClaudeCodeConfig::default();
        let args = arguments(&cfg, &job(), Path::new("/s/mcp.json"));
        assert_eq!(
            args,
            [
                "-p",
                "--output-format",
                "stream-json",
                "--verbose",
                "--mcp-config",
                "/s/mcp.json",
                "--strict-mcp-config"
            ]
        );
        let cfg = ClaudeCodeConfig {
            model: Some("sonnet".into()),
            permission_mode: Some("acceptEdits".into()),
            allowed_tools: vec!["Bash".into(), "Read".into()],
            disallowed_tools: vec!["WebFetch".into()],
            max_turns: Some(3),
            setting_sources: Some(vec!["project".into(), "local".into()]),
            ..Default::default()
        };
        let mut j = job().with_blueprint(Some(json!({"system_prompt": "be brief"})));
        j.resume = Some("abc".into());
        let args = arguments(&cfg, &j, Path::new("/s/mcp.json")).join(" ");
        assert_eq!(
            args,
            "-p --output-format stream-json --verbose --resume abc --model sonnet \
             --permission-mode acceptEdits --append-system-prompt be brief \
             --allowedTools Bash,Read --disallowedTools WebFetch --max-turns 3 \
             --setting-sources project,local --mcp-config /s/mcp.json --strict-mcp-config"
        );
    }
}
