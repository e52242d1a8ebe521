//! `model_api`: an agent loop on any OpenAI-compatible chat-completions endpoint
//! (Ollama, vLLM, LiteLLM, llama.cpp's server, OpenAI) with native tool calling.
//!
//! Each step streams one completion (`api`): text arrives as `message_delta` events,
//! then the step is one assistant `message` (text plus `tool_call` blocks, with the
//! step's usage in `result_data`). Tool calls go to the MCP servers that offered them
//! (`tools`), each shown as `pre_tool`/`post_tool`, and their results go back as `tool`
//! messages. The loop ends on an answer without tool calls (completed), or fails on
//! `max_steps` or an endpoint error, saying which. After each step the run's usage so
//! far goes out as `ExecEvent::Usage`; `timeout_seconds` and `token_budget` are run
//! limits the runner enforces (see `ExecutorConfig::limits`), stopping the run here
//! through its cancel token.
//!
//! No state is kept here: a resume rebuilds the conversation from the session's
//! stored events (`history`), which the runner reads from the coordinator.

mod api;
mod history;
mod tools;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use self::{
    api::{Api, Reply},
    tools::Toolbox,
};
use crate::{
    approval::{ApprovalAnswer, Approvals},
    ExecCx, ExecError, ExecEvent, Execution, Executor, Job, Outcome,
};

/// Steps (model calls) per run when `max_steps` is not set.
pub const DEFAULT_MAX_STEPS: u32 = 20;
/// Retries of a failed request when `retries` is not set.
pub const DEFAULT_RETRIES: u32 = 3;

/// Settings of the `model_api` executor (a blueprint's `executor`). The API key is
/// never part of them: `api_key_env` names a variable of the runner's environment,
/// `api_key_file` a file on the runner; an inline `api_key` is refused.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelApiConfig {
    /// The API root, e.g. `http://127.0.0.1:11434/v1`; requests go to
    /// `<base_url>/chat/completions`.
    pub base_url: String,
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_file: Option<String>,
    /// Only here to refuse it with a clear message.
    #[serde(default, skip_serializing)]
    pub api_key: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling seed, for reproducible answers where the server supports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Model calls per run (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<u32>,
    /// Wall-clock limit of one run; none by default (a run limit, enforced by the runner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<f64>,
    /// Total tokens (prompt + completion, as the endpoint reports them) one run may
    /// use; the runner fails the run once a step takes it past this (its `max_tokens`
    /// run limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_budget: Option<u64>,
    /// Retries of a request that failed before streaming (429, 5xx, connection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
}

impl ModelApiConfig {
    pub(crate) fn validate(&self) -> Result<(), ExecError> {
        let bad = |m: String| Err(ExecError::BadParameters(format!("model_api: {m}")));
        if self.api_key.is_some() {
            return bad(
                "an inline api_key is not allowed (blueprints are readable by every \
                 operator); name a runner environment variable with api_key_env or a file \
                 with api_key_file"
                    .into(),
            );
        }
        if self.api_key_env.is_some() && self.api_key_file.is_some() {
            return bad("give api_key_env or api_key_file, not both".into());
        }
        if let Some(var) = self
            .api_key_env
            .as_deref()
            .filter(|v| crate::isolation::never_passed(v))
        {
            // Sent as a bearer token to `base_url`, which the blueprint chooses.
            return bad(format!(
                "api_key_env may not name {var}: AOF_* variables hold the runner's own \
                 settings and credentials"
            ));
        }
        if matches!(self.api_key_env.as_deref(), Some(""))
            || matches!(self.api_key_file.as_deref(), Some(""))
        {
            return bad("api_key_env / api_key_file must not be empty".into());
        }
        match reqwest::Url::parse(&self.base_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => {
                return bad(format!(
                    "base_url must be an http(s) URL, not '{}'",
                    self.base_url
                ))
            }
        }
        if self.model.is_empty() {
            return bad("model must not be empty".into());
        }
        if self.max_steps == Some(0) {
            return bad("max_steps must be at least 1".into());
        }
        if self.token_budget == Some(0) {
            return bad("token_budget must be at least 1".into());
        }
        if let Some(t) = self.temperature {
            if !(0.0..=2.0).contains(&t) {
                return bad(format!("temperature must be between 0 and 2, not {t}"));
            }
        }
        crate::timeout(self.timeout_seconds)
            .map_err(|e| ExecError::BadParameters(format!("model_api: {e}")))?;
        Ok(())
    }

