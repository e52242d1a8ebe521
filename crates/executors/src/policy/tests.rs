use serde_json::json;

use super::*;

fn tools(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn claude(allowed: &[&str], disallowed: &[&str]) -> ClaudeCodeConfig {
    ClaudeCodeConfig {
        allowed_tools: tools(allowed),
        disallowed_tools: tools(disallowed),
        ..Default::default()
    }
}

/// Attack 5: with the policy off, a blueprint never gets a tool the runner does not
/// allow, and never loses one the runner denies.
#[test]
fn tool_lists_only_narrow() {
    // (runner allowed, runner disallowed, blueprint allowed, blueprint disallowed,
    //  → allowed, → disallowed)
    type Row<'a> = (
        &'a [&'a str],
        &'a [&'a str],
        &'a [&'a str],
        &'a [&'a str],
        &'a [&'a str],
        &'a [&'a str],
    );
    let table: &[Row] = &[
        // No lists in the blueprint: the runner's.
        (
            &["Bash", "Read"],
            &["WebFetch"],
            &[],
            &[],
            &["Bash", "Read"],
            &["WebFetch"],
        ),
        // A subset stays a subset.
        (&["Bash", "Read"], &[], &["Read"], &[], &["Read"], &[]),
        // A tool the runner does not allow is dropped (the attack).
        (
            &["Read"],
            &[],
            &["Read", "Bash", "Write"],
            &[],
            &["Read"],
            &[],
        ),
        (&["Read"], &[], &["Bash"], &[], &[], &[]),
        // A runner with no allowed list pre-approves nothing: neither may the blueprint.
        (&[], &[], &["Bash"], &[], &[], &[]),
        // Order and duplicates: the blueprint's order, once each.
        (
            &["Read", "Bash", "Grep"],
            &[],
            &["Grep", "Read", "Grep"],
            &[],
            &["Grep", "Read"],
            &[],
        ),
        // A rule narrowing a bare tool is a narrowing; the reverse is not.
        (
            &["Bash"],
            &[],
            &["Bash(git status)", "Bash(ls *)"],
            &[],
            &["Bash(git status)", "Bash(ls *)"],
            &[],
        ),
        (&["Bash(git status)"], &[], &["Bash"], &[], &[], &[]),
        (
            &["Bash(git status)"],
            &[],
            &["Bash(git status)"],
            &[],
            &["Bash(git status)"],
            &[],
        ),
        // A second rule smuggled into a joined list is not.
        (
            &["Read"],
            &[],
            &["Read(x),Bash(y)", "Read(a)Bash(b)", "Read()", "Readx(y)"],
            &[],
            &[],
            &[],
        ),
        (
            &["mcp__docs"],
            &[],
            &["mcp__docs__search", "mcp__other"],
            &[],
            &[],
            &[],
        ),
        // Disallowed: union, the runner's first; the blueprint cannot drop one.
        (
            &["Bash"],
            &["WebFetch"],
            &[],
            &["Write"],
            &["Bash"],
            &["WebFetch", "Write"],
        ),
        (
            &["Bash"],
            &["WebFetch", "Write"],
            &[],
            &["Write"],
            &["Bash"],
            &["WebFetch", "Write"],
        ),
        (&[], &[], &[], &["Bash"], &[], &["Bash"]),
    ];
    for (i, (ra, rd, ba, bd, want_a, want_d)) in table.iter().enumerate() {
        let got = refine_claude(&claude(ra, rd), &claude(ba, bd)).unwrap();
        assert_eq!(got.allowed_tools, tools(want_a), "row {i} allowed");
        assert_eq!(got.disallowed_tools, tools(want_d), "row {i} disallowed");
    }
}

#[test]
fn permission_mode_only_narrows() {
    // (runner, blueprint, Some(result) or None = refused)
    type Row<'a> = (Option<&'a str>, Option<&'a str>, Option<Option<&'a str>>);
    let table: &[Row] = &[
        (None, None, Some(None)),
        (Some("acceptEdits"), None, Some(Some("acceptEdits"))),
        (Some("bypassPermissions"), Some("plan"), Some(Some("plan"))),
        (
            Some("bypassPermissions"),
            Some("acceptEdits"),
            Some(Some("acceptEdits")),
        ),
        (Some("acceptEdits"), Some("default"), Some(Some("default"))),
        (None, Some("plan"), Some(Some("plan"))),
        (None, Some("dontAsk"), Some(Some("dontAsk"))),
        (None, Some("manual"), Some(Some("manual"))),
        (
            Some("acceptEdits"),
            Some("acceptEdits"),
            Some(Some("acceptEdits")),
        ),
        // Wider: refused.
        (None, Some("acceptEdits"), None),
        (None, Some("bypassPermissions"), None),
        (Some("acceptEdits"), Some("bypassPermissions"), None),
        (Some("acceptEdits"), Some("auto"), None),
        (Some("plan"), Some("default"), None),
        (Some("dontAsk"), Some("default"), None),
        // Unknown: only the runner's own.
        (None, Some("yolo"), None),
        (Some("future"), Some("future"), Some(Some("future"))),
        (Some("future"), Some("plan"), None),
    ];
    for (i, (mine, theirs, want)) in table.iter().enumerate() {
        let profile = ClaudeCodeConfig {
            permission_mode: mine.map(str::to_string),
            ..Default::default()
        };
        let bp = ClaudeCodeConfig {
            permission_mode: theirs.map(str::to_string),
            ..Default::default()
        };
        let got = refine_claude(&profile, &bp);
        match want {
            Some(mode) => assert_eq!(got.unwrap().permission_mode.as_deref(), *mode, "row {i}"),
            None => assert!(
                got.as_ref().is_err_and(|e| e.contains("permission_mode")),
                "row {i}: {got:?}"
            ),
        }
    }
}

