//! WAL capture for deferred views: no trigger on the base tables.
//!
//! Where wal_level = logical, the base tables of views with capture 'wal'
//! are in the publication `tide_publication` with REPLICA IDENTITY FULL (so
//! that pgoutput sends whole old rows, and an UPDATE's unchanged TOASTed
//! values can be taken from them). One logical replication slot per
//! database, `tide_<database oid>`, with PostgreSQL's built-in pgoutput
//! plugin, is read by refreshes with `pg_logical_slot_peek_binary_changes`
//! and decoded in Rust (`pgoutput`).
//!
//! A refresh keeps, of the decoded transactions, those its snapshot sees and
//! the view's applied snapshot did not: the same rule as for change logs, so
//! a transaction decoded but committed after the snapshot waits for the next
//! batch. The slot is peeked, not consumed: it is advanced only past the
//! transactions that every WAL-captured view has applied in a committed
//! refresh (views still building or failed do not hold it back), so a crash
//! at any point loses nothing: the slot replays what was not confirmed.
//! Refreshes that read the slot take turns (a transaction advisory lock).

use super::log::Batch;
use super::pgoutput::{self, Message, Snapshot, Value};
use crate::catalog::as_superuser;
use crate::pg::{self, raise};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::collections::HashMap;

pub const PUBLICATION: &str = "tide_publication";

/// The slot of this database.
pub fn slot_name() -> String {
    // SAFETY: reads the backend's database id.
    format!("tide_{}", unsafe { pg_sys::MyDatabaseId }.to_u32())
}

/// Whether wal_level is logical.
pub fn available() -> bool {
    pg::select_one::<String>("SELECT current_setting('wal_level')", &[]).as_deref() == Some("logical")
}

/// Whether a base table of a WAL-captured view is read from the WAL: every
/// table but pg_tide views' own, which change at their refreshes, possibly
/// in the transaction that refreshes the view over them (which the WAL
/// cannot show yet): those keep a change log.
pub fn from_wal(relid: pg_sys::Oid) -> bool {
    crate::catalog::lookup(relid).is_none()
}

/// Set up the capture of base table `relid` for a WAL-captured view.
pub fn ensure_capture(relid: pg_sys::Oid) {
    if from_wal(relid) {
        ensure_published(relid);
    } else {
        super::log::ensure_log(relid);
    }
}

/// Put `relid` in the publication with REPLICA IDENTITY FULL. Runs as superuser.
pub fn ensure_published(relid: pg_sys::Oid) {
    let table = pg::qualified_relation_name(relid);
    as_superuser(|| {
        let run = |sql: &str| {
            Spi::run(sql)
                .unwrap_or_else(|e| raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("could not set up WAL capture: {e}"), None, None))
        };
        let identity =
            Spi::get_one_with_args::<i8>("SELECT relreplident::\"char\" FROM pg_catalog.pg_class WHERE oid = $1", &[relid.into()])
                .ok()
                .flatten()
                .unwrap_or(0);
        if identity as u8 != b'f' {
            notice!("pg_tide sets REPLICA IDENTITY FULL on {table}: WAL capture needs whole old rows");
            run(&format!("ALTER TABLE {table} REPLICA IDENTITY FULL"));
        }
        let exists =
            Spi::get_one::<bool>(&format!("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = '{PUBLICATION}')"))
                .ok()
                .flatten()
                .unwrap_or(false);
        if !exists {
            run(&format!("CREATE PUBLICATION {PUBLICATION}"));
        }
        let member = Spi::get_one_with_args::<bool>(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_publication_rel r JOIN pg_catalog.pg_publication p ON p.oid = r.prpubid \
                  WHERE p.pubname = '{PUBLICATION}' AND r.prrelid = $1)"
            ),
            &[relid.into()],
        )
        .ok()
        .flatten()
        .unwrap_or(false);
        if !member {
            run(&format!("ALTER PUBLICATION {PUBLICATION} ADD TABLE {table}"));
        }
    });
}

/// Create the slot if it is missing. A slot can only be created by a
/// transaction that has not written (nor taken a transaction id, which
/// pgrx's `Spi::run` and `Spi::get_one` do): the refresher makes it in a
/// transaction of its own, through `pg::query_texts`, which takes none.
pub fn ensure_slot() {
    let slot = pgrx::spi::quote_literal(slot_name());
    let made = pg::query_texts(
        &format!(
            "SELECT slot_name::text FROM pg_catalog.pg_replication_slots WHERE slot_name = {slot} \
             UNION ALL SELECT (pg_catalog.pg_create_logical_replication_slot({slot}, 'pgoutput')).slot_name::text \
              WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = {slot})"
        ),
        1,
    );
    if made[0].is_none() {
        raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, "could not create the replication slot of WAL capture", None, None);
    }
}

