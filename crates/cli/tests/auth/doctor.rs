//! `aof doctor`: the verdicts follow the settings, and `--probe` sees what a stranger's
//! browser would get from a live coordinator (and calls it a risk when it gets through).

use serde_json::Value;

use super::*;

fn verdict(report: &Value, check: &str) -> String {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == check)
        .unwrap_or_else(|| panic!("no check {check} in {report}"))["verdict"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn doctor(args: &[&str], env: &[(&str, &str)]) -> (i32, Value) {
    let dir = tempdir();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let mut all = vec!["doctor", "--json", "--data-dir", data];
    all.extend_from_slice(args);
    let (code, out, err) = aof(&all, env).await;
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} / {err}"));
    (code, report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_verdicts_follow_the_settings() {
    // The defaults: loopback, auth off, same-origin only. Warnings, no risk.
    let (code, r) = doctor(&[], &[]).await;
    assert_eq!(verdict(&r, "cors"), "ok", "{r}");
    assert_eq!(verdict(&r, "auth"), "warn", "{r}");
    assert_eq!((code, r["risks"].as_u64()), (0, Some(0)), "{r}");

    // `*` with auth off: any page reads the API.
    let (code, r) = doctor(&[], &[("CORS_ORIGINS", "*")]).await;
    assert_eq!(verdict(&r, "cors"), "risk", "{r}");
    assert_eq!(code, 1, "{r}");

    // Auth off beyond loopback is refused at start: the doctor says so and fails.
    let (code, r) = doctor(
        &["--listen", "0.0.0.0:8765", "--insecure-listen"],
        &[("CORS_ORIGINS", "*")],
    )
    .await;
    assert_eq!(code, 1, "{r}");
    assert_eq!(
        verdict(&r, "coordinator settings"),
        "risk",
        "refused by validate: {r}"
    );

    // Auth on beyond loopback, blueprints may not pick executors.
    let (code, r) = doctor(
        &["--listen", "0.0.0.0:8765"],
        &[
            ("AUTH_ENABLED", "true"),
            ("AOF_ALLOW_BLUEPRINT_EXECUTORS", "false"),
        ],
    )
    .await;
    assert_eq!(verdict(&r, "auth"), "ok", "{r}");
    assert_eq!(verdict(&r, "listen"), "ok", "{r}");
    assert_eq!(verdict(&r, "blueprint executors"), "ok", "{r}");
    assert_eq!(verdict(&r, "cookie"), "warn", "{r}");
    assert_eq!(code, 0, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_probe_sees_the_cross_origin_refusal_and_its_absence() {
    let dir = tempdir();
    let safe = Coordinator::start(dir.path(), fast_env()).await;
    let (code, r) = doctor(&["--probe", "--url", &safe.url], &[]).await;
    assert_eq!(verdict(&r, "probe: cors"), "ok", "{r}");
    assert_eq!(verdict(&r, "probe: cross-origin write"), "ok", "{r}");
    assert_eq!(verdict(&r, "probe: simple cross-origin write"), "ok", "{r}");
    assert_eq!(code, 0, "{r}");

    // A deployment that lets the doctor's own origin in: the same probes must fail, so
    // they are known to be able to.
    let dir2 = tempdir();
    let mut env = fast_env();
    env.push(("CORS_ORIGINS".into(), "https://aof-doctor.invalid".into()));
    let open = Coordinator::start(dir2.path(), env).await;
    let (code, r) = doctor(&["--probe", "--url", &open.url], &[]).await;
    assert_eq!(verdict(&r, "probe: cors"), "risk", "{r}");
    assert_eq!(verdict(&r, "probe: cross-origin write"), "risk", "{r}");
    assert_eq!(code, 1, "{r}");
}
