//! A recursive query (WITH RECURSIVE) is one component: when a table it
//! reads changes, pg_tide computes it again and writes only the difference
//! into the view (the rows that went, the rows that came), so that views
//! reading it see the change and nothing more.
//!
//! Inserts into the tables of a `UNION` (not `ALL`) recursive query whose
//! terms are joins of tables (monotone: a new row can only add rows) are
//! applied by semi-naive evaluation instead (`SemiNaive`): the new rows are
//! those derived from at least one inserted row, so the seed is each term
//! with one of its tables read as that table's inserted rows (the recursive
//! term reading the view for the recursive reference), less the rows the
//! view has; the recursive term then derives further rows from new rows
//! only, until nothing new comes. Deletes are applied by delete-and-rederive
//! (`SemiNaive::delete`), where no table occurs twice in a term; updates
//! (and deletes elsewhere) are recomputed.

use super::bag::{consolidate, write_rows};
use super::join::WEIGHT;
use super::plan::OutputColumn;
use crate::sql::{ident, ident_list, same_value};

/// The alias of the one table a seed reads inserted rows for.
pub const DELTA_ALIAS: &str = "__tide_delta";
/// The CTE a seed of the recursive term reads the view's rows through, in
/// place of the recursive reference.
pub const VIEW_CTE: &str = "__tide_view";
/// The CTEs of delete-and-rederive: the rows that may have lost their
/// derivations, the view's other rows, and the rows derived again; the
/// recursive term's reference is written `STEP_CTE` in `Rederive::step`.
pub const GONE_CTE: &str = "__tide_gone";
pub const KEPT_CTE: &str = "__tide_kept";
pub const AGAIN_CTE: &str = "__tide_again";
pub const STEP_CTE: &str = "__tide_step";
/// The placeholder for the step's condition that its row is not in the
/// view yet (a parameter nothing else uses, written by ruleutils as this).
pub const NOT_IN_VIEW: &str = "$32767";

/// One part of the seed: a term of the recursive query with one occurrence
/// of table `relid`, written `marker` (`<table> __tide_delta`), to read that
/// table's inserted rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    pub relid: u32,
    pub marker: String,
    pub sql: String,
}

/// A recursive query whose inserts are applied by semi-naive evaluation.
/// Its statements compare values with a bare `=`: for a type whose equality
/// operator is outside pg_catalog they do not prepare, and `apply` computes
/// the component again instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SemiNaive {
    /// The recursive CTE's name and its columns (the view's, in order).
    pub name: String,
    pub columns: Vec<String>,
    pub seeds: Vec<Seed>,
    /// The recursive term, reading the CTE, with `NOT_IN_VIEW` among its
    /// conditions; `targets` are its output expressions.
    pub step: String,
    pub targets: Vec<String>,
    /// The columns of the recursive reference that the recursive term's
    /// conditions use (the view is indexed on each).
    pub joined: Vec<String>,
    /// Deletes by delete-and-rederive, where no table occurs twice in a term.
    pub rederive: Option<Rederive>,
}

/// The texts deletes are applied with (delete-and-rederive): the
/// non-recursive term as written; the recursive term reading `KEPT_CTE`;
/// the recursive term reading `STEP_CTE`, with `NOT_IN_VIEW` among its
/// conditions. With no table twice in a term, a row that a deleted row
/// derives, directly or through rows it derives, is derived by a seed (a
/// term with that table read as the deleted rows, the recursive reference
/// as the view), so the step can read the tables as they are now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rederive {
    pub base: String,
    pub kept: String,
    pub step: String,
}

/// For rows `exprs` against relation alias `__tide_o` (`columns`): the
/// plain equalities, the NULL-safe matches, and each value's NULL test.
fn matches(columns: &[String], exprs: &[String]) -> (String, String, String) {
    let equal: Vec<String> = columns.iter().zip(exprs).map(|(c, e)| format!("__tide_o.{} = {e}", ident(c))).collect();
    let same: Vec<String> = columns.iter().zip(exprs).map(|(c, e)| same_value(&format!("__tide_o.{}", ident(c)), e, false, "=")).collect();
    let null: Vec<String> = exprs.iter().map(|e| format!("{e} IS NULL")).collect();
    (equal.join(" AND "), same.join(" AND "), null.join(" OR "))
}

