//! Run parameter validation against the agent's `parameters_schema` (JSON Schema
//! draft 7), or the implicit schema: exactly `{"prompt": "<non-empty string>"}`.

use serde_json::{json, Value};

use crate::BlueprintError;

pub fn implicit_schema() -> Value {
    json!({
        "type": "object",
        "required": ["prompt"],
        "properties": {"prompt": {"type": "string", "minLength": 1}},
        "additionalProperties": false,
    })
}

/// Validates `params`; the error is the reference's 400 detail object.
pub fn validate(
    params: &Value,
    schema: Option<&Value>,
    agent: Option<&str>,
) -> Result<(), BlueprintError> {
    let schema = schema.cloned().unwrap_or_else(implicit_schema);
    let validator = jsonschema::draft7::new(&schema).map_err(|e| {
        BlueprintError::Unresolvable(format!(
            "agent '{}' has an invalid parameters_schema: {e}",
            agent.unwrap_or("(no agent)")
        ))
    })?;
    let errors: Vec<Value> = validator
        .iter_errors(params)
        .map(|e| {
            let ptr = e.instance_path().to_string();
            let path = if ptr.is_empty() {
                "$".to_string()
            } else {
                format!("${}", ptr.replace('/', "."))
            };
            let schema_path = e.schema_path().to_string();
            json!({
                "path": path,
                "message": e.to_string(),
                "schema_path": schema_path.trim_start_matches('/'),
            })
        })
        .collect();
    if errors.is_empty() {
        return Ok(());
    }
    Err(BlueprintError::RunRejected(json!({
        "error": "parameter_validation_failed",
        "message": "Parameters do not match agent's parameters_schema",
        "agent_name": agent.unwrap_or("(no agent)"),
        "validation_errors": errors,
        "parameters_schema": schema,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implicit_and_custom() {
        assert!(validate(&json!({"prompt": "hi"}), None, None).is_ok());
        for bad in [
            json!({}),
            json!({"prompt": ""}),
            json!({"prompt": 1}),
            json!({"prompt": "x", "y": 1}),
        ] {
            let Err(BlueprintError::RunRejected(d)) = validate(&bad, None, None) else {
                panic!("{bad}")
            };
            assert_eq!(d["error"], "parameter_validation_failed");
            assert_eq!(d["agent_name"], "(no agent)");
            assert!(!d["validation_errors"].as_array().unwrap().is_empty());
        }
        let schema = json!({"type": "object", "required": ["topic"], "properties": {"topic": {"type": "string"}, "n": {"type": "integer"}}});
        assert!(validate(&json!({"topic": "x", "n": 2}), Some(&schema), Some("a")).is_ok());
        let Err(BlueprintError::RunRejected(d)) =
            validate(&json!({"topic": "x", "n": "two"}), Some(&schema), Some("a"))
        else {
            panic!()
        };
        assert_eq!(d["validation_errors"][0]["path"], "$.n");
        assert_eq!(d["agent_name"], "a");
    }
}
