//! Deferred refresh: apply the changes logged since a view's last refresh.
//!
//! A refresh takes the view's lock (one refresh of a view at a time), then
//! one snapshot, and runs every statement in it (`pg::with_snapshot`): the
//! batch is exactly the logged changes of the transactions that snapshot sees
//! and the view's applied snapshot did not, so the base tables read in it
//! hold exactly the state after the batch. (A log position alone would not
//! do: a transaction with a lower position can commit after one with a
//! higher.) The batch is applied by the immediate engine as one round (see
//! `capture::replay`), against the new states, so a join counts ΔA⋈ΔB once.
//! The snapshot becomes the view's applied snapshot in the same transaction,
//! so a crash loses no change and applies none twice. A TRUNCATE in the
//! batch, or `full`, rebuilds the view (and its internal views) instead.

use crate::apply::{self, ViewRef};
use crate::capture::{self, log, wal};
use crate::catalog::{self, as_superuser};
use crate::pg;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::time::Instant;

/// What a refresh did.
pub struct Outcome {
    pub kind: &'static str,
    pub changes: i64,
}

/// A view and its internal views, innermost (lowest id) first.
pub fn family(root: &ViewRef) -> Vec<ViewRef> {
    let mut out = vec![root.clone()];
    let mut i = 0;
    while i < out.len() {
        let children = catalog::subqueries(out[i].id);
        out.extend(children);
        i += 1;
    }
    out.sort_by_key(|v| v.id);
    out
}

/// The tables whose change logs a family reads: its base tables but the
/// tables of its own internal views.
pub fn logged_tables(members: &[ViewRef]) -> Vec<pg_sys::Oid> {
    let own: Vec<pg_sys::Oid> = members.iter().map(|m| m.view).collect();
    let mut out: Vec<pg_sys::Oid> = Vec::new();
    for m in members {
        for t in catalog::base_tables(m.id) {
            if !own.contains(&t) && !out.contains(&t) {
                out.push(t);
            }
        }
    }
    out
}

/// Record, for every member of the family, that it has applied what the
/// refresh snapshot sees. Runs in that snapshot. Unless that snapshot saw
/// the view `unready` (then it was built), a view that tide.alter_view set
/// to be built again after the snapshot (it takes no lock on the view) is
/// left to be built.
pub fn record_applied(members: &[ViewRef], unready: bool) {
    let ids: Vec<String> = members.iter().map(|m| m.id.to_string()).collect();
    as_superuser(|| {
        pg::execute_sql(&format!(
            "UPDATE tide.catalog SET applied_snapshot = pg_catalog.pg_current_snapshot(), \
                    applied_xid = pg_catalog.pg_current_xact_id_if_assigned(), \
                    applied_seq = (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM tide.change_seq), \
                    failures = 0, status = 'ready', last_error = NULL \
              WHERE id IN ({}){}",
            ids.join(", "),
            if unready { "" } else { " AND status <> 'building'" }
        ))
    });
}

/// Refresh the deferred view `root` (and its internal views) from the
/// changes logged since its last refresh; rebuild it in full with `full`.
pub fn refresh_deferred(root: &ViewRef, full: bool) -> Outcome {
    let start = Instant::now();
    let members = family(root);
    let wal = catalog::capture(root.id) == "wal";
    if wal {
        require_slot();
        // This transaction's own changes are in the tables but not yet in
        // the WAL's decodable stream: applying around them would count them
        // twice later.
        if logged_tables(&members).into_iter().filter(|t| wal::from_wal(*t)).any(pg::written_in_this_transaction) {
            pg::raise(
                PgSqlErrorCode::ERRCODE_ACTIVE_SQL_TRANSACTION,
                format!("cannot refresh {} in a transaction that has changed its base tables", pg::qualified_relation_name(root.view)),
                Some("With capture => 'wal' the changes are read from the WAL, where this transaction's are not yet.".into()),
                Some("Refresh it after this transaction commits."),
            );
        }
    }
    // The views this one reads that are deferred too go first, so that
    // their changes are in this refresh's batch (pg_tide views' tables have
    // change logs, also under WAL capture).
    for t in logged_tables(&members) {
        if let Some(upstream) = catalog::lookup(t).filter(|v| catalog::mode(v.id) == "deferred") {
            refresh_deferred(&upstream, false);
        }
    }
    if wal {
        wal::take_turn();
    }
    lock_for_refresh(root);
    pg::with_new_snapshot(|snapshot| {
        // SAFETY: the snapshot is registered and set (with_new_snapshot).
        unsafe { refresh_locked(&Locked { root, members: &members, full, wal, snapshot, window: None }, start) }
    })
}

