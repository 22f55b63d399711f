//! Immediate-mode capture: statement-level triggers on every base table.
//!
//! `capture_before` (BEFORE ... FOR EACH STATEMENT) counts statements whose
//! AFTER triggers are still to come; `capture_after` (AFTER ... FOR EACH
//! STATEMENT, with transition tables) maintains the views over the table.
//!
//! A single SQL statement can change several inputs of a view (a writable
//! CTE, ON DELETE CASCADE, a user trigger): each AFTER trigger then sees the
//! other tables' new rows, and maintaining per trigger would count ΔA⋈ΔB
//! twice. A "round" is the span from the first BEFORE trigger to the AFTER
//! trigger that brings the count back to zero. A join view whose inputs were
//! changed by more than one statement in the round is not maintained per
//! trigger; it is rebuilt once, at the end of the round. Views reading one
//! input once are linear in it and are always maintained per trigger.

use crate::apply;
use crate::delta::join::Event;
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
    /// Views to rebuild when the round ends.
    rebuild: Vec<i64>,
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
            if let Some(before) = SAVED.with(|s| s.borrow_mut().pop()) {
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
    let relid = trigger.relid()?.to_u32();
    ROUND.with(|r| {
        let mut r = r.borrow_mut();
        r.pending += 1;
        *r.statements.entry(relid).or_default() += 1;
    });
    Ok(None)
}

#[pg_trigger]
fn capture_after<'a>(
    trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, pgrx::AllocatedByPostgres>>, pgrx::PgTriggerError> {
    let relid = trigger.relid()?;
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
    let round = ROUND.with(|r| {
        let mut r = r.borrow_mut();
        r.pending = (r.pending - 1).max(0);
        r.clone()
    });
    for view in apply::views_reading(relid).iter() {
        let compiled = apply::compiled(view);
        let multi_statement = compiled.plan.spj.inputs.len() > 1
            && compiled.plan.base_tables().iter().map(|t| round.statements.get(t).copied().unwrap_or(0)).sum::<u32>() > 1;
        match event {
            Some(event) if !multi_statement => {
                // SAFETY: the trigger data is the one PostgreSQL passed to this call.
                let trigdata = trigger.trigger_data() as *const pg_sys::TriggerData as *mut pg_sys::TriggerData;
                apply::maintain(view, &compiled, relid.to_u32(), event, trigdata);
            }
            _ => ROUND.with(|r| {
                let mut r = r.borrow_mut();
                if !r.rebuild.contains(&view.id) {
                    r.rebuild.push(view.id);
                }
            }),
        }
    }
    let finished = ROUND.with(|r| {
        let mut r = r.borrow_mut();
        if r.pending == 0 {
            Some(std::mem::take(&mut *r))
        } else {
            None
        }
    });
    if let Some(done) = finished {
        for id in done.rebuild {
            apply::rebuild_view_by_id(id);
        }
    }
    Ok(None)
}
