//! `aof config table`: the markdown table of every setting, generated from the registry
//! (README.md and ARCHITECTURE.md embed exactly this; a test keeps them in step).

pub fn run() -> anyhow::Result<u8> {
    print!("{}", aof_config::markdown_table());
    Ok(0)
}
