//! `aof matrix-bridge FILE`: the Matrix bridge (crate `aof-matrix-bridge`) until
//! SIGINT/SIGTERM. Its settings are its own TOML file (secrets from files or env).

use std::path::PathBuf;

use aof_config::Config;

#[derive(clap::Args, Debug, Clone)]
#[command(
    after_help = "Example:\n  AOF_MATRIX_ACCESS_TOKEN=… AOF_API_KEY=… aof matrix-bridge bridge.toml\n\n\
The file's sections: [matrix] homeserver, user_id, access_token_file; [aof] url, api_key_file;\n\
[bridge] state_dir, agents; [[users]] matrix_id, role (viewer|operator|admin), agents.\n\
See the README, \"Chat (Matrix)\"."
)]
pub struct MatrixBridgeArgs {
    /// The bridge's settings file (TOML).
    #[arg(value_name = "FILE", env = "AOF_MATRIX_BRIDGE_CONFIG")]
    pub file: PathBuf,
}

pub async fn run(args: MatrixBridgeArgs, _cfg: &Config) -> anyhow::Result<u8> {
    let file = args.file.clone();
    let cfg = tokio::task::spawn_blocking(move || {
        aof_matrix_bridge::BridgeConfig::load(&file, |k| std::env::var(k).ok())
    })
    .await??;
    let (stop, _hurry) = super::signals();
    aof_matrix_bridge::run(cfg, stop).await?;
    Ok(0)
}
