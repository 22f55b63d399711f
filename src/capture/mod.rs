//! Immediate-mode capture: statement-level triggers on every base table.
//!
//! `capture_before` (BEFORE ... FOR EACH STATEMENT) counts statements whose
//! AFTER triggers are still to come; `capture_after` (AFTER ... FOR EACH
//! STATEMENT, with transition tables) maintains the views over the table.
//!
//! A single SQL statement can change several inputs of a view (a writable
//! CTE, ON DELETE CASCADE, a user trigger): each AFTER trigger then sees the
//! other tables' new rows, and maintaining per trigger would count ΔA⋈ΔB
//! twice. A statement a row trigger runs inside another one fires its AFTER
//! trigger first: a bag view maintained from it alone would delete rows the
//! outer statement has not added to the view yet.
//!
//! A "round" is the span from the first BEFORE trigger to the AFTER trigger
//! that brings the count back to zero. The round keeps, per view and
//! table, how many of the table's statements the view has taken in
//! (maintained from, or collected). A view is maintained from a statement at
//! its AFTER trigger when every other statement of the round on its inputs is
//! taken in: its inputs are then at the states the view reflects, except the
//! one changing. Otherwise the transition tables are copied aside for that
//! view (into tuplestores of the transaction), and the view is maintained at
//! the round's end from all of them together against the new states.
//! TRUNCATE, which has no transition table, makes the views over the table
//! rebuild at the end of the round.
//!
//! Views over pg_tide views (including the internal views of sub-queries)
//! are maintained from the writes that maintaining the inner view makes.
//! Those writes happen while the round is open, inside an AFTER trigger or
//! at the round's end, so they join the round. A view reading a table and
//! internal views over it is maintained before them: first from the table's
//! change against the internal views' old states, then from each internal
//! view's write, one at a time. Each step has one changed input, so its
//! delta is one join term, where maintaining once from all the changes
//! would expand the join into a term for every subset of changed inputs.
//! So the views reading a table are maintained in descending id order (a
//! view's id is above those of the views it reads), and at the round's end
//! the views with collected rows too; rebuilds come last, in ascending order.

pub mod log;
pub mod pgoutput;
pub mod wal;

use crate::apply;
use crate::delta::join::{round_table, Change, Event, NEW_TABLE, OLD_TABLE};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::RefCell;
use std::collections::HashMap;

#[derive(Clone, Default, Debug)]
struct Round {
    /// Statements whose AFTER trigger has not fired yet.
    pending: i64,
    /// Statements started in this round, per table.
    statements: HashMap<u32, u32>,
    /// Of those, how many each joining view has taken in, per (view,
    /// table): maintained from at their AFTER trigger, or collected.
    taken: HashMap<(i64, u32), u32>,
    /// Views to maintain when the round ends, from the collected rows.
    collect: Vec<i64>,
    /// Views to rebuild when the round ends.
    rebuild: Vec<i64>,
    /// Rows collected per (view, table): (old rows, new rows).
    collected: HashMap<(i64, u32), Collected>,
    /// Stores of collected rows already applied, to end with the round.
    spent: Vec<*mut pg_sys::Tuplestorestate>,
    /// Bumped whenever rows are collected (a savepoint rolled back over a
    /// collection cannot take the rows back out: its views are rebuilt).
    generation: u64,
}

impl Round {
    /// Whether view `view` can be maintained from the statement on `table`
    /// whose AFTER trigger runs, alone: it has no rows collected, and every
    /// other statement of the round on its tables is taken in.
    fn takes_alone(&self, view: i64, table: u32, tables: &[u32]) -> bool {
        !self.collect.contains(&view)
            && tables.iter().all(|t| {
                let started = self.statements.get(t).copied().unwrap_or(0);
                let taken = self.taken.get(&(view, *t)).copied().unwrap_or(0);
                started == taken + u32::from(*t == table)
            })
    }
}

