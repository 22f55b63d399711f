//! pg_tide: incrementally maintained views for PostgreSQL.
//!
//! # The flow of data
//! `api` (SQL functions in schema `tide`) → `analyze` (PostgreSQL's parser,
//! analyzer and rewriter; Query → `ir`) → `delta` (per-operator delta rules)
//! → `sql` (SQL text) → `apply` (run it, write the view). `catalog` keeps one
//! row per view; `explain` prints the IR. `ir`, `delta`, `explain` and `sql`
//! are pure Rust, tested with `cargo test`; the rest is a thin pgrx layer.
//!
//! # How a view is stored, and why
//! A pg_tide view `v` is an ordinary heap table holding exactly the query's
//! columns (names, types, typmods and collations as the query gives them), no
//! bookkeeping columns. So users read it like a table and index it for their
//! reads, and a later release can publish it with a plain publication (a
//! publication needs a table, not a view over one). Bookkeeping lives beside
//! it, in schema `tide_state`:
//! - `tide_state.query_<id>`: the query, as a PostgreSQL view owned by the
//!   view's owner. PostgreSQL records its dependencies (tables, columns,
//!   functions, types), so a base table or column cannot be dropped or
//!   retyped from under the view without CASCADE, and renames are followed.
//!   `v` depends on it, so `DROP TABLE base CASCADE` drops `v` too. Full
//!   rebuilds and `tide.verify` run it.
//! - per-view state tables (counts, sums, multiplicities), added by the engine.
//!
//! A statement-level BEFORE trigger (`tide_guard`) refuses writes to `v` that
//! pg_tide does not make; an `sql_drop` event trigger removes the bookkeeping
//! of a view dropped by plain DROP.

use pgrx::prelude::*;

mod analyze;
mod api;
mod apply;
mod capture;
mod catalog;
mod compare;
mod delta;
mod explain;
mod ir;
mod pg;
mod progress;
mod refresh;
mod scheduler;
mod sql;

pgrx::pg_module_magic!();

extension_sql_file!("../sql/bootstrap.sql", name = "bootstrap", bootstrap);
extension_sql_file!("../sql/finalize.sql", name = "finalize", finalize);

/// Library load: register the callbacks that keep per-backend state exact.
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    capture::init();
    apply::init();
    scheduler::init();
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn create_maintain_verify_refresh_roundtrip() {
        Spi::run("CREATE TABLE t (k int, v numeric)").unwrap();
        Spi::run("INSERT INTO t SELECT i % 3, i FROM generate_series(1, 10) i").unwrap();
        let rows = Spi::get_one::<i64>("SELECT tide.create_view('s', 'SELECT k, sum(v) AS total FROM t GROUP BY k')").unwrap();
        assert_eq!(rows, Some(3));
        assert_eq!(Spi::get_one::<bool>("SELECT tide.verify('s')").unwrap(), Some(true));
        // Maintained in the writing transaction.
        Spi::run("INSERT INTO t VALUES (7, 1)").unwrap();
        assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM s").unwrap(), Some(4));
        assert_eq!(Spi::get_one::<bool>("SELECT tide.verify('s')").unwrap(), Some(true));
        // A change pg_tide cannot see is found by verify and repaired by a full refresh.
        Spi::run("SET LOCAL session_replication_role = replica").unwrap();
        Spi::run("INSERT INTO t VALUES (8, 1)").unwrap();
        Spi::run("SET LOCAL session_replication_role = origin").unwrap();
        assert_eq!(Spi::get_one::<bool>("SELECT tide.verify('s')").unwrap(), Some(false));
        assert_eq!(Spi::get_one::<i64>("SELECT tide.refresh('s', full => true)").unwrap(), Some(5));
        assert_eq!(Spi::get_one::<bool>("SELECT tide.verify('s')").unwrap(), Some(true));
    }

    #[pg_test]
    fn explain_shows_the_join_tree() {
        Spi::run("CREATE TABLE a (id int, x int); CREATE TABLE b (id int, y int)").unwrap();
        let ops = Spi::get_one::<String>(
            "SELECT string_agg(operator, ',' ORDER BY id) FROM tide.explain('SELECT a.x, count(*) FROM a JOIN b ON a.id = b.id WHERE b.y > 0 GROUP BY a.x')",
        )
        .unwrap();
        assert_eq!(ops.as_deref(), Some("Project,Aggregate,Filter,Inner Join,Scan,Scan"));
    }

    #[pg_test]
    fn a_second_view_over_a_table_is_maintained_in_the_same_transaction() {
        Spi::run("CREATE TABLE t (k int, v int)").unwrap();
        Spi::run("SELECT tide.create_view('first', 'SELECT k, count(*) AS n FROM t GROUP BY k')").unwrap();
        // The backend now caches the views over t ...
        Spi::run("INSERT INTO t VALUES (1, 1)").unwrap();
        Spi::run("SELECT tide.create_view('second', 'SELECT k, v FROM t WHERE v > 0')").unwrap();
        // ... and must see the new one at the next statement.
        Spi::run("INSERT INTO t VALUES (2, 2), (1, 3)").unwrap();
        assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM second").unwrap(), Some(3));
        assert_eq!(Spi::get_one::<bool>("SELECT tide.verify('first') AND tide.verify('second')").unwrap(), Some(true));
    }

    #[pg_test]
    fn sub_queries_and_source_views_are_pulled_up() {
        Spi::run("CREATE TABLE e (id int, dept int, pay numeric)").unwrap();
        Spi::run("CREATE VIEW well_paid AS SELECT id, dept FROM e WHERE pay > 10").unwrap();
        let ops = Spi::get_one::<String>(
            "SELECT string_agg(operator, ',' ORDER BY id) FROM tide.explain('SELECT w.dept, count(*) FROM well_paid w GROUP BY w.dept')",
        )
        .unwrap();
        assert_eq!(ops.as_deref(), Some("Project,Aggregate,Filter,Scan"));
        Spi::run("SELECT tide.create_view('per_dept', 'SELECT w.dept, count(*) AS n FROM well_paid w GROUP BY w.dept')").unwrap();
        Spi::run("INSERT INTO e VALUES (1, 1, 20), (2, 1, 5), (3, 2, 30)").unwrap();
        Spi::run("UPDATE e SET pay = 50 WHERE id = 2").unwrap();
        assert_eq!(Spi::get_one::<i64>("SELECT n FROM per_dept WHERE dept = 1").unwrap(), Some(2));
        assert_eq!(Spi::get_one::<bool>("SELECT tide.verify('per_dept')").unwrap(), Some(true));
    }

    // The test server does not preload pg_tide: deferred mode says how to enable it.
    #[pg_test(error = "deferred mode needs pg_tide in shared_preload_libraries")]
    fn deferred_mode_needs_the_library_preloaded() {
        Spi::run("CREATE TABLE t (k int)").unwrap();
        Spi::run("SELECT tide.create_view('later', 'SELECT k FROM t', mode => 'deferred')").unwrap();
    }

    #[pg_test(error = "function random() is not IMMUTABLE: a maintained view cannot use it")]
    fn volatile_functions_are_refused() {
        Spi::run("CREATE TABLE t (k int)").unwrap();
        Spi::run("SELECT tide.create_view('bad', 'SELECT k, random() FROM t')").unwrap();
    }
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
