//! Property tests (proptest) over the blueprint folder format and placeholder
//! resolution: hostile files and names never panic and fail only with the typed errors
//! a client can be told about; valid generated blueprints round-trip; substitution is
//! exact and one-pass.
//!
//! Deterministic: a fixed seed per property (override with `AOF_FUZZ_SEED=<u64>` to
//! explore, and `AOF_FUZZ_CASES=<n>` for more cases), no failure files written.

use std::{fs, path::Path};

use proptest::{
    prelude::*,
    test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner},
};
use serde_json::{json, Map, Value};

use aof_blueprints::{placeholders::Sources, BlueprintError, Registry, RunContext};
use aof_wire::agents::{AgentCreate, McpServerCreate};

/// Runs `test` over `strategy` with a seed derived from `name`, so every CI run tries
/// the same cases and a failure reproduces.
fn check<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let base: u64 = std::env::var("AOF_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261125);
    let cases = std::env::var("AOF_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(cases);
    let mut seed = [0u8; 32];
    let mixed = name
        .bytes()
        .fold(base, |h, b| h.rotate_left(5) ^ u64::from(b));
    seed[..8].copy_from_slice(&mixed.to_le_bytes());
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 4096,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
    if let Err(e) = runner.run(&strategy, test) {
        panic!("property {name} failed (seed {base}): {e}");
    }
}

/// Any JSON value, a few levels deep, with hostile strings.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        any::<String>().prop_map(Value::String),
        "\\$\\{(params|scope|env|runtime|runner)\\.[a-z_]{0,6}\\}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const AGENT_KEYS: &[&str] = &[
    "name",
    "description",
    "type",
    "script",
    "parameters_schema",
    "output_schema",
    "skills",
    "tags",
    "capabilities",
    "demands",
    "hooks",
    "executor",
];

/// The bytes of a file: arbitrary bytes (invalid UTF-8 too), arbitrary text, any JSON,
/// or a well-formed agent document with one key replaced by any value.
fn hostile_file() -> impl Strategy<Value = Vec<u8>> {
    let valid = json!({"name": "a", "description": "d", "type": "autonomous",
                       "tags": ["t"], "capabilities": [], "mcpServers": {"s": {"ref": "m"}}});
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        any::<String>().prop_map(String::into_bytes),
        arb_json().prop_map(|v| v.to_string().into_bytes()),
        (0..AGENT_KEYS.len(), arb_json()).prop_map(move |(i, v)| {
            let mut doc = valid.clone();
            doc[AGENT_KEYS[i]] = v;
            doc.to_string().into_bytes()
        }),
        (any::<String>(), arb_json())
            .prop_map(|(k, v)| { json!({"mcpServers": {k: v}}).to_string().into_bytes() }),
    ]
}

fn registry(root: &Path) -> Registry {
    Registry::new(&root.join("agents"), vec!["AOF_FUZZ_ALLOWED".into()])
}

/// What a read of hostile files may answer: a clear 4xx-type error, never `Io` (which
/// the API turns into a 500) and never an error about the caller's input.
fn read_error_ok(e: &BlueprintError) -> bool {
    matches!(
        e,
        BlueprintError::Unresolvable(_)
            | BlueprintError::NotFound(_)
            | BlueprintError::RunRejected(_)
    )
}

#[test]
fn hostile_agent_folders_fail_with_typed_errors() {
    let files = (
        hostile_file(),
        prop::option::of(hostile_file()),
        prop::option::of(hostile_file()),
        prop::option::of(hostile_file()),
    );
    check(
        "hostile_folders",
        192,
        files,
        |(json, prompt, mcp, server)| {
            let dir = tempfile::tempdir().unwrap();
            let reg = registry(dir.path());
            let agent = reg.agents_dir.join("a");
            fs::create_dir_all(&agent).unwrap();
            fs::write(agent.join("agent.json"), &json).unwrap();
            if let Some(p) = &prompt {
                fs::write(agent.join("agent.system-prompt.md"), p).unwrap();
            }
            if let Some(m) = &mcp {
                fs::write(agent.join("agent.mcp.json"), m).unwrap();
            }
            if let Some(s) = &server {
                let d = reg.mcp_dir.join("m");
                fs::create_dir_all(&d).unwrap();
                fs::write(d.join("mcp-server.json"), s).unwrap();
            }
            let params = json!({"prompt": "p"}).as_object().cloned().unwrap();
            let cx = RunContext {
                run_id: "run_1",
                session_id: "ses_1",
                parameters: &params,
                scope: &Map::new(),
            };
            for (what, r) in [
                ("agent_raw", reg.agent_raw("a").map(|_| ())),
                ("agent_resolved", reg.agent_resolved("a").map(|_| ())),
                ("resolve_for_run", reg.resolve_for_run("a", &cx).map(|_| ())),
                ("mcp_server", reg.mcp_server("m").map(|_| ())),
            ] {
                if let Err(e) = r {
                    prop_assert!(read_error_ok(&e), "{what}: untyped error {e:?}");
                }
            }
            // A list skips what it cannot read; it never fails on a bad folder.
            prop_assert!(reg.list_agents(&[]).is_ok());
            prop_assert!(reg.list_mcp_servers().is_ok());
            // A resolved agent's schema, however odd, fails validation with a typed error.
            if let Ok(Some(res)) = reg.resolve_for_run("a", &cx) {
                prop_assert!(res.blueprint.is_object());
                if let Err(e) = aof_blueprints::params::validate(
                    &Value::Object(params.clone()),
                    res.agent.parameters_schema.as_ref(),
                    Some("a"),
                ) {
                    prop_assert!(read_error_ok(&e), "validate: {e:?}");
                }
            }
            Ok(())
        },
    );
}

