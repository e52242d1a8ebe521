//! Safe paths and small file helpers shared by the stores.

use std::{
    fs,
    io::Write,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
    sync::LazyLock,
    time::SystemTime,
};

use regex::Regex;

use crate::{BlueprintError, Result};

static NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$").expect("valid regex"));

/// The reference's name rule (POST): required, ≤ 60 chars, `^[a-zA-Z0-9][a-zA-Z0-9_-]*$`.
pub fn validate_name(kind: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(BlueprintError::Invalid(format!("{kind} name is required")));
    }
    if name.chars().count() > 60 {
        return Err(BlueprintError::Invalid(format!(
            "{kind} name must be 60 characters or less"
        )));
    }
    if !NAME.is_match(name) {
        return Err(BlueprintError::Invalid(format!(
            "{kind} name must start with letter/number and contain only alphanumeric characters, hyphens, and underscores"
        )));
    }
    Ok(())
}

/// `root/name`, for a name that already passed the rule; a name that did not cannot
/// exist, so lookups of it are "not found" rather than a path outside the root.
pub fn entry_dir(root: &Path, kind: &str, name: &str) -> Result<PathBuf> {
    if !NAME.is_match(name) || name.len() > 60 {
        return Err(BlueprintError::NotFound(format!(
            "{kind} not found: {name}"
        )));
    }
    let dir = root.join(name);
    refuse_symlink(&dir)?;
    Ok(dir)
}

/// Symlinks could point anywhere: refuse them with a clear error.
pub fn refuse_symlink(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(BlueprintError::UnsafePath(format!(
            "{} is a symbolic link; blueprints must be plain files and folders",
            path.display()
        ))),
        _ => Ok(()),
    }
}

pub fn is_dir(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

/// Reads a file inside an entry folder; `None` if absent.
pub fn read_opt(path: &Path) -> Result<Option<String>> {
    refuse_symlink(path)?;
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        // A file that is not text is a broken blueprint (422), not a server fault (500);
        // found by the proptest target (tests/fuzz.rs).
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(BlueprintError::Unresolvable(
            format!("{}: not valid UTF-8 text", path.display()),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Blueprints and MCP settings may hold credentials: folders are 0700 and files 0600
/// whatever the umask, so other users on the host read none of them.
const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

/// `fs::create_dir_all`, with every folder it creates 0700.
pub fn create_private_dir_all(path: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)?;
    Ok(())
}

/// `fs::create_dir`, 0700.
pub fn create_private_dir(path: &Path) -> Result<()> {
    fs::DirBuilder::new().mode(DIR_MODE).create(path)?;
    Ok(())
}

/// Writes via a temp file and rename, so a crash never leaves half a file. The file is
/// 0600 (a leftover temp file of another mode is replaced, not reused).
pub fn write_atomic(path: &Path, text: &str) -> Result<()> {
    refuse_symlink(path)?;
    let tmp = path.with_extension("tmp~");
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    drop(f);
    fs::rename(&tmp, path)?;
    Ok(())
}

pub fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    let mut text = serde_json::to_string_pretty(v).map_err(std::io::Error::other)?;
    text.push('\n');
    write_atomic(path, &text)
}

pub fn remove_opt(path: &Path) -> Result<()> {
    refuse_symlink(path)?;
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// Naive local time, like the reference (`YYYY-MM-DDTHH:MM:SS.ffffff`).
fn fmt_time(t: SystemTime) -> String {
    let dt: chrono::DateTime<chrono::Local> = t.into();
    dt.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

/// (created_at, modified_at) of a file, "now" if it is missing.
pub fn times(path: &Path) -> (String, String) {
    match fs::metadata(path) {
        Ok(m) => {
            let modified = m.modified().unwrap_or_else(|_| SystemTime::now());
            let created = m.created().unwrap_or(modified);
            (fmt_time(created), fmt_time(modified))
        }
        Err(_) => {
            let now = fmt_time(SystemTime::now());
            (now.clone(), now)
        }
    }
}

/// Names of the entry folders under `root` (sorted; symlinks and files skipped).
pub fn entries(root: &Path) -> Result<Vec<String>> {
    let rd = match fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e?;
        if e.file_type()?.is_dir() {
            if let Some(n) = e.file_name().to_str() {
                if NAME.is_match(n) {
                    out.push(n.to_string());
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// MCP entries on disk must use the ref form.
pub fn check_ref_entries(map: &serde_json::Map<String, serde_json::Value>) -> Result<()> {
    for (k, v) in map {
        if serde_json::from_value::<aof_wire::agents::McpServerRef>(v.clone()).is_err() {
            return Err(BlueprintError::Conflict(format!(
                "MCP server '{k}' must use ref format"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("Agent", "coder_1-x").is_ok());
        for bad in ["", "-x", "a b", "../x", "a/b", ".hidden", &"x".repeat(61)] {
            assert!(validate_name("Agent", bad).is_err(), "{bad}");
        }
        let root = Path::new("/tmp/root");
        assert!(matches!(
            entry_dir(root, "Agent", ".."),
            Err(BlueprintError::NotFound(_))
        ));
        assert!(matches!(
            entry_dir(root, "Agent", "/etc"),
            Err(BlueprintError::NotFound(_))
        ));
    }
}
