//! Secret-looking values in MCP configs (a registry entry's `default_config`, an agent's
//! or capability's `config`): masked as `***` for readers who may not edit them, and
//! never stored as `***` when a client sends a masked view back.

use serde_json::{Map, Value};

use crate::{BlueprintError, Result};

type ConfigSchema = std::collections::BTreeMap<String, aof_wire::agents::ConfigSchemaField>;

/// What a masked value reads as.
pub const MASK: &str = "***";

/// Keys whose values are secrets (HTTP headers like `Authorization`, `X-Api-Key`, a
/// `token`…), and `env`, whose every value is. Errs on masking too much.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k == "env"
        || k == "environment"
        || [
            "token",
            "secret",
            "pass",
            "key",
            "auth",
            "credential",
            "cookie",
            "private",
        ]
        .iter()
        .any(|w| k.contains(w))
}

/// Replaces, in place, every value under a secret-looking key, or a top-level key the
/// entry's `config_schema` marks `sensitive`, with `***`.
pub fn mask(config: &mut Map<String, Value>, sensitive: &[String]) {
    for (k, v) in config.iter_mut() {
        if is_secret_key(k) || sensitive.contains(k) {
            mask_all(v);
        } else {
            mask_within(v);
        }
    }
}

fn mask_all(v: &mut Value) {
    match v {
        Value::Object(o) => o.values_mut().for_each(mask_all),
        Value::Array(a) => a.iter_mut().for_each(mask_all),
        Value::Null => {}
        other => *other = Value::String(MASK.into()),
    }
}

fn mask_within(v: &mut Value) {
    match v {
        Value::Object(o) => mask(o, &[]),
        Value::Array(a) => a.iter_mut().for_each(mask_within),
        _ => {}
    }
}

/// Before `config` (named `field` in errors) is stored: a `***` where [`mask`] would
/// have put one is a masked view sent back, so it takes the stored value at the same
/// place from `stored`; with nothing stored there it is refused (a secret is never
/// overwritten with, or set to, `***`).
pub fn unmask(
    config: &mut Map<String, Value>,
    stored: Option<&Map<String, Value>>,
    sensitive: &[String],
    field: &str,
) -> Result<()> {
    for (k, v) in config.iter_mut() {
        let old = stored.and_then(|s| s.get(k));
        let secret = is_secret_key(k) || sensitive.contains(k);
        unmask_value(v, old, secret, &format!("{field}.{k}"))?;
    }
    Ok(())
}

fn unmask_map(
    config: &mut Map<String, Value>,
    stored: Option<&Map<String, Value>>,
    secret: bool,
    path: &str,
) -> Result<()> {
    for (k, v) in config.iter_mut() {
        let old = stored.and_then(|s| s.get(k));
        unmask_value(v, old, secret || is_secret_key(k), &format!("{path}.{k}"))?;
    }
    Ok(())
}

