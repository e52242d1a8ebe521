//! aof-blueprints: agent blueprints, capabilities and the MCP server registry, stored
//! as folders in the AOF reference's format, and their resolution for a run.
//!
//! All IO here is blocking `std::fs`: callers on async threads use `spawn_blocking`.
//! Every name becomes one path segment under a root and is validated first; symlinks
//! are refused, so nothing can reach outside the roots.

mod agents;
mod capabilities;
mod fsutil;
mod mcp;
pub mod params;
pub mod placeholders;
mod resolve;
pub mod secrets;

use std::path::{Path, PathBuf};

pub use fsutil::validate_name;
pub use resolve::{Resolution, RunContext};

#[derive(Debug, thiserror::Error)]
pub enum BlueprintError {
    /// A bad name or a body that breaks a rule (reference: 400).
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A stored blueprint refers to something missing or clashing (reference: 422).
    #[error("{0}")]
    Unresolvable(String),
    /// A `limits` value that does not validate: 422 like a body failing its schema.
    #[error("{0}")]
    InvalidLimits(String),
    /// An `approval` value that does not validate: 422 like `limits`.
    #[error("{0}")]
    InvalidApproval(String),
    /// A path that is a symlink or otherwise unsafe.
    #[error("{0}")]
    UnsafePath(String),
    /// Structured 400 errors of run creation (`detail` is an object).
    #[error("{}", .0["message"].as_str().unwrap_or("invalid run"))]
    RunRejected(serde_json::Value),
    #[error("blueprint storage failed: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, BlueprintError>;

/// The three folders, side by side like the reference: `<root>/agents`,
/// `<root>/capabilities`, `<root>/mcp-servers` where `<root>` is the agents dir's parent.
#[derive(Debug, Clone)]
pub struct Registry {
    pub agents_dir: PathBuf,
    pub capabilities_dir: PathBuf,
    pub mcp_dir: PathBuf,
    /// Environment variables `${env.X}` may read; nothing else of the process env leaks.
    pub env_allow: Vec<String>,
}

impl Registry {
    pub fn new(agents_dir: &Path, env_allow: Vec<String>) -> Registry {
        let root = agents_dir
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Registry {
            agents_dir: agents_dir.to_path_buf(),
            capabilities_dir: root.join("capabilities"),
            mcp_dir: root.join("mcp-servers"),
            env_allow,
        }
    }
}
