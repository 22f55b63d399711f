//! The background refresher of deferred views.
//!
//! With pg_tide in shared_preload_libraries, a launcher starts at server
//! start, lists the databases and starts one refresher per database (a
//! dynamic background worker); a refresher with no deferred view to serve
//! exits. A backend whose transaction logged changes (or created or altered
//! a deferred view) bumps its database's change counter in shared memory at
//! commit and sets the refresher's latch, starting a refresher if none is
//! running. The refresher reads the catalog only when the counter moved, so
//! an idle system runs no query at all; it hands each due view (its
//! refresh_interval passed since its last refresh began), in id order, to
//! one of up to `tide.refresh_workers` refresh workers of the database
//! (dynamic background workers it starts when needed; idle ones exit),
//! which refreshes it in a transaction of its own, so that one long
//! refresh does not hold the other views back. The due WAL-captured views
//! that are built go to one worker together, to be refreshed in one
//! transaction from one read of the replication slot (reading it costs the
//! same for one view as for all). A view is never handed out
//! twice at once; a view's refresh refreshes the deferred views it reads
//! first (and waits for theirs), which keeps dependency order. A refresh
//! that fails is retried at the next interval and, after
//! `tide.max_failures` failures in a row, the view is marked failed and left
//! alone until refreshed by hand; the other views go on.
//!
//! Shared memory holds coordination state only (per database: the
//! refresher's pid and latch, the change counter, each worker's pid, latch
//! and job); every change and every position lives in WAL-logged tables.

use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags};
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::lwlock::PgLwLock;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PGRXSharedMemory};
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Databases served at once.
const MAX_DATABASES: usize = 64;

#[derive(Copy, Clone)]
struct Slot {
    dboid: u32,
    /// The refresher's pid, 0 when none runs.
    pid: i32,
    /// The refresher's latch (in shared memory: PGPROC's).
    latch: *mut pg_sys::Latch,
    /// Bumped by every commit that logged changes.
    changes: u64,
    /// Bumped by every commit that made, changed or dropped deferred views.
    views: u64,
    /// Backends in tide.wait on this database: while there are some, a
    /// refresh of a WAL-captured view that found nothing records its
    /// snapshot anyway, so that they see it has everything.
    waiters: u32,
    /// Set while the refresher sleeps with nothing due: only then does a
    /// commit that logged changes wake it (otherwise it looks at the
    /// counter when its next view is due), so that writers do not signal
    /// it at every commit.
    idle: bool,
    /// The refresh workers the refresher hands views to.
    workers: [Worker; MAX_WORKERS],
}

/// Refresh workers per database, at most (`tide.refresh_workers`).
const MAX_WORKERS: usize = 8;
/// A refresh worker with nothing to do for this long exits.
const WORKER_IDLE_EXIT: Duration = Duration::from_secs(30);

/// What a refresh worker is doing.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
enum Job {
    /// No worker in this entry.
    Free,
    /// Waiting for a view.
    Idle,
    /// To refresh the views `group` (a worker not started yet has pid 0).
    Assigned { group: Group },
    /// Refreshed them: bit i of `failed` set if the group's view i failed.
    /// The refresher reads it and sets the worker idle.
    Done { failed: u16 },
}

/// WAL-captured views refreshed together (one read of the slot), at most.
const MAX_GROUP: usize = 16;

/// The views of a refresh job: one view, or WAL-captured views together.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
struct Group {
    views: [i64; MAX_GROUP],
    len: u8,
    wal: bool,
}

impl Group {
    fn new(views: &[i64], wal: bool) -> Group {
        let len = views.len().min(MAX_GROUP);
        let mut g = Group { views: [0; MAX_GROUP], len: len as u8, wal };
        g.views[..len].copy_from_slice(&views[..len]);
        g
    }

    fn views(&self) -> &[i64] {
        &self.views[..self.len as usize]
    }
}

#[derive(Copy, Clone)]
struct Worker {
    pid: i32,
    latch: *mut pg_sys::Latch,
    job: Job,
}

impl Default for Worker {
    fn default() -> Self {
        Worker { pid: 0, latch: std::ptr::null_mut(), job: Job::Free }
    }
}

impl Worker {
    fn alive(&self) -> bool {
        // SAFETY: looks the pid up among the live processes (ProcArray).
        self.pid != 0 && !unsafe { pg_sys::BackendPidGetProc(self.pid) }.is_null()
    }
}

impl Slot {
    fn has_refresher(&self) -> bool {
        self.pid != 0 && !self.latch.is_null()
    }

    /// Set the refresher's latch, if one runs. Called under the lock.
    fn wake_refresher(&mut self) {
        if self.has_refresher() {
            self.idle = false;
            // SAFETY: a latch in shared memory, of a live refresher (its pid
            // is cleared, under this lock, before it exits).
            unsafe { pg_sys::SetLatch(self.latch) };
        }
    }
}