/// Fail unless WAL capture's replication slot is made.
fn require_slot() {
    let exists = pg::query_int8s(
        &format!("SELECT count(*) FROM pg_catalog.pg_replication_slots WHERE slot_name = {}", pgrx::spi::quote_literal(wal::slot_name())),
        1,
    );
    if exists[0] != Some(1) {
        pg::raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "the replication slot of WAL capture is not made yet",
            None,
            Some("The background refresher makes it, then builds the view: wait for it with tide.wait."),
        );
    }
}

/// Take view `root`'s lock for its refresh (one refresh of a view at a
/// time). Taken before the refresh snapshot: the snapshot then sees the
/// commit of the refresh before this one, and the applied snapshot it
/// recorded.
fn lock_for_refresh(root: &ViewRef) {
    as_superuser(|| pg::execute_sql(&format!("LOCK TABLE {} IN EXCLUSIVE MODE", pg::qualified_relation_name(root.view))));
    // Under REPEATABLE READ or SERIALIZABLE (a tide.refresh in such a
    // transaction) the snapshot was taken before the lock: a refresh that
    // committed since (it updated this row) makes this one fail with a
    // serialization error, instead of applying its changes a second time.
    // (Not at READ COMMITTED, where the snapshot is taken after the lock: the
    // row lock would write WAL, which makes WAL-captured views look changed.)
    if pg::uses_transaction_snapshot() {
        as_superuser(|| pg::execute_sql(&format!("SELECT 1 FROM tide.catalog WHERE id = {} FOR UPDATE", root.id)));
    }
}

/// A refresh of view `root` (and its internal views, `members`), its lock
/// taken, in `snapshot` (registered and set with `pg::with_snapshot`):
/// from `window` if given (WAL capture; else the slot is read); a rebuild
/// with `full`.
struct Locked<'a> {
    root: &'a ViewRef,
    members: &'a [ViewRef],
    full: bool,
    wal: bool,
    snapshot: pg_sys::Snapshot,
    window: Option<&'a wal::Window>,
}