    /// The key, read on the runner when a run starts.
    fn api_key(&self) -> Result<Option<String>, String> {
        if let Some(var) = &self.api_key_env {
            return match std::env::var(var) {
                Ok(k) if !k.is_empty() => Ok(Some(k)),
                _ => Err(format!("api_key_env: the runner has no variable {var} set")),
            };
        }
        if let Some(path) = &self.api_key_file {
            // Not the runner's own process (`/proc/self/environ` holds its key) or devices:
            // this process reads the file, and sends it to a URL the blueprint chose.
            let real =
                std::fs::canonicalize(path).map_err(|e| format!("api_key_file {path}: {e}"))?;
            if ["/proc", "/sys", "/dev"]
                .iter()
                .any(|p| real.starts_with(p))
                || !real.is_file()
            {
                return Err(format!(
                    "api_key_file {path}: must be a regular file (not under /proc, /sys or /dev)"
                ));
            }
            return match std::fs::read_to_string(&real) {
                Ok(k) if !k.trim().is_empty() => Ok(Some(k.trim().to_string())),
                Ok(_) => Err(format!("api_key_file {path} is empty")),
                Err(e) => Err(format!("api_key_file {path}: {e}")),
            };
        }
        Ok(None)
    }
}

pub struct ModelExecutor {
    cfg: ModelApiConfig,
    http: reqwest::Client,
    /// First retry delay (shortened by tests).
    backoff_base: Duration,
}

impl ModelExecutor {
    pub fn new(cfg: ModelApiConfig) -> Result<ModelExecutor, ExecError> {
        cfg.validate()?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ExecError::Unavailable(format!("model_api: HTTP client: {e}")))?;
        Ok(ModelExecutor {
            cfg,
            http,
            backoff_base: api::BACKOFF_BASE,
        })
    }

    #[cfg(test)]
    pub(crate) fn with_backoff(mut self, base: Duration) -> ModelExecutor {
        self.backoff_base = base;
        self
    }
}

#[async_trait]
impl Executor for ModelExecutor {
    fn kind(&self) -> &'static str {
        "model_api"
    }

    fn wants_history(&self) -> bool {
        true
    }

    async fn start(&self, job: Job, cx: ExecCx) -> Result<Execution, ExecError> {
        let key = self
            .cfg
            .api_key()
            .map_err(|e| ExecError::BadParameters(format!("model_api: {e}")))?;
        let api = Api {
            http: self.http.clone(),
            url: format!(
                "{}/chat/completions",
                self.cfg.base_url.trim_end_matches('/')
            ),
            key,
            retries: self.cfg.retries.unwrap_or(DEFAULT_RETRIES),
            backoff_base: self.backoff_base,
        };
        let run = Run {
            cfg: Arc::new(self.cfg.clone()),
            api,
        };
        Ok(Execution {
            done: tokio::spawn(run.supervise(job, cx)),
        })
    }
}

struct Run {
    cfg: Arc<ModelApiConfig>,
    api: Api,
}

/// Token counts of a step or a run.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Usage {
    prompt: u64,
    completion: u64,
    total: u64,
}

