//! File modes of the database: its directory 0700, the database and its `-wal`/`-shm`
//! files 0600, whatever the umask. The database holds transcripts, prompts and key
//! hashes, and whoever can write it can mint keys: nobody else on the host should even
//! read it.
//!
//! SQLite creates `-wal`, `-shm` and journals with the database file's own mode, so
//! creating the database 0600 before SQLite opens it covers them; files left wider by
//! an older version are tightened here. The database's directory is the data dir: made
//! 0700, or tightened to 0700 if it has the database's owner (see [`tighten_dir`]).

use std::{
    fs::{self, DirBuilder, OpenOptions},
    io,
    os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt},
    path::Path,
};

const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;
/// The sticky bit: a shared directory like `/tmp`, never ours to tighten.
const STICKY: u32 = 0o1000;

/// Makes the database's directory (the data dir) and the database private: see the
/// module doc. Called before SQLite opens the file.
pub(crate) fn private_store(db: &Path) -> io::Result<()> {
    let dir = db.parent().filter(|d| !d.as_os_str().is_empty());
    let existing = match dir {
        Some(d) => private_dir(d)?,
        None => None,
    };
    private_db(db)?;
    if let (Some(d), Some(meta)) = (dir, existing) {
        tighten_dir(d, &meta, fs::metadata(db)?.uid());
    }
    Ok(())
}

/// Creates `dir` (and missing parents) 0700; the metadata of an existing one.
fn private_dir(dir: &Path) -> io::Result<Option<fs::Metadata>> {
    match fs::metadata(dir) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(dir)?;
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// An existing data dir open to group or others is tightened to 0700 when it belongs
/// to the database's owner (us, or whoever ran AOF before); a shared sticky directory
/// (`/tmp`) or someone else's is left alone with a warning.
fn tighten_dir(dir: &Path, meta: &fs::Metadata, db_owner: u32) {
    let mode = meta.permissions().mode();
    if mode & 0o077 == 0 {
        return;
    }
    let shown = format!("{:o}", mode & 0o7777);
    if mode & STICKY != 0 || meta.uid() != db_owner {
        tracing::warn!(dir = %dir.display(), mode = shown, "the data dir is open to other users and not ours to tighten: use a private directory (0700)");
        return;
    }
    match fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE)) {
        Ok(()) => tracing::info!(dir = %dir.display(), was = shown, "data dir tightened to 0700"),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), mode = shown, error = %e, "the data dir is open to other users and cannot be tightened; chmod 700 it")
        }
    }
}

/// Creates the database file 0600 if it is missing (an empty file is an empty SQLite
/// database), and tightens it and its `-wal`/`-shm` if they exist wider.
/// Also used for backups, which are as private as the database.
pub(crate) fn private_db(path: &Path) -> io::Result<()> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        tighten_file(Path::new(&p))?;
    }
    Ok(())
}

fn tighten_file(path: &Path) -> io::Result<()> {
    let mode = match fs::metadata(path) {
        Ok(m) => m.permissions().mode(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if mode & 0o077 == 0 {
        return Ok(());
    }
    match fs::set_permissions(path, fs::Permissions::from_mode(FILE_MODE)) {
        Ok(()) => {
            tracing::info!(file = %path.display(), was = format!("{:o}", mode & 0o777), "database file tightened to 0600")
        }
        Err(e) => {
            tracing::warn!(file = %path.display(), mode = format!("{:o}", mode & 0o777), error = %e, "a database file is readable by other users and cannot be tightened; chmod 600 it")
        }
    }
    Ok(())
}