#[test]
fn hostile_names_stay_inside_the_root() {
    check("hostile_names", 256, any::<String>(), |name| {
        let dir = tempfile::tempdir().unwrap();
        let reg = registry(dir.path());
        let req = AgentCreate {
            name: name.clone(),
            description: "d".into(),
            ..AgentCreate::default()
        };
        match reg.create_agent(&req) {
            Ok(a) => {
                prop_assert_eq!(&a.name, &name);
                prop_assert!(aof_blueprints::validate_name("Agent", &name).is_ok());
                // Exactly one entry, named exactly `name`, directly under the root.
                let entries: Vec<String> = fs::read_dir(&reg.agents_dir)
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect();
                prop_assert_eq!(entries, vec![name.clone()]);
            }
            Err(e) => {
                prop_assert!(matches!(e, BlueprintError::Invalid(_)), "{e:?}");
                prop_assert!(
                    !dir.path().join("agents").exists()
                        || fs::read_dir(&reg.agents_dir).unwrap().next().is_none()
                );
            }
        }
        for r in [
            reg.agent_raw(&name).map(|_| ()),
            reg.capability(&name).map(|_| ()),
            reg.mcp_server(&name).map(|_| ()),
            reg.delete_agent(&format!("{name}-x")),
        ] {
            if let Err(e) = r {
                prop_assert!(matches!(e, BlueprintError::NotFound(_)), "{e:?}");
            }
        }
        Ok(())
    });
}

/// A template piece: literal text (no `$`), a parameter reference, or a placeholder
/// that must stay as written (unknown source, missing key, env var not allowed).
#[derive(Debug, Clone)]
enum Piece {
    Lit(String),
    Param(usize),
    Kept(String),
}

fn arb_template() -> impl Strategy<Value = Vec<Piece>> {
    let piece = prop_oneof![
        "[^$]{0,12}".prop_map(Piece::Lit),
        (0usize..4).prop_map(Piece::Param),
        prop_oneof![
            Just("${env.AOF_FUZZ_SECRET}".to_string()),
            Just("${runner.orchestrator_mcp_url}".to_string()),
            Just("${params.absent}".to_string()),
            "[a-z]{1,6}\\.[a-z]{0,6}".prop_map(|k| format!("${{zz{k}}}")),
        ]
        .prop_map(Piece::Kept),
    ];
    prop::collection::vec(piece, 0..8)
}

#[test]
fn placeholders_substitute_exactly_once() {
    std::env::set_var("AOF_FUZZ_ALLOWED", "allowed-value");
    std::env::set_var("AOF_FUZZ_SECRET", "secret-value");
    // Parameter values may themselves look like placeholders: they must come out verbatim.
    let value = prop_oneof![
        any::<String>(),
        Just("${env.AOF_FUZZ_ALLOWED}".to_string()),
        Just("${params.k0}".to_string()),
    ];
    let input = (arb_template(), prop::collection::vec(value, 4));
    check("placeholders", 512, input, |(pieces, values)| {
        let params: Map<String, Value> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("k{i}"), json!(v)))
            .collect();
        let allow = vec!["AOF_FUZZ_ALLOWED".to_string()];
        let scope = Map::new();
        let s = Sources {
            params: &params,
            scope: &scope,
            env_allow: &allow,
            session_id: "ses_1",
            run_id: "run_1",
        };
        let mut template = String::new();
        let mut expected = String::new();
        for p in &pieces {
            match p {
                Piece::Lit(t) => {
                    template.push_str(t);
                    expected.push_str(t);
                }
                Piece::Param(i) => {
                    template.push_str(&format!("${{params.k{i}}}"));
                    expected.push_str(&values[*i]);
                }
                Piece::Kept(t) => {
                    template.push_str(t);
                    expected.push_str(t);
                }
            }
        }
        let got = s.substitute_str(&template);
        prop_assert_eq!(&got, &expected, "template {:?}", template);
        prop_assert!(
            !got.contains("secret-value") || values.iter().any(|v| v.contains("secret-value"))
        );
        // In JSON, strings are substituted at any depth; keys and other leaves are kept.
        let doc =
            json!({"a": [template.clone(), 1, null], "b": {template.clone(): template.clone()}});
        let out = s.substitute(&doc);
        prop_assert_eq!(
            out,
            json!({"a": [expected.clone(), 1, null], "b": {template.clone(): expected.clone()}})
        );
        Ok(())
    });
    check(
        "placeholders_any",
        512,
        (any::<String>(), arb_json()),
        |(text, doc)| {
            let params = Map::new();
            let scope = Map::new();
            let s = Sources {
                params: &params,
                scope: &scope,
                env_allow: &[],
                session_id: "ses_1",
                run_id: "run_1",
            };
            let got = s.substitute_str(&text);
            if !text.contains("${") {
                prop_assert_eq!(&got, &text);
            }
            // With nothing to substitute, runtime ids aside, a document is unchanged.
            if !doc.to_string().contains("runtime.") {
                prop_assert_eq!(s.substitute(&doc), doc);
            }
            Ok(())
        },
    );
}

