//! `aof audit`: the coordinator's audit log (admin key), newest first, with filters.

use chrono::{DateTime, Utc};

use aof_config::Config;
use aof_wire::audit::AuditList;

use crate::{
    client::{Api, Common},
    table,
};

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Examples:\n  \
    aof audit --since 1h\n  \
    aof audit --actor gpu-box --action 'runner.*'\n  \
    aof audit --outcome denied --json\n  \
    aof audit --limit 50 --before 1234   # the next page")]
pub struct AuditArgs {
    #[command(flatten)]
    pub common: Common,
    /// Key id, key name, OIDC subject or session id.
    #[arg(long)]
    pub actor: Option<String>,
    /// Action, e.g. run.create; a trailing * matches a prefix (key.*).
    #[arg(long)]
    pub action: Option<String>,
    /// Resource id (run, session, key, runner, agent…).
    #[arg(long)]
    pub target: Option<String>,
    /// Entries this recent (30s, 15m, 1h, 7d) or since an RFC 3339 time.
    #[arg(long, value_parser = parse_when)]
    pub since: Option<DateTime<Utc>>,
    /// Entries up to this long ago or this RFC 3339 time.
    #[arg(long, value_parser = parse_when)]
    pub until: Option<DateTime<Utc>>,
    /// ok, denied (401/403), error (>= 400) or an HTTP status.
    #[arg(long)]
    pub outcome: Option<String>,
    /// Entries per page (1 to 1000).
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// Only entries older than this id (the `next page` hint of a previous call).
    #[arg(long)]
    pub before: Option<i64>,
}

/// `1h` → an hour ago; an RFC 3339 time as is.
fn parse_when(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.to_utc());
    }
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num
        .parse()
        .map_err(|_| format!("'{s}': use a duration like 30s, 15m, 1h, 7d or an RFC 3339 time"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("'{s}': the unit must be s, m, h or d")),
    };
    let ago = n
        .checked_mul(secs)
        .and_then(chrono::Duration::try_seconds)
        .ok_or_else(|| format!("'{s}': too long ago"))?;
    Ok(Utc::now() - ago)
}

/// The query string of `GET /audit` for these flags.
fn query(a: &AuditArgs) -> String {
    let mut u = reqwest::Url::parse("http://x/audit").expect("static URL");
    {
        let mut q = u.query_pairs_mut();
        let ts = |t: &DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        for (k, v) in [
            ("actor", a.actor.clone()),
            ("action", a.action.clone()),
            ("target", a.target.clone()),
            ("since", a.since.as_ref().map(ts)),
            ("until", a.until.as_ref().map(ts)),
            ("outcome", a.outcome.clone()),
            ("limit", Some(a.limit.to_string())),
            ("before", a.before.map(|b| b.to_string())),
        ] {
            if let Some(v) = v {
                q.append_pair(k, &v);
            }
        }
    }
    u.query().unwrap_or("").to_string()
}

pub async fn run(args: AuditArgs, cfg: &Config) -> anyhow::Result<u8> {
    let api = Api::new(&cfg.api()?)?;
    let body = api.get(&format!("/audit?{}", query(&args))).await?;
    if args.common.json {
        table::print_json(&body);
        return Ok(0);
    }
    let list: AuditList = serde_json::from_value(body)?;
    let rows: Vec<Vec<String>> = list
        .entries
        .iter()
        .map(|e| {
            let actor = match (&e.actor_name, &e.actor_id) {
                (Some(n), Some(id)) => format!("{n} ({id})"),
                (None, Some(id)) => id.clone(),
                _ => e.actor_kind.as_str().to_string(),
            };
            vec![
                e.id.to_string(),
                e.at.clone(),
                actor,
                e.role.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
                e.action.clone(),
                e.target.clone().unwrap_or_else(|| "-".into()),
                e.status.to_string(),
                e.remote_addr.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table::print(
        &[
            "ID", "AT", "ACTOR", "ROLE", "ACTION", "TARGET", "STATUS", "FROM",
        ],
        &rows,
    );
    if let Some(b) = list.next_before {
        eprintln!("next page: aof audit --before {b} (same filters)");
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_accepts_durations_and_times() {
        let now = Utc::now();
        let t = parse_when("1h").unwrap();
        assert!((now - t - chrono::Duration::hours(1)).num_seconds().abs() < 60);
        assert_eq!(
            parse_when("2026-01-31T12:00:00Z").unwrap().to_rfc3339(),
            "2026-01-31T12:00:00+00:00"
        );
        for bad in ["", "h", "1w", "1.5h", "yesterday", "99999999999999999d"] {
            assert!(parse_when(bad).is_err(), "{bad}");
        }
    }
}