pub(crate) fn unmask_value(
    v: &mut Value,
    old: Option<&Value>,
    secret: bool,
    path: &str,
) -> Result<()> {
    match v {
        Value::String(s) if secret && s == MASK => match old {
            Some(o) if o.as_str() != Some(MASK) && !o.is_object() && !o.is_array() => {
                *v = o.clone();
                Ok(())
            }
            _ => Err(BlueprintError::Invalid(format!(
                "{path} is '{MASK}', the masked view of a secret, and no value is stored there to keep: send the real value"
            ))),
        },
        Value::Object(m) => unmask_map(m, old.and_then(Value::as_object), secret, path),
        Value::Array(a) => {
            for (i, x) in a.iter_mut().enumerate() {
                unmask_value(x, old.and_then(|o| o.get(i)), secret, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// [`unmask`] for the `config` of each `{ref, config}` entry of an agent's or a
/// capability's `mcp_servers` (nothing stored to keep: a `***` is refused).
pub fn refuse_masked_entries(servers: &Map<String, Value>) -> Result<()> {
    for (name, entry) in servers {
        if let Some(cfg) = entry.get("config").and_then(Value::as_object) {
            unmask(
                &mut cfg.clone(),
                None,
                &[],
                &format!("mcp_servers.{name}.config"),
            )?;
        }
    }
    Ok(())
}

/// [`mask`] for the `config` of each entry of an agent's or capability's `mcp_servers`.
pub fn mask_entries(servers: &mut Map<String, Value>) {
    for entry in servers.values_mut() {
        if let Some(cfg) = entry.get_mut("config").and_then(Value::as_object_mut) {
            mask(cfg, &[]);
        }
    }
}

/// The top-level config keys a `config_schema` marks `sensitive`.
pub fn sensitive_keys(schema: Option<&ConfigSchema>) -> Vec<String> {
    schema
        .into_iter()
        .flatten()
        .filter(|(_, f)| f.sensitive)
        .map(|(k, _)| k.clone())
        .collect()
}

/// Before a `config_schema` is stored: the `default` of a sensitive field sent back as
/// `***` keeps the stored one (from `stored`, the stored schema as JSON), or is refused.
pub fn unmask_schema(schema: &mut ConfigSchema, stored: Option<&Value>) -> Result<()> {
    for (k, f) in schema.iter_mut().filter(|(_, f)| f.sensitive) {
        if let Some(d) = &mut f.default {
            let old = stored.and_then(|s| s.get(k)).and_then(|f| f.get("default"));
            unmask_value(d, old, true, &format!("config_schema.{k}.default"))?;
        }
    }
    Ok(())
}

/// An MCP registry entry as a reader who may not edit it sees it: `default_config`
/// masked, and the schema's `default` of every sensitive field.
pub fn mask_entry(entry: &mut aof_wire::agents::McpServerEntry) {
    let sensitive = sensitive_keys(entry.config_schema.as_ref());
    if let Some(c) = &mut entry.default_config {
        mask(c, &sensitive);
    }
    for (_, f) in entry.config_schema.iter_mut().flatten() {
        if f.sensitive {
            if let Some(d) = &mut f.default {
                mask_all(d);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn masks_secret_keys_headers_and_env_only() {
        let mut c = obj(json!({
            "Authorization": "Bearer ghp_x", "X-Api-Key": "k1", "timeout": 5,
            "headers": {"Authorization": "Bearer y", "Accept": "json"},
            "env": {"HOME": "/h", "n": 1}, "token": {"a": ["t1", 2]}, "url_base": "https://x",
            "password": null, "plain": "s"
        }));
        mask(&mut c, &["plain".to_string()]);
        assert_eq!(
            Value::Object(c),
            json!({
                "Authorization": "***", "X-Api-Key": "***", "timeout": 5,
                "headers": {"Authorization": "***", "Accept": "json"},
                "env": {"HOME": "***", "n": "***"}, "token": {"a": ["***", "***"]},
                "url_base": "https://x", "password": null, "plain": "***"
            })
        );
    }

    #[test]
    fn a_masked_view_sent_back_keeps_the_stored_secrets() {
        let stored =
            obj(json!({"headers": {"Authorization": "Bearer real"}, "token": "t", "n": 1}));
        let mut view = stored.clone();
        mask(&mut view, &[]);
        view.insert("n".into(), json!(2));
        unmask(&mut view, Some(&stored), &[], "default_config").unwrap();
        assert_eq!(
            Value::Object(view),
            json!({"headers": {"Authorization": "Bearer real"}, "token": "t", "n": 2})
        );
        // A new secret set to `***`, or `***` with nothing stored: refused, naming it.
        let mut c = obj(json!({"headers": {"X-Token": "***"}}));
        let e = unmask(&mut c, Some(&stored), &[], "default_config").unwrap_err();
        assert!(
            e.to_string().contains("default_config.headers.X-Token"),
            "{e}"
        );
        assert!(unmask(&mut obj(json!({"token": "***"})), None, &[], "c").is_err());
        // `***` at a key that is not a secret is just a value, unless the schema says so.
        let mut c = obj(json!({"note": "***"}));
        unmask(&mut c, None, &[], "c").unwrap();
        assert_eq!(c["note"], "***");
        assert!(unmask(&mut c, None, &["note".to_string()], "c").is_err());
    }
}
