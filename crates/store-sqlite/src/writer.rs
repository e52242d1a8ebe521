//! The single writer with group commit.
//!
//! Every mutation takes the writer lock and runs its statements on the one writer
//! connection (`WriteTx`). When it finishes and other writers are already queued for the
//! lock, it does not commit: it leaves its work in the open transaction, hands the lock on
//! and waits; the next holder continues the same transaction. Whoever finishes with
//! nobody queued (or the committer task, which queues like everyone else) commits once for
//! the whole batch, broadcasts the batch's feed items in order, and only then are the
//! batch's callers answered. So every acknowledged write is committed, commit order is
//! cursor order, and under load many requests share one WAL commit.
//!
//! A job that joins a non-empty batch runs inside a SAVEPOINT, so its failure rolls back
//! only its own statements. A job abandoned without commit (error, or its future dropped)
//! marks the state; the next holder rolls it back before doing anything else.

use std::{
    ops::{Deref, DerefMut},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Weak,
    },
};

use sqlx::{Executor, SqliteConnection};
use tokio::sync::{broadcast, oneshot, Mutex, MutexGuard, Notify};

use aof_store::{StoreError, StoreResult};
use aof_wire::sse::FeedItem;

use crate::internal;

/// Jobs per transaction at most; bounds the wait of the first job in a batch.
const MAX_BATCH: usize = 256;

/// What an abandoned job left to undo.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Undo {
    /// Roll back to the job's savepoint; the batch goes on.
    Savepoint,
    /// Roll back the whole transaction (and fail the batch, if any).
    Whole,
    /// Nothing: a lone single-statement job ran in autocommit mode (SQLite undid a
    /// failed statement itself).
    Nothing,
}

struct Pending {
    items: Vec<FeedItem>,
    done: oneshot::Sender<StoreResult<()>>,
}

pub(crate) struct WriterState {
    conn: SqliteConnection,
    /// A BEGIN was issued and not yet ended.
    open: bool,
    /// A COMMIT was sent and its outcome not yet seen (its caller's future was dropped
    /// mid-way); the next holder finishes the batch.
    committing: bool,
    /// Jobs finished inside the open transaction, waiting for its COMMIT.
    pending: Vec<Pending>,
    abandoned: Option<Undo>,
}

pub(crate) struct Writer {
    state: Mutex<WriterState>,
    /// Tasks queued for `state` right now; > 0 means someone will continue the batch.
    waiting: AtomicUsize,
    /// Wakes the committer task, which makes sure a handed-on batch gets committed.
    commit_due: Arc<Notify>,
    pub(crate) feed_tx: broadcast::Sender<FeedItem>,
}

/// A copy of `e` for the other members of a failed batch.
fn share(e: &StoreError) -> StoreError {
    match e {
        StoreError::Storage { full, message } => StoreError::Storage {
            full: *full,
            message: message.clone(),
        },
        other => StoreError::Internal(anyhow::anyhow!(
            "the batch this write was part of failed: {other}"
        )),
    }
}

impl WriterState {
    async fn exec(&mut self, sql: &str) -> StoreResult<()> {
        self.conn.execute(sql).await.map_err(internal)?;
        Ok(())
    }

    /// Rolls back everything and fails every pending job with `err`.
    async fn fail_batch(&mut self, err: &StoreError) {
        if self.open {
            let _ = self.conn.execute("ROLLBACK").await;
        }
        self.open = false;
        for p in self.pending.drain(..) {
            let _ = p.done.send(Err(share(err)));
        }
    }