#[test]
fn program_and_model_are_the_runners_limits_the_tightest() {
    let profile = ClaudeCodeConfig {
        program: Some("/opt/claude".into()),
        model: Some("opus".into()),
        max_turns: Some(10),
        timeout_seconds: Some(600.0),
        setting_sources: Some(vec!["project".into()]),
        ..Default::default()
    };
    for bp in [
        json!({"program": "/bin/sh"}),
        json!({"model": "sonnet"}),
        json!({"program": "claude"}),
        // Fewer settings files may drop deny rules: not narrower.
        json!({"setting_sources": []}),
        json!({"setting_sources": ["project", "user"]}),
    ] {
        let bp: ClaudeCodeConfig = serde_json::from_value(bp).unwrap();
        let err = refine_claude(&profile, &bp).unwrap_err();
        assert!(err.contains("differs from the runner's"), "{err}");
    }
    // Repeating the runner's own value changes nothing.
    let same: ClaudeCodeConfig = serde_json::from_value(
        json!({"program": "/opt/claude", "model": "opus", "setting_sources": ["project"]}),
    )
    .unwrap();
    assert_eq!(refine_claude(&profile, &same).unwrap(), profile);
    // No model on the runner: a blueprint may not pick one.
    assert!(refine_claude(
        &ClaudeCodeConfig::default(),
        &serde_json::from_value(json!({"model": "opus"})).unwrap()
    )
    .is_err());

    let limits = |turns, timeout, stall| ClaudeCodeConfig {
        max_turns: turns,
        timeout_seconds: timeout,
        stall_timeout_seconds: stall,
        ..Default::default()
    };
    let got = refine_claude(&profile, &limits(Some(50), Some(60.0), Some(5000.0))).unwrap();
    assert_eq!(
        (
            got.max_turns,
            got.timeout_seconds,
            got.stall_timeout_seconds
        ),
        (Some(10), Some(60.0), Some(900.0))
    );
    let got = refine_claude(&profile, &limits(Some(3), Some(9000.0), Some(30.0))).unwrap();
    assert_eq!(
        (
            got.max_turns,
            got.timeout_seconds,
            got.stall_timeout_seconds
        ),
        (Some(3), Some(600.0), Some(30.0))
    );
    let got = refine_claude(&limits(None, None, Some(60.0)), &limits(None, None, None)).unwrap();
    assert_eq!(got.stall_timeout_seconds, Some(60.0));
}

#[test]
fn the_policy_picks_or_refuses_the_executor() {
    let claude_profile = ExecutorConfig::ClaudeCode(ClaudeCodeConfig {
        allowed_tools: tools(&["Read"]),
        disallowed_tools: tools(&["WebFetch"]),
        ..Default::default()
    });
    let bp = json!({"executor": {"kind": "claude_code", "allowed_tools": ["Read", "Bash"],
        "disallowed_tools": ["Write"], "max_turns": 2}});
    // Off: narrowed.
    let Some(ExecutorConfig::ClaudeCode(c)) = for_run(false, &claude_profile, Some(&bp)).unwrap()
    else {
        panic!()
    };
    assert_eq!(c.allowed_tools, ["Read"]);
    assert_eq!(c.disallowed_tools, ["WebFetch", "Write"]);
    assert_eq!(c.max_turns, Some(2));
    // On: the blueprint's lists win (it may choose any executor anyway).
    let Some(ExecutorConfig::ClaudeCode(c)) = for_run(true, &claude_profile, Some(&bp)).unwrap()
    else {
        panic!()
    };
    assert_eq!(c.allowed_tools, ["Read", "Bash"]);
    assert_eq!(c.disallowed_tools, ["Write"]);

    // No executor in the blueprint: the runner's own, either way.
    for allow in [true, false] {
        assert_eq!(for_run(allow, &claude_profile, None).unwrap(), None);
        assert_eq!(
            for_run(allow, &claude_profile, Some(&json!({"name": "a"}))).unwrap(),
            None
        );
    }
    // Any other executor is a choice: refused when off, whatever the runner runs.
    let command = json!({"executor": {"kind": "command", "program": "sh", "args": ["-c", "id"]}});
    let model = json!({"executor": {"kind": "model_api", "base_url": "http://x/v1", "model": "m"}});
    let echo = json!({"executor": {"kind": "echo"}});
    let command_profile = ExecutorConfig::Command {
        program: "sh".into(),
        args: vec![],
        timeout_seconds: None,
    };
    for profile in [&claude_profile, &command_profile, &ExecutorConfig::Echo] {
        for bp in [&command, &model, &echo] {
            let err = for_run(false, profile, Some(bp)).unwrap_err().to_string();
            assert!(err.contains("allow_blueprint_executors is off"), "{err}");
            assert!(for_run(true, profile, Some(bp)).unwrap().is_some());
        }
    }
    // A Claude blueprint on a runner of another executor is a choice too.
    let narrow = json!({"executor": {"kind": "claude_code", "allowed_tools": ["Read"]}});
    assert!(for_run(false, &ExecutorConfig::Echo, Some(&narrow)).is_err());
    // Widening settings are refused with the field named.
    let wide = json!({"executor": {"kind": "claude_code", "permission_mode": "bypassPermissions"}});
    let err = for_run(false, &claude_profile, Some(&wide))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("permission_mode") && err.contains("allow_blueprint_executors is off"),
        "{err}"
    );
    // A blueprint that does not parse fails either way.
    let bad = json!({"executor": {"kind": "claude_code", "env": {"X": "1"}}});
    for allow in [true, false] {
        let err = for_run(allow, &claude_profile, Some(&bad))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `env`"), "{err}");
    }
}