/// Rows `exprs` are not in table or CTE `rel` (`columns`): an anti-join by
/// plain equality (through the view's index, or a hash of the CTE), NULL-safe
/// only for a row with a NULL.
fn absent(rel: &str, columns: &[String], exprs: &[String]) -> String {
    if columns.is_empty() {
        return format!("NOT EXISTS (SELECT 1 FROM {rel} __tide_o)");
    }
    let (equal, same, null) = matches(columns, exprs);
    format!("NOT EXISTS (SELECT 1 FROM {rel} __tide_o WHERE {equal}) AND (NOT ({null}) OR NOT EXISTS (SELECT 1 FROM {rel} __tide_o WHERE {same}))")
}

/// Rows `exprs` are in table `rel` (`columns`), NULLs matching NULLs: found
/// through its index by plain equality, NULL-safely only for a row with a NULL.
fn in_table(rel: &str, columns: &[String], exprs: &[String]) -> String {
    let (equal, same, null) = matches(columns, exprs);
    format!("(EXISTS (SELECT 1 FROM {rel} __tide_o WHERE {equal}) OR (({null}) AND EXISTS (SELECT 1 FROM {rel} __tide_o WHERE {same})))")
}

/// Rows `exprs` are in CTE `rel` (`columns`), NULLs matching NULLs: through
/// a hash of its rows (one, not a scan per row), NULL-safely only for a row
/// with a NULL.
fn in_cte(rel: &str, columns: &[String], exprs: &[String]) -> String {
    let (_, same, null) = matches(columns, exprs);
    format!(
        "(coalesce(({}) IN (SELECT {} FROM {rel}), false) OR (({null}) AND EXISTS (SELECT 1 FROM {rel} __tide_o WHERE {same})))",
        exprs.join(", "),
        ident_list(columns)
    )
}

impl SemiNaive {
    /// `SELECT a.c1, .. FROM (sql) a(c1, ..) WHERE test(a.c1, ..)`: the rows
    /// of `sql` by position, those that pass `test`.
    fn within(&self, sql: &str, alias: &str, test: &dyn Fn(&[String]) -> String) -> String {
        let cs: Vec<String> = (1..=self.columns.len()).map(|i| format!("c{i}")).collect();
        let qualified: Vec<String> = cs.iter().map(|c| format!("{alias}.{c}")).collect();
        format!("SELECT {} FROM ({sql}) {alias}({}) WHERE {}", qualified.join(", "), cs.join(", "), test(&qualified))
    }

    /// The seeds of the tables `rows` names changed rows of (None for a
    /// table not changed), each read as those rows, the ones that pass `test`.
    fn seeds_over(&self, rows: &dyn Fn(u32) -> Option<String>, test: &dyn Fn(&[String]) -> String) -> Vec<String> {
        self.seeds
            .iter()
            .filter_map(|s| {
                let relation = rows(s.relid)?;
                Some(self.within(&s.sql.replace(&s.marker, &format!("{relation} {DELTA_ALIAS}")), "s", test))
            })
            .collect()
    }

    /// The statement that applies deletes from the tables (no insert) to
    /// `view` by delete-and-rederive: the rows a deleted row derives (the
    /// seeds over `deleted`, extended by the recursive term, within the
    /// view) may have lost their derivations; of those, the ones derived
    /// again from what is left (by the non-recursive term, or the recursive
    /// term over the view's other rows, then extended within them) stay,
    /// the others are deleted. None when it cannot be done so.
    pub fn delete(&self, view: &str, deleted: &dyn Fn(u32) -> Option<String>) -> Option<String> {
        let rd = self.rederive.as_ref()?;
        let n = self.columns.len();
        if n == 0 {
            return None;
        }
        let in_view = |e: &[String]| in_table(view, &self.columns, e);
        let in_gone = |e: &[String]| in_cte(GONE_CTE, &self.columns, e);
        let seeds = self.seeds_over(deleted, &in_view);
        if seeds.is_empty() {
            return None;
        }
        let targets: Vec<String> = self.targets.iter().map(|t| format!("({t})")).collect();
        let gone_step = rd.step.replace(STEP_CTE, GONE_CTE).replace(NOT_IN_VIEW, &in_view(&targets));
        let again_step = rd.step.replace(STEP_CTE, AGAIN_CTE).replace(NOT_IN_VIEW, &in_gone(&targets));
        let cols = ident_list(&self.columns);
        let vcols: Vec<String> = self.columns.iter().map(|c| format!("v.{}", ident(c))).collect();
        let gcols: Vec<String> = self.columns.iter().map(|c| format!("g.{}", ident(c))).collect();
        let wmatch: Vec<String> =
            self.columns.iter().map(|c| same_value(&format!("w.{}", ident(c)), &format!("g.{}", ident(c)), false, "=")).collect();
        Some(format!(
            "WITH RECURSIVE {VIEW_CTE}({cols}) AS NOT MATERIALIZED (SELECT {cols} FROM {view}), \
             {GONE_CTE}({cols}) AS (({}) UNION {gone_step}), \
             {KEPT_CTE}({cols}) AS NOT MATERIALIZED (SELECT {} FROM {view} v WHERE {}), \
             {AGAIN_CTE}({cols}) AS (({} UNION {}) UNION {again_step}), \
             gone AS (DELETE FROM {view} WHERE ctid = ANY (ARRAY( \
                 SELECT x.ctid FROM {GONE_CTE} g, LATERAL (SELECT w.ctid FROM {view} w WHERE {}) x WHERE NOT {})) RETURNING 1) \
             SELECT count(*) FROM gone",
            seeds.join(" UNION "),
            vcols.join(", "),
            absent(GONE_CTE, &self.columns, &vcols),
            self.within(&rd.base, "b", &in_gone),
            self.within(&rd.kept, "k", &in_gone),
            wmatch.join(" AND "),
            in_cte(AGAIN_CTE, &self.columns, &gcols),
        ))
    }

