//! Request extractors that fail the way FastAPI does (422, `detail` a list), so AOF
//! clients that parse those errors keep working.

use aof_wire::error::ErrorCode;
use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request},
    http::request::Parts,
};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

fn item(
    kind: &str,
    loc: Vec<serde_json::Value>,
    msg: &str,
    input: serde_json::Value,
) -> serde_json::Value {
    serde_json::json!({"type": kind, "loc": loc, "msg": msg, "input": input})
}

/// Turns a serde error into one FastAPI-style item; `path` is where it happened.
fn from_serde(
    where_: &str,
    path: &serde_path_to_error::Path,
    err: &str,
    input: &serde_json::Value,
) -> serde_json::Value {
    let mut loc = vec![serde_json::Value::String(where_.into())];
    for seg in path.iter() {
        match seg {
            serde_path_to_error::Segment::Seq { index } => loc.push((*index).into()),
            serde_path_to_error::Segment::Map { key }
            | serde_path_to_error::Segment::Enum { variant: key } => loc.push(key.clone().into()),
            serde_path_to_error::Segment::Unknown => {}
        }
    }
    if let Some(rest) = err.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or_default();
        loc.push(field.into());
        return item("missing", loc, "Field required", input.clone());
    }
    if err.starts_with("unknown variant") {
        let expected = err.split("expected ").nth(1).unwrap_or("").to_string();
        let got = path_value(input, path);
        return serde_json::json!({
            "type": "enum", "loc": loc,
            "msg": format!("Input should be {expected}"),
            "input": got, "ctx": {"expected": expected},
        });
    }
    let got = path_value(input, path);
    let (kind, msg) = if err.contains("expected a string") {
        ("string_type", "Input should be a valid string".to_string())
    } else if err.contains("expected a map") || err.contains("expected struct") {
        (
            "dict_type",
            "Input should be a valid dictionary".to_string(),
        )
    } else if err.contains("expected a sequence") {
        ("list_type", "Input should be a valid list".to_string())
    } else if err.contains("expected a boolean") {
        ("bool_type", "Input should be a valid boolean".to_string())
    } else if err.contains("expected i64")
        || err.contains("expected u64")
        || err.contains("integer")
    {
        ("int_type", "Input should be a valid integer".to_string())
    } else {
        ("value_error", err.to_string())
    };
    item(kind, loc, &msg, got)
}

fn path_value(input: &serde_json::Value, path: &serde_path_to_error::Path) -> serde_json::Value {
    let mut cur = input;
    for seg in path.iter() {
        let next = match seg {
            serde_path_to_error::Segment::Seq { index } => cur.get(*index),
            serde_path_to_error::Segment::Map { key } => cur.get(key.as_str()),
            _ => None,
        };
        match next {
            Some(v) => cur = v,
            None => return serde_json::Value::Null,
        }
    }
    cur.clone()
}

/// Parses a JSON body value into `T`, with FastAPI-shaped errors.
pub fn parse_body<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::Validation(serde_json::json!([item(
            "model_attributes_type",
            vec!["body".into()],
            "Input should be a valid dictionary or object to extract fields from",
            value,
        )])));
    }
    serde_path_to_error::deserialize::<_, T>(&value).map_err(|e| {
        let path = e.path().clone();
        let msg = e.into_inner().to_string();
        ApiError::Validation(serde_json::json!([from_serde("body", &path, &msg, &value)]))
    })
}

/// JSON body extractor with FastAPI-compatible 422 errors.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = crate::auth::browser::declares_json(req.headers());
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge("Request body too large".into(), ErrorCode::BodyTooLarge)
            } else {
                ApiError::BadRequest(e.body_text(), ErrorCode::BadBody)
            }
        })?;
        json_only(json, &bytes)?;
        parse_bytes(&bytes).map(JsonBody)
    }
}

/// The middleware already refused non-JSON bodies (`auth::browser::check_body`); this
/// holds for a handler served without it too.
fn json_only(declared: bool, bytes: &[u8]) -> Result<(), ApiError> {
    if declared || bytes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType)
    }
}

fn parse_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::Validation(serde_json::json!([{
            "type": "json_invalid",
            "loc": ["body", e.column()],
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": e.to_string()},
        }]))
    })?;
    parse_body(value)
}

/// [`JsonBody`] with its own size cap instead of `AOF_MAX_BODY_BYTES`, for a route whose
/// bodies are larger by design (the event batch). Reads the raw body, which the
/// router-wide `DefaultBodyLimit` does not police.
pub async fn json_body_limited<T: DeserializeOwned>(
    req: Request,
    limit: usize,
) -> Result<T, ApiError> {
    let json = crate::auth::browser::declares_json(req.headers());
    let bytes = axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|e| {
            let e = e.into_inner();
            if e.is::<http_body_util::LengthLimitError>() {
                ApiError::TooLarge(
                    format!("Request body too large; the limit is {limit} bytes"),
                    ErrorCode::BodyTooLarge,
                )
            } else {
                ApiError::BadRequest(format!("Failed to read the body: {e}"), ErrorCode::BadBody)
            }
        })?;
    json_only(json, &bytes)?;
    parse_bytes(&bytes)
}

/// Query string as a map; handlers check required keys with `require`. A repeated key
/// is a 400: a map would keep one value while a check elsewhere may have read another.
pub struct QueryMap(pub std::collections::HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryMap {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let pairs = unique_query_pairs(parts.uri.query().unwrap_or(""))?;
        Ok(QueryMap(pairs.into_iter().collect()))
    }
}

fn query_pairs(q: &str) -> Vec<(String, String)> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(
        &format!("/?{q}").parse().unwrap_or_default(),
    )
    .map(|axum::extract::Query(v)| v)
    .unwrap_or_default()
}

/// The decoded query pairs, or 400 `repeated_query_key` when a key (after decoding)
/// occurs twice: `?session_id=mine&session_id=yours` must not pass a check on one and
/// be served the other.
pub fn unique_query_pairs(q: &str) -> Result<Vec<(String, String)>, ApiError> {
    let pairs = query_pairs(q);
    let mut seen = std::collections::HashSet::new();
    match pairs.iter().find(|(k, _)| !seen.insert(k.as_str())) {
        Some((k, _)) => Err(ApiError::BadRequest(
            format!("Query parameter '{k}' is repeated; give each parameter once"),
            ErrorCode::RepeatedQueryKey,
        )),
        None => Ok(pairs),
    }
}

impl QueryMap {
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }

    pub fn require(&self, k: &str) -> Result<&str, ApiError> {
        self.get(k).ok_or_else(|| {
            ApiError::Validation(serde_json::json!([item(
                "missing",
                vec!["query".into(), k.into()],
                "Field required",
                serde_json::Value::Null,
            )]))
        })
    }

    /// An optional integer parameter; a bad value is a 422 like FastAPI's.
    pub fn int(&self, k: &str) -> Result<Option<i64>, ApiError> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::Validation(serde_json::json!([item(
                    "int_parsing",
                    vec!["query".into(), k.into()],
                    "Input should be a valid integer, unable to parse string as an integer",
                    v.into(),
                )]))
            }),
        }
    }

    pub fn bool(&self, k: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(k).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some("false" | "0" | "no" | "off") => Ok(false),
            Some(v) => Err(ApiError::Validation(serde_json::json!([item(
                "bool_parsing",
                vec!["query".into(), k.into()],
                "Input should be a valid boolean, unable to interpret input",
                v.into(),
            )]))),
        }
    }
}