/// Rows of one table collected in a round, in tuplestores of the transaction.
#[derive(Clone, Copy, Debug)]
struct Collected {
    old: *mut pg_sys::Tuplestorestate,
    new: *mut pg_sys::Tuplestorestate,
}

thread_local! {
    static ROUND: RefCell<Round> = RefCell::new(Round::default());
    /// The round as it was when each open subtransaction started.
    static SAVED: RefCell<Vec<Round>> = const { RefCell::new(Vec::new()) };
}

/// Register the transaction callbacks that keep the round exact across
/// savepoints and errors. Called from _PG_init.
pub fn init() {
    // SAFETY: registering static callbacks with PostgreSQL at library load.
    unsafe {
        pg_sys::RegisterXactCallback(Some(on_xact), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(on_subxact), std::ptr::null_mut());
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_xact(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    use pg_sys::XactEvent::*;
    if matches!(event, XACT_EVENT_COMMIT | XACT_EVENT_ABORT | XACT_EVENT_PARALLEL_COMMIT | XACT_EVENT_PARALLEL_ABORT | XACT_EVENT_PREPARE) {
        ROUND.with(|r| *r.borrow_mut() = Round::default());
        SAVED.with(|s| s.borrow_mut().clear());
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_subxact(
    event: pg_sys::SubXactEvent::Type,
    _mine: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    use pg_sys::SubXactEvent::*;
    match event {
        SUBXACT_EVENT_START_SUB => {
            let now = ROUND.with(|r| r.borrow().clone());
            SAVED.with(|s| s.borrow_mut().push(now));
        }
        SUBXACT_EVENT_COMMIT_SUB => {
            SAVED.with(|s| s.borrow_mut().pop());
        }
        SUBXACT_EVENT_ABORT_SUB => {
            // The aborted statements' AFTER triggers will never fire.
            if let Some(mut before) = SAVED.with(|s| s.borrow_mut().pop()) {
                let now = ROUND.with(|r| r.borrow().generation);
                if now != before.generation {
                    // Rows of the aborted statements may sit in the collected
                    // tuplestores: rebuild those views instead.
                    let views = std::mem::take(&mut before.collect);
                    before.rebuild.extend(views);
                    before.generation = now;
                }
                ROUND.with(|r| *r.borrow_mut() = before);
            }
        }
        _ => {}
    }
}

#[pg_trigger]
fn capture_before<'a>(
    trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, pgrx::AllocatedByPostgres>>, pgrx::PgTriggerError> {
    let relid = base_table(trigger)?.to_u32();
    ROUND.with(|r| {
        let mut r = r.borrow_mut();
        r.pending += 1;
        *r.statements.entry(relid).or_default() += 1;
    });
    Ok(None)
}

#[pg_trigger]
fn capture_after<'a>(trigger: &'a pgrx::PgTrigger<'a>) -> Result<Option<PgHeapTuple<'a, pgrx::AllocatedByPostgres>>, pgrx::PgTriggerError> {
    let relid = base_table(trigger)?;
    let ev = trigger.event();
    let event = if ev.fired_by_insert() {
        Some(Event::Insert)
    } else if ev.fired_by_update() {
        Some(Event::Update)
    } else if ev.fired_by_delete() {
        Some(Event::Delete)
    } else {
        None // TRUNCATE: no transition table
    };
    // The round stays open until this trigger has maintained its views: a
    // view that reads this table and also a pg_tide view over it sees that
    // view's writes, made from here, as more statements of the same round,
    // and is maintained once, at the round's end, from both changes.
    let trigdata = trigger.trigger_data() as *const pg_sys::TriggerData as *mut pg_sys::TriggerData;
    // A statement that changed no row changes no view (internal views'
    // maintenance often writes nothing: their readers need no work then).
    // SAFETY: the trigger data PostgreSQL passed to this call.
    let rows = if event.is_some() { unsafe { changed_rows(trigdata) } } else { 0 };
    let unchanged = event.is_some() && rows == 0;
    let views = if unchanged { Default::default() } else { apply::views_reading(relid) };
    // Rows of a table under the base table, in the base table's row type
    // when their columns are placed otherwise (None: they are not).
    // SAFETY: the trigger data PostgreSQL passed to this call.
    let converted = if views.is_empty() || event.is_none() { None } else { unsafe { in_row_type_of(relid, trigdata) } };
    // Readers before the views they read (see the module comment).
    for view in views.iter().rev() {
        let compiled = apply::compiled(view);
        let table = relid.to_u32();
        let (rebuilding, alone) = ROUND.with(|r| {
            let mut r = r.borrow_mut();
            let rebuilding = r.rebuild.contains(&view.id);
            // Every view, linear ones included: a bag view maintained from a
            // statement that a trigger nested inside another one ran (its
            // AFTER trigger fires first) would delete rows not inserted yet.
            let alone = r.takes_alone(view.id, table, &compiled.plan.base_tables());
            *r.taken.entry((view.id, table)).or_default() += 1;
            (rebuilding, alone)
        });
        match event {
            // Rebuilt at the round's end from the tables as they are then.
            _ if rebuilding => {}
            Some(event) if alone => {
                let change = Change::Statement { relid: table, event };
                // SAFETY: registers the transition tables of this trigger
                // invocation, for the SPI connection maintain opens.
                apply::maintain(view, &compiled, &change, rows as u64, &|| unsafe {
                    match converted {
                        Some(c) => {
                            register_store(NEW_TABLE, table, c.new);
                            register_store(OLD_TABLE, table, c.old);
                        }
                        None => {
                            pg_sys::SPI_register_trigger_data(trigdata);
                        }
                    }
                });
            }
            Some(_) => {
                // SAFETY: the trigger data PostgreSQL passed to this call.
                unsafe { collect_rows(view.id, table, trigdata, converted) };
                note(|r| &mut r.collect, view.id);
            }
            None => note(|r| &mut r.rebuild, view.id),
        }
    }
    let finished = ROUND.with(|r| {
        let mut r = r.borrow_mut();
        r.pending = (r.pending - 1).max(0);
        r.pending == 0
    });
    if finished {
        finish_round();
    }
    Ok(None)
}

/// The base table a capture trigger serves: its own table, or for a table
/// under a base table in a partition or inheritance tree, that base table
/// (the trigger's argument, see tide.sync_tree).
pub fn base_table(trigger: &pgrx::PgTrigger<'_>) -> Result<pg_sys::Oid, pgrx::PgTriggerError> {
    match trigger.extra_args()?.first().and_then(|a| a.parse::<u32>().ok()) {
        Some(root) => Ok(pg_sys::Oid::from(root)),
        None => trigger.relid(),
    }
}

/// The trigger's transition tables as rows of base table `relid`, when the
/// trigger's own table (a partition or child of it) places its columns
/// otherwise (dropped columns, another order, more columns): copied, by
/// column name, into tuplestores of the transaction. None when the rows
/// are the base table's as they are.
///
/// # Safety
/// `trigdata` must be the TriggerData of the running AFTER trigger.
unsafe fn in_row_type_of(relid: pg_sys::Oid, trigdata: *mut pg_sys::TriggerData) -> Option<Collected> {
    let own = (*trigdata).tg_relation;
    if (*own).rd_id == relid {
        return None;
    }
    // The statement locked the table under it, not necessarily the base table.
    let base = pg_sys::relation_open(relid, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
    let map = pg_sys::convert_tuples_by_name((*own).rd_att, (*base).rd_att);
    if map.is_null() {
        pg_sys::relation_close(base, pg_sys::NoLock as pg_sys::LOCKMODE);
        return None;
    }
    let old_cxt = pg_sys::MemoryContextSwitchTo(pg_sys::TopTransactionContext);
    let old_owner = pg_sys::CurrentResourceOwner;
    pg_sys::CurrentResourceOwner = pg_sys::CurTransactionResourceOwner;
    let out = Collected {
        old: pg_sys::tuplestore_begin_heap(false, false, pg_sys::work_mem),
        new: pg_sys::tuplestore_begin_heap(false, false, pg_sys::work_mem),
    };
    let from_slot = pg_sys::MakeSingleTupleTableSlot((*own).rd_att, &pg_sys::TTSOpsMinimalTuple);
    let to_slot = pg_sys::MakeSingleTupleTableSlot((*map).outdesc, &pg_sys::TTSOpsVirtual);
    for (from, to) in [((*trigdata).tg_oldtable, out.old), ((*trigdata).tg_newtable, out.new)] {
        if from.is_null() {
            continue;
        }
        pg_sys::tuplestore_select_read_pointer(from, 0);
        pg_sys::tuplestore_rescan(from);
        while pg_sys::tuplestore_gettupleslot(from, true, false, from_slot) {
            pg_sys::execute_attr_map_slot((*map).attrMap, from_slot, to_slot);
            pg_sys::tuplestore_puttupleslot(to, to_slot);
        }
        pg_sys::tuplestore_rescan(from);
    }
    pg_sys::ExecDropSingleTupleTableSlot(from_slot);
    pg_sys::ExecDropSingleTupleTableSlot(to_slot);
    pg_sys::CurrentResourceOwner = old_owner;
    pg_sys::MemoryContextSwitchTo(old_cxt);
    pg_sys::relation_close(base, pg_sys::NoLock as pg_sys::LOCKMODE);
    Some(out)
}

/// For tide.on_tree_ddl: the rows of a partition or inheritance tree
/// changed without a statement on it (a table with rows attached, one
/// detached or dropped): rebuild the immediate views reading its base table.
#[pg_extern(volatile, parallel_unsafe)]
fn rebuild_readers(root: pg_sys::Oid) {
    for view in apply::views_reading(root).iter() {
        apply::rebuild_view_by_id(view.id);
    }
}

/// The rows in an AFTER STATEMENT trigger's transition tables.
///
/// # Safety
/// `trigdata` must be the TriggerData of the running trigger.
pub unsafe fn changed_rows(trigdata: *const pg_sys::TriggerData) -> i64 {
    [(*trigdata).tg_oldtable, (*trigdata).tg_newtable].iter().filter(|t| !t.is_null()).map(|t| pg_sys::tuplestore_tuple_count(*t)).sum()
}

/// Add a view to one of the round's lists, once.
fn note(list: impl Fn(&mut Round) -> &mut Vec<i64>, id: i64) {
    ROUND.with(|r| {
        let mut r = r.borrow_mut();
        let l = list(&mut r);
        if !l.contains(&id) {
            l.push(id);
        }
    });
}

/// Copy a statement's transition tables into the round's tuplestores for
/// view `view` and the table (appending to rows collected from earlier
/// statements).
///
/// # Safety
/// `trigdata` must be the TriggerData of the running AFTER trigger.
unsafe fn collect_rows(view: i64, relid: u32, trigdata: *mut pg_sys::TriggerData, converted: Option<Collected>) {
    let existing = ROUND.with(|r| r.borrow().collected.get(&(view, relid)).copied());
    // The tuplestores live in the transaction's memory and resource owner,
    // as PostgreSQL's own transition tables do, beyond this statement.
    let old_cxt = pg_sys::MemoryContextSwitchTo(pg_sys::TopTransactionContext);
    let old_owner = pg_sys::CurrentResourceOwner;
    pg_sys::CurrentResourceOwner = pg_sys::CurTransactionResourceOwner;
    let target = existing.unwrap_or_else(|| Collected {
        old: pg_sys::tuplestore_begin_heap(false, false, pg_sys::work_mem),
        new: pg_sys::tuplestore_begin_heap(false, false, pg_sys::work_mem),
    });
    let (desc, sources) = match converted {
        Some(c) => {
            let rel = pg_sys::RelationIdGetRelation(pg_sys::Oid::from(relid));
            let desc = pg_sys::CreateTupleDescCopy((*rel).rd_att);
            pg_sys::RelationClose(rel);
            (desc, [c.old, c.new])
        }
        None => ((*(*trigdata).tg_relation).rd_att, [(*trigdata).tg_oldtable, (*trigdata).tg_newtable]),
    };
    let slot = pg_sys::MakeSingleTupleTableSlot(desc, &pg_sys::TTSOpsMinimalTuple);
    for (from, to) in [(sources[0], target.old), (sources[1], target.new)] {
        if from.is_null() {
            continue;
        }
        // Read from the start with read pointer 0: scans of this transition
        // table by earlier maintenance left their own pointer active.
        pg_sys::tuplestore_select_read_pointer(from, 0);
        pg_sys::tuplestore_rescan(from);
        while pg_sys::tuplestore_gettupleslot(from, true, false, slot) {
            pg_sys::tuplestore_puttupleslot(to, slot);
        }
        pg_sys::tuplestore_rescan(from);
    }
    pg_sys::ExecDropSingleTupleTableSlot(slot);
    pg_sys::CurrentResourceOwner = old_owner;
    pg_sys::MemoryContextSwitchTo(old_cxt);
    ROUND.with(|r| {
        let mut r = r.borrow_mut();
        r.collected.insert((view, relid), target);
        r.generation += 1;
    });
}

/// End of a round: maintain the views whose changes were collected, each
/// from all its collected rows at once, and rebuild those that must be, in
/// id order. The round stays open meanwhile (one statement held pending),
/// so that the writes to the views made here are part of it; it closes when
/// no view is left.
fn finish_round() {
    ROUND.with(|r| r.borrow_mut().pending = 1);
    loop {
        let next = ROUND.with(|r| {
            let mut r = r.borrow_mut();
            // Readers first (see the module comment), then rebuilds in
            // the order that has each after the views it reads.
            let maintained = r.collect.iter().filter(|v| !r.rebuild.contains(v)).max().copied();
            let id = maintained.or_else(|| r.rebuild.iter().min().copied())?;
            let rebuild = maintained.is_none();
            r.collect.retain(|v| *v != id);
            r.rebuild.retain(|v| *v != id);
            // The rows are taken out: rows the view's inputs get later in the
            // round are collected afresh. Their stores end with the round.
            let tables: Vec<u32> = r.collected.keys().filter(|(v, _)| *v == id).map(|(_, t)| *t).collect();
            let collected: Vec<(u32, Collected)> = tables.iter().filter_map(|t| r.collected.remove(&(id, *t)).map(|c| (*t, c))).collect();
            r.spent.extend(collected.iter().flat_map(|(_, c)| [c.old, c.new]));
            Some((id, rebuild, collected))
        });
        let Some((id, rebuild, collected)) = next else {
            break;
        };
        if rebuild {
            if let Some(view) = apply::view_by_id(id) {
                // Built from the tables as they are: every statement so far is taken in.
                let tables = apply::compiled(&view).plan.base_tables();
                ROUND.with(|r| {
                    let mut r = r.borrow_mut();
                    for t in tables {
                        let started = r.statements.get(&t).copied().unwrap_or(0);
                        r.taken.insert((id, t), started);
                    }
                });
                apply::rebuild_view(&view);
            }
            continue;
        }
        let Some(view) = apply::view_by_id(id) else {
            continue;
        };
        let compiled = apply::compiled(&view);
        let mut collected: Vec<(u32, Collected)> = collected.into_iter().filter(|(t, _)| compiled.plan.base_tables().contains(t)).collect();
        collected.sort_unstable_by_key(|(t, _)| *t);
        let relids: Vec<u32> = collected.iter().map(|(t, _)| *t).collect();
        let register = || {
            for (relid, c) in &collected {
                // SAFETY: the tuplestores live until the end of the
                // transaction; the ENRs only for this SPI connection.
                unsafe {
                    register_rows(*relid, true, c.new);
                    register_rows(*relid, false, c.old);
                }
            }
        };
        // SAFETY: the round's tuplestores, alive until it ends.
        let rows: i64 = collected.iter().flat_map(|(_, c)| [c.old, c.new]).map(|t| unsafe { pg_sys::tuplestore_tuple_count(t) }).sum();
        // SAFETY: as above.
        let none = |store: *mut pg_sys::Tuplestorestate| unsafe { pg_sys::tuplestore_tuple_count(store) } == 0;
        let inserts_only = collected.iter().all(|(_, c)| none(c.old));
        let deletes_only = collected.iter().all(|(_, c)| none(c.new));
        apply::maintain(&view, &compiled, &Change::Round { relids, inserts_only, deletes_only }, rows as u64, &register);
    }
    let done = ROUND.with(|r| std::mem::take(&mut *r.borrow_mut()));
    // A refresh's batch is shared by the views reading its table: end each store once.
    let mut stores: Vec<*mut pg_sys::Tuplestorestate> = done.collected.values().flat_map(|c| [c.old, c.new]).chain(done.spent).collect();
    stores.sort_unstable();
    stores.dedup();
    for store in stores {
        // SAFETY: created in this transaction (collect_rows, or a refresh's
        // batch), not used after.
        unsafe { pg_sys::tuplestore_end(store) };
    }
}

/// Apply a deferred refresh's batch of logged changes to the views of one
/// family (a view and its internal views, in id order): a round in which
/// each logged table was changed by one statement, whose rows are the
/// batch's. The views are maintained at the round's end as a statement's
/// views are; an internal view's writes reach the views reading it as in
/// immediate mode, `apply::refreshing` making those deferred views count.
/// The batch's tuplestores are ended with the round.
pub fn replay(members: &[apply::ViewRef], batches: &[log::Batch]) {
    let outer = ROUND.with(|r| std::mem::take(&mut *r.borrow_mut()));
    let readers: Vec<(i64, Vec<u32>)> = members.iter().map(|m| (m.id, apply::compiled(m).plan.base_tables())).collect();
    ROUND.with(|r| {
        let mut r = r.borrow_mut();
        for b in batches {
            r.statements.insert(b.relid, 1);
            for (id, tables) in &readers {
                if tables.contains(&b.relid) {
                    r.collected.insert((*id, b.relid), Collected { old: b.old, new: b.new });
                    r.taken.insert((*id, b.relid), 1);
                    if !r.collect.contains(id) {
                        r.collect.push(*id);
                    }
                }
            }
        }
        r.generation += 1;
    });
    finish_round();
    ROUND.with(|r| *r.borrow_mut() = outer);
}

/// Register collected rows as the ephemeral relation `tide_new_<relid>` or
/// `tide_old_<relid>`, with the table's row type, in the current SPI connection.
unsafe fn register_rows(relid: u32, new: bool, store: *mut pg_sys::Tuplestorestate) {
    register_store(&round_table(relid, new), relid, store);
}

/// Register `store` as the ephemeral relation `name`, with the row type of
/// table `relid`, in the current SPI connection.
unsafe fn register_store(name: &str, relid: u32, store: *mut pg_sys::Tuplestorestate) {
    let name = std::ffi::CString::new(name).expect("no NUL in a generated name");
    let enr = pg_sys::palloc0(std::mem::size_of::<pg_sys::EphemeralNamedRelationData>()) as *mut pg_sys::EphemeralNamedRelationData;
    (*enr).md.name = pg_sys::pstrdup(name.as_ptr());
    (*enr).md.reliddesc = pg_sys::Oid::from(relid);
    (*enr).md.tupdesc = std::ptr::null_mut();
    (*enr).md.enrtype = pg_sys::EphemeralNameRelationType::ENR_NAMED_TUPLESTORE;
    (*enr).md.enrtuples = pg_sys::tuplestore_tuple_count(store) as f64;
    (*enr).reldata = store.cast();
    pg_sys::SPI_register_relation(enr);
}
