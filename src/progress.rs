//! Build progress: rows written of rows estimated, while a view is built or
//! rebuilt in full.
//!
//! A build is a few statements that fill tables (the state, then the view;
//! internal views first), each planned before it runs: its planner estimate
//! joins the estimate when it starts, and every row it writes counts as done.
//! With pg_tide preloaded the figures are published in shared memory, where
//! `tide.views` reads them for builds in other backends (the refresher
//! builds deferred views); an interactive build also says how far it is in
//! a NOTICE every `NOTICE_EVERY`.
//!
//! Shared memory holds only these counters: a crash loses nothing but them.

use pgrx::lwlock::PgLwLock;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PGRXSharedMemory};
use std::cell::RefCell;
use std::time::{Duration, Instant};

/// Builds shown at once (more run unseen).
const MAX_BUILDS: usize = 64;
/// Rows between two publications of a build's count.
const PUBLISH_EVERY: u64 = 1024;
/// Time between two progress NOTICEs of a build run interactively.
const NOTICE_EVERY: Duration = Duration::from_secs(10);

#[derive(Copy, Clone, Default)]
struct Entry {
    dboid: u32,
    /// 0 when the entry is free.
    view_id: i64,
    pid: i32,
    done: u64,
    estimated: u64,
}

#[derive(Copy, Clone)]
pub struct Builds {
    entries: [Entry; MAX_BUILDS],
}

impl Default for Builds {
    fn default() -> Self {
        Builds { entries: [Entry::default(); MAX_BUILDS] }
    }
}

// SAFETY: plain data.
unsafe impl PGRXSharedMemory for Builds {}

static BUILDS: PgLwLock<Builds> = unsafe { PgLwLock::new(c"pg_tide_builds") };

/// Called from _PG_init while shared_preload_libraries are loaded.
pub fn init_shmem() {
    pg_shmem_init!(BUILDS);
}

/// The build under way in this backend.
struct Build {
    view_id: i64,
    /// The view's name, for NOTICEs.
    name: String,
    /// Its entry in shared memory, if it has one.
    entry: Option<usize>,
    /// Rows written by the statements that finished.
    done_before: u64,
    /// Rows written by the statement running, and its planner estimate.
    done: u64,
    estimated: u64,
    last_notice: Instant,
}

impl Build {
    fn totals(&self) -> (u64, u64) {
        let done = self.done_before + self.done;
        (done, self.done_before + self.estimated.max(self.done))
    }

    fn publish(&self) {
        if let Some(i) = self.entry {
            let (done, estimated) = self.totals();
            let mut builds = BUILDS.exclusive();
            let e = &mut builds.entries[i];
            if e.view_id == self.view_id {
                e.done = done;
                e.estimated = estimated;
            }
        }
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Build>> = const { RefCell::new(None) };
}

/// Count the rows that the fills of `f` write as the build of view
/// `view_id` (0: a view not registered yet, shown in NOTICEs only), named
/// `name`. A build inside another (an internal view's) counts toward the
/// outer one.
pub fn building<R>(view_id: i64, name: &str, f: impl FnOnce() -> R) -> R {
    struct Finish;
    impl Drop for Finish {
        fn drop(&mut self) {
            if let Some(build) = CURRENT.with(|c| c.borrow_mut().take()) {
                if let Some(i) = build.entry {
                    let mut builds = BUILDS.exclusive();
                    if builds.entries[i].view_id == build.view_id {
                        builds.entries[i] = Entry::default();
                    }
                }
            }
        }
    }
    if CURRENT.with(|c| c.borrow().is_some()) {
        return f();
    }
    let entry = if view_id != 0 && crate::scheduler::preloaded() { claim(view_id) } else { None };
    CURRENT.with(|c| {
        *c.borrow_mut() =
            Some(Build { view_id, name: name.to_string(), entry, done_before: 0, done: 0, estimated: 0, last_notice: Instant::now() })
    });
    let _finish = Finish;
    f()
}

/// A free entry (or one left by a backend that is gone) for view `view_id`.
fn claim(view_id: i64) -> Option<usize> {
    // SAFETY: reads this backend's ids.
    let (dboid, pid) = unsafe { (pg_sys::MyDatabaseId.to_u32(), pg_sys::MyProcPid) };
    let mut builds = BUILDS.exclusive();
    // SAFETY: BackendPidGetProc reads the proc array under its own lock.
    let gone = |e: &Entry| e.view_id != 0 && unsafe { pg_sys::BackendPidGetProc(e.pid) }.is_null();
    let i = builds.entries.iter().position(|e| e.view_id == 0 || gone(e))?;
    builds.entries[i] = Entry { dboid, view_id, pid, done: 0, estimated: 0 };
    Some(i)
}

/// A fill of the build under way starts; the planner expects `estimated` rows.
pub fn statement(estimated: u64) {
    CURRENT.with(|c| {
        if let Some(b) = c.borrow_mut().as_mut() {
            b.done_before += b.done;
            b.done = 0;
            b.estimated = estimated;
            b.publish();
        }
    });
}

/// The fill under way wrote one more row.
pub fn row() {
    CURRENT.with(|c| {
        if let Some(b) = c.borrow_mut().as_mut() {
            b.done += 1;
            if b.done % PUBLISH_EVERY == 0 {
                b.publish();
                if b.last_notice.elapsed() >= NOTICE_EVERY {
                    b.last_notice = Instant::now();
                    let (done, estimated) = b.totals();
                    notice!("building view {}: {done} of about {estimated} rows written", b.name);
                }
            }
        }
    });
}

/// (rows done, rows estimated) of the build of view `view_id` in this
/// database, if one is under way in a live backend.
pub fn of(view_id: i64) -> Option<(i64, i64)> {
    if !crate::scheduler::preloaded() {
        return None;
    }
    // SAFETY: reads this backend's database id.
    let dboid = unsafe { pg_sys::MyDatabaseId.to_u32() };
    let builds = BUILDS.share();
    let e = builds.entries.iter().find(|e| e.view_id == view_id && e.dboid == dboid)?;
    // SAFETY: as in `claim`.
    let live = !unsafe { pg_sys::BackendPidGetProc(e.pid) }.is_null();
    live.then_some((e.done as i64, e.estimated as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(done_before: u64, done: u64, estimated: u64) -> Build {
        Build { view_id: 1, name: "v".into(), entry: None, done_before, done, estimated, last_notice: Instant::now() }
    }

    #[test]
    fn totals_add_finished_fills_to_the_running_one() {
        // The state's fill wrote 900 rows; the view's has written 10 of 1,000 expected.
        assert_eq!(build(900, 10, 1000).totals(), (910, 1900));
        // A fill that writes more than the planner expected raises the estimate with it.
        assert_eq!(build(0, 1500, 1000).totals(), (1500, 1500));
    }
}
