//! Run limits, enforced here for every executor: a wall-clock deadline from the
//! executor's start, and a token/cost tally built from the executor's
//! `ExecEvent::Usage` reports. The execution loop asks `Budget` when to stop; a run past
//! a limit is stopped like any stop (the executor's SIGTERM → SIGKILL escalation) and
//! fails with the limit's reason. Executors never enforce these themselves.
//!
//! Precedence: each limit is the tightest of the runner's settings (`AOF_RUN_*`), the
//! agent blueprint's `limits` and the executor's own options (`timeout_seconds`,
//! model_api's `token_budget`) — an agent can narrow what the runner allows, never widen it.
//!
//! What the session shows: a `usage` event (limits, usage so far, elapsed time) when the
//! run starts with limits, whenever the reported usage changes, and when a limit is
//! exceeded (then with `reason`).

use std::time::Duration;

use aof_executors::{Outcome, Usage};
use aof_wire::{Event, RunLimits};
use serde_json::{json, Map, Value};
use tokio::time::Instant;

/// `event_type` of the session events this module writes.
pub(crate) const USAGE_EVENT: &str = "usage";

/// The limits of one run: the runner's, the blueprint's `limits` and those of the
/// executor that will run it (`executor`, from its options), tightest first. `Err` (a
/// blueprint `limits` that does not parse) is the run's failure message.
pub(crate) fn for_run(
    runner: RunLimits,
    executor: RunLimits,
    blueprint: Option<&Value>,
) -> Result<RunLimits, String> {
    let agent = RunLimits::from_blueprint(blueprint).map_err(|e| format!("agent {e}"))?;
    Ok(runner.tightest(agent).tightest(executor))
}

/// Which limit a run went past.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Breach {
    WallClock(f64),
    Tokens { limit: u64, used: u64 },
    Cost { limit: f64, used: f64 },
}

impl std::fmt::Display for Breach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Breach::WallClock(s) => write!(f, "wall-clock timeout {s}s exceeded"),
            Breach::Tokens { limit, used } => {
                write!(f, "token budget {limit} exceeded: {used} used")
            }
            Breach::Cost { limit, used } => {
                write!(f, "cost budget ${limit} exceeded: ${used:.4} used")
            }
        }
    }
}

/// The tally and deadline of one run. Owned by the execution loop.
pub(crate) struct Budget {
    limits: RunLimits,
    started: Instant,
    used: Usage,
    breach: Option<Breach>,
}

impl Budget {
    pub(crate) fn new(limits: RunLimits, started: Instant) -> Budget {
        Budget {
            limits,
            started,
            used: Usage::default(),
            breach: None,
        }
    }

    /// The event announcing the limits, if the run has any.
    pub(crate) fn start_event(&self, session_id: &str) -> Option<Event> {
        (!self.limits.is_empty()).then(|| self.event(session_id))
    }

