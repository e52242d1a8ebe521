//! `aof approvals list|show|approve|deny`: agent tool calls waiting for a person
//! (README "Approvals"). Deciding needs an operator or admin key.

pub mod decide;
pub mod list;
pub mod show;

use aof_config::Config;

use crate::client::{Api, Common, Refused};

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Examples:\n  \
    aof approvals list\n  \
    aof approvals approve apr_0123456789ab --message 'ok, go ahead'\n  \
    aof approvals deny apr_0123456789ab --reason 'not on main'")]
pub struct ApprovalsArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub verb: Verb,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum Verb {
    /// List approvals, newest first (pending ones unless --status says otherwise).
    List(list::Args),
    /// Show one approval with the tool's input.
    Show(show::Args),
    /// Let the tool call run (operator or admin).
    Approve(decide::ApproveArgs),
    /// Refuse the tool call; the reason is what the agent is told (operator or admin).
    Deny(decide::DenyArgs),
}

pub async fn run(args: ApprovalsArgs, cfg: &Config) -> anyhow::Result<u8> {
    let api = Api::new(&cfg.api()?)?;
    let json = args.common.json;
    let out = match args.verb {
        Verb::List(a) => list::run(&api, json, a).await,
        Verb::Show(a) => show::run(&api, json, a).await,
        Verb::Approve(a) => decide::approve(&api, json, a).await,
        Verb::Deny(a) => decide::deny(&api, json, a).await,
    };
    out.map_err(explain)
}

/// The server's refusal (status, code and detail, all kept) with what to do about it.
/// Still a [`Refused`], so the exit code stays 1.
fn explain(err: anyhow::Error) -> anyhow::Error {
    match err.downcast::<Refused>() {
        Ok(mut r) => {
            if let Some(hint) = hint(r.status.as_u16(), r.code.as_deref()) {
                r.message = format!("{} ({hint})", r.message.trim_end_matches('.'));
            }
            r.into()
        }
        Err(other) => other,
    }
}

fn hint(status: u16, code: Option<&str>) -> Option<&'static str> {
    Some(match (status, code) {
        (404, Some("approval_not_found")) => "see `aof approvals list --status all` for the ids",
        (409, _) => "`aof approvals show ID` has the whole decision",
        (401, _) => "set AOF_API_KEY to an operator or admin key",
        (403, _) => "deciding needs an operator or admin key; viewers may only list",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;

    fn refused(status: u16, code: &str, message: &str) -> anyhow::Error {
        Refused {
            status: StatusCode::from_u16(status).unwrap(),
            code: Some(code.into()),
            message: message.into(),
        }
        .into()
    }

    #[test]
    fn refusals_keep_the_servers_words_and_say_what_to_do() {
        let e = explain(refused(
            409,
            "approval_decided",
            "Approval apr_1 is already approved.",
        ));
        let r = e
            .downcast_ref::<Refused>()
            .expect("still a refusal (exit 1)");
        assert_eq!(r.status, StatusCode::CONFLICT);
        let text = e.to_string();
        assert!(
            text.contains("409") && text.contains("approval_decided"),
            "{text}"
        );
        assert!(
            text.contains("Approval apr_1 is already approved"),
            "{text}"
        );
        assert!(text.contains("aof approvals show"), "{text}");

        let text = explain(refused(403, "forbidden", "Role viewer may not do this")).to_string();
        assert!(
            text.contains("403") && text.contains("Role viewer may not do this"),
            "{text}"
        );
        assert!(text.contains("operator or admin"), "{text}");

        let text = explain(refused(404, "approval_not_found", "No approval apr_x")).to_string();
        assert!(
            text.contains("approval_not_found") && text.contains("--status all"),
            "{text}"
        );

        // Nothing to add: the refusal is passed on as it came.
        let text = explain(refused(
            422,
            "invalid_approval",
            "updated_input needs approve",
        ))
        .to_string();
        assert!(text.ends_with("updated_input needs approve"), "{text}");
        let plain = explain(anyhow::anyhow!("cannot reach the coordinator"));
        assert!(plain.downcast_ref::<Refused>().is_none());
    }
}