/// Run refresh `r`, and record it (begun at `start`) in the catalog and
/// the history.
///
/// # Safety
/// `r.snapshot` must be registered and set with `pg::with_snapshot`.
unsafe fn refresh_locked(r: &Locked, start: Instant) -> Outcome {
    let (root, wal) = (r.root, r.wal);
    // (rows of the view written, net rows added) by this transaction so far.
    let written = || {
        let oid = root.view.to_u32();
        let counts = pg::query_int8s(
            &format!(
                "SELECT pg_catalog.pg_stat_get_xact_tuples_inserted({oid}), pg_catalog.pg_stat_get_xact_tuples_updated({oid}), \
                        pg_catalog.pg_stat_get_xact_tuples_deleted({oid})"
            ),
            3,
        );
        let [ins, upd, del] = [0, 1, 2].map(|i| counts[i].unwrap_or(0));
        (ins + upd + del, ins - del)
    };
    let written_before = written();
    let outcome = apply_batch(r);
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    if wal && outcome.kind == "none" && !crate::scheduler::has_waiters() {
        // Nothing applied: write nothing (so an idle system writes no WAL,
        // which would make WAL-captured views look changed).
        return outcome;
    }
    let (rows_written, net) = {
        let after = written();
        (after.0 - written_before.0, after.1 - written_before.1)
    };
    // The view's row count follows from its inserts and deletes (a full
    // rebuild set it already): no count of the whole view per refresh,
    // unless the statistics counters are not kept (track_counts off).
    let net = if outcome.kind == "incremental" { net } else { 0 };
    // SAFETY: reads a GUC's variable on the backend's thread.
    let row_count = if unsafe { pg_sys::pgstat_track_counts } {
        "row_count + $4".to_string()
    } else {
        format!("(SELECT count(*) FROM {}) + 0 * $4", pg::qualified_relation_name(root.view))
    };
    as_superuser(|| {
        Spi::run_with_args(
            &format!(
                "UPDATE tide.catalog SET last_refresh_at = now(), last_refresh_ms = $2, last_changes = $3, row_count = {row_count} \
                  WHERE id = $1"
            ),
            &[root.id.into(), ms.into(), outcome.changes.into(), net.into()],
        )?;
        Spi::run_with_args(
            "INSERT INTO tide.refresh_history (view_id, started_at, duration_ms, kind, changes, rows_written) \
             VALUES ($1, clock_timestamp() - make_interval(secs => $2 / 1000), $2, $3, $4, $5)",
            &[root.id.into(), ms.into(), outcome.kind.into(), outcome.changes.into(), rows_written.into()],
        )?;
        // Keep the last 100 refreshes of the view.
        Spi::run_with_args(
            "DELETE FROM tide.refresh_history WHERE view_id = $1 AND started_at < \
               (SELECT started_at FROM tide.refresh_history WHERE view_id = $1 ORDER BY started_at DESC OFFSET 99 LIMIT 1)",
            &[root.id.into()],
        )
    })
    .unwrap_or_else(|e| pg::raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("could not record the refresh: {e}"), None, None));
    outcome
}

/// What a refresh of several WAL-captured views together did.
pub struct GroupOutcome {
    /// The views refreshed together, each with its error if it failed (its
    /// part rolled back, its failure counted).
    pub refreshed: Vec<(i64, Option<String>)>,
    /// The views given that were left to refresh alone: still to be built
    /// (a long build would hold the others), or reading pg_tide views
    /// (refreshed first, in their own turn).
    pub alone: Vec<i64>,
    /// What the slot was read to, to advance it past once this commits.
    pub commits: Option<wal::Commits>,
}

/// The background refresher's refresh of the WAL-captured views `ids`
/// together, in one transaction: their locks in id order, one snapshot, one
/// read of the slot for all of them, then each view in a subtransaction of
/// its own (one that fails is rolled back and counted, `max_failures` in a
/// row marking it failed, and the others go on).
pub fn refresh_wal_group(ids: &[i64], max_failures: i32) -> GroupOutcome {
    let mut outcome = GroupOutcome { refreshed: Vec::new(), alone: Vec::new(), commits: None };
    let mut group: Vec<(ViewRef, Vec<ViewRef>)> = Vec::new();
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    for id in ids {
        let Some(view) = catalog::by_id(id) else { continue };
        let status = catalog::status(id);
        if catalog::mode(id) != "deferred" || catalog::capture(id) != "wal" || status == "failed" {
            continue;
        }
        let members = family(&view);
        if status != "ready" || !logged_tables(&members).into_iter().all(wal::from_wal) {
            outcome.alone.push(id);
        } else {
            group.push((view, members));
        }
    }
    if group.is_empty() {
        return outcome;
    }
    require_slot();
    wal::take_turn();
    for (view, _) in &group {
        lock_for_refresh(view);
    }
    pg::with_new_snapshot(|snapshot| {
        // SAFETY: the snapshot is registered and set (with_new_snapshot).
        let window = unsafe { wal::read_window() };
        for (view, members) in &group {
            let start = Instant::now();
            let r = Locked { root: view, members, full: false, wal: true, snapshot, window: Some(&window) };
            // SAFETY: as above.
            let error = pg::in_subtransaction(|| unsafe { refresh_locked(&r, start) }).err();
            if let Some(e) = &error {
                record_failure(view.id, e, max_failures);
            }
            outcome.refreshed.push((view.id, error));
        }
        outcome.commits = Some(window.commits());
    });
    outcome
}