impl Default for Slot {
    fn default() -> Self {
        Slot {
            dboid: 0,
            pid: 0,
            latch: std::ptr::null_mut(),
            changes: 0,
            views: 0,
            waiters: 0,
            idle: false,
            workers: [Worker::default(); MAX_WORKERS],
        }
    }
}

#[derive(Copy, Clone)]
pub struct Slots {
    slots: [Slot; MAX_DATABASES],
}

impl Default for Slots {
    fn default() -> Self {
        Slots { slots: [Slot::default(); MAX_DATABASES] }
    }
}

impl Slots {
    /// The slot of database `dboid`, if it has one.
    fn of(&mut self, dboid: u32) -> Option<&mut Slot> {
        self.slots.iter_mut().find(|s| s.dboid == dboid)
    }

    /// The slot of database `dboid`, given a free one if it has none (None
    /// when every slot is taken: more databases than slots).
    fn of_or_new(&mut self, dboid: u32) -> Option<&mut Slot> {
        let i = self.slots.iter().position(|s| s.dboid == dboid).or_else(|| self.slots.iter().position(|s| s.dboid == 0))?;
        let slot = &mut self.slots[i];
        if slot.dboid != dboid {
            *slot = Slot { dboid, ..Slot::default() };
        }
        Some(slot)
    }
}

// SAFETY: plain data; the latch pointers point into shared memory, which
// every backend maps at the same address.
unsafe impl PGRXSharedMemory for Slots {}

static SLOTS: PgLwLock<Slots> = unsafe { PgLwLock::new(c"pg_tide_refreshers") };

/// Set in _PG_init when loaded through shared_preload_libraries: only then
/// are there shared memory and background workers.
static PRELOADED: AtomicBool = AtomicBool::new(false);

pub static MAX_FAILURES: GucSetting<i32> = GucSetting::<i32>::new(5);
pub static REFRESH_WORKERS: GucSetting<i32> = GucSetting::<i32>::new(2);

/// Called from _PG_init.
pub fn init() {
    GucRegistry::define_int_guc(
        c"tide.max_failures",
        c"Failed refreshes in a row after which a deferred view is marked failed.",
        c"A failed view is not refreshed in the background until tide.refresh succeeds on it.",
        &MAX_FAILURES,
        1,
        1000,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"tide.refresh_workers",
        c"Deferred views of one database refreshed at once, each by a background worker of its own.",
        c"Views that read one another still refresh in order; the workers count against max_worker_processes.",
        &REFRESH_WORKERS,
        1,
        MAX_WORKERS as i32,
        GucContext::Sighup,
        GucFlags::default(),
    );
    // SAFETY: reads a flag PostgreSQL sets while loading preloaded libraries.
    if !unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        return;
    }
    PRELOADED.store(true, Ordering::Relaxed);
    pg_shmem_init!(SLOTS);
    crate::progress::init_shmem();
    BackgroundWorkerBuilder::new("pg_tide launcher")
        .set_function("tide_launcher_main")
        .set_library("pg_tide")
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(Some(Duration::from_secs(10)))
        .load();
}

/// Whether pg_tide was loaded through shared_preload_libraries (so has shared memory).
pub fn preloaded() -> bool {
    PRELOADED.load(Ordering::Relaxed)
}

/// Whether deferred mode can run here; an error saying how to enable it otherwise.
pub fn require_preloaded() {
    if !preloaded() {
        crate::pg::raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "deferred mode needs pg_tide in shared_preload_libraries",
            Some("Deferred views are refreshed by pg_tide's background workers, which start with the server.".into()),
            Some("Add pg_tide to shared_preload_libraries in postgresql.conf and restart the server, or use mode => 'immediate'."),
        );
    }
}

thread_local! {
    /// What this transaction will tell the refresher at commit: (changes
    /// logged, deferred views changed); None when nothing.
    static WAKE_AT_COMMIT: Cell<Option<(bool, bool)>> = const { Cell::new(None) };
}

/// A change was logged: at commit, wake (or start) the refresher of this database.
pub fn note_change() {
    note(true, false);
}

/// A deferred view was made, changed or dropped, or refreshed by hand: at
/// commit, the refresher reads the catalog again.
pub fn note_views_changed() {
    note(false, true);
}

/// Wake the refresher and, if `counted` (a wait that WAL capture's
/// refreshes must serve), count this backend among the waiters of its
/// database while `f` runs (also when it raises an error).
pub fn waiting<R>(counted: bool, f: impl FnOnce() -> R) -> R {
    struct Done(u32);
    impl Drop for Done {
        fn drop(&mut self) {
            if let Some(slot) = SLOTS.exclusive().of(self.0) {
                slot.waiters = slot.waiters.saturating_sub(1);
            }
        }
    }
    if !preloaded() {
        return f();
    }
    // SAFETY: reads the backend's database id.
    let dboid = unsafe { pg_sys::MyDatabaseId }.to_u32();
    let counted = match SLOTS.exclusive().of(dboid) {
        Some(slot) => {
            slot.waiters += u32::from(counted);
            // Wake the refresher so that it plans its next pass with this
            // waiter counted (a WAL-captured view is then refreshed even
            // when the WAL has not moved).
            slot.wake_refresher();
            counted
        }
        None => false,
    };
    let _done = counted.then_some(Done(dboid));
    f()
}