    /// Finishes what an interrupted holder left behind.
    async fn cleanup(&mut self, feed_tx: &broadcast::Sender<FeedItem>) {
        if self.committing {
            self.commit_batch(feed_tx).await;
        }
        match self.abandoned.take() {
            Some(Undo::Savepoint) => {
                if let Err(e) = self.exec("ROLLBACK TO w; RELEASE w").await {
                    // The transaction itself is gone (SQLite rolls back on some I/O errors).
                    self.fail_batch(&e).await;
                }
            }
            Some(Undo::Nothing) | None => {}
            Some(Undo::Whole) => {
                let e = StoreError::Internal(anyhow::anyhow!(
                    "a write in the same transaction failed; nothing was written"
                ));
                self.fail_batch(&e).await;
            }
        }
    }

    /// COMMITs the open transaction, then broadcasts and answers the batch in order.
    async fn commit_batch(&mut self, feed_tx: &broadcast::Sender<FeedItem>) {
        if !self.open && !self.committing {
            return;
        }
        self.committing = true;
        let res = self.exec("COMMIT").await;
        self.committing = false;
        // "No transaction": an earlier COMMIT whose caller went away did go through.
        let res = res.or_else(
            |e| match e.to_string().contains("no transaction is active") {
                true => Ok(()),
                false => Err(e),
            },
        );
        match res {
            Ok(()) => {
                self.open = false;
                for p in self.pending.drain(..) {
                    for item in p.items {
                        // No receivers is fine: nobody is watching.
                        let _ = feed_tx.send(item);
                    }
                    let _ = p.done.send(Ok(()));
                }
            }
            Err(e) => self.fail_batch(&e).await,
        }
    }
}

impl Writer {
    pub(crate) fn new(conn: SqliteConnection, feed_tx: broadcast::Sender<FeedItem>) -> Arc<Self> {
        let w = Arc::new(Writer {
            state: Mutex::new(WriterState {
                conn,
                open: false,
                committing: false,
                pending: Vec::new(),
                abandoned: None,
            }),
            waiting: AtomicUsize::new(0),
            commit_due: Arc::new(Notify::new()),
            feed_tx,
        });
        tokio::spawn(committer(Arc::downgrade(&w), w.commit_due.clone()));
        w
    }

    /// Lets the committer task end (called when the store is dropped).
    pub(crate) fn shut_down(&self) {
        self.commit_due.notify_one();
    }

    async fn lock(&self) -> Held<'_> {
        struct Queued<'a>(&'a AtomicUsize);
        impl Drop for Queued<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let queued = Queued(&self.waiting);
        let mut st = Held {
            st: self.state.lock().await,
            due: &self.commit_due,
        };
        drop(queued);
        st.cleanup(&self.feed_tx).await;
        st
    }

    /// Starts a job. `single`: the job writes with at most one statement and treats any
    /// error as fatal, so it needs no savepoint (its failure fails the whole batch).
    pub(crate) async fn begin(&self, single: bool) -> StoreResult<WriteTx<'_>> {
        let mut st = self.lock().await;
        if single && !st.open && self.waiting.load(Ordering::Acquire) == 0 {
            // Alone: the one statement commits by itself, a round trip less than
            // BEGIN … COMMIT (the uncontended case, e.g. an idle coordinator).
            return Ok(WriteTx {
                tx: TxConn(Some(st)),
                undo: Undo::Nothing,
                items: Vec::new(),
                writer: self,
            });
        }
        if !st.open {
            // Marked first: if this future is dropped mid-BEGIN, the COMMIT still comes.
            st.open = true;
            if let Err(e) = st.exec("BEGIN").await {
                st.open = false;
                return Err(e);
            }
        }
        let savepoint = !single && !st.pending.is_empty();
        let mut w = WriteTx {
            tx: TxConn(Some(st)),
            undo: if savepoint {
                Undo::Savepoint
            } else {
                Undo::Whole
            },
            items: Vec::new(),
            writer: self,
        };
        if savepoint {
            // Dropped or failed here, `w` is abandoned and the savepoint is rolled back.
            sqlx::query("SAVEPOINT w")
                .execute(&mut *w.tx)
                .await
                .map_err(internal)?;
        }
        Ok(w)
    }

    /// Runs `f` on the writer connection outside any batch (pragmas, maintenance).
    pub(crate) async fn with_conn<T>(
        &self,
        f: impl AsyncFnOnce(&mut SqliteConnection) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut st = self.lock().await;
        st.commit_batch(&self.feed_tx).await;
        f(&mut st.conn).await
    }
}

