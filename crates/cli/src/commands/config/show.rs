//! `aof config show [--json]`: every setting, its merged value and its source.
//! Secrets are masked; derived defaults show how they are derived.

use serde_json::{json, Map, Value};

use aof_config::Config;

use crate::{client::UrlArg, table};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub url: UrlArg,
    /// Print JSON: {"file": PATH|null, "settings": {KEY: {"value", "source", "env"}}}.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cfg: &Config, args: Args) -> anyhow::Result<u8> {
    let rows = cfg.show();
    if args.json {
        let settings: Map<String, Value> = rows
            .iter()
            .map(|r| {
                (
                    r.setting.key.to_string(),
                    json!({
                        "value": r.value,
                        "source": r.source.to_string(),
                        "env": r.setting.env,
                        "secret": r.setting.secret,
                    }),
                )
            })
            .collect();
        table::print_json(&json!({
            "file": cfg.file.as_ref().map(|p| p.display().to_string()),
            "settings": settings,
        }));
        return Ok(0);
    }
    if let Some(f) = &cfg.file {
        eprintln!("config file: {}", f.display());
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.setting.key.to_string(),
                r.display_value(),
                r.source.to_string(),
            ]
        })
        .collect();
    table::print(&["KEY", "VALUE", "SOURCE"], &cells);
    Ok(0)
}