    /// When the wall-clock limit runs out; `None` without one or once a limit is past.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let secs = self
            .limits
            .timeout_seconds
            .filter(|_| self.breach.is_none())?;
        Some(self.started + Duration::from_secs_f64(secs))
    }

    /// The limit the run went past, once it has.
    pub(crate) fn exceeded(&self) -> Option<&Breach> {
        self.breach.as_ref()
    }

    /// The deadline has come: the run is past its wall-clock limit. The event to log.
    pub(crate) fn time_out(&mut self, session_id: &str) -> Event {
        if self.breach.is_none() {
            self.breach = Some(Breach::WallClock(
                self.limits.timeout_seconds.unwrap_or_default(),
            ));
        }
        self.event(session_id)
    }

    /// An executor's usage report (its running total). The event to log when the tally
    /// changed. Each count only grows: a report without a cost keeps the last one.
    pub(crate) fn record(&mut self, usage: Usage, session_id: &str) -> Option<Event> {
        let next = Usage {
            input_tokens: self.used.input_tokens.max(usage.input_tokens),
            output_tokens: self.used.output_tokens.max(usage.output_tokens),
            cost_usd: match (self.used.cost_usd, usage.cost_usd) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            },
        };
        if next == self.used {
            return None;
        }
        self.used = next;
        if self.breach.is_none() {
            self.breach = self.over();
        }
        Some(self.event(session_id))
    }

    fn over(&self) -> Option<Breach> {
        let used = self.used.total_tokens();
        if let Some(limit) = self.limits.max_tokens.filter(|l| used > *l) {
            return Some(Breach::Tokens { limit, used });
        }
        let cost = self.used.cost_usd?;
        let limit = self.limits.max_cost_usd.filter(|l| cost > *l)?;
        Some(Breach::Cost { limit, used: cost })
    }

    /// The run's outcome given the executor's: past a limit it failed, with the reason,
    /// unless someone stopped it first (then `stopped` stands).
    pub(crate) fn outcome(&self, outcome: Outcome, stopped_by_request: bool) -> Outcome {
        match &self.breach {
            Some(b) if !stopped_by_request => Outcome::Failed {
                error: b.to_string(),
            },
            _ => outcome,
        }
    }

    /// The `usage` session event: limits, usage so far, elapsed time, and the reason
    /// once a limit is past.
    pub(crate) fn event(&self, session_id: &str) -> Event {
        let mut usage = Map::new();
        usage.insert("input_tokens".into(), self.used.input_tokens.into());
        usage.insert("output_tokens".into(), self.used.output_tokens.into());
        usage.insert("total_tokens".into(), self.used.total_tokens().into());
        if let Some(c) = self.used.cost_usd {
            usage.insert("cost_usd".into(), c.into());
        }
        let mut data = Map::new();
        data.insert("limits".into(), json!(self.limits));
        data.insert("usage".into(), Value::Object(usage));
        // Milliseconds are plenty, and keep the number short.
        let elapsed = (self.started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
        data.insert("elapsed_seconds".into(), elapsed.into());
        if let Some(b) = &self.breach {
            data.insert("exceeded".into(), b.to_string().into());
        }
        Event {
            reason: self.breach.as_ref().map(Breach::to_string),
            result_data: Some(data),
            ..Event::new(USAGE_EVENT, session_id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aof_executors::ExecutorConfig;
    use serde_json::json;

    fn tokens(input: u64, output: u64, cost: Option<f64>) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            cost_usd: cost,
        }
    }

    #[test]
    fn limits_come_from_runner_agent_and_executor_tightest_first() {
        let runner = RunLimits {
            timeout_seconds: Some(60.0),
            max_tokens: Some(10_000),
            max_cost_usd: None,
        };
        let none = RunLimits::default();
        // Only the runner's.
        assert_eq!(for_run(runner, none, None), Ok(runner));
        // An agent narrows one and adds another; it cannot widen the runner's timeout.
        let bp =
            json!({"limits": {"timeout_seconds": 600, "max_tokens": 500, "max_cost_usd": 1.5}});
        assert_eq!(
            for_run(runner, none, Some(&bp)),
            Ok(RunLimits {
                timeout_seconds: Some(60.0),
                max_tokens: Some(500),
                max_cost_usd: Some(1.5)
            })
        );
        // The executor's own options count too (the executor `execution::policy::executor_for`
        // picked: the runner's, or the blueprint's within the policy).
        let cmd = ExecutorConfig::Command {
            program: "sh".into(),
            args: vec![],
            timeout_seconds: Some(2.0),
        };
        assert_eq!(
            for_run(RunLimits::default(), cmd.limits(), None)
                .unwrap()
                .timeout_seconds,
            Some(2.0)
        );
        let model = ExecutorConfig::from_blueprint(Some(&json!({"executor": {"kind": "model_api",
            "base_url": "http://h/v1", "model": "m", "token_budget": 300, "timeout_seconds": 90}})))
        .unwrap()
        .unwrap();
        assert_eq!(
            for_run(runner, model.limits(), None),
            Ok(RunLimits {
                timeout_seconds: Some(60.0),
                max_tokens: Some(300),
                max_cost_usd: None
            })
        );
        // A bad `limits` fails the run, saying so.
        let err = for_run(runner, none, Some(&json!({"limits": {"max_tokens": 0}})));
        assert_eq!(
            err,
            Err("agent limits: max_tokens must be at least 1".into())
        );
    }

    #[test]
    fn the_tally_finds_the_first_limit_passed() {
        let limits = RunLimits {
            timeout_seconds: None,
            max_tokens: Some(1000),
            max_cost_usd: Some(0.5),
        };
        let mut b = Budget::new(limits, Instant::now());
        assert!(b.deadline().is_none());
        let start = b.start_event("s").unwrap();
        assert_eq!(start.event_type, USAGE_EVENT);
        assert_eq!(
            start.result_data.as_ref().unwrap()["limits"]["max_tokens"],
            1000
        );
        assert_eq!(start.reason, None);

        let ev = b.record(tokens(600, 100, None), "s").unwrap();
        assert_eq!(
            ev.result_data.as_ref().unwrap()["usage"]["total_tokens"],
            700
        );
        assert!(b.exceeded().is_none());
        // The same total again is no news; a smaller one never lowers the tally.
        assert!(b.record(tokens(600, 100, None), "s").is_none());
        assert!(b.record(tokens(10, 10, None), "s").is_none());
        // Exactly at the limit is allowed; past it is not.
        b.record(tokens(900, 100, None), "s").unwrap();
        assert!(b.exceeded().is_none());
        let ev = b.record(tokens(1134, 100, Some(0.9)), "s").unwrap();
        let why = "token budget 1000 exceeded: 1234 used";
        assert_eq!(
            b.exceeded(),
            Some(&Breach::Tokens {
                limit: 1000,
                used: 1234
            })
        );
        assert_eq!(ev.reason.as_deref(), Some(why));
        assert_eq!(ev.result_data.as_ref().unwrap()["exceeded"], why);
        assert_eq!(ev.result_data.as_ref().unwrap()["usage"]["cost_usd"], 0.9);
        // The first breach is the reason; later reports keep it.
        b.record(tokens(5000, 100, Some(2.0)), "s");
        assert_eq!(b.exceeded().unwrap().to_string(), why);

        // The outcome: failed with the reason, unless a stop came first.
        assert_eq!(
            b.outcome(Outcome::Stopped, false),
            Outcome::Failed { error: why.into() }
        );
        assert_eq!(b.outcome(Outcome::Stopped, true), Outcome::Stopped);
        let fine = Budget::new(limits, Instant::now());
        assert_eq!(fine.outcome(Outcome::Stopped, false), Outcome::Stopped);

        // Cost alone.
        let mut b = Budget::new(limits, Instant::now());
        b.record(tokens(10, 10, Some(0.75)), "s");
        assert_eq!(
            b.exceeded().unwrap().to_string(),
            "cost budget $0.5 exceeded: $0.7500 used"
        );
        // No limits: no start event, usage still shown.
        let mut b = Budget::new(RunLimits::default(), Instant::now());
        assert!(b.start_event("s").is_none());
        assert!(b.record(tokens(1, 1, None), "s").is_some());
        assert!(b.exceeded().is_none());
    }

    #[tokio::test]
    async fn the_deadline_is_the_wall_clock_limit() {
        let limits = RunLimits {
            timeout_seconds: Some(30.0),
            ..RunLimits::default()
        };
        let started = Instant::now();
        let mut b = Budget::new(limits, started);
        assert_eq!(b.deadline(), Some(started + Duration::from_secs(30)));
        let ev = b.time_out("s");
        assert_eq!(
            ev.reason.as_deref(),
            Some("wall-clock timeout 30s exceeded")
        );
        // Once past, there is nothing more to wait for.
        assert_eq!(b.deadline(), None);
        assert_eq!(
            b.outcome(
                Outcome::Completed {
                    result_text: None,
                    result_data: None
                },
                false
            ),
            Outcome::Failed {
                error: "wall-clock timeout 30s exceeded".into()
            }
        );
    }
}
