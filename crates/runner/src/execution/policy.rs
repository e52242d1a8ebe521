//! Which executor runs a run: the runner's own, or the one its blueprint names, as
//! `aof_executors::policy` allows.

use std::sync::Arc;

use aof_executors::{policy, Executor, ExecutorConfig};

/// The executor for this run and the run limits its own options ask for: the one its
/// blueprint names under `executor`, built for this run, or else the runner's default —
/// as `aof_executors::policy` decides (with `allow_blueprint_executors` off a blueprint
/// may only narrow the runner's Claude profile). `Err` is the run's failure message.
pub(super) fn executor_for(
    allow_blueprint_executors: bool,
    default: &Arc<dyn Executor>,
    default_cfg: &ExecutorConfig,
    blueprint: Option<&serde_json::Value>,
) -> Result<(Arc<dyn Executor>, aof_wire::RunLimits), String> {
    match policy::for_run(allow_blueprint_executors, default_cfg, blueprint) {
        Ok(None) => Ok((default.clone(), default_cfg.limits())),
        Ok(Some(cfg)) => {
            tracing::info!(executor = cfg.kind(), command = %cfg.command_line(), "using the blueprint's executor");
            aof_executors::build(&cfg)
                .map(|ex| (Arc::from(ex), cfg.limits()))
                .map_err(|e| format!("blueprint executor: {e}"))
        }
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn blueprint_chooses_the_executor() {
        let default: Arc<dyn Executor> = Arc::new(aof_executors::echo::EchoExecutor);
        let echo = ExecutorConfig::Echo;
        let pick = |allow: bool, bp: serde_json::Value| {
            executor_for(allow, &default, &echo, Some(&bp)).map(|(ex, _)| ex)
        };

        // No blueprint, no `executor`, or not an object: the default itself.
        assert!(Arc::ptr_eq(
            &executor_for(true, &default, &echo, None).unwrap().0,
            &default
        ));
        assert!(Arc::ptr_eq(
            &pick(true, json!({"name": "a"})).unwrap(),
            &default
        ));
        assert!(Arc::ptr_eq(
            &pick(false, json!({"executor": "x"})).unwrap(),
            &default
        ));

        let (chosen, limits) = executor_for(
            true,
            &default,
            &echo,
            Some(&json!({"executor": {"kind": "command", "program": "sh", "timeout_seconds": 5}})),
        )
        .unwrap();
        assert_eq!(chosen.kind(), "command");
        assert!(!Arc::ptr_eq(&chosen, &default));
        assert_eq!(limits.timeout_seconds, Some(5.0));

        let err = pick(true, json!({"executor": {"kind": "foo"}}))
            .err()
            .unwrap();
        assert_eq!(
            err,
            "blueprint executor: unknown variant `foo`, expected one of `echo`, `command`, `claude_code`, `model_api`"
        );

        let err = pick(
            false,
            json!({"executor": {"kind": "command", "program": "sh"}}),
        )
        .err()
        .unwrap();
        assert!(err.contains("allow_blueprint_executors is off"), "{err}");

        // A Claude runner: a blueprint may narrow tools and turns even when locked, but
        // not pick the program, model or a wider permission mode; the profile's own
        // limits stay when the blueprint asks for looser ones.
        let claude_cfg = ExecutorConfig::ClaudeCode(aof_executors::claude::ClaudeCodeConfig {
            model: Some("opus".into()),
            timeout_seconds: Some(5.0),
            ..Default::default()
        });
        let claude: Arc<dyn Executor> = aof_executors::build(&claude_cfg).unwrap().into();
        let narrow = json!({"executor": {"kind": "claude_code", "allowed_tools": ["Read"],
            "max_turns": 2, "timeout_seconds": 500}});
        let (chosen, limits) = executor_for(false, &claude, &claude_cfg, Some(&narrow)).unwrap();
        assert_eq!(chosen.kind(), "claude_code");
        assert!(!Arc::ptr_eq(&chosen, &claude));
        assert_eq!(limits.timeout_seconds, Some(5.0));
        for bp in [
            json!({"executor": {"kind": "claude_code", "program": "/bin/sh"}}),
            json!({"executor": {"kind": "claude_code", "model": "sonnet"}}),
            json!({"executor": {"kind": "claude_code", "permission_mode": "bypassPermissions"}}),
        ] {
            let err = executor_for(false, &claude, &claude_cfg, Some(&bp))
                .err()
                .unwrap();
            assert!(err.contains("allow_blueprint_executors is off"), "{err}");
        }
        // On an echo runner the same narrowing blueprint is a choice of executor.
        assert!(executor_for(false, &default, &echo, Some(&narrow)).is_err());
    }
}