/// The background refresher's refresh of view `id`, if it is still a
/// deferred view to serve.
pub fn refresh_by_id(id: i64) {
    if let Some(view) = catalog::by_id(id) {
        if catalog::mode(id) == "deferred" && catalog::status(id) != "failed" {
            refresh_deferred(&view, false);
        }
    }
}

/// Count a failed background refresh of view `id`; after `max` in a row the
/// view is marked failed (and left alone until refreshed by hand).
pub fn record_failure(id: i64, error: &str, max: i32) {
    as_superuser(|| {
        Spi::run_with_args(
            "UPDATE tide.catalog SET failures = failures + 1, last_error = $2, \
                    status = CASE WHEN failures + 1 >= $3 THEN 'failed' ELSE status END WHERE id = $1",
            &[id.into(), error.into(), max.into()],
        )
    })
    .unwrap_or_else(|e| pg::raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("could not record the failure: {e}"), None, None));
}

/// Read the batch of refresh `r` in its snapshot (from its window, or from
/// the slot, for WAL capture) and apply it (or rebuild), record what was
/// applied, and trim the logs.
///
/// # Safety
/// `r.snapshot` must be registered and set with `pg::with_snapshot`.
unsafe fn apply_batch(r: &Locked) -> Outcome {
    let Locked { root, members, full, wal, snapshot, window } = *r;
    // A view still to be built (or failed) is built in full.
    let unready =
        pg::query_int8s(&format!("SELECT CASE WHEN status = 'ready' THEN 0 ELSE 1 END::int8 FROM tide.catalog WHERE id = {}", root.id), 1);
    let unready = unready[0] != Some(0);
    let full = full || unready;
    let tables = logged_tables(members);
    let (from_wal, logged): (Vec<pg_sys::Oid>, Vec<pg_sys::Oid>) = tables.iter().partition(|t| wal && wal::from_wal(**t));
    let mut batches: Vec<log::Batch> = match window {
        _ if from_wal.is_empty() => Vec::new(),
        Some(window) => wal::read_batches(window, &from_wal, root.id),
        None => wal::read_batches(&wal::read_window(), &from_wal, root.id),
    };
    // The logs are counted first and read only for a batch that is applied:
    // reading a large batch costs more than the rebuild that replaces it.
    let logged_counts: Vec<(i64, bool)> = as_superuser(|| logged.iter().map(|t| log::count_pending(*t, root.id)).collect());
    let changes: i64 = batches.iter().map(|b| b.rows).sum::<i64>() + logged_counts.iter().map(|c| c.0).sum::<i64>();
    let truncated = batches.iter().any(|b| b.truncated) || logged_counts.iter().any(|c| c.1);
    let kind = if full || truncated {
        "full"
    } else if changes == 0 {
        "none"
    } else if rebuild_is_cheaper(root, changes) {
        "full"
    } else {
        "incremental"
    };
    if kind == "incremental" {
        batches.extend(as_superuser(|| {
            Spi::connect_mut(|_client| logged.iter().map(|t| log::read_batch(*t, root.id, snapshot)).collect::<Vec<_>>())
        }));
    }
    let (used, unused): (Vec<log::Batch>, Vec<log::Batch>) = batches.into_iter().partition(|b| kind == "incremental" && b.rows > 0);
    for b in unused {
        pg_sys::tuplestore_end(b.old);
        pg_sys::tuplestore_end(b.new);
    }
    match kind {
        "incremental" => {
            let ids = members.iter().map(|m| m.id).collect();
            apply::refreshing(ids, || capture::replay(members, &used));
        }
        "full" => crate::progress::building(root.id, &pg::qualified_relation_name(root.view), || {
            for m in members {
                let rows = apply::rebuild_view(m);
                as_superuser(|| pg::execute_sql(&format!("UPDATE tide.catalog SET row_count = {rows} WHERE id = {}", m.id)));
            }
        }),
        _ => {}
    }
    // (With WAL capture and nothing applied, the snapshot is recorded only
    // for a tide.wait: that write would itself be WAL to look at.)
    if !(wal && kind == "none" && !crate::scheduler::has_waiters()) {
        record_applied(members, unready);
    }
    as_superuser(|| {
        Spi::connect_mut(|_client| {
            for t in &logged {
                log::trim(*t);
            }
        })
    });
    Outcome { kind, changes }
}