impl Usage {
    fn of(v: Option<&Value>) -> Usage {
        let get = |k: &str| {
            v.and_then(|u| u.get(k))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        let (prompt, completion) = (get("prompt_tokens"), get("completion_tokens"));
        let total = match get("total_tokens") {
            0 => prompt + completion,
            t => t,
        };
        Usage {
            prompt,
            completion,
            total,
        }
    }

    fn add(&mut self, o: Usage) {
        self.prompt += o.prompt;
        self.completion += o.completion;
        self.total += o.total;
    }

    fn json(&self) -> Value {
        json!({"prompt_tokens": self.prompt, "completion_tokens": self.completion,
               "total_tokens": self.total})
    }
}

impl Run {
    async fn supervise(self, job: Job, cx: ExecCx) -> Result<Outcome, ExecError> {
        let token = cx.env.get("AOF_SESSION_TOKEN").cloned();
        let servers = tools::servers(&job, token.as_deref());
        let connected = tokio::select! {
            tb = Toolbox::connect(&servers) => tb,
            _ = cx.cancel.cancelled() => return Ok(Outcome::Stopped),
        };
        let toolbox = match connected {
            Ok(tb) => tb,
            Err(e) => {
                return Ok(Outcome::Failed {
                    error: format!("model_api: {e}"),
                })
            }
        };
        for w in &toolbox.warnings {
            let _ = cx
                .events
                .send(ExecEvent::Raw {
                    data: json!({"warning": w}),
                })
                .await;
        }
        let outcome = tokio::select! {
            o = self.agent_loop(&job, &toolbox, &cx.approval, &cx.events) => o,
            _ = cx.cancel.cancelled() => Outcome::Stopped,
        };
        toolbox.close().await;
        Ok(outcome)
    }

    fn request(&self, messages: &[Value], tools: &[Value]) -> Value {
        let c = &self.cfg;
        let mut body = Map::new();
        body.insert("model".into(), c.model.clone().into());
        body.insert("messages".into(), Value::Array(messages.to_vec()));
        body.insert("stream".into(), true.into());
        body.insert("stream_options".into(), json!({"include_usage": true}));
        if !tools.is_empty() {
            body.insert("tools".into(), Value::Array(tools.to_vec()));
        }
        if let Some(t) = c.temperature {
            body.insert("temperature".into(), t.into());
        }
        if let Some(m) = c.max_tokens {
            body.insert("max_tokens".into(), m.into());
        }
        if let Some(s) = c.seed {
            body.insert("seed".into(), s.into());
        }
        Value::Object(body)
    }