    /// The statement that adds to `view` the rows that inserts derive;
    /// `inserted` names the relation of a changed table's inserted rows
    /// (None for a table not changed). None when no table of a seed changed.
    pub fn apply(&self, view: &str, inserted: &dyn Fn(u32) -> Option<String>) -> Option<String> {
        let n = self.columns.len();
        let seeds = self.seeds_over(inserted, &|e| absent(view, &self.columns, e));
        if seeds.is_empty() {
            return None;
        }
        // (Pruned by equality only: a row with a NULL that the view has is
        // derived again, which the UNION and the final check absorb.)
        let equal: Vec<String> = self.columns.iter().zip(&self.targets).map(|(c, e)| format!("__tide_v.{} = ({e})", ident(c))).collect();
        let prune =
            if n == 0 { "false".to_string() } else { format!("NOT EXISTS (SELECT 1 FROM {view} __tide_v WHERE {})", equal.join(" AND ")) };
        let step = self.step.replace(NOT_IN_VIEW, &format!("({prune})"));
        let cols = ident_list(&self.columns);
        let name = ident(&self.name);
        let found: Vec<String> = self.columns.iter().map(|c| format!("n.{}", ident(c))).collect();
        Some(format!(
            "WITH RECURSIVE {VIEW_CTE}({cols}) AS NOT MATERIALIZED (SELECT {cols} FROM {view}), \
             {name}({cols}) AS (({}) UNION {step}), \
             put AS (INSERT INTO {view} ({cols}) SELECT {} FROM {name} n WHERE {} RETURNING 1) \
             SELECT count(*) FROM put",
            seeds.join(" UNION "),
            found.join(", "),
            absent(view, &self.columns, &found),
        ))
    }
}

pub struct Recompute<'a> {
    /// The view's table, qualified.
    pub view: &'a str,
    pub columns: &'a [OutputColumn],
    /// Per column: its type's equality operator (see `bag::Bag`).
    pub equality: &'a [Option<String>],
    /// The query, computed in full.
    pub query: &'a str,
}