/// Whether some backend of this database is in tide.wait.
pub fn has_waiters() -> bool {
    if !preloaded() {
        return false;
    }
    // SAFETY: reads the backend's database id.
    let dboid = unsafe { pg_sys::MyDatabaseId }.to_u32();
    SLOTS.share().slots.iter().any(|s| s.dboid == dboid && s.waiters > 0)
}

/// Called by the sql_drop event trigger when pg_tide views were dropped.
#[pg_extern(volatile, parallel_unsafe)]
fn notify_refresher() {
    note_views_changed();
}

fn note(changes: bool, views: bool) {
    if !preloaded() {
        return;
    }
    let before = WAKE_AT_COMMIT.with(|w| w.get());
    let (c, v) = before.unwrap_or((false, false));
    WAKE_AT_COMMIT.with(|w| w.set(Some((c || changes, v || views))));
    if before.is_none() {
        // SAFETY: a static callback, unregistered by itself when it runs.
        unsafe { pg_sys::RegisterXactCallback(Some(wake_at_commit), std::ptr::null_mut()) };
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn wake_at_commit(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    use pg_sys::XactEvent::*;
    if !matches!(event, XACT_EVENT_COMMIT | XACT_EVENT_ABORT | XACT_EVENT_PARALLEL_COMMIT | XACT_EVENT_PARALLEL_ABORT | XACT_EVENT_PREPARE)
    {
        return;
    }
    let what = WAKE_AT_COMMIT.with(|w| w.take());
    pg_sys::UnregisterXactCallback(Some(wake_at_commit), std::ptr::null_mut());
    // A prepared transaction commits later, elsewhere: the refresher finds
    // its changes when it next wakes.
    if let (Some((changes, views)), XACT_EVENT_COMMIT | XACT_EVENT_PARALLEL_COMMIT) = (what, event) {
        wake(pg_sys::MyDatabaseId.to_u32(), changes, views);
    }
}

/// Bump the database's counters and wake its refresher; start one if none
/// runs. Runs after commit: nothing here may raise an error.
fn wake(dboid: u32, changes: bool, views: bool) {
    let start = {
        let mut slots = SLOTS.exclusive();
        let Some(slot) = slots.of_or_new(dboid) else {
            return; // more databases than slots: refreshed by hand
        };
        slot.changes += changes as u64;
        slot.views += views as u64;
        if slot.idle || views {
            slot.wake_refresher();
        }
        !slot.has_refresher()
    };
    if start {
        start_refresher(dboid);
    }
}

/// A background worker of pg_tide's of kind `kind` for database `dboid`,
/// running `function`, with database access, started after recovery.
fn database_worker(kind: &str, function: &str, dboid: u32) -> BackgroundWorkerBuilder {
    BackgroundWorkerBuilder::new(&format!("{kind} {dboid}"))
        .set_type(kind)
        .set_function(function)
        .set_library("pg_tide")
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
}

/// Start the refresher of database `dboid` (it exits if one runs already).
fn start_refresher(dboid: u32) {
    let _ = database_worker("pg_tide refresher", "tide_refresher_main", dboid)
        .set_restart_time(Some(Duration::from_secs(5)))
        .set_argument(Some(pg_sys::Datum::from(dboid)))
        .load_dynamic();
}

/// The launcher: start a refresher for every database that allows
/// connections (each exits if it has nothing to serve), then exit.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn tide_launcher_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    BackgroundWorker::connect_worker_to_spi_by_oid(None, None);
    // SAFETY: a catalog scan of pg_database in a transaction of its own, as
    // the autovacuum launcher does; without a database only shared
    // catalogs can be read.
    let databases: Vec<u32> = unsafe {
        pg_sys::StartTransactionCommand();
        let rel = pg_sys::table_open(pg_sys::DatabaseRelationId, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        let scan = pg_sys::table_beginscan_catalog(rel, 0, std::ptr::null_mut());
        let mut out = Vec::new();
        loop {
            let tuple = pg_sys::heap_getnext(scan, pg_sys::ScanDirection::ForwardScanDirection);
            if tuple.is_null() {
                break;
            }
            let form = pg_sys::GETSTRUCT(tuple) as *mut pg_sys::FormData_pg_database;
            if (*form).datallowconn && !(*form).datistemplate {
                out.push((*form).oid.to_u32());
            }
        }
        pg_sys::table_endscan(scan);
        pg_sys::table_close(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        pg_sys::CommitTransactionCommand();
        out
    };
    for db in databases {
        start_refresher(db);
    }
    // Exit code 0: not restarted.
    // SAFETY: ends this worker process normally.
    unsafe { pg_sys::proc_exit(0) };
}

/// A deferred view the refresher serves.
struct Served {
    interval: Duration,
    /// When its last refresh began, and how long it took.
    last: Instant,
    took: Duration,
    /// The database's change counter when the view was last refreshed here.
    seen: Option<u64>,
    building: bool,
    /// WAL capture: no trigger counts its changes; the view may have some
    /// when the WAL has moved since its last refresh here (`seen_lsn`).
    wal: bool,
    seen_lsn: u64,
    /// The catalog was read while the view was being refreshed: what that
    /// refresh did may be out of date.
    changed_in_flight: bool,
}

impl Served {
    /// When the view is due: its next refresh begins early enough that a
    /// change committed just after the last one began is applied within
    /// the interval, if the refresh takes as long as the last one: an
    /// interval after the last began, less the time it took and a tenth of
    /// the interval (at least a quarter of the interval after it).
    fn due(&self) -> Instant {
        let early = self.took + self.interval / 10;
        self.last + self.interval.saturating_sub(early).max(self.interval / 4)
    }

    /// Note a refresh that began as `flight` says, and succeeded if `ok`
    /// (a failed one is tried again at the next interval). A view altered
    /// while it was refreshed (to be built again, say) is looked at again.
    fn finished(&mut self, flight: Flight, ok: bool) {
        self.last = flight.started;
        self.took = flight.started.elapsed();
        let ok = ok && !std::mem::take(&mut self.changed_in_flight);
        self.seen = ok.then_some(flight.changes);
        // SAFETY: reads the WAL insert position (shared memory, under its lock).
        self.seen_lsn = if ok { unsafe { pg_sys::GetXLogInsertRecPtr() } } else { 0 };
        if ok {
            self.building = false;
        }
    }
}

/// A refresh handed to a worker (or run by the refresher itself).
#[derive(Copy, Clone)]
struct Flight {
    worker: usize,
    /// The view's place in the worker's group.
    member: usize,
    started: Instant,
    /// The database's change counter when it began.
    changes: u64,
}

/// Refresh view `id` in a transaction of its own; a failure is logged and counted.
fn refresh_one(id: i64) -> bool {
    let result = attempt(|| crate::refresh::refresh_by_id(id));
    if let Err(e) = &result {
        count_failure(id, e);
    }
    result.is_ok()
}

/// Log a failed refresh of view `id` and count it, in a transaction of its own.
fn count_failure(id: i64, error: &str) {
    log!("pg_tide refresher: refresh of view {id} failed: {error}");
    let _ = attempt(|| crate::refresh::record_failure(id, error, MAX_FAILURES.get()));
}

/// Refresh the views of `group`, the WAL-captured ones together (see
/// `refresh::refresh_wal_group`); returns which failed, as `Job::Done`.
fn refresh_job(group: &Group) -> u16 {
    let views = group.views();
    let all = ((1u32 << views.len()) - 1) as u16;
    if !group.wal {
        return views.iter().enumerate().filter(|(_, id)| !refresh_one(**id)).fold(0, |m, (i, _)| m | (1 << i));
    }
    // The slot is made first, in a transaction that has done nothing else.
    let slot = attempt(crate::capture::wal::ensure_slot);
    let grouped = slot.and_then(|_| attempt(|| crate::refresh::refresh_wal_group(views, MAX_FAILURES.get())));
    let outcome = match grouped {
        Ok(outcome) => outcome,
        Err(e) => {
            for id in views {
                count_failure(*id, &e);
            }
            return all;
        }
    };
    let mut failed = 0;
    let bit = |id: i64| 1u16 << views.iter().position(|v| *v == id).unwrap_or(0);
    for (id, error) in &outcome.refreshed {
        // (Counted already, in the group's transaction.)
        if let Some(e) = error {
            log!("pg_tide refresher: refresh of view {id} failed: {e}");
            failed |= bit(*id);
        }
    }
    // Committed: the slot can go past what they applied (the next read
    // would advance it, after reading all of it once more).
    if let Some(commits) = &outcome.commits {
        if let Err(e) = attempt(|| crate::capture::wal::confirm_applied(commits)) {
            log!("pg_tide refresher: could not advance the replication slot: {e}");
        }
    }
    for id in outcome.alone {
        if !refresh_one(id) {
            failed |= bit(id);
        }
    }
    failed
}

/// Where a view to refresh went.
enum Dispatch {
    Sent(usize),
    /// Every worker is busy: it waits for one.
    Busy,
    /// No worker could be started: the refresher refreshes it itself.
    Here,
}

/// The refresher's side of its workers: their handles, by entry.
struct Pool {
    handles: [Option<pgrx::bgworkers::DynamicBackgroundWorker>; MAX_WORKERS],
}

impl Pool {
    fn new() -> Pool {
        Pool { handles: std::array::from_fn(|_| None) }
    }

    /// Hand the views `group` to an idle worker, or to a new one while
    /// there are fewer than `tide.refresh_workers`.
    fn dispatch(&mut self, dboid: u32, group: Group) -> Dispatch {
        let limit = (REFRESH_WORKERS.get().max(1) as usize).min(MAX_WORKERS);
        let start = {
            let mut slots = SLOTS.exclusive();
            let Some(slot) = slots.of(dboid) else { return Dispatch::Here };
            if let Some(i) = slot.workers.iter().position(|w| w.job == Job::Idle && w.alive()) {
                let w = &mut slot.workers[i];
                w.job = Job::Assigned { group };
                // SAFETY: the latch of a live worker (it clears its entry, under this lock, before it exits).
                unsafe { pg_sys::SetLatch(w.latch) };
                return Dispatch::Sent(i);
            }
            if slot.workers.iter().filter(|w| w.job != Job::Free).count() >= limit {
                return Dispatch::Busy;
            }
            let Some(i) = slot.workers.iter().position(|w| w.job == Job::Free) else { return Dispatch::Busy };
            slot.workers[i] = Worker { pid: 0, latch: std::ptr::null_mut(), job: Job::Assigned { group } };
            i
        };
        // The handle outlives this pass: keep it in the process's memory.
        // SAFETY: switches memory context on the worker's main thread, outside any transaction.
        let started = unsafe {
            let old = pg_sys::MemoryContextSwitchTo(pg_sys::TopMemoryContext);
            let started = database_worker("pg_tide refresh worker", "tide_refresh_worker_main", dboid)
                .set_restart_time(None)
                .set_argument(Some(pg_sys::Datum::from(u64::from(dboid) | ((start as u64) << 32))))
                .set_notify_pid(pg_sys::MyProcPid)
                .load_dynamic();
            pg_sys::MemoryContextSwitchTo(old);
            started
        };
        match started {
            Ok(handle) => {
                self.handles[start] = Some(handle);
                Dispatch::Sent(start)
            }
            Err(_) => {
                let mut slots = SLOTS.exclusive();
                let Some(slot) = slots.of(dboid) else { return Dispatch::Here };
                slot.workers[start] = Worker::default();
                if slot.workers.iter().any(|w| w.job != Job::Free) {
                    Dispatch::Busy
                } else {
                    Dispatch::Here
                }
            }
        }
    }

    /// The workers' finished refreshes, as (worker, which failed as in
    /// `Job::Done`); a worker that is gone (it could not start, or was
    /// terminated) counts as a failed refresh of its views.
    fn collect(&mut self, dboid: u32) -> Vec<(usize, u16)> {
        use pgrx::bgworkers::BackgroundWorkerStatus;
        let stopped: Vec<bool> =
            self.handles.iter().map(|h| h.as_ref().is_some_and(|h| matches!(h.pid(), Err(BackgroundWorkerStatus::Stopped)))).collect();
        let mut out = Vec::new();
        let mut slots = SLOTS.exclusive();
        let Some(slot) = slots.of(dboid) else { return out };
        for (i, w) in slot.workers.iter_mut().enumerate() {
            match w.job {
                Job::Done { failed } => {
                    out.push((i, failed));
                    w.job = Job::Idle;
                }
                Job::Assigned { .. } if stopped[i] || (w.pid != 0 && !w.alive()) => {
                    out.push((i, u16::MAX));
                    *w = Worker::default();
                }
                Job::Idle if !w.alive() => *w = Worker::default(),
                _ => {}
            }
            if w.job == Job::Free {
                self.handles[i] = None;
            }
        }
        out
    }
}

unsafe extern "C-unwind" {
    /// PostgreSQL's SIGTERM handler for backends (tcop/postgres.c), itself:
    /// pg_sys::die is a Rust wrapper, which a signal must not run.
    #[link_name = "die"]
    fn postgres_die(signal: std::ffi::c_int);
}

/// A refresh worker of one database: refreshes the views the refresher
/// hands it, one job at a time (a view, or WAL-captured views together),
/// in transactions of its own; exits after
/// `WORKER_IDLE_EXIT` without one.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn tide_refresh_worker_main(arg: pg_sys::Datum) {
    let arg = arg.value() as u64;
    let (dboid, index) = ((arg & 0xffff_ffff) as u32, (arg >> 32) as usize);
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP);
    // SIGTERM (a fast shutdown, pg_terminate_backend) ends the worker at
    // once, a refresh under way included (rolled back, done again later),
    // as PostgreSQL's own workers end: a long build does not hold the
    // shutdown up. Its entry is freed by the refresher, which sees it gone.
    // SAFETY: installs PostgreSQL's own handler, a C function, for a signal.
    unsafe { pg_sys::pqsignal(pg_sys::SIGTERM as i32, Some(postgres_die)) };
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(pg_sys::Oid::from(dboid)), None);
    let with_entry = |f: &mut dyn FnMut(&mut Slot, &mut Worker)| {
        let mut slots = SLOTS.exclusive();
        if let Some(slot) = slots.of(dboid) {
            if index < MAX_WORKERS {
                let mut w = slot.workers[index];
                f(slot, &mut w);
                slot.workers[index] = w;
            }
        }
    };
    let mut mine = false;
    with_entry(&mut |_, w| {
        if matches!(w.job, Job::Assigned { .. }) && w.pid == 0 {
            // SAFETY: this process's pid and latch, valid while it runs.
            unsafe {
                w.pid = pg_sys::MyProcPid;
                w.latch = pg_sys::MyLatch;
            }
            mine = true;
        }
    });
    if !mine {
        // SAFETY: ends this worker process normally (its entry was taken back).
        unsafe { pg_sys::proc_exit(0) };
    }
    let mut last_job = Instant::now();
    loop {
        let mut job = None;
        with_entry(&mut |_, w| {
            if let Job::Assigned { group } = w.job {
                job = Some(group);
            }
        });
        if let Some(group) = job {
            let failed = refresh_job(&group);
            with_entry(&mut |slot, w| {
                w.job = Job::Done { failed };
                if !slot.latch.is_null() && slot.pid != 0 {
                    // SAFETY: the refresher's latch (cleared under this lock before it exits).
                    unsafe { pg_sys::SetLatch(slot.latch) };
                }
            });
            last_job = Instant::now();
            continue;
        }
        pgrx::check_for_interrupts!();
        if last_job.elapsed() >= WORKER_IDLE_EXIT {
            let mut idle = false;
            with_entry(&mut |_, w| {
                if w.job == Job::Idle {
                    *w = Worker::default();
                    idle = true;
                }
            });
            if idle {
                // SAFETY: ends this worker process normally; its entry is free.
                unsafe { pg_sys::proc_exit(0) };
            }
        }
        if !BackgroundWorker::wait_latch(Some(WORKER_IDLE_EXIT.saturating_sub(last_job.elapsed()).max(Duration::from_millis(10)))) {
            break;
        }
        if BackgroundWorker::sighup_received() {
            // SAFETY: rereads postgresql.conf, on the worker's main thread.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
    }
    // SAFETY: reads this process's pid.
    let me = unsafe { pg_sys::MyProcPid };
    with_entry(&mut |_, w| {
        if w.pid == me {
            *w = Worker::default();
        }
    });
}

/// One database's refresher.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn tide_refresher_main(arg: pg_sys::Datum) {
    let dboid = arg.value() as u32;
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(pg_sys::Oid::from(dboid)), None);
    if !take_slot(dboid) {
        // SAFETY: ends this worker process normally (another refresher serves the database).
        unsafe { pg_sys::proc_exit(0) };
    }
    // Keyed by (catalog id, table oid): ids start again after the extension is re-created.
    let mut served: HashMap<(i64, u32), Served> = HashMap::new();
    let mut in_flight: HashMap<(i64, u32), Flight> = HashMap::new();
    let mut pool = Pool::new();
    let mut known_views: Option<u64> = None;
    'serve: loop {
        let (changes, views, waiters) =
            SLOTS.share().slots.iter().find(|s| s.dboid == dboid).map(|s| (s.changes, s.views, s.waiters > 0)).unwrap_or((0, 0, false));
        // The refreshes that workers finished (before the catalog is read:
        // a view altered since is looked at again).
        for (worker, failed) in pool.collect(dboid) {
            let done: Vec<((i64, u32), Flight)> = in_flight.iter().filter(|(_, f)| f.worker == worker).map(|(k, f)| (*k, *f)).collect();
            for (key, flight) in done {
                in_flight.remove(&key);
                let ok = failed & (1 << flight.member) == 0;
                if !ok {
                    // Read the catalog again: the view may now be failed.
                    known_views = None;
                }
                if let Some(s) = served.get_mut(&key) {
                    s.finished(flight, ok);
                }
            }
        }
        if known_views != Some(views) {
            // Views were made, changed or dropped: read the catalog again.
            match attempt(list_views) {
                Ok(Some(list)) => {
                    let now = Instant::now();
                    served.retain(|key, _| list.iter().any(|l| l.key == *key));
                    for Listed { key, interval, since_last, building, wal } in list {
                        // A view to build is due at once when first seen; after that (a
                        // build that failed, or a rebuild asked for), at its interval.
                        let last = now.checked_sub(if building { interval } else { since_last }).unwrap_or(now);
                        let s = served.entry(key).or_insert(Served {
                            interval,
                            last,
                            took: Duration::ZERO,
                            seen: None,
                            building,
                            wal,
                            seen_lsn: 0,
                            changed_in_flight: false,
                        });
                        s.interval = interval;
                        s.wal = wal;
                        s.building = building;
                        s.changed_in_flight = in_flight.contains_key(&key);
                    }
                }
                Ok(None) => served.clear(),
                Err(e) => log!("pg_tide refresher: could not read the catalog: {e}"),
            }
            known_views = Some(views);
            if served.is_empty() && release_slot_if_idle(dboid, views) {
                // SAFETY: ends this worker process normally; the slot is released.
                unsafe { pg_sys::proc_exit(0) };
            }
        }
        // Hand every view that is due and may have changes it has not
        // applied (or is still to be built) to a refresh worker, in id
        // order; the WAL-captured ones that are ready go together (one
        // read of the slot serves them all), one such group at a time.
        let mut next: Option<Duration> = None;
        let mut keys: Vec<(i64, u32)> = served.keys().copied().collect();
        keys.sort_unstable();
        // SAFETY: reads the WAL insert position (shared memory, under its lock).
        let lsn = unsafe { pg_sys::GetXLogInsertRecPtr() };
        let grouped = |s: &Served| s.wal && !s.building;
        let group_in_flight = in_flight.keys().any(|k| served.get(k).is_some_and(grouped));
        let mut jobs: Vec<Vec<(i64, u32)>> = Vec::new();
        let mut wal_group: Vec<(i64, u32)> = Vec::new();
        for key in keys {
            if in_flight.contains_key(&key) {
                continue;
            }
            let s = &served[&key];
            let due = s.due();
            let now = Instant::now();
            // (A WAL-captured view with a backend in tide.wait is refreshed,
            // changed or not, so that its applied snapshot catches up.)
            let dirty = s.building || if s.wal { s.seen_lsn != lsn || waiters } else { s.seen != Some(changes) };
            if !dirty {
                if s.wal {
                    // Look at the WAL position again when it is due.
                    let wait = (due.max(now + s.interval)) - now;
                    sooner(&mut next, wait);
                }
                continue;
            }
            if due > now {
                sooner(&mut next, due - now);
                continue;
            }
            if grouped(s) {
                // (With a group under way, a worker that finishes wakes this process.)
                if !group_in_flight && wal_group.len() < MAX_GROUP {
                    wal_group.push(key);
                }
            } else {
                jobs.push(vec![key]);
            }
        }
        if !wal_group.is_empty() {
            jobs.push(wal_group);
        }
        for job in jobs {
            let wal = served[&job[0]].wal;
            let group = Group::new(&job.iter().map(|k| k.0).collect::<Vec<_>>(), wal);
            // (The next one is due counting from this one's start: see `Served::due`.)
            let flight = Flight { worker: usize::MAX, member: 0, started: Instant::now(), changes };
            match pool.dispatch(dboid, group) {
                Dispatch::Sent(worker) => {
                    for (member, key) in job.iter().enumerate() {
                        in_flight.insert(*key, Flight { worker, member, ..flight });
                    }
                }
                // (A worker that finishes wakes this process.)
                Dispatch::Busy => {}
                Dispatch::Here => {
                    let failed = refresh_job(&group);
                    for (member, key) in job.iter().enumerate() {
                        if failed & (1 << member) != 0 {
                            known_views = None;
                        }
                        if let Some(s) = served.get_mut(key) {
                            s.finished(Flight { member, ..flight }, failed & (1 << member) == 0);
                            if s.wal {
                                // No commit wakes the refresher for a WAL-captured
                                // view: look at the WAL position again at its next interval.
                                sooner(&mut next, s.interval);
                            }
                        }
                    }
                }
            }
            // (The flag is cleared when read: leave the whole loop now.)
            if BackgroundWorker::sigterm_received() {
                break 'serve;
            }
        }
        if known_views.is_some() {
            // The views with no change when this pass began become due with
            // any change committed since: at their next interval.
            let now = Instant::now();
            let clean_due = served.values().filter(|s| s.seen == Some(changes)).map(|s| s.due().saturating_duration_since(now)).min();
            let mut slots = SLOTS.exclusive();
            if let Some(slot) = slots.of(dboid) {
                if slot.changes != changes {
                    // Changes arrived during the pass.
                    if let Some(c) = clean_due {
                        sooner(&mut next, c);
                    }
                }
                // Only when a change would make a view due before the
                // planned wake-up must a commit wake this process.
                slot.idle = clean_due.is_some_and(|c| next.is_none_or(|n| c < n));
            }
            drop(slots);
            if !BackgroundWorker::wait_latch(next) {
                break;
            }
        }
        if BackgroundWorker::sighup_received() {
            // SAFETY: rereads postgresql.conf, on the worker's main thread.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
    }
    release_slot(dboid);
}

