//! Small helpers over PostgreSQL's C API, shared by the pgrx-facing modules.
//! Every function here runs on the backend's main thread only.

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgList;
use std::ffi::CStr;

/// Raise an ERROR with a SQLSTATE, message, and optional detail and hint. Never returns.
pub fn raise(code: PgSqlErrorCode, message: impl Into<String>, detail: Option<String>, hint: Option<&str>) -> ! {
    let mut report = pgrx::pg_sys::panic::ErrorReport::new(code, message.into(), function_name!());
    if let Some(d) = detail {
        report = report.set_detail(d);
    }
    if let Some(h) = hint {
        report = report.set_hint(h);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

/// The elements of a pointer List, or nothing for NIL.
///
/// # Safety
/// `list` must be NIL or a valid pointer List whose elements are `*mut T`.
pub unsafe fn list<T>(list: *mut pg_sys::List) -> Vec<*mut T> {
    PgList::<T>::from_pg(list).iter_ptr().collect()
}

/// Owned copy of a C string; "" for NULL.
///
/// # Safety
/// `p` must be NULL or point to a NUL-terminated string.
pub unsafe fn cstr(p: *const std::ffi::c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// Whether a node pointer is of the given tag.
///
/// # Safety
/// `node` must be NULL or point to a PostgreSQL Node.
pub unsafe fn is_a<T>(node: *mut T, tag: pg_sys::NodeTag) -> bool {
    !node.is_null() && (*(node as *mut pg_sys::Node)).type_ == tag
}

/// `schema.name` of a relation, each part quoted only where needed.
pub fn qualified_relation_name(relid: pg_sys::Oid) -> String {
    // SAFETY: lookups by OID in the syscache; they return NULL for a missing
    // object, which `cstr` maps to "".
    unsafe {
        let nsp = cstr(pg_sys::get_namespace_name(pg_sys::get_rel_namespace(relid)));
        let rel = cstr(pg_sys::get_rel_name(relid));
        format!("{}.{}", quote_ident(&nsp), quote_ident(&rel))
    }
}

/// PostgreSQL's own identifier quoting (quotes keywords, upper case, odd characters).
pub fn quote_ident(name: &str) -> String {
    pgrx::spi::quote_identifier(name)
}

// catalog/pg_inherits.h, which pgrx does not bind.
unsafe extern "C-unwind" {
    fn has_subclass(relation_id: pg_sys::Oid) -> bool;
    fn has_superclass(relation_id: pg_sys::Oid) -> bool;
}

/// Whether a relation is part of an inheritance or partition tree: it has
/// partitions or children, or is itself a partition or child.
pub fn in_inheritance_tree(relid: pg_sys::Oid) -> bool {
    // SAFETY: catalog reads by OID, called through the FFI guard so that an
    // ERROR becomes a Rust panic.
    unsafe { pg_sys::ffi::pg_guard_ffi_boundary(|| has_subclass(relid) || has_superclass(relid)) }
}