impl Recompute<'_> {
    /// One statement: the query's rows against the view's, as a multiset
    /// difference, applied.
    pub fn apply(&self) -> String {
        let list = |alias: &str| -> String {
            self.columns.iter().enumerate().map(|(i, c)| format!("{alias}.{} AS c{}", ident(&c.name), i + 1)).collect::<Vec<_>>().join(", ")
        };
        let lead = |alias: &str| if self.columns.is_empty() { String::new() } else { format!("{}, ", list(alias)) };
        let rows = format!(
            "SELECT {}1 AS {WEIGHT} FROM ({}) n UNION ALL SELECT {}-1 AS {WEIGHT} FROM {} v",
            lead("n"),
            self.query,
            lead("v"),
            self.view
        );
        format!(
            "WITH dv AS MATERIALIZED ({}), {} SELECT count(*) FROM dv",
            consolidate(&rows, self.equality),
            write_rows(self.view, self.columns, self.equality, "dv")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_difference_of_the_new_result() {
        let columns = vec![OutputColumn { name: "a".into(), sql: String::new(), key: None, not_null: false }];
        let r = Recompute {
            view: "public.reach",
            columns: &columns,
            equality: &[Some("=".into())],
            query: "WITH RECURSIVE t(a) AS (SELECT 1) SELECT a FROM t",
        };
        let sql = r.apply();
        assert!(sql.contains("SELECT n.\"a\" AS c1, 1 AS __tide_w FROM (WITH RECURSIVE t(a) AS (SELECT 1) SELECT a FROM t) n"), "{sql}");
        assert!(sql.contains("UNION ALL SELECT v.\"a\" AS c1, -1 AS __tide_w FROM public.reach v"), "{sql}");
    }

    fn closure() -> SemiNaive {
        let marker = format!("public.edges {DELTA_ALIAS}");
        SemiNaive {
            name: "r".into(),
            columns: vec!["a".into(), "b".into()],
            seeds: vec![
                Seed { relid: 7, marker: marker.clone(), sql: format!("SELECT {DELTA_ALIAS}.src, {DELTA_ALIAS}.dst FROM {marker}") },
                Seed {
                    relid: 7,
                    marker: marker.clone(),
                    sql: format!("SELECT r.a, {DELTA_ALIAS}.dst FROM {VIEW_CTE} r JOIN {marker} ON {DELTA_ALIAS}.src = r.b"),
                },
            ],
            step: format!("SELECT r.a, e.dst FROM r JOIN public.edges e ON e.src = r.b WHERE {NOT_IN_VIEW}"),
            targets: vec!["r.a".into(), "e.dst".into()],
            joined: vec!["b".into()],
            rederive: Some(Rederive {
                base: "SELECT src, dst FROM public.edges".into(),
                kept: format!("SELECT r.a, e.dst FROM {KEPT_CTE} r JOIN public.edges e ON e.src = r.b"),
                step: format!("SELECT r.a, e.dst FROM {STEP_CTE} r JOIN public.edges e ON e.src = r.b WHERE {NOT_IN_VIEW}"),
            }),
        }
    }

    #[test]
    fn seeds_read_the_inserted_rows_and_the_step_prunes() {
        let s = closure();
        let sql = s.apply("public.reach", &|t| (t == 7).then(|| "tide_new".to_string())).expect("a statement");
        assert!(
            sql.starts_with("WITH RECURSIVE __tide_view(\"a\", \"b\") AS NOT MATERIALIZED (SELECT \"a\", \"b\" FROM public.reach)"),
            "{sql}"
        );
        assert!(
            sql.contains("FROM (SELECT __tide_delta.src, __tide_delta.dst FROM tide_new __tide_delta) s(c1, c2) WHERE NOT EXISTS"),
            "{sql}"
        );
        assert!(sql.contains("FROM __tide_view r JOIN tide_new __tide_delta ON __tide_delta.src = r.b"), "{sql}");
        assert!(
            sql.contains(
                "WHERE (NOT EXISTS (SELECT 1 FROM public.reach __tide_v WHERE __tide_v.\"a\" = (r.a) AND __tide_v.\"b\" = (e.dst))))"
            ),
            "{sql}"
        );
        assert!(sql.contains("INSERT INTO public.reach (\"a\", \"b\") SELECT n.\"a\", n.\"b\" FROM \"r\" n WHERE NOT EXISTS"), "{sql}");
        assert!(!sql.contains("public.edges __tide_delta"), "{sql}");
    }

    #[test]
    fn deletes_find_what_may_go_then_derive_again() {
        let sql = closure().delete("public.reach", &|t| (t == 7).then(|| "tide_old".to_string())).expect("a statement");
        let has = |part: &str| assert!(sql.contains(part), "{part} not in {sql}");
        has("FROM (SELECT __tide_delta.src, __tide_delta.dst FROM tide_old __tide_delta) s(c1, c2) WHERE (EXISTS (SELECT 1 FROM public.reach __tide_o");
        has("FROM __tide_gone r JOIN public.edges e ON e.src = r.b WHERE (EXISTS (SELECT 1 FROM public.reach __tide_o");
        has("FROM (SELECT src, dst FROM public.edges) b(c1, c2) WHERE (coalesce((b.c1, b.c2) IN (SELECT \"a\", \"b\" FROM __tide_gone), false)");
        has("FROM __tide_again r JOIN public.edges e ON e.src = r.b WHERE (coalesce(((r.a), (e.dst)) IN (SELECT");
        has("gone AS (DELETE FROM public.reach WHERE ctid = ANY (ARRAY(");
        assert!(closure().delete("public.reach", &|_| None).is_none());
    }

    #[test]
    fn no_statement_when_no_seed_table_changed() {
        assert!(closure().apply("public.reach", &|_| None).is_none());
    }
}
