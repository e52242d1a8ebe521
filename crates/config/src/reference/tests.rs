use aof_coordinator::config::OidcConfig;

use super::*;
use crate::{registry::SETTINGS, Config, Inputs};

fn load(pairs: &[(&str, &str)]) -> Config {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::load(&Inputs::default(), move |k| {
        pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    })
    .unwrap()
}

#[test]
fn the_table_and_the_registry_agree() {
    let mut names: Vec<&str> = REFERENCE_VARS.iter().map(|r| r.name).collect();
    names.sort_unstable();
    let n = names.len();
    names.dedup();
    assert_eq!(names.len(), n, "a reference variable is listed twice");
    // Every reference alias in the registry is here, as an alias of that setting (the
    // OpenTelemetry SDK's standard names are aliases too, but not the reference's).
    for s in SETTINGS {
        for alias in s.aliases.iter().filter(|a| !a.starts_with("OTEL_")) {
            let r = REFERENCE_VARS
                .iter()
                .find(|r| r.name == *alias)
                .unwrap_or_else(|| panic!("{alias} (alias of {}) is not in REFERENCE_VARS", s.key));
            assert_eq!(r.handling, Alias(s.key), "{alias}");
        }
    }
    for r in REFERENCE_VARS {
        match r.handling {
            Alias(key) => {
                let s = crate::registry::find(key)
                    .unwrap_or_else(|| panic!("{}: no setting {key}", r.name));
                assert!(
                    s.aliases.contains(&r.name),
                    "{} is not an alias of {key}",
                    r.name
                );
            }
            Mapped(keys, _) => {
                for key in keys {
                    assert!(
                        crate::registry::find(key).is_some(),
                        "{}: no setting {key}",
                        r.name
                    );
                }
                // Mapped by hand (`map_auth0`, the data dir), not by the alias loop.
                assert!(
                    !SETTINGS.iter().any(|s| s.aliases.contains(&r.name)),
                    "{}",
                    r.name
                );
            }
            Unchanged(_) | Refused(_) => {
                assert!(
                    !SETTINGS.iter().any(|s| s.aliases.contains(&r.name)),
                    "{}",
                    r.name
                );
            }
        }
    }
}

#[test]
fn each_refused_variable_that_is_set_gets_one_warning() {
    let c = load(&[
        ("REAPER_INTERVAL", "60"),
        ("MCP_PORT", "9001"),
        ("HEARTBEAT_INTERVAL", ""),
        ("VERBOSE", "true"),
        ("DOCS_ENABLED", "true"),
        ("CLAUDE_CODE_OAUTH_TOKEN", "x"),
        ("VITE_AGENT_ORCHESTRATOR_API_URL", "http://h:1"),
    ]);
    let w = c.warnings();
    assert_eq!(w.len(), 2, "{w:#?}");
    assert!(
        w[0].starts_with(
            "REAPER_INTERVAL (a setting of the AOF reference's coordinator) is not supported"
        ) && w[0].contains("AOF_LEASE_TTL"),
        "{}",
        w[0]
    );
    assert!(
        w[1].starts_with("MCP_PORT (a setting of the AOF reference's runner)")
            && w[1].contains("`/mcp`"),
        "{}",
        w[1]
    );
    assert!(load(&[]).warnings().is_empty());
}