    async fn agent_loop(
        &self,
        job: &Job,
        toolbox: &Toolbox,
        approvals: &Approvals,
        events: &mpsc::Sender<ExecEvent>,
    ) -> Outcome {
        let mut messages = Vec::new();
        if let Some(sp) = &job.system_prompt {
            messages.push(json!({"role": "system", "content": sp}));
        }
        if let Some(h) = &job.history {
            messages.extend(history::messages(h, &job.run_id));
        }
        messages.push(json!({"role": "user", "content": job.prompt}));
        let specs = toolbox.specs();
        let max_steps = self.cfg.max_steps.unwrap_or(DEFAULT_MAX_STEPS);
        let mut used = Usage::default();
        for step in 1..=max_steps {
            let body = self.request(&messages, &specs);
            let reply = match self.api.step(&body, events).await {
                Ok(r) => r,
                Err(e) => {
                    return Outcome::Failed {
                        error: format!("model_api: step {step}: {e}"),
                    }
                }
            };
            let step_usage = Usage::of(reply.usage.as_ref());
            used.add(step_usage);
            let calls = with_ids(&reply, step);
            let _ = events
                .send(assistant_event(&reply, &calls, step, step_usage))
                .await;
            let _ = events
                .send(ExecEvent::Usage {
                    usage: crate::Usage {
                        // The endpoint's total may count more than prompt + completion.
                        input_tokens: used.total.saturating_sub(used.completion),
                        output_tokens: used.completion,
                        cost_usd: None,
                    },
                })
                .await;
            if calls.is_empty() {
                return Outcome::Completed {
                    result_text: Some(reply.text.clone()),
                    result_data: Some(json!({
                        "model": self.cfg.model,
                        "steps": step,
                        "finish_reason": reply.finish_reason,
                        "usage": used.json(),
                    })),
                };
            }
            let mut assistant = json!({"role": "assistant", "content": reply.text});
            assistant["tool_calls"] = calls
                .iter()
                .map(|c| {
                    json!({"id": c.id, "type": "function",
                                "function": {"name": c.name, "arguments": c.arguments}})
                })
                .collect();
            messages.push(assistant);
            for (i, call) in calls.iter().enumerate() {
                let text = call_tool(
                    toolbox,
                    approvals,
                    call,
                    &format!("{step}/{i}/{}", call.id),
                    events,
                )
                .await;
                messages.push(json!({"role": "tool", "tool_call_id": call.id, "content": text}));
            }
        }
        Outcome::Failed {
            error: format!(
                "model_api: max_steps ({max_steps}) reached without a final answer (the model kept calling tools)"
            ),
        }
    }
}

/// One tool call, shown as `pre_tool` then `post_tool`; the text the model gets back.
/// A call the approval policy lists waits for a decision first: denied, the tool is
/// not called and its result is the denial (`post_tool` with that `error`, so a resume
/// rebuilds the same conversation); approved, it runs with the reviewer's input if
/// one was given. `request_key` is unique in the run, so a retried ask finds the same
/// approval.
async fn call_tool(
    toolbox: &Toolbox,
    approvals: &Approvals,
    call: &api::ToolCall,
    request_key: &str,
    events: &mpsc::Sender<ExecEvent>,
) -> String {
    let mut input = serde_json::from_str::<Value>(&call.arguments)
        .ok()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({"arguments": call.arguments}));
    let _ = events
        .send(ExecEvent::Structured {
            event: json!({"event_type": "pre_tool", "tool_name": call.name,
                "tool_input": input,
                "content": [{"type": "tool_call", "id": call.id}]}),
        })
        .await;
    let mut arguments = call.arguments.clone();
    if approvals.requires(toolbox.names(&call.name).iter().map(String::as_str)) {
        let asked = input.as_object().cloned().unwrap_or_default();
        match approvals.ask(&call.name, &asked, request_key).await {
            ApprovalAnswer::Allow {
                updated_input: Some(updated),
            } => {
                arguments = Value::Object(updated.clone()).to_string();
                input = Value::Object(updated);
            }
            ApprovalAnswer::Allow {
                updated_input: None,
            } => {}
            ApprovalAnswer::Deny { message } => {
                let ev = json!({"event_type": "post_tool", "tool_name": call.name,
                    "tool_input": input, "tool_output": Value::Null, "error": message,
                    "content": [{"type": "tool_result", "tool_call_id": call.id, "text": message}]});
                let _ = events.send(ExecEvent::Structured { event: ev }).await;
                return message;
            }
        }
    }
    let out = toolbox.call(&call.name, &arguments).await;
    let mut ev = json!({"event_type": "post_tool", "tool_name": call.name,
        "tool_input": input, "tool_output": out.output,
        "content": [{"type": "tool_result", "tool_call_id": call.id, "text": out.text}]});
    if let Some(e) = &out.error {
        ev["error"] = e.clone().into();
    }
    let _ = events.send(ExecEvent::Structured { event: ev }).await;
    out.text
}

/// The step's tool calls, each with an id (servers that send none get `call_<step>_<n>`).
fn with_ids(reply: &Reply, step: u32) -> Vec<api::ToolCall> {
    reply
        .tool_calls
        .iter()
        .enumerate()
        .map(|(i, c)| api::ToolCall {
            id: if c.id.is_empty() {
                format!("call_{step}_{i}")
            } else {
                c.id.clone()
            },
            ..c.clone()
        })
        .collect()
}

/// The step as one assistant `message`: its text, its tool calls (what a resume needs
/// to rebuild the conversation) and the step's usage.
fn assistant_event(reply: &Reply, calls: &[api::ToolCall], step: u32, usage: Usage) -> ExecEvent {
    let mut content = Vec::new();
    if !reply.text.is_empty() || calls.is_empty() {
        content.push(json!({"type": "text", "text": reply.text}));
    }
    for c in calls {
        content.push(
            json!({"type": "tool_call", "id": c.id, "name": c.name, "arguments": c.arguments}),
        );
    }
    let mut data =
        json!({"step": step, "finish_reason": reply.finish_reason, "usage": usage.json()});
    if reply.attempts > 1 {
        data["attempts"] = reply.attempts.into();
    }
    if !reply.reasoning.is_empty() {
        data["reasoning"] = reply.reasoning.clone().into();
    }
    ExecEvent::Structured {
        event: json!({"event_type": "message", "role": "assistant", "content": content,
                      "result_data": data}),
    }
}

#[cfg(test)]
mod tests;