fn arb_name() -> &'static str {
    "[a-zA-Z0-9][a-zA-Z0-9_-]{0,59}"
}

/// Text without placeholders (checked separately above) and not blank.
fn arb_text() -> &'static str {
    "[^$\\x00]{0,40}[a-z]"
}

#[test]
fn valid_blueprints_round_trip() {
    let config = prop::collection::btree_map("[a-z]{1,6}", arb_text(), 0..3);
    let agent = (
        arb_name(),
        arb_text(),
        prop::option::of(arb_text()),
        prop::collection::vec("[a-z0-9-]{1,10}", 0..4),
        prop::option::of(prop::collection::btree_map(
            arb_name(),
            (arb_name(), prop::option::of(config.clone())),
            1..3,
        )),
        config,
        "https?://[a-z]{1,10}\\.example/[a-z]{0,8}",
    );
    check(
        "round_trip",
        96,
        agent,
        |(name, description, prompt, tags, servers, defaults, url)| {
            let dir = tempfile::tempdir().unwrap();
            let reg = registry(dir.path());
            let mcp = servers.as_ref().map(|m| {
                m.iter()
                    .map(|(local, (reference, cfg))| {
                        let mut e = json!({"ref": reference});
                        if let Some(c) = cfg {
                            e["config"] = json!(c);
                        }
                        (local.clone(), e)
                    })
                    .collect::<Map<String, Value>>()
            });
            let req = AgentCreate {
                name: name.clone(),
                description: description.clone(),
                system_prompt: prompt.clone(),
                tags: (!tags.is_empty()).then(|| tags.clone()),
                mcp_servers: mcp.clone(),
                parameters_schema: Some(json!({"type": "object", "required": ["prompt"]})),
                ..AgentCreate::default()
            };
            let created = reg
                .create_agent(&req)
                .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
            let read = reg.agent_raw(&name).unwrap();
            prop_assert_eq!(&created, &read);
            prop_assert_eq!(&read.name, &name);
            prop_assert_eq!(&read.description, &description);
            prop_assert_eq!(&read.system_prompt, &prompt);
            prop_assert_eq!(&read.tags, &tags);
            prop_assert_eq!(&read.mcp_servers, &mcp);
            // The registry entries the refs name, with defaults under the agent's config.
            for (_, (reference, _)) in servers.iter().flatten() {
                if reg.mcp_server(reference).is_err() {
                    reg.create_mcp_server(&McpServerCreate {
                        id: reference.clone(),
                        name: reference.clone(),
                        description: None,
                        url: url.clone(),
                        config_schema: None,
                        default_config: Some(
                            defaults
                                .iter()
                                .map(|(k, v)| (k.clone(), json!(v)))
                                .collect(),
                        ),
                    })
                    .unwrap();
                }
            }
            let params = json!({"prompt": "p"}).as_object().cloned().unwrap();
            let cx = RunContext {
                run_id: "run_1",
                session_id: "ses_1",
                parameters: &params,
                scope: &Map::new(),
            };
            let res = reg
                .resolve_for_run(&name, &cx)
                .unwrap()
                .expect("the agent exists");
            let bp = &res.blueprint;
            prop_assert_eq!(&bp["name"], &json!(name));
            prop_assert_eq!(&bp["system_prompt"], &json!(prompt));
            for (local, (_, cfg)) in servers.iter().flatten() {
                let mut merged: Map<String, Value> = defaults
                    .iter()
                    .map(|(k, v)| (k.clone(), json!(v)))
                    .collect();
                merged.extend(cfg.iter().flatten().map(|(k, v)| (k.clone(), json!(v))));
                prop_assert_eq!(
                    &bp["mcp_servers"][local],
                    &json!({"url": url, "config": merged})
                );
            }
            // Written files are the format's own: re-reading from disk after a copy gives the same.
            let copy = tempfile::tempdir().unwrap();
            let reg2 = registry(copy.path());
            fs::create_dir_all(reg2.agents_dir.join(&name)).unwrap();
            for f in ["agent.json", "agent.system-prompt.md", "agent.mcp.json"] {
                let src = reg.agents_dir.join(&name).join(f);
                if src.exists() {
                    fs::copy(&src, reg2.agents_dir.join(&name).join(f)).unwrap();
                }
            }
            let again = reg2.agent_raw(&name).unwrap();
            prop_assert_eq!(
                (
                    &again.name,
                    &again.system_prompt,
                    &again.mcp_servers,
                    &again.tags
                ),
                (
                    &read.name,
                    &read.system_prompt,
                    &read.mcp_servers,
                    &read.tags
                )
            );
            Ok(())
        },
    );
}
