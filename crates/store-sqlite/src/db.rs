//! The connections: one writer thread with group commit, and a pool of readers.
//!
//! Every mutation is a job: a closure run on the writer thread against the one writer
//! connection, synchronously, statement after statement with no thread hop in between
//! (sqlx's SQLite driver paid one hop per statement, and the writer lock was held across
//! them; that latency, not CPU, bounded throughput).
//!
//! Group commit: the writer takes every job queued when it wakes (up to `MAX_BATCH`)
//! into one transaction, each job inside its own SAVEPOINT so a failing job rolls back
//! only its own statements. After the one COMMIT it broadcasts the batch's feed items in
//! job order and only then answers the callers. So every acknowledged write is
//! committed, commit order is cursor order is live order, and under load many requests
//! share one WAL commit. A job whose caller went away still runs to its end (nothing is
//! half-written either way).

use std::{
    ops::Deref,
    panic::{catch_unwind, AssertUnwindSafe},
    path::{Path, PathBuf},
    sync::{mpsc, Arc, Mutex},
    time::Duration,
};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{broadcast, oneshot, Semaphore};

use aof_store::{StoreError, StoreResult};
use aof_wire::sse::FeedItem;

use crate::{internal, Durability};

/// Jobs per transaction at most; bounds the wait of the first job in a batch.
const MAX_BATCH: usize = 256;
/// Prepared statements kept per connection (the store has about 60 distinct ones).
const STATEMENT_CACHE: usize = 128;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// WAL pages (4 KiB) between automatic checkpoints: 32 MiB.
const WAL_PAGES: u32 = 8192;
/// Bytes the WAL file is cut back to after a checkpoint.
const WAL_LIMIT: u64 = 64 << 20;

/// The writer connection while a job runs, plus the feed items the job publishes once
/// its transaction commits. Derefs to the connection.
pub(crate) struct Tx<'c> {
    conn: &'c Connection,
    items: Vec<FeedItem>,
}

impl Deref for Tx<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Tx<'_> {
    pub(crate) fn push_item(&mut self, item: FeedItem) {
        self.items.push(item);
    }
}

/// Called once the job's fate is known: `None` = committed, `Some(e)` = the batch failed.
type Reply = Box<dyn FnOnce(Option<StoreError>) + Send>;
/// Runs the job (given the connection, or the error that prevents running it); `Ok`: it
/// succeeded and waits for the COMMIT; `Err`: it failed, its statements are rolled back
/// and the reply carries its own error.
type Work = Box<dyn FnOnce(StoreResult<&mut Tx<'_>>) -> Result<Reply, Reply> + Send>;

struct Job {
    /// Runs outside any transaction (pragmas, VACUUM); the open batch commits first.
    bare: bool,
    work: Work,
}

/// The handle to the writer thread. Dropping it lets the thread finish the queue and end.
pub(crate) struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    pub(crate) fn start(
        conn: Connection,
        feed_tx: broadcast::Sender<FeedItem>,
    ) -> StoreResult<Writer> {
        let (jobs, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("aof-sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx, feed_tx))
            .map_err(internal)?;
        Ok(Writer { jobs })
    }

    /// Runs `f` in the writer's (possibly shared) transaction; answers after the COMMIT.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.submit(false, f).await
    }

    /// Runs `f` on the writer connection outside any transaction.
    pub(crate) async fn bare<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.submit(true, f).await
    }

    async fn submit<T: Send + 'static>(
        &self,
        bare: bool,
        f: impl FnOnce(&mut Tx<'_>) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (tx, rx) = oneshot::channel::<StoreResult<T>>();
        let work: Work = Box::new(move |w| match w.and_then(f) {
            Ok(v) => Ok(Box::new(move |failed| {
                let _ = tx.send(failed.map_or(Ok(v), Err));
            })),
            Err(e) => Err(Box::new(move |_| {
                let _ = tx.send(Err(e));
            })),
        });
        self.jobs.send(Job { bare, work }).map_err(|_| gone())?;
        rx.await.unwrap_or_else(|_| Err(gone()))
    }
}

fn gone() -> StoreError {
    internal(anyhow::anyhow!(
        "the store's writer dropped this write (stopped, or the job panicked; see the log)"
    ))
}

/// A copy of `e` for the other members of a failed batch.
fn share(e: &StoreError) -> StoreError {
    match e {
        StoreError::Storage(s) => StoreError::Storage(s.clone()),
        other => StoreError::Internal(anyhow::anyhow!(
            "the batch this write was part of failed: {other}"
        )),
    }
}

