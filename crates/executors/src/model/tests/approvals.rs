//! Approval gating of tool calls, on the recorded `tool` exchange and the real MCP
//! calculator. The approver here answers at once with a set answer: it stands in for
//! the person behind the coordinator (the runner's HTTP approver and the coordinator
//! are covered end to end in `aof-runner`'s tests).

use std::sync::{Arc, Mutex};

use super::*;
use crate::approval::{ApprovalAnswer, ApprovalPolicy, Approvals, Approver, JsonObject};

#[derive(Default)]
struct Reviewer {
    answer: Mutex<Option<ApprovalAnswer>>,
    asked: Mutex<Vec<(String, Value, String)>>,
}

#[async_trait::async_trait]
impl Approver for Reviewer {
    async fn ask(&self, tool: &str, input: &JsonObject, key: &str) -> ApprovalAnswer {
        self.asked.lock().unwrap().push((
            tool.to_string(),
            Value::Object(input.clone()),
            key.to_string(),
        ));
        self.answer
            .lock()
            .unwrap()
            .clone()
            .expect("an answer is set")
    }
}

fn approvals(tools: &[&str], reviewer: Option<Arc<Reviewer>>) -> Approvals {
    Approvals {
        policy: ApprovalPolicy {
            tools: tools.iter().map(|t| t.to_string()).collect(),
            ..Default::default()
        },
        floor: ApprovalPolicy::default(),
        approver: reviewer.map(|r| r as Arc<dyn Approver>),
    }
}

fn reviewer(answer: ApprovalAnswer) -> Arc<Reviewer> {
    let r = Reviewer::default();
    *r.answer.lock().unwrap() = Some(answer);
    Arc::new(r)
}

/// Runs the recorded tool conversation with `approval`: the outcome, the events, the
/// calls the MCP server got and the requests the model endpoint got.
async fn run_gated(
    approval: Approvals,
) -> (
    Outcome,
    Vec<ExecEvent>,
    Vec<aof_testkit::mcp::Call>,
    Vec<Value>,
) {
    let replay = Replay::start(fixture("tool")).await.unwrap();
    let tools = ToolServer::start().await.unwrap();
    let exec = ModelExecutor::new(config(&replay.base_url())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = mpsc::channel(1024);
    let cx = ExecCx {
        workdir: dir.path().to_path_buf(),
        env: Default::default(),
        cancel: CancellationToken::new(),
        events: tx,
        stop_grace: Duration::from_secs(2),
        state_dir: dir.path().to_path_buf(),
        session_dir: dir.path().to_path_buf(),
        agent: Default::default(),
        approval,
    };
    let ex = exec
        .start(job("r1", TOOL_PROMPT, Some(&tools.url())), cx)
        .await
        .unwrap();
    let collect = async {
        let mut out = Vec::new();
        while let Some(ev) = rx.recv().await {
            out.push(ev);
        }
        out
    };
    let (outcome, events) = tokio::join!(ex.done, collect);
    (
        outcome.unwrap().unwrap(),
        events,
        tools.calls(),
        replay.requests(),
    )
}

fn last_message(request: &Value) -> Value {
    request["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn an_approved_call_runs_after_the_reviewer_said_yes() {
    let r = reviewer(ApprovalAnswer::Allow {
        updated_input: None,
    });
    let (outcome, events, calls, _) = run_gated(approvals(&["add"], Some(r.clone()))).await;
    // As recorded without approvals: two steps, each calling the tool.
    assert!(matches!(outcome, Outcome::Failed { ref error } if error.contains("max_steps")));
    assert_eq!(calls.len(), 2);
    let asked = r.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 2, "{asked:?}");
    let pre = of_type(&events, "pre_tool");
    for (i, (tool, input, key)) in asked.iter().enumerate() {
        assert_eq!(tool, "add");
        assert_eq!(input, &json!({"a": 17, "b": 25}));
        // Unique in the run: step, index in the step, the model's call id.
        let id = pre[i]["content"][0]["id"].as_str().unwrap();
        assert_eq!(key, &format!("{}/0/{id}", i + 1));
    }
    assert!(of_type(&events, "post_tool")
        .iter()
        .all(|p| p["content"][0]["text"] == "42"));
}

#[tokio::test]
async fn a_policy_may_name_the_tool_by_its_mcp_name() {
    let r = reviewer(ApprovalAnswer::Allow {
        updated_input: None,
    });
    let (_, _, calls, _) = run_gated(approvals(&["mcp__calc__*"], Some(r.clone()))).await;
    assert_eq!(calls.len(), 2);
    assert_eq!(r.asked.lock().unwrap().len(), 2);
    // Not listed: never asked.
    let r = reviewer(ApprovalAnswer::deny("unused"));
    let (_, _, calls, _) = run_gated(approvals(&["mcp__other__*", "Bash"], Some(r.clone()))).await;
    assert_eq!(calls.len(), 2);
    assert!(r.asked.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_denied_call_is_not_run_and_the_model_reads_the_denial() {
    let r = reviewer(ApprovalAnswer::deny("Denied by reviewer: not now"));
    let (outcome, events, calls, requests) = run_gated(approvals(&["add"], Some(r))).await;
    assert!(calls.is_empty(), "the tool ran: {calls:?}");
    let pre = of_type(&events, "pre_tool");
    let post = of_type(&events, "post_tool");
    let id = pre[0]["content"][0]["id"].clone();
    assert_eq!(post[0]["error"], "Denied by reviewer: not now");
    assert_eq!(post[0]["tool_output"], Value::Null);
    assert_eq!(post[0]["content"][0]["tool_call_id"], id);
    // The second request gives the model the denial as the call's result (the recording
    // has no answer to it, so the replay ends the run there).
    assert_eq!(
        last_message(&requests[1]),
        json!({"role": "tool", "tool_call_id": id, "content": "Denied by reviewer: not now"})
    );
    assert!(matches!(outcome, Outcome::Failed { ref error } if error.contains("step 2")));
}

#[tokio::test]
async fn an_approval_may_change_the_input() {
    let updated = json!({"a": 1, "b": 2}).as_object().unwrap().clone();
    let r = reviewer(ApprovalAnswer::Allow {
        updated_input: Some(updated),
    });
    let (_, events, calls, requests) = run_gated(approvals(&["add"], Some(r))).await;
    assert_eq!(calls[0].arguments, json!({"a": 1, "b": 2}));
    let post = of_type(&events, "post_tool");
    assert_eq!(post[0]["tool_input"], json!({"a": 1, "b": 2}));
    assert_eq!(last_message(&requests[1])["content"], "3");
}

#[tokio::test]
async fn without_an_approver_a_listed_call_is_denied_never_run() {
    let (_, events, calls, requests) = run_gated(approvals(&["add"], None)).await;
    assert!(calls.is_empty());
    assert_eq!(
        of_type(&events, "post_tool")[0]["error"],
        crate::approval::NO_APPROVER
    );
    assert_eq!(
        last_message(&requests[1])["content"],
        crate::approval::NO_APPROVER
    );
}