#[test]
fn auth0_becomes_oidc_with_auth_on() {
    let c = load(&[
        ("AUTH_ENABLED", "true"),
        ("AUTH0_DOMAIN", "tenant.example.com"),
        ("AUTH0_AUDIENCE", "https://aof.example.com/api"),
    ]);
    let oidc = c.auth().unwrap().oidc.expect("OIDC on");
    assert_eq!(
        (
            oidc.issuer.as_str(),
            oidc.jwks.as_str(),
            oidc.audience.as_str()
        ),
        (
            "https://tenant.example.com/",
            "https://tenant.example.com/.well-known/jwks.json",
            "https://aof.example.com/api"
        )
    );
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    let shown = c.show();
    let issuer = shown
        .iter()
        .find(|r| r.setting.key == "auth.oidc_issuer")
        .unwrap();
    assert_eq!(issuer.source.to_string(), "env AUTH0_DOMAIN");

    // Ours win; a different value is warned about, an equal one is not.
    let c = load(&[
        ("AUTH_ENABLED", "true"),
        ("AUTH0_DOMAIN", "tenant.example.com"),
        ("AUTH0_AUDIENCE", "https://aof.example.com/api"),
        ("AOF_OIDC_AUDIENCE", "aof"),
        ("AOF_OIDC_ISSUER", "https://tenant.example.com/"),
    ]);
    let oidc: OidcConfig = c.auth().unwrap().oidc.unwrap();
    assert_eq!(oidc.audience, "aof");
    assert_eq!(c.warnings().len(), 1, "{:?}", c.warnings());
    let w = &c.warnings()[0];
    assert!(
        w.contains("auth.oidc_audience")
            && w.contains("AOF_OIDC_AUDIENCE")
            && w.contains("wins over AUTH0_AUDIENCE"),
        "{w}"
    );

    // Auth off: the reference ignores its Auth0 settings, and so does AOF.
    let c = load(&[
        ("AUTH0_DOMAIN", "tenant.example.com"),
        ("AUTH0_AUDIENCE", "a"),
    ]);
    assert!(c.auth().unwrap().oidc.is_none());

    // A domain without an audience is refused, naming both ways to give one.
    let c = load(&[
        ("AUTH_ENABLED", "true"),
        ("AUTH0_DOMAIN", "tenant.example.com"),
    ]);
    let e = c.auth().unwrap_err().to_string();
    assert!(
        e.contains("auth.oidc_audience (AOF_OIDC_AUDIENCE or AUTH0_AUDIENCE)"),
        "{e}"
    );
}

#[test]
fn auth0_domains_become_base_urls() {
    for (domain, base) in [
        ("tenant.eu.auth0.com", "https://tenant.eu.auth0.com"),
        ("tenant.eu.auth0.com/", "https://tenant.eu.auth0.com"),
        (
            "https://tenant.eu.auth0.com/",
            "https://tenant.eu.auth0.com",
        ),
        ("127.0.0.1:9000", "http://127.0.0.1:9000"),
        ("localhost:9000", "http://localhost:9000"),
        ("[::1]:9000", "http://[::1]:9000"),
        ("10.0.0.1:9000", "https://10.0.0.1:9000"),
        ("localhost.evil.test", "https://localhost.evil.test"),
        ("http://idp.internal", "http://idp.internal"),
    ] {
        assert_eq!(auth0_base(domain), base, "{domain}");
    }
    // Plain http away from loopback is kept as written, and refused where it is used.
    let c = load(&[
        ("AUTH_ENABLED", "true"),
        ("AUTH0_DOMAIN", "http://idp.internal"),
        ("AUTH0_AUDIENCE", "a"),
    ]);
    let e = c.auth().unwrap_err().to_string();
    assert!(e.contains("plain http to a non-loopback host"), "{e}");
}

#[test]
fn the_readme_table_names_each_variable_once() {
    let t = markdown_table();
    for r in REFERENCE_VARS {
        assert_eq!(
            t.matches(&format!("| `{}` |", r.name)).count(),
            1,
            "{}",
            r.name
        );
    }
    assert!(t.contains("| `DOCS_ENABLED` | coordinator | accepted: alias of `AOF_DOCS_ENABLED`"));
    assert!(t.contains("| `MCP_PORT` | runner | refused (one warning at start): "));
    // Once README.md embeds it between markers, it must stay the generated table.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let (start, end) = (
        "<!-- reference-vars:start -->\n",
        "<!-- reference-vars:end -->",
    );
    if let (Some(a), Some(b)) = (readme.find(start), readme.find(end)) {
        assert_eq!(
            &readme[a + start.len()..b],
            t,
            "README.md: the reference variable table is stale; regenerate it with `aof config table --reference`"
        );
    }
}