/// A deferred view to serve, as the catalog has it.
struct Listed {
    /// (catalog id, table oid)
    key: (i64, u32),
    interval: Duration,
    since_last: Duration,
    building: bool,
    wal: bool,
}

/// The deferred views to serve; None if pg_tide is not installed here.
fn list_views() -> Option<Vec<Listed>> {
    let installed =
        Spi::get_one::<bool>("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_tide')").ok().flatten()?;
    // A replication slot no view reads any more would hold WAL back forever: drop it.
    let wal_views = installed
        && Spi::get_one::<bool>("SELECT EXISTS (SELECT 1 FROM tide.catalog WHERE mode = 'deferred' AND capture = 'wal')")
            .ok()
            .flatten()
            .unwrap_or(true);
    if !wal_views {
        let _ = Spi::run_with_args(
            "SELECT pg_catalog.pg_drop_replication_slot(slot_name) FROM pg_catalog.pg_replication_slots WHERE slot_name = $1 AND NOT active",
            &[crate::capture::wal::slot_name().as_str().into()],
        );
        let _ = Spi::run(&format!("DROP PUBLICATION IF EXISTS {}", crate::capture::wal::PUBLICATION));
    }
    if !installed {
        return None;
    }
    Spi::connect(|client| {
        let rows = client.select(
            "SELECT id, view::oid, (extract(epoch FROM refresh_interval) * 1000)::int8, \
                    coalesce((extract(epoch FROM clock_timestamp() - last_refresh_at) * 1000)::int8, 0), status = 'building', capture = 'wal' \
               FROM tide.catalog WHERE mode = 'deferred' AND parent IS NULL AND status <> 'failed' ORDER BY id",
            None,
            &[],
        )?;
        let mut out = Vec::new();
        for row in rows {
            let ms = |v: Option<i64>| Duration::from_millis(v.unwrap_or(0).max(0) as u64);
            let key = (row.get::<i64>(1)?.unwrap_or(0), row.get::<pg_sys::Oid>(2)?.map(|o| o.to_u32()).unwrap_or(0));
            out.push(Listed {
                key,
                interval: ms(row.get::<i64>(3)?),
                since_last: ms(row.get::<i64>(4)?),
                building: row.get::<bool>(5)?.unwrap_or(false),
                wal: row.get::<bool>(6)?.unwrap_or(false),
            });
        }
        Ok::<_, pgrx::spi::Error>(Some(out))
    })
    .ok()
    .flatten()
}

