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
        let exists = pg::query_int8s(
            &format!(
                "SELECT count(*) FROM pg_catalog.pg_replication_slots WHERE slot_name = {}",
                pgrx::spi::quote_literal(wal::slot_name())
            ),
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
    // Taken before the snapshot: the snapshot then sees the commit of the
    // refresh before this one, and the applied snapshot it recorded.
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
    // SAFETY: the snapshot is registered for the length of its use and
    // unregistered after (an error releases it with the resource owner).
    let outcome = unsafe {
        let snapshot = pg_sys::RegisterSnapshot(pg_sys::GetTransactionSnapshot());
        let outcome = pg::with_snapshot(snapshot, || apply_batch(root, &members, full, wal, snapshot));
        pg_sys::UnregisterSnapshot(snapshot);
        outcome
    };
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

/// Read the batch in `snapshot` and apply it (or rebuild), record what was
/// applied, and trim the logs.
///
/// # Safety
/// `snapshot` must be registered and set with `pg::with_snapshot`.
unsafe fn apply_batch(root: &ViewRef, members: &[ViewRef], full: bool, wal: bool, snapshot: pg_sys::Snapshot) -> Outcome {
    // A view still to be built (or failed) is built in full.
    let unready =
        pg::query_int8s(&format!("SELECT CASE WHEN status = 'ready' THEN 0 ELSE 1 END::int8 FROM tide.catalog WHERE id = {}", root.id), 1);
    let unready = unready[0] != Some(0);
    let full = full || unready;
    let tables = logged_tables(members);
    let (from_wal, logged): (Vec<pg_sys::Oid>, Vec<pg_sys::Oid>) = tables.iter().partition(|t| wal && wal::from_wal(**t));
    let mut batches: Vec<log::Batch> = if from_wal.is_empty() { Vec::new() } else { wal::read_batches(&from_wal, root.id) };
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

/// Whether rebuilding the view is expected to cost less than applying a
/// batch of `changes` changes, from its own refresh history: the last full
/// rebuild's time against the incremental refresh whose size is nearest this
/// batch's (within `SCALE_LIMIT` times either way; the latest among equals),
/// its time scaled in proportion (which overstates a larger batch's cost a
/// little: the fixed part of a refresh does not grow). Without both measurements,
/// when other pg_tide views read this one (a rebuild would hand them every
/// row as a change), or when applying is expected to take under
/// `REBUILD_FLOOR_MS` (then timing noise would decide), the batch is applied.
fn rebuild_is_cheaper(root: &ViewRef, changes: i64) -> bool {
    let estimate = pg::query_int8s(
        &format!(
            "SELECT (SELECT duration_ms FROM tide.refresh_history WHERE view_id = {id} AND kind = 'full' \
                      ORDER BY started_at DESC LIMIT 1)::int8, \
                    (SELECT duration_ms * {changes} / changes FROM tide.refresh_history \
                      WHERE view_id = {id} AND kind = 'incremental' AND changes > 0 \
                        AND changes * {SCALE_LIMIT} >= {changes} AND changes <= {changes} * {SCALE_LIMIT} \
                      ORDER BY abs(ln(changes::float8 / {changes})), started_at DESC LIMIT 1)::int8, \
                    (SELECT count(*) FROM tide.catalog WHERE {view}::oid::regclass = ANY (base_tables))",
            id = root.id,
            view = root.view.to_u32(),
        ),
        3,
    );
    match estimate[..] {
        [Some(full_ms), Some(incremental_ms), Some(0)] => incremental_ms > full_ms && incremental_ms >= REBUILD_FLOOR_MS,
        _ => false,
    }
}
