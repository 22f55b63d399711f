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
//! The background refresher reads it once for all its due WAL-captured
//! views (`refresh::refresh_wal_group`), and advances it past what they
//! applied once that has committed (`confirm_applied`), so that the next
//! read starts where this one ended.

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
    changes: Vec<Change>,
    truncated: Vec<u32>,
}

/// One decoded row change: column values in the order of its relation's
/// message (`Window::relations[relation]`).
struct Change {
    relation: usize,
    old: Option<Vec<Value>>,
    new: Option<Vec<Value>>,
}

/// A table's columns as a Relation message named them (a table altered in
/// the window has a message, and an entry, per shape).
struct Relation {
    relid: u32,
    columns: Vec<String>,
}

/// The transactions the slot holds up to a WAL position, decoded once for
/// every view a refresh serves.
pub struct Window {
    transactions: Vec<Decoded>,
    relations: Vec<Relation>,
    upto: u64,
}

/// Of a window, what advancing the slot needs: each transaction's id and
/// end, in commit order, and the position read to.
pub struct Commits {
    transactions: Vec<(u64, u64)>,
    upto: u64,
}

impl Window {
    /// Add a change of table `relid` to the last transaction; `current` is
    /// each table's latest shape.
    fn push_change(&mut self, current: &mut HashMap<u32, usize>, relid: u32, old: Option<Vec<Value>>, new: Option<Vec<Value>>) {
        let relations = &mut self.relations;
        let relation = *current.entry(relid).or_insert_with(|| {
            relations.push(Relation { relid, columns: Vec::new() });
            relations.len() - 1
        });
        if let Some(t) = self.transactions.last_mut() {
            t.changes.push(Change { relation, old, new });
        }
    }

    pub fn commits(&self) -> Commits {
        Commits { transactions: self.transactions.iter().map(|t| (t.xid, t.end_lsn)).collect(), upto: self.upto }
    }
}

/// Take the slot's turn, read it (without consuming it) to the end of the
/// WAL, and advance it past what every WAL-captured view has applied.
///
/// # Safety
/// Runs inside a refresh, with its snapshot registered and set
/// (`pg::with_snapshot`): the transactions it sees were all decoded.
pub unsafe fn read_window() -> Window {
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
    let window = as_superuser(|| decode_slot(&slot_name(), upto));
    confirm_applied(&window.commits());
    window
}

/// Advance the slot past the longest run of `commits` that every
/// WAL-captured view has applied (to the position read to when that is all
/// of them), as the current snapshot sees their applied snapshots: views
/// still building or failed do not hold it back (a build reads the tables
/// from a snapshot taken under the slot's turn, after every change the
/// slot was advanced past). Takes the slot's turn.
pub fn confirm_applied(commits: &Commits) {
    take_turn();
    let applied = as_superuser(applied_snapshots);
    let applied_by_all = |xid: u64| applied.iter().all(|a| a.sees(xid));
    let prefix = commits.transactions.iter().take_while(|(xid, _)| applied_by_all(*xid)).count();
    let confirm = if prefix == commits.transactions.len() {
        commits.upto
    } else if prefix > 0 {
        commits.transactions[prefix - 1].1
    } else {
        return;
    };
    as_superuser(|| {
        pg::execute_sql(&format!(
            "SELECT pg_catalog.pg_replication_slot_advance({}, {}::pg_lsn) \
               FROM pg_catalog.pg_replication_slots WHERE slot_name = {0} AND confirmed_flush_lsn < {1}::pg_lsn",
            pgrx::spi::quote_literal(slot_name()),
            pgrx::spi::quote_literal(lsn_text(confirm)),
        ))
    });
}