/// The writer lock. Released with work left over (a handed-on batch, an abandoned job,
/// an interrupted COMMIT), it wakes the committer, so nothing waits on a holder that
/// went away.
pub(crate) struct Held<'a> {
    st: MutexGuard<'a, WriterState>,
    due: &'a Notify,
}

impl Deref for Held<'_> {
    type Target = WriterState;
    fn deref(&self) -> &WriterState {
        &self.st
    }
}

impl DerefMut for Held<'_> {
    fn deref_mut(&mut self) -> &mut WriterState {
        &mut self.st
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if !self.st.pending.is_empty() || self.st.abandoned.is_some() || self.st.committing {
            self.due.notify_one();
        }
    }
}

/// Commits batches whose last member handed the lock on to someone who then went away.
async fn committer(writer: Weak<Writer>, due: Arc<Notify>) {
    loop {
        due.notified().await;
        let Some(w) = writer.upgrade() else { return };
        let mut st = w.lock().await;
        st.commit_batch(&w.feed_tx).await;
    }
}

/// The writer connection while a job holds the lock; derefs to the connection so the
/// job's statements read `.execute(&mut *w.tx)`.
pub(crate) struct TxConn<'a>(Option<Held<'a>>);

impl Deref for TxConn<'_> {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.0.as_ref().expect("writer lock held").conn
    }
}

impl DerefMut for TxConn<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.0.as_mut().expect("writer lock held").conn
    }
}

/// One job in the writer's open transaction plus the feed items it publishes on commit.
pub(crate) struct WriteTx<'a> {
    pub tx: TxConn<'a>,
    undo: Undo,
    items: Vec<FeedItem>,
    writer: &'a Writer,
}

impl WriteTx<'_> {
    pub(crate) fn push_item(&mut self, item: FeedItem) {
        self.items.push(item);
    }

    /// Ends the job; returns once the transaction holding it is committed.
    pub async fn commit(mut self) -> StoreResult<()> {
        let mut st = self.tx.0.take().expect("writer lock held");
        if self.undo == Undo::Nothing {
            // A lone statement, already committed by itself: publish (still under the
            // lock, so in cursor order) and answer.
            for item in std::mem::take(&mut self.items) {
                let _ = self.writer.feed_tx.send(item);
            }
            return Ok(());
        }
        let (done, result) = oneshot::channel();
        // Queued first: if this future is dropped from here on, the batch still commits.
        st.pending.push(Pending {
            items: std::mem::take(&mut self.items),
            done,
        });
        let released = match self.undo {
            Undo::Savepoint => st.exec("RELEASE w").await,
            Undo::Whole | Undo::Nothing => Ok(()),
        };
        let w = self.writer;
        match released {
            Err(e) => st.fail_batch(&e).await,
            // Someone queued behind us continues this transaction; dropping the lock
            // with work pending also wakes the committer, which commits it if nobody
            // else does first.
            Ok(()) if w.waiting.load(Ordering::Acquire) > 0 && st.pending.len() < MAX_BATCH => {}
            Ok(()) => st.commit_batch(&w.feed_tx).await,
        }
        drop(st);
        result
            .await
            .unwrap_or_else(|_| Err(internal(anyhow::anyhow!("the writer went away"))))
    }
}

impl Drop for WriteTx<'_> {
    fn drop(&mut self) {
        // Not committed: an error path or a dropped future. The next holder undoes it.
        // Dropping the lock then wakes the committer (see `Held`).
        if let Some(mut st) = self.tx.0.take() {
            if self.undo != Undo::Nothing {
                st.abandoned = Some(self.undo);
            }
        }
    }
}
