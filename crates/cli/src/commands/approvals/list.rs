//! `aof approvals list [--session S] [--status pending|approved|denied|all] [--limit N]`.

use aof_wire::approval::{Approval, ApprovalList, ApprovalStatus};

use crate::{
    client::{seg, Api},
    table,
};

/// `--status`: one status, or every approval.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatusFilter {
    #[default]
    Pending,
    Approved,
    Denied,
    All,
}

impl StatusFilter {
    fn status(self) -> Option<ApprovalStatus> {
        match self {
            StatusFilter::Pending => Some(ApprovalStatus::Pending),
            StatusFilter::Approved => Some(ApprovalStatus::Approved),
            StatusFilter::Denied => Some(ApprovalStatus::Denied),
            StatusFilter::All => None,
        }
    }
}

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Examples:\n  \
    aof approvals list\n  \
    aof approvals list --session ses_0123456789ab --status all --json")]
pub struct Args {
    /// Only approvals of this session.
    #[arg(long, value_name = "SESSION_ID")]
    pub session: Option<String>,
    /// Which approvals.
    #[arg(long, value_enum, default_value_t = StatusFilter::Pending)]
    pub status: StatusFilter,
    /// At most this many (newest first).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: Option<u32>,
}

/// The query of `GET /approvals` for these flags.
pub fn path(args: &Args) -> String {
    let mut q = Vec::new();
    if let Some(s) = &args.session {
        q.push(format!("session_id={}", seg(s)));
    }
    if let Some(st) = args.status.status() {
        q.push(format!("status={}", st.as_str()));
    }
    if let Some(n) = args.limit {
        q.push(format!("limit={n}"));
    }
    if q.is_empty() {
        "/approvals".into()
    } else {
        format!("/approvals?{}", q.join("&"))
    }
}

pub async fn run(api: &Api, json: bool, args: Args) -> anyhow::Result<u8> {
    let body = api.get(&path(&args)).await?;
    if json {
        table::print_json(&body);
        return Ok(0);
    }
    let list: ApprovalList = serde_json::from_value(body)
        .map_err(|e| anyhow::anyhow!("the approval list is not in the AOF shape: {e}"))?;
    if list.approvals.is_empty() {
        eprintln!("no approvals");
        return Ok(0);
    }
    print!("{}", render(&list.approvals));
    Ok(0)
}

/// The table: one line each; the input cut short (`show` prints all of it).
pub fn render(items: &[Approval]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|a| {
            vec![
                a.approval_id.clone(),
                a.status.as_str().into(),
                a.session_id.clone(),
                a.tool_name.clone(),
                a.created_at.clone(),
                match a.status {
                    ApprovalStatus::Pending => format!("expires {}", a.expires_at),
                    _ => a.decided_by.clone().unwrap_or_else(|| "-".into()),
                },
                short(
                    &serde_json::Value::Object(a.tool_input.clone()).to_string(),
                    60,
                ),
            ]
        })
        .collect();
    table::render(
        &[
            "APPROVAL",
            "STATUS",
            "SESSION",
            "TOOL",
            "CREATED",
            "DECIDED BY",
            "INPUT",
        ],
        &rows,
    )
}

/// At most `n` characters on one line.
fn short(s: &str, n: usize) -> String {
    let one: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one.chars().count() <= n {
        one
    } else {
        one.chars().take(n - 1).collect::<String>() + "…"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: Args,
    }

    fn args(argv: &[&str]) -> Args {
        T::try_parse_from(std::iter::once("t").chain(argv.iter().copied()))
            .unwrap()
            .a
    }

    #[test]
    fn flags_make_the_query() {
        assert_eq!(path(&args(&[])), "/approvals?status=pending");
        assert_eq!(path(&args(&["--status", "all"])), "/approvals");
        assert_eq!(
            path(&args(&[
                "--session",
                "ses_1",
                "--status",
                "denied",
                "--limit",
                "5"
            ])),
            "/approvals?session_id=ses_1&status=denied&limit=5"
        );
        // A typo cannot smuggle another query key in.
        assert_eq!(
            path(&args(&["--session", "x&status=approved"])),
            "/approvals?session_id=x%26status%3Dapproved&status=pending"
        );
        assert!(T::try_parse_from(["t", "--status", "maybe"]).is_err());
        assert!(T::try_parse_from(["t", "--limit", "0"]).is_err());
    }

    #[test]
    fn rows_show_who_decided_or_when_it_expires() {
        let a: Approval = serde_json::from_value(serde_json::json!({
            "approval_id": "apr_1", "session_id": "ses_1", "run_id": "run_1",
            "tool_name": "Bash", "tool_input": {"command": "rm -rf /tmp/x\nand more"},
            "status": "pending", "created_at": "2026-01-01T00:00:00Z",
            "expires_at": "2026-01-01T00:15:00Z", "on_timeout": "deny"}))
        .unwrap();
        let mut b = a.clone();
        b.approval_id = "apr_2".into();
        b.status = ApprovalStatus::Denied;
        b.decided_by = Some("key:k1".into());
        b.tool_input = serde_json::from_value(serde_json::json!({"x": "y".repeat(100)})).unwrap();
        let out = render(&[a, b]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(lines[0].starts_with("APPROVAL"));
        assert!(lines[1].contains("pending") && lines[1].contains("expires 2026-01-01T00:15:00Z"));
        assert!(
            lines[1].contains(r#"{"command":"rm -rf /tmp/x\nand more"}"#),
            "{out}"
        );
        assert!(lines[2].contains("denied") && lines[2].contains("key:k1"));
        assert!(lines[2].ends_with('…'), "long input cut: {out}");
    }
}
