//! Demand matching, as the AOF reference does it; pure, shared by every store backend.

use aof_wire::{auth::KeyScope, runner::RunnerInfo, Demands};

/// May this runner, whose key is limited to `scope`, take a run of `agent` with these
/// demands? Its own matching first, then the key's scope (issue #20).
pub fn may_claim(
    runner: &RunnerInfo,
    scope: &KeyScope,
    agent: Option<&str>,
    demands: Option<&Demands>,
) -> bool {
    satisfies(runner, demands) && scope.allows(agent, demands.map_or(&[], |d| &d.tags))
}

/// Does this runner satisfy the run's demands?
///
/// Set scalar demands must equal the runner's value (`executor_type` compares with
/// `executor.type`); demanded tags must all be on the runner. A runner with
/// `require_matching_tags` only takes runs that demand at least one of its tags.
pub fn satisfies(runner: &RunnerInfo, demands: Option<&Demands>) -> bool {
    let Some(d) = demands else {
        return !runner.require_matching_tags;
    };
    let eq = |want: &Option<String>, have: &str| match want.as_deref() {
        None | Some("") => true,
        Some(w) => w == have,
    };
    let executor_type = runner
        .executor
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or("");
    if !eq(&d.hostname, &runner.hostname)
        || !eq(&d.project_dir, &runner.project_dir)
        || !eq(&d.executor_profile, &runner.executor_profile)
        || !eq(&d.executor_type, executor_type)
    {
        return false;
    }
    if !d.tags.iter().all(|t| runner.tags.contains(t)) {
        return false;
    }
    if runner.require_matching_tags {
        return d.tags.iter().any(|t| runner.tags.contains(t));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runner(tags: &[&str], require: bool) -> RunnerInfo {
        RunnerInfo {
            runner_id: "lnch_1".into(),
            registered_at: String::new(),
            last_heartbeat: String::new(),
            hostname: "h1".into(),
            project_dir: "/p".into(),
            executor_profile: "echo".into(),
            executor: serde_json::json!({"type": "autonomous"})
                .as_object()
                .cloned()
                .unwrap(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            require_matching_tags: require,
            status: aof_wire::RunnerStatus::Online,
            seconds_since_heartbeat: 0.0,
        }
    }

    #[test]
    fn matching_rules() {
        let r = runner(&["gpu", "eu"], false);
        assert!(satisfies(&r, None));
        let d = |v: serde_json::Value| serde_json::from_value::<Demands>(v).unwrap();
        assert!(satisfies(
            &r,
            Some(&d(
                serde_json::json!({"executor_type": "autonomous", "tags": ["gpu"]})
            ))
        ));
        assert!(!satisfies(
            &r,
            Some(&d(serde_json::json!({"executor_type": "procedural"})))
        ));
        assert!(!satisfies(
            &r,
            Some(&d(serde_json::json!({"tags": ["gpu", "us"]})))
        ));
        assert!(!satisfies(
            &r,
            Some(&d(serde_json::json!({"hostname": "h2"})))
        ));
        assert!(satisfies(
            &r,
            Some(&d(
                serde_json::json!({"hostname": "h1", "project_dir": "/p"})
            ))
        ));
        let strict = runner(&["gpu"], true);
        assert!(!satisfies(&strict, None));
        assert!(!satisfies(
            &strict,
            Some(&d(serde_json::json!({"tags": []})))
        ));
        assert!(satisfies(
            &strict,
            Some(&d(serde_json::json!({"tags": ["gpu"]})))
        ));
    }
}