/// Jobs done inside the open transaction, waiting for its COMMIT.
struct Batch<'a> {
    conn: &'a Connection,
    feed_tx: &'a broadcast::Sender<FeedItem>,
    open: bool,
    done: Vec<(Reply, Vec<FeedItem>)>,
}

impl Batch<'_> {
    /// Runs a control statement (prepared once, like the jobs' statements).
    fn exec(&self, sql: &str) -> StoreResult<()> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut st| st.execute([]))
            .map(|_| ())
            .map_err(internal)
    }

    fn run(&mut self, job: Job) {
        if job.bare {
            self.commit();
            let (res, _) = run_caught(self.conn, job.work);
            match res {
                Ok(reply) | Err(reply) => reply(None),
            }
            return;
        }
        if !self.open {
            if let Err(e) = self.exec("BEGIN IMMEDIATE") {
                refuse(job.work, e);
                return;
            }
            self.open = true;
        }
        // The first job of a transaction needs no savepoint: if it fails, rolling back
        // the whole transaction undoes just its statements (and saves the statement
        // journal a savepoint would write).
        let savepoint = !self.done.is_empty();
        if savepoint {
            if let Err(e) = self.exec("SAVEPOINT job") {
                refuse(job.work, share(&e));
                self.fail(&e);
                return;
            }
        }
        match run_caught(self.conn, job.work) {
            (Ok(reply), items) => match savepoint.then(|| self.exec("RELEASE job")) {
                None | Some(Ok(())) => self.done.push((reply, items)),
                Some(Err(e)) => {
                    reply(Some(share(&e)));
                    self.fail(&e);
                }
            },
            (Err(reply), _) => {
                reply(None);
                let undone = match savepoint {
                    true => self
                        .exec("ROLLBACK TO job")
                        .and_then(|()| self.exec("RELEASE job")),
                    false => {
                        self.open = false;
                        self.exec("ROLLBACK")
                    }
                };
                if let Err(e) = undone {
                    // The transaction itself is gone (SQLite rolls back on some I/O errors).
                    self.fail(&e);
                }
            }
        }
    }

    /// COMMITs the open transaction, then broadcasts and answers the batch in order.
    fn commit(&mut self) {
        if !self.open {
            return;
        }
        match self.exec("COMMIT") {
            Ok(()) => {
                self.open = false;
                for (reply, items) in self.done.drain(..) {
                    for item in items {
                        // No receivers is fine: nobody is watching.
                        let _ = self.feed_tx.send(item);
                    }
                    reply(None);
                }
            }
            Err(e) => self.fail(&e),
        }
    }

    /// Rolls back everything and fails every job of the batch with `err`.
    fn fail(&mut self, err: &StoreError) {
        if self.open && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        self.open = false;
        for (reply, _) in self.done.drain(..) {
            reply(Some(share(err)));
        }
    }
}

/// Answers a job that cannot run with `e`.
fn refuse(work: Work, e: StoreError) {
    match work(Err(e)) {
        Ok(reply) | Err(reply) => reply(None),
    }
}

/// Runs one job, turning a panic into that job's error.
fn run_caught(conn: &Connection, work: Work) -> (Result<Reply, Reply>, Vec<FeedItem>) {
    let mut tx = Tx {
        conn,
        items: Vec::new(),
    };
    let res = catch_unwind(AssertUnwindSafe(|| work(Ok(&mut tx)))).unwrap_or_else(|_| {
        // The reply went down with the closure; its caller gets `gone()`.
        tracing::error!("sqlite writer: a write job panicked; its statements are rolled back");
        Err(Box::new(|_| {}))
    });
    (res, tx.items)
}

fn writer_loop(conn: Connection, rx: mpsc::Receiver<Job>, feed_tx: broadcast::Sender<FeedItem>) {
    let mut batch = Batch {
        conn: &conn,
        feed_tx: &feed_tx,
        open: false,
        done: Vec::new(),
    };
    while let Ok(first) = rx.recv() {
        batch.run(first);
        for _ in 1..MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.run(job),
                Err(_) => break,
            }
        }
        batch.commit();
    }
}

/// Read-only connections, each used by one blocking task at a time.
#[derive(Clone)]
pub(crate) struct Readers {
    inner: Arc<ReadersInner>,
}

struct ReadersInner {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl Readers {
    pub(crate) fn new(path: &Path, max: usize) -> Readers {
        Readers {
            inner: Arc::new(ReadersInner {
                path: path.to_path_buf(),
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(max)),
            }),
        }
    }