/// Run `f` in a transaction of its own; an error rolls it back and is
/// returned as its message (the refresher goes on).
fn attempt<R>(f: impl FnOnce() -> R + std::panic::UnwindSafe) -> Result<R, String> {
    // SAFETY: transaction control on the worker's main thread, outside any
    // transaction; an error is caught, the transaction aborted and the
    // error state flushed, as PostgreSQL's own workers do.
    unsafe {
        // Refreshes run at READ COMMITTED, whatever the database's default:
        // each takes the snapshot it needs after its lock.
        pg_sys::DefaultXactIsoLevel = pg_sys::XACT_READ_COMMITTED as i32;
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
        let result = PgTryBuilder::new(|| Ok(f())).catch_others(|e| Err(crate::pg::error_message(e))).execute();
        match result {
            Ok(r) => {
                pg_sys::PopActiveSnapshot();
                pg_sys::CommitTransactionCommand();
                Ok(r)
            }
            Err(e) => {
                pg_sys::AbortOutOfAnyTransaction();
                pg_sys::FlushErrorState();
                Err(e)
            }
        }
    }
}

/// Take the database's slot for this process; false if a live refresher holds it.
fn take_slot(dboid: u32) -> bool {
    let mut slots = SLOTS.exclusive();
    let Some(slot) = slots.of_or_new(dboid) else { return false };
    // SAFETY: looks the pid up among the live processes (ProcArray).
    if slot.pid != 0 && slot.pid != unsafe { pg_sys::MyProcPid } && !unsafe { pg_sys::BackendPidGetProc(slot.pid) }.is_null() {
        return false;
    }
    // SAFETY: this process's pid and latch, valid while it runs.
    unsafe {
        slot.pid = pg_sys::MyProcPid;
        slot.latch = pg_sys::MyLatch;
    }
    // What an earlier refresher handed out is not this one's to wait for:
    // its workers' results are dropped (the views are looked at again), and
    // workers it did not see start are not expected.
    for w in slot.workers.iter_mut() {
        match w.job {
            Job::Done { .. } => w.job = Job::Idle,
            Job::Assigned { .. } if w.pid == 0 => *w = Worker::default(),
            _ => {}
        }
    }
    true
}

/// Give the slot up if no view was made since `seen` (under the lock that
/// `wake` takes, so a view made meanwhile starts a new refresher).
fn release_slot_if_idle(dboid: u32, seen: u64) -> bool {
    let mut slots = SLOTS.exclusive();
    match slots.of(dboid) {
        Some(slot) if slot.views == seen => {
            slot.pid = 0;
            slot.latch = std::ptr::null_mut();
            true
        }
        Some(_) => false,
        None => true,
    }
}

fn release_slot(dboid: u32) {
    let mut slots = SLOTS.exclusive();
    if let Some(slot) = slots.of(dboid) {
        // SAFETY: reads this process's pid.
        if slot.pid == unsafe { pg_sys::MyProcPid } {
            slot.pid = 0;
            slot.latch = std::ptr::null_mut();
        }
    }
}

/// Make `next` (the refresher's planned sleep) no longer than `d`.
fn sooner(next: &mut Option<Duration>, d: Duration) {
    *next = Some(next.map_or(d, |n| n.min(d)));
}