/// The changes of `tables` in `window` that view `root` has not applied and
/// the refresh snapshot (`pg::with_snapshot`) sees, as batches.
///
/// # Safety
/// Runs inside the refresh, with its snapshot registered; the tuplestores
/// returned live in the transaction's memory, to be ended by the caller.
pub unsafe fn read_batches(window: &Window, tables: &[pg_sys::Oid], root: i64) -> Vec<Batch> {
    let (now, applied) = as_superuser(|| snapshots_of(root));
    let wanted: Vec<u32> = tables.iter().map(|t| t.to_u32()).collect();
    let mut batches: HashMap<u32, Batch> = HashMap::new();
    // Per relation shape: the table's descriptor, its input metadata, and
    // for each of its attributes the message's column with its value.
    let mut shapes: HashMap<usize, (pg_sys::TupleDesc, *mut pg_sys::AttInMetadata, Vec<Option<usize>>)> = HashMap::new();
    for t in &window.transactions {
        if applied.as_ref().is_some_and(|a| a.sees(t.xid)) || !now.sees(t.xid) {
            continue;
        }
        for relid in &t.truncated {
            if wanted.contains(relid) {
                batch_for(&mut batches, *relid).truncated = true;
            }
        }
        for change in &t.changes {
            let relation = &window.relations[change.relation];
            if !wanted.contains(&relation.relid) {
                continue;
            }
            let (_, meta, positions) = shapes.entry(change.relation).or_insert_with(|| shape(relation));
            let b = batch_for(&mut batches, relation.relid);
            if let Some(old) = &change.old {
                put_row(b.old, *meta, positions, old);
                b.rows += 1;
            }
            if let Some(new) = &change.new {
                // An UPDATE's unchanged TOASTed values, from the old row.
                let filled;
                let new = match &change.old {
                    Some(old) if new.contains(&Value::Unchanged) => {
                        filled = pgoutput::fill_unchanged(new, old);
                        &filled
                    }
                    _ => new,
                };
                put_row(b.new, *meta, positions, new);
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

/// The table of `relation` as it is now, and where each of its attributes is
/// among the message's columns (by name; a column the message lacks, e.g.
/// added since, is NULL).
unsafe fn shape(relation: &Relation) -> (pg_sys::TupleDesc, *mut pg_sys::AttInMetadata, Vec<Option<usize>>) {
    let rel = pg_sys::relation_open(pg_sys::Oid::from(relation.relid), pg_sys::AccessShareLock as pg_sys::LOCKMODE);
    let desc = pg_sys::CreateTupleDescCopy((*rel).rd_att);
    pg_sys::relation_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
    let positions = (0..(*desc).natts as usize)
        .map(|i| {
            let att = (*desc).attrs.as_ptr().add(i);
            if (*att).attisdropped {
                return None;
            }
            let name = std::ffi::CStr::from_ptr((*att).attname.data.as_ptr()).to_string_lossy();
            relation.columns.iter().position(|c| *c == name)
        })
        .collect();
    (desc, pg_sys::TupleDescGetAttInMetadata(desc), positions)
}

/// Add a row of the table, from the message's column values, through the
/// types' input functions, to `store`.
unsafe fn put_row(store: *mut pg_sys::Tuplestorestate, meta: *mut pg_sys::AttInMetadata, positions: &[Option<usize>], values: &[Value]) {
    let texts: Vec<Option<std::ffi::CString>> = positions
        .iter()
        .map(|p| match p.and_then(|p| values.get(p)) {
            Some(Value::Text(v)) => std::ffi::CString::new(v.as_str()).ok(),
            _ => None,
        })
        .collect();
    let mut ptrs: Vec<*mut std::ffi::c_char> =
        texts.iter().map(|t| t.as_ref().map_or(std::ptr::null_mut(), |c| c.as_ptr() as *mut _)).collect();
    let tuple = pg_sys::BuildTupleFromCStrings(meta, ptrs.as_mut_ptr());
    pg_sys::tuplestore_puttuple(store, tuple);
    pg_sys::heap_freetuple(tuple);
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

/// Every transaction the slot holds up to `upto`, decoded, in commit order.
fn decode_slot(slot: &str, upto: u64) -> Window {
    let rows: Vec<Vec<u8>> = Spi::connect(|client| {
        let rows = client.select(
            &format!(
                "SELECT data FROM pg_catalog.pg_logical_slot_peek_binary_changes({}, {}::pg_lsn, NULL, \
                 'proto_version', '1', 'publication_names', '{PUBLICATION}')",
                pgrx::spi::quote_literal(slot),
                pgrx::spi::quote_literal(lsn_text(upto))
            ),
            None,
            &[],
        )?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row.get::<Vec<u8>>(1)?.unwrap_or_default());
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .unwrap_or_else(|e| raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("could not read the replication slot: {e}"), None, None));
    // SAFETY: reads the next full transaction id (shared memory, under its lock).
    let next = unsafe { pg_sys::ReadNextFullTransactionId() }.value;
    let mut window = Window { transactions: Vec::new(), relations: Vec::new(), upto };
    // Each table's latest shape, by entry in `window.relations`.
    let mut current: HashMap<u32, usize> = HashMap::new();
    for data in rows {
        let message = pgoutput::decode(&data)
            .unwrap_or_else(|e| raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("could not decode the WAL: {e}"), None, None));
        match message {
            Message::Insert { relid, new } => window.push_change(&mut current, relid, None, Some(new)),
            Message::Update { relid, old, new } => window.push_change(&mut current, relid, old, Some(new)),
            Message::Delete { relid, old } => window.push_change(&mut current, relid, Some(old), None),
            Message::Begin { xid } => window.transactions.push(Decoded {
                xid: pgoutput::full_xid(xid, next),
                end_lsn: 0,
                changes: Vec::new(),
                truncated: Vec::new(),
            }),
            Message::Commit { end_lsn, .. } => {
                if let Some(t) = window.transactions.last_mut() {
                    t.end_lsn = end_lsn;
                }
            }
            Message::Relation { relid, columns } => {
                window.relations.push(Relation { relid, columns });
                current.insert(relid, window.relations.len() - 1);
            }
            Message::Truncate { relids } => {
                if let Some(t) = window.transactions.last_mut() {
                    t.truncated.extend(relids);
                }
            }
            Message::Other => {}
        }
    }
    window
}

fn parse_snapshot(text: &str) -> Snapshot {
    Snapshot::parse(text).unwrap_or_else(|e| raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, e, None, None))
}

/// (the refresh snapshot, view `root`'s applied snapshot), in the refresh
/// snapshot (a query of its own, not the caller's statement's).
fn snapshots_of(root: i64) -> (Snapshot, Option<Snapshot>) {
    let row = pg::query_texts(
        &format!("SELECT pg_catalog.pg_current_snapshot()::text, (SELECT applied_snapshot::text FROM tide.catalog WHERE id = {root})"),
        2,
    );
    let mut it = row.into_iter();
    let current = parse_snapshot(&it.next().flatten().expect("a current snapshot"));
    (current, it.next().flatten().map(|s| parse_snapshot(&s)))
}

/// The applied snapshots of the WAL-captured views that are ready.
fn applied_snapshots() -> Vec<Snapshot> {
    let row = pg::query_texts(
        "SELECT coalesce(string_agg(applied_snapshot::text, ';'), '') FROM tide.catalog \
          WHERE mode = 'deferred' AND capture = 'wal' AND status = 'ready' AND parent IS NULL",
        1,
    );
    row.into_iter().next().flatten().unwrap_or_default().split(';').filter(|s| !s.is_empty()).map(parse_snapshot).collect()
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
