//! `aof sessions purge --older-than 30d`: retention on demand.

use reqwest::Method;
use serde_json::json;

use crate::{client::Api, table};

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Examples:\n  \
    aof sessions purge --older-than 30d --dry-run\n  \
    aof sessions purge --older-than 12h --agent researcher")]
pub struct Args {
    /// Remove ended sessions (finished, failed, stopped) whose last activity is at least
    /// this old: a number with s, m, h or d (plain number: seconds).
    #[arg(long, value_parser = parse_age)]
    pub older_than: u64,
    /// Only sessions of this agent.
    #[arg(long)]
    pub agent: Option<String>,
    /// List what would be removed; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `30d`, `12h`, `90m`, `45s` or `3600` → seconds.
fn parse_age(v: &str) -> Result<u64, String> {
    let v = v.trim();
    let (num, unit) = match v.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&v[..i], c),
        _ => (v, 's'),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{v:?}: expected a number with s, m, h or d, e.g. 30d"))?;
    let per = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(format!("{v:?}: the unit must be s, m, h or d")),
    };
    n.checked_mul(per)
        .ok_or_else(|| format!("{v:?}: too large"))
}

pub async fn run(api: &Api, json: bool, args: Args) -> anyhow::Result<u8> {
    let body = api
        .call(
            Method::POST,
            "/retention/purge",
            Some(&json!({
                "older_than_seconds": args.older_than,
                "agent_name": args.agent,
                "dry_run": args.dry_run,
            })),
        )
        .await?;
    if json {
        table::print_json(&body);
        return Ok(0);
    }
    let ids: Vec<&str> = body["session_ids"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    for id in &ids {
        println!("{id}");
    }
    if args.dry_run {
        eprintln!("would purge {} sessions (dry run)", ids.len());
    } else {
        eprintln!(
            "purged {} sessions ({} events, {} runs); {} bytes reclaimed",
            ids.len(),
            body["events_count"].as_u64().unwrap_or(0),
            body["runs_count"].as_u64().unwrap_or(0),
            body["bytes_reclaimed"].as_u64().unwrap_or(0)
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::parse_age;

    #[test]
    fn ages() {
        assert_eq!(parse_age("30d"), Ok(30 * 86_400));
        assert_eq!(parse_age("12h"), Ok(12 * 3600));
        assert_eq!(parse_age("90m"), Ok(5400));
        assert_eq!(parse_age("45s"), Ok(45));
        assert_eq!(parse_age("3600"), Ok(3600));
        assert!(parse_age("3w").is_err());
        assert!(parse_age("d").is_err());
        assert!(parse_age("-1d").is_err());
        assert!(parse_age("99999999999999999999d").is_err());
    }
}