    /// Runs `f` on a reader connection on the blocking pool (SQLite calls block).
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let permit = self
            .inner
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(internal)?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = match inner.idle.lock().map_err(|_| gone())?.pop() {
                Some(c) => c,
                None => open_reader(&inner.path)?,
            };
            let res = f(&conn);
            inner.idle.lock().map_err(|_| gone())?.push(conn);
            res
        })
        .await
        .map_err(internal)?
    }
}

/// Opens the writer connection with the durability asked for.
pub(crate) fn open_writer(path: &Path, durability: Durability) -> StoreResult<Connection> {
    let conn = Connection::open(path).map_err(internal)?;
    let sync = match durability {
        Durability::Normal => "NORMAL",
        Durability::Full => "FULL",
    };
    conn.busy_timeout(BUSY_TIMEOUT).map_err(internal)?;
    // temp_store = MEMORY: savepoints and multi-row statements keep their statement
    // journal in memory; on file it cost one pwrite per touched page (measured: a
    // quarter of the writer's time under batched ingest). It holds only pages being
    // undone, not data: nothing durable moves to memory.
    // wal_autocheckpoint: the default (1,000 pages) copied the hot pages (index right
    // edges, the sessions being written) back to the main file every 4 MB of WAL, over
    // and over; every 32 MiB copies each once per many commits (bytes written per run
    // −11%, BENCHMARKS.md). journal_size_limit trims the WAL file after a checkpoint that
    // a long reader had held back.
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync}; PRAGMA foreign_keys = OFF; \
         PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = {WAL_PAGES}; \
         PRAGMA journal_size_limit = {WAL_LIMIT};"
    ))
    .map_err(internal)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

fn open_reader(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(internal)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(internal)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insert(w: &Tx<'_>, v: i64) -> StoreResult<()> {
        w.execute("INSERT INTO t(v) VALUES (?)", [v])
            .map(|_| ())
            .map_err(internal)
    }

    /// Jobs queued together share a transaction; a failing or panicking job (first in
    /// its batch or not) leaves nothing and takes nothing else down.
    #[tokio::test]
    async fn failed_jobs_roll_back_alone_inside_a_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let conn = open_writer(&path, Durability::Normal).unwrap();
        conn.execute_batch("CREATE TABLE t(v INTEGER)").unwrap();
        let (feed_tx, _) = broadcast::channel(16);
        let writer = Writer::start(conn, feed_tx).unwrap();
        // A blocker holds the writer thread so the next jobs queue up and form one batch.
        let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
        let blocker = writer.write(move |w| {
            hold_rx.recv().unwrap();
            insert(w, 0)
        });
        let jobs = async {
            tokio::join!(
                writer.write(|w| {
                    insert(w, 1)?;
                    Err::<(), _>(StoreError::RunnerNotFound)
                }),
                writer.write(|w| insert(w, 2)),
                writer.write(|w| -> StoreResult<()> {
                    insert(w, 3)?;
                    panic!("job panics after writing")
                }),
                writer.write(|w| insert(w, 4)),
            )
        };
        // `join!` polls in order: the blocker and the four jobs are queued (a job is sent
        // at its first poll) before the blocker is let go, so all five share a batch.
        let release = async {
            hold_tx.send(()).unwrap();
        };
        let (blocked, (r1, r2, r3, r4), ()) = tokio::join!(blocker, jobs, release);
        blocked.unwrap();
        assert!(matches!(r1, Err(StoreError::RunnerNotFound)));
        r2.unwrap();
        assert!(r3.is_err());
        r4.unwrap();
        let seen: Vec<i64> = Readers::new(&path, 1)
            .read(|c| {
                c.prepare("SELECT v FROM t ORDER BY v")
                    .and_then(|mut st| st.query_map([], |r| r.get::<_, i64>(0))?.collect())
                    .map_err(internal)
            })
            .await
            .unwrap();
        assert_eq!(seen, vec![0, 2, 4]);
        // A lone failing job (first and only in its transaction) leaves nothing either.
        let lone = writer
            .write(|w| {
                insert(w, 5)?;
                Err::<(), _>(StoreError::RunNotFound)
            })
            .await;
        assert!(matches!(lone, Err(StoreError::RunNotFound)));
        let n: i64 = writer
            .write(|w| {
                w.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
                    .map_err(internal)
            })
            .await
            .unwrap();
        assert_eq!(n, 3);
    }
}