/// Take this database's turn at reading the slot (a slot is acquired by one
/// process at a time), until the transaction ends. Taken before the view's
/// lock, by every refresh of a WAL-captured view, so that two transactions
/// refreshing several views never wait for each other in opposite orders.
pub fn take_turn() {
    pg::execute_sql(&format!("SELECT pg_catalog.pg_advisory_xact_lock(hashtext('pg_tide wal {}'))", slot_name()));
}

/// One decoded transaction.
struct Decoded {
    xid: u64,
    end_lsn: u64,
    /// (table, old row, new row), in order, as text values by column name.
    changes: Vec<(u32, Option<Vec<(String, Value)>>, Option<Vec<(String, Value)>>)>,
    truncated: Vec<u32>,
}

/// Read the slot (without consuming it), advance it past what every
/// WAL-captured view has applied, and return the changes of `tables` that
/// view `root` has not applied and the refresh snapshot (`pg::with_snapshot`)
/// sees, as batches.
///
/// # Safety
/// Runs inside the refresh, with its snapshot registered; the tuplestores
/// returned live in the transaction's memory, to be ended by the caller.
pub unsafe fn read_batches(tables: &[pg_sys::Oid], root: i64) -> Vec<Batch> {
    let slot = slot_name();
    // One reader of the slot at a time (a slot is acquired by one process).
    take_turn();
    // Decoded: the transactions that committed before `upto`, taken after
    // the refresh snapshot (so every transaction it sees is among them).
    // Decoding stops at the WAL flushed to disk: flushed to `upto` first, so
    // that none is left out, neither one the snapshot sees (a commit with
    // synchronous_commit = off is visible before it is flushed) nor one
    // that committed, not yet flushed, before `upto` (the slot is advanced
    // to `upto` past it).
    // SAFETY: reads the WAL insert position and the WAL segment size (fixed
    // at server start) and flushes the WAL, on the backend's main thread,
    // not in recovery (a refresh writes).
    let upto = unsafe {
        let lsn = end_of_inserted_wal(pg_sys::GetXLogInsertRecPtr(), pg_sys::wal_segment_size as u64);
        pg_sys::XLogFlush(lsn);
        lsn
    };
    let upto = lsn_text(upto);
    let decoded = as_superuser(|| decode_slot(&slot, &upto));
    let snapshots = as_superuser(|| applied_snapshots(root));
    let (now, applied, others) = snapshots;

    // Advance the slot past the longest run of transactions every view has
    // applied (to `upto` when that is all of them).
    let applied_by_all = |xid: u64| applied.as_ref().is_some_and(|a| a.sees(xid)) && others.iter().all(|o| o.sees(xid));
    let prefix = decoded.iter().take_while(|t| applied_by_all(t.xid)).count();
    let confirm = if prefix == decoded.len() {
        Some(upto.clone())
    } else if prefix > 0 {
        let lsn = decoded[prefix - 1].end_lsn;
        Some(lsn_text(lsn))
    } else {
        None
    };
    if let Some(lsn) = confirm {
        as_superuser(|| {
            pg::execute_sql(&format!(
                "SELECT pg_catalog.pg_replication_slot_advance({}, {}::pg_lsn) \
                   FROM pg_catalog.pg_replication_slots WHERE slot_name = {0} AND confirmed_flush_lsn < {1}::pg_lsn",
                pgrx::spi::quote_literal(&slot),
                pgrx::spi::quote_literal(&lsn),
            ))
        });
    }

    let wanted: Vec<u32> = tables.iter().map(|t| t.to_u32()).collect();
    let mut batches: HashMap<u32, Batch> = HashMap::new();
    let mut descs: HashMap<u32, (pg_sys::TupleDesc, *mut pg_sys::AttInMetadata)> = HashMap::new();
    for t in &decoded {
        if applied.as_ref().is_some_and(|a| a.sees(t.xid)) || !now.sees(t.xid) {
            continue;
        }
        for relid in &t.truncated {
            if wanted.contains(relid) {
                batch_for(&mut batches, *relid).truncated = true;
            }
        }
        for (relid, old, new) in &t.changes {
            if !wanted.contains(relid) {
                continue;
            }
            let (desc, meta) = *descs.entry(*relid).or_insert_with(|| {
                let rel = pg_sys::relation_open(pg_sys::Oid::from(*relid), pg_sys::AccessShareLock as pg_sys::LOCKMODE);
                let desc = pg_sys::CreateTupleDescCopy((*rel).rd_att);
                pg_sys::relation_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
                (desc, pg_sys::TupleDescGetAttInMetadata(desc))
            });
            let old_values = old.as_ref().map(|o| o.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>());
            for (row, is_new) in [(old.as_ref(), false), (new.as_ref(), true)] {
                let Some(row) = row else { continue };
                let row: Vec<(String, Value)> = if is_new {
                    // An UPDATE's unchanged TOASTed values, from the old row.
                    let values: Vec<Value> = row.iter().map(|(_, v)| v.clone()).collect();
                    let filled = match &old_values {
                        Some(o) => pgoutput::fill_unchanged(&values, o),
                        None => values,
                    };
                    row.iter().map(|(n, _)| n.clone()).zip(filled).collect()
                } else {
                    row.clone()
                };
                let tuple = form_tuple(desc, meta, &row);
                let b = batch_for(&mut batches, *relid);
                pg_sys::tuplestore_puttuple(if is_new { b.new } else { b.old }, tuple);
                pg_sys::heap_freetuple(tuple);
                b.rows += 1;
            }
        }
    }
    // Every table gets a batch, empty or not.
    for t in &wanted {
        batch_for(&mut batches, *t);
    }
    wanted.iter().filter_map(|t| batches.remove(t)).collect()
}