/// Below this expected time of applying a batch, timing noise would decide: apply it.
const REBUILD_FLOOR_MS: i64 = 100;
/// How far (in times the change count, either way) a measured refresh is scaled to estimate a batch.
const SCALE_LIMIT: i64 = 16;
/// The measurements an estimate takes the median of (the latest ones).
const SAMPLES: i64 = 5;
/// After this many rebuilds in a row, a batch is applied anyway, to measure
/// again what applying costs (a slow refresh, on a busy server say, would
/// otherwise decide for good).
const REBUILDS_BEFORE_PROBE: i64 = 3;

/// Whether rebuilding the view is expected to cost less than applying a
/// batch of `changes` changes, from its own refresh history: the median of
/// its last full rebuilds' times against the median time per change of its
/// last incremental refreshes of a size near this batch's (within
/// `SCALE_LIMIT` times either way), times this batch's size (which
/// overstates a larger batch's cost a little: the fixed part of a refresh
/// does not grow). Without both measurements, when other pg_tide views read
/// this one (a rebuild would hand them every row as a change), when
/// applying is expected to take under `REBUILD_FLOOR_MS` (then timing noise
/// would decide), or after `REBUILDS_BEFORE_PROBE` rebuilds in a row, the
/// batch is applied.
fn rebuild_is_cheaper(root: &ViewRef, changes: i64) -> bool {
    let estimate = pg::query_int8s(
        &format!(
            "SELECT (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) FROM \
                      (SELECT duration_ms FROM tide.refresh_history WHERE view_id = {id} AND kind = 'full' \
                        ORDER BY started_at DESC LIMIT {SAMPLES}) f)::int8, \
                    (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms / changes) * {changes} FROM \
                      (SELECT duration_ms, changes FROM tide.refresh_history \
                        WHERE view_id = {id} AND kind = 'incremental' AND changes > 0 \
                          AND changes * {SCALE_LIMIT} >= {changes} AND changes <= {changes} * {SCALE_LIMIT} \
                        ORDER BY started_at DESC LIMIT {SAMPLES}) i)::int8, \
                    (SELECT count(*) FROM tide.catalog WHERE {view}::oid::regclass = ANY (base_tables)), \
                    (SELECT count(*) FILTER (WHERE kind = 'full') FROM \
                      (SELECT kind FROM tide.refresh_history WHERE view_id = {id} AND kind <> 'none' \
                        ORDER BY started_at DESC LIMIT {REBUILDS_BEFORE_PROBE}) r)",
            id = root.id,
            view = root.view.to_u32(),
        ),
        4,
    );
    match estimate[..] {
        [_, _, _, Some(REBUILDS_BEFORE_PROBE)] => false,
        [Some(full_ms), Some(incremental_ms), Some(0), _] => incremental_ms > full_ms && incremental_ms >= REBUILD_FLOOR_MS,
        _ => false,
    }
}