/// The end of the last WAL record inserted, given the insert position: that
/// position, or, when it is just past the header of a page no record has
/// reached yet, the start of that page (XLogFlush refuses a position past
/// the end of the WAL written, as a page header not yet written is).
fn end_of_inserted_wal(insert: u64, segment_size: u64) -> u64 {
    let align = |n: usize| n.div_ceil(pg_sys::MAXIMUM_ALIGNOF as usize) as u64 * pg_sys::MAXIMUM_ALIGNOF as u64;
    let page_offset = insert % pg_sys::XLOG_BLCKSZ as u64;
    let header = if insert % segment_size == page_offset {
        align(std::mem::size_of::<pg_sys::XLogLongPageHeaderData>())
    } else {
        align(std::mem::size_of::<pg_sys::XLogPageHeaderData>())
    };
    if page_offset == header {
        insert - header
    } else {
        insert
    }
}

/// A WAL position as pg_lsn's text.
fn lsn_text(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

/// The batch of `relid`, made (with its tuplestores, in the transaction's memory) on first use.
unsafe fn batch_for(batches: &mut HashMap<u32, Batch>, relid: u32) -> &mut Batch {
    batches.entry(relid).or_insert_with(|| {
        let old_cxt = pg_sys::MemoryContextSwitchTo(pg_sys::TopTransactionContext);
        let old_owner = pg_sys::CurrentResourceOwner;
        pg_sys::CurrentResourceOwner = pg_sys::CurTransactionResourceOwner;
        let b = Batch {
            relid,
            old: pg_sys::tuplestore_begin_heap(false, false, pg_sys::work_mem),
            new: pg_sys::tuplestore_begin_heap(false, false, pg_sys::work_mem),
            rows: 0,
            truncated: false,
        };
        pg_sys::CurrentResourceOwner = old_owner;
        pg_sys::MemoryContextSwitchTo(old_cxt);
        b
    })
}

/// A row of the table from its columns' text values (by name; a column the
/// message lacks, e.g. added since, is NULL), through the types' input functions.
unsafe fn form_tuple(desc: pg_sys::TupleDesc, meta: *mut pg_sys::AttInMetadata, row: &[(String, Value)]) -> pg_sys::HeapTuple {
    let natts = (*desc).natts as usize;
    let mut texts: Vec<Option<std::ffi::CString>> = vec![None; natts];
    for i in 0..natts {
        let att = (*desc).attrs.as_ptr().add(i);
        if (*att).attisdropped {
            continue;
        }
        let name = std::ffi::CStr::from_ptr((*att).attname.data.as_ptr()).to_string_lossy();
        if let Some((_, Value::Text(v))) = row.iter().find(|(n, _)| *n == name) {
            texts[i] = std::ffi::CString::new(v.as_str()).ok();
        }
    }
    let mut ptrs: Vec<*mut std::ffi::c_char> =
        texts.iter().map(|t| t.as_ref().map_or(std::ptr::null_mut(), |c| c.as_ptr() as *mut _)).collect();
    pg_sys::BuildTupleFromCStrings(meta, ptrs.as_mut_ptr())
}

/// Every transaction the slot holds, decoded, in commit order.
fn decode_slot(slot: &str, upto: &str) -> Vec<Decoded> {
    let rows: Vec<(Option<i64>, Vec<u8>)> = Spi::connect(|client| {
        let rows = client.select(
            &format!(
                "SELECT xid::text::int8, data FROM pg_catalog.pg_logical_slot_peek_binary_changes({}, {}::pg_lsn, NULL, \
                 'proto_version', '1', 'publication_names', '{PUBLICATION}')",
                pgrx::spi::quote_literal(slot),
                pgrx::spi::quote_literal(upto)
            ),
            None,
            &[],
        )?;
        let mut out = Vec::new();
        for row in rows {
            out.push((row.get::<i64>(1)?, row.get::<Vec<u8>>(2)?.unwrap_or_default()));
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .unwrap_or_else(|e| raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("could not read the replication slot: {e}"), None, None));
    // SAFETY: reads the next full transaction id (shared memory, under its lock).
    let next = unsafe { pg_sys::ReadNextFullTransactionId() }.value;
    let mut relations: HashMap<u32, Vec<String>> = HashMap::new();
    let mut out: Vec<Decoded> = Vec::new();
    let named = |relations: &HashMap<u32, Vec<String>>, relid: u32, values: Vec<Value>| -> Vec<(String, Value)> {
        let names = relations.get(&relid).cloned().unwrap_or_default();
        names.into_iter().zip(values).collect()
    };
    for (_, data) in rows {
        let message = pgoutput::decode(&data)
            .unwrap_or_else(|e| raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("could not decode the WAL: {e}"), None, None));
        match message {
            Message::Begin { xid } => {
                out.push(Decoded { xid: pgoutput::full_xid(xid, next), end_lsn: 0, changes: Vec::new(), truncated: Vec::new() })
            }
            Message::Commit { end_lsn, .. } => {
                if let Some(t) = out.last_mut() {
                    t.end_lsn = end_lsn;
                }
            }
            Message::Relation { relid, columns } => {
                relations.insert(relid, columns);
            }
            Message::Insert { relid, new } => {
                let new = named(&relations, relid, new);
                if let Some(t) = out.last_mut() {
                    t.changes.push((relid, None, Some(new)));
                }
            }
            Message::Update { relid, old, new } => {
                let old = old.map(|o| named(&relations, relid, o));
                let new = named(&relations, relid, new);
                if let Some(t) = out.last_mut() {
                    t.changes.push((relid, old, Some(new)));
                }
            }
            Message::Delete { relid, old } => {
                let old = named(&relations, relid, old);
                if let Some(t) = out.last_mut() {
                    t.changes.push((relid, Some(old), None));
                }
            }
            Message::Truncate { relids } => {
                if let Some(t) = out.last_mut() {
                    t.truncated.extend(relids);
                }
            }
            Message::Other => {}
        }
    }
    out
}

/// (the refresh snapshot, view `root`'s applied snapshot, the applied
/// snapshots of the other WAL-captured views that are ready).
fn applied_snapshots(root: i64) -> (Snapshot, Option<Snapshot>, Vec<Snapshot>) {
    let parse =
        |s: Option<String>| s.map(|s| Snapshot::parse(&s).unwrap_or_else(|e| raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, e, None, None)));
    // In the refresh snapshot (a query of its own, not the caller's statement's).
    let row = pg::query_texts(
        &format!(
            "SELECT pg_catalog.pg_current_snapshot()::text, (SELECT applied_snapshot::text FROM tide.catalog WHERE id = {root}), \
                    (SELECT coalesce(string_agg(applied_snapshot::text, ';'), '') FROM tide.catalog \
                      WHERE mode = 'deferred' AND capture = 'wal' AND status = 'ready' AND parent IS NULL AND id <> {root})"
        ),
        3,
    );
    let mut it = row.into_iter();
    let current = parse(it.next().flatten()).expect("a current snapshot");
    let applied = parse(it.next().flatten());
    let others = it
        .next()
        .flatten()
        .unwrap_or_default()
        .split(';')
        .filter(|s| !s.is_empty())
        .map(|s| parse(Some(s.to_string())).expect("parsed"))
        .collect();
    (current, applied, others)
}

#[cfg(test)]
mod tests {
    use super::end_of_inserted_wal;

    #[test]
    fn end_of_inserted_wal_backs_off_an_unwritten_page_header() {
        let segment = 16 << 20;
        // mid-page: unchanged
        assert_eq!(end_of_inserted_wal(0x12A8_5F00, segment), 0x12A8_5F00);
        // just past a short page header (the failure seen: 0/12A86018)
        assert_eq!(end_of_inserted_wal(0x12A8_6018, segment), 0x12A8_6000);
        // a record reaching into the page: unchanged
        assert_eq!(end_of_inserted_wal(0x12A8_6020, segment), 0x12A8_6020);
        // just past the long header of a segment's first page
        assert_eq!(end_of_inserted_wal(0x1300_0028, segment), 0x1300_0000);
        assert_eq!(end_of_inserted_wal(0x1300_0018, segment), 0x1300_0018);
    }
}
