//! GROUP BY, DISTINCT and aggregates, maintained from per-group state.
//!
//! State lives in `tide_state.state_<id>`: one row per group with the group
//! key (`k1..kn`, or a constant `__tide_one` for a query without GROUP BY),
//! `__tide_count` (rows in the group), and per aggregate what it needs: a
//! non-NULL count `a<i>_n`, a sum `a<i>_s`, an extreme `a<i>_m` (or the
//! value of an aggregate with no running state, see AggKind::Recomputed).
//!
//! A change is applied by one statement, prepared once per backend, and two
//! more only when needed:
//! 1. `apply`: consolidate Δ per group, add it to the state with
//!    `INSERT ... ON CONFLICT DO UPDATE` and relative updates, in key order
//!    (concurrent writers lock groups in the same order), and from the
//!    returned new state write the touched groups' rows into the view (upsert
//!    on the view's group-key index; delete for emptied groups and groups
//!    HAVING rejects). It returns how many groups emptied and how many lost
//!    their min/max.
//! 2. `recompute` (groups that lost their min/max, and every touched group
//!    of a view with an aggregate that has no running state): in a new
//!    statement, whose snapshot sees every writer that held the group's row
//!    lock before us, recompute the value from the base tables, the group
//!    key pushed into the scan, and write those groups into the view.
//! 3. `purge` (groups that emptied): drop their state rows.
//!
//! The flags `__tide_recompute` and `__tide_emptied` change value only in
//! those rare cases, so the ordinary update of a group's state row stays a
//! HOT update (their partial indexes do not block it).

use super::bag;
use super::join::{self, Change, WEIGHT};
use super::plan::{substitute_params, Agg, AggKind, OutputColumn, Source, Term};
use crate::sql::{ident, not_distinct, same_value, Refill};

/// Everything the grouped statements need.
pub struct Grouped<'a> {
    pub terms: &'a [Term],
    pub source: &'a Source,
    pub keys: &'a [String],
    pub aggs: &'a [Agg],
    pub columns: &'a [OutputColumn],
    pub having: Option<&'a str>,
    /// `tide_state."state_<id>"`
    pub state: &'a str,
    /// The view's table, qualified.
    pub view: &'a str,
    /// The view's id (names its distinct-value tables).
    pub id: i64,
    /// Per group key: its type's equality operator (see
    /// `pg::equality_operator`), which groups are matched with.
    pub key_equality: &'a [String],
    /// Per view column: its type's equality operator, None when it has
    /// none (used when the view's rows are found by value, see `hidden_keys`).
    pub equality: &'a [Option<String>],
}

/// The alias of the state row a group's aggregates are computed again for:
/// the recomputing sub-query reads the base tables under their own aliases,
/// which must not hide it.
const RECOMPUTED: &str = "__tide_group";

fn key_col(j: usize) -> String {
    format!("k{}", j + 1)
}

fn filtered(agg: &Agg, value: &str) -> String {
    match &agg.filter {
        Some(f) => format!("CASE WHEN {f} THEN {value} END"),
        None => value.to_string(),
    }
}

fn is_distinct(kind: AggKind) -> bool {
    matches!(kind, AggKind::CountDistinct | AggKind::SumDistinct)
}

fn is_extreme(kind: AggKind) -> bool {
    matches!(kind, AggKind::Min | AggKind::Max)
}

fn extreme_fn(kind: AggKind) -> &'static str {
    if kind == AggKind::Min {
        "min"
    } else {
        "max"
    }
}

impl Grouped<'_> {
    fn global(&self) -> bool {
        self.keys.is_empty()
    }

    /// Some GROUP BY key is not a column of the view: a group's row is found
    /// by its old value (writers of such a view take turns, see ViewPlan).
    fn hidden_keys(&self) -> bool {
        !self.global() && (0..self.keys.len()).any(|k| !self.columns.iter().any(|c| c.key == Some(k)))
    }

    /// The equality operator group key `j` is matched with.
    fn key_eq(&self, j: usize) -> &str {
        self.key_equality.get(j).map_or("=", String::as_str)
    }

    fn key_cols(&self) -> Vec<String> {
        if self.global() {
            vec!["__tide_one".into()]
        } else {
            (0..self.keys.len()).map(key_col).collect()
        }
    }

    /// The query that builds the state in full (the backfill), also the
    /// column list and types of the state table.
    pub fn backfill_query(&self) -> String {
        let mut list: Vec<String> = if self.global() {
            vec!["true AS __tide_one".into()]
        } else {
            self.keys.iter().enumerate().map(|(j, k)| format!("{k} AS {}", key_col(j))).collect()
        };
        list.push("count(*) AS __tide_count".into());
        for (i, a) in self.aggs.iter().enumerate() {
            let i = i + 1;
            let filter = a.filter.as_ref().map(|f| format!(" FILTER (WHERE {f})")).unwrap_or_default();
            match a.kind {
                AggKind::CountStar => {
                    if a.filter.is_some() {
                        list.push(format!("count(*){filter} AS a{i}_n"));
                    }
                }
                AggKind::Count => list.push(format!("count({}){filter} AS a{i}_n", counted(a))),
                AggKind::Sum | AggKind::Avg => {
                    list.push(format!("sum(({})::{}){filter} AS a{i}_s", arg(a), sum_state_type(a)));
                    list.push(format!("count({}){filter} AS a{i}_n", counted(a)));
                }
                AggKind::BoolAnd | AggKind::BoolOr => {
                    list.push(format!("count({}){filter} AS a{i}_n", counted(a)));
                    let f = a.filter.as_ref().map(|f| format!(" AND {f}")).unwrap_or_default();
                    list.push(format!("count(*) FILTER (WHERE ({}) = {}{f}) AS a{i}_c", arg(a), bool_counted(a.kind)));
                }
                AggKind::CountDistinct => list.push(format!("count(DISTINCT {}){filter} AS a{i}_n", arg(a))),
                AggKind::SumDistinct => {
                    list.push(format!("sum(DISTINCT {}){filter} AS a{i}_s", arg(a)));
                    list.push(format!("count(DISTINCT {}){filter} AS a{i}_n", arg(a)));
                }
                AggKind::Variance { .. } => {
                    list.push(format!("count({}){filter} AS a{i}_n", counted(a)));
                    list.push(format!("sum(({})::numeric){filter} AS a{i}_s", arg(a)));
                    list.push(format!("sum(({x})::numeric * ({x})::numeric){filter} AS a{i}_q", x = arg(a)));
                }
                AggKind::Recomputed => list.push(format!("{} AS a{i}_m", a.call)),
                AggKind::Min | AggKind::Max => {
                    list.push(format!("{}({}){filter} AS a{i}_m", extreme_fn(a.kind), arg(a)));
                    list.push(format!("count({}){filter} AS a{i}_n", counted(a)));
                    // The extreme among a change's deleted values, kept only during an upsert.
                    list.push(format!("NULL::{} AS a{i}_gone", a.result_type));
                }
            }
        }
        let mut q = format!("SELECT {}{}", list.join(", "), self.source.sql(&[]));
        if !self.global() {
            // By position: a key may be a constant, which GROUP BY takes as a position itself.
            q.push_str(&format!(" GROUP BY {}", (1..=self.keys.len()).map(|p| p.to_string()).collect::<Vec<_>>().join(", ")));
        }
        q
    }

    /// DDL that completes the state table after `CREATE TABLE state AS
    /// backfill WITH NO DATA`: the flags (before the state is filled).
    pub fn state_columns_ddl(&self) -> String {
        format!(
            "ALTER TABLE {} ADD COLUMN __tide_emptied boolean NOT NULL DEFAULT false, \
             ADD COLUMN __tide_recompute boolean NOT NULL DEFAULT false",
            self.state
        )
    }

    /// The state's indexes (made after the state is filled: one sort each,
    /// not one insertion per row).
    pub fn state_index_ddl(&self) -> Vec<String> {
        let keys = self.key_cols().join(", ");
        vec![
            format!("CREATE UNIQUE INDEX ON {} ({keys}) NULLS NOT DISTINCT", self.state),
            format!("CREATE INDEX ON {} (__tide_emptied) WHERE __tide_emptied", self.state),
            format!("CREATE INDEX ON {} (__tide_recompute) WHERE __tide_recompute", self.state),
        ]
    }

    /// The full rebuild of the state, then of the distinct-value tables.
    pub fn state_refills(&self) -> Vec<Refill> {
        let mut v = vec![Refill {
            table: self.state.to_string(),
            insert: format!("INSERT INTO {}", self.state),
            select: format!("SELECT b.*, false AS __tide_emptied, false AS __tide_recompute FROM ({}) b", self.backfill_query()),
        }];
        for (table, query) in self.distinct_tables() {
            v.push(Refill { insert: format!("INSERT INTO {table}"), table, select: query });
        }
        v
    }

    /// The view's rows from a full state: each group's output over its
    /// state row, as maintenance writes it (the query is not run again).
    pub fn view_refill(&self) -> Refill {
        let cols: Vec<String> = self.columns.iter().map(|c| ident(&c.name)).collect();
        let values: Vec<String> = self.columns.iter().map(|c| format!("{} AS {}", self.output_expr(&c.sql), ident(&c.name))).collect();
        let having = self.having.map(|h| self.output_expr(h)).unwrap_or_else(|| "true".into());
        // Without GROUP BY the one row stays, also over no rows.
        let keep =
            if self.global() { format!("coalesce({having}, false)") } else { format!("l.__tide_count <> 0 AND coalesce({having}, false)") };
        let insert =
            if cols.is_empty() { format!("INSERT INTO {}", self.view) } else { format!("INSERT INTO {} ({})", self.view, cols.join(", ")) };
        Refill { table: self.view.to_string(), insert, select: format!("SELECT {} FROM {} l WHERE {keep}", values.join(", "), self.state) }
    }

    /// The distinct-value table of aggregate `i` (1-based).
    pub fn distinct_table(&self, i: usize) -> String {
        format!("tide_state.{}", ident(&format!("state_{}_distinct_{i}", self.id)))
    }

    /// (table, backfill query) of every count(DISTINCT) / sum(DISTINCT): one
    /// row per group and non-NULL value, with its number of rows `c` (and
    /// `d`, the last change of `c`, which tells a change that crossed 0).
    pub fn distinct_tables(&self) -> Vec<(String, String)> {
        self.aggs
            .iter()
            .enumerate()
            .filter(|(_, a)| is_distinct(a.kind))
            .map(|(i, a)| {
                let mut list: Vec<String> = if self.global() {
                    vec!["true AS __tide_one".into()]
                } else {
                    self.keys.iter().enumerate().map(|(j, k)| format!("{k} AS {}", key_col(j))).collect()
                };
                list.push(format!("{} AS v", arg(a)));
                list.push("count(*) AS c".into());
                list.push("0::bigint AS d".into());
                let mut conds = vec![format!("({}) IS NOT NULL", arg(a))];
                conds.extend(a.filter.iter().cloned());
                // By position (see backfill_query): the keys, then the value.
                let value_at = self.key_cols().len() + 1;
                let group: Vec<String> = (1..=value_at).filter(|p| !self.global() || *p == value_at).map(|p| p.to_string()).collect();
                let q = format!("SELECT {}{} GROUP BY {}", list.join(", "), self.source.sql(&conds), group.join(", "));
                (self.distinct_table(i + 1), q)
            })
            .collect()
    }

    /// Indexes of a distinct-value table.
    pub fn distinct_ddl(&self, table: &str) -> Vec<String> {
        let keys = self.key_cols().join(", ");
        vec![format!("CREATE UNIQUE INDEX ON {table} ({keys}, v) NULLS NOT DISTINCT"), format!("CREATE INDEX ON {table} (c) WHERE c = 0")]
    }

    /// Statement 1: consolidate Δ per group, add it to the state, write the
    /// touched groups into the view; returns (groups emptied, groups to recompute).
    pub fn apply(&self, change: &Change) -> String {
        let nk = self.keys.len();
        let multi = !join::weights_are_net(self.terms, change);
        // Per-row values: keys, then one value per aggregate.
        let mut select: Vec<String> = self.keys.to_vec();
        for a in self.aggs {
            select.push(match a.kind {
                AggKind::CountStar => filtered(a, "1"),
                // Read from the base tables again, not from the change.
                AggKind::Recomputed => "NULL".into(),
                _ => filtered(a, &arg(a)),
            });
        }
        let rows = join::delta_rows(self.terms, change, &select);
        let c = |j: usize| format!("c{}", j + 1);
        let mut cons: Vec<String> = (0..nk).map(|j| format!("{} AS {}", c(j), key_col(j))).collect();
        if self.global() {
            cons.push("true AS __tide_one".into());
        }
        cons.push(format!("sum({WEIGHT})::bigint AS __tide_count"));
        let mut set = vec!["__tide_count = s.__tide_count + excluded.__tide_count".to_string()];
        let mut recompute = Vec::new();
        for (i, a) in self.aggs.iter().enumerate() {
            let v = c(nk + i);
            let i = i + 1;
            let nonnull = format!("coalesce(sum({WEIGHT}) FILTER (WHERE {v} IS NOT NULL), 0)::bigint AS a{i}_n");
            match a.kind {
                AggKind::CountStar if a.filter.is_none() => continue,
                AggKind::CountStar | AggKind::Count => cons.push(nonnull),
                // Filled from the distinct-value table's change (below).
                AggKind::CountDistinct => cons.push(format!("0::bigint AS a{i}_n")),
                AggKind::SumDistinct => {
                    cons.push(format!("NULL::{} AS a{i}_s", a.result_type));
                    cons.push(format!("0::bigint AS a{i}_n"));
                    set.push(format!(
                        "a{i}_s = CASE WHEN excluded.a{i}_s IS NULL THEN s.a{i}_s WHEN s.a{i}_s IS NULL THEN excluded.a{i}_s \
                         ELSE s.a{i}_s + excluded.a{i}_s END"
                    ));
                }
                AggKind::Sum | AggKind::Avg => {
                    cons.push(format!("sum({WEIGHT} * ({v})::{}) AS a{i}_s", sum_state_type(a)));
                    cons.push(nonnull);
                    set.push(format!(
                        "a{i}_s = CASE WHEN excluded.a{i}_s IS NULL THEN s.a{i}_s WHEN s.a{i}_s IS NULL THEN excluded.a{i}_s \
                         ELSE s.a{i}_s + excluded.a{i}_s END"
                    ));
                }
                AggKind::Variance { .. } => {
                    cons.push(format!("sum({WEIGHT} * ({v})::numeric) AS a{i}_s"));
                    cons.push(format!("sum({WEIGHT} * ({v})::numeric * ({v})::numeric) AS a{i}_q"));
                    cons.push(nonnull);
                    for part in ["s", "q"] {
                        set.push(format!(
                            "a{i}_{part} = CASE WHEN excluded.a{i}_{part} IS NULL THEN s.a{i}_{part} \
                             WHEN s.a{i}_{part} IS NULL THEN excluded.a{i}_{part} ELSE s.a{i}_{part} + excluded.a{i}_{part} END"
                        ));
                    }
                }
                AggKind::BoolAnd | AggKind::BoolOr => {
                    cons.push(nonnull);
                    cons.push(format!("coalesce(sum({WEIGHT}) FILTER (WHERE {v} = {}), 0)::bigint AS a{i}_c", bool_counted(a.kind)));
                    set.push(format!("a{i}_c = s.a{i}_c + excluded.a{i}_c"));
                }
                AggKind::Recomputed => {
                    // Kept as it was until `recompute` computes it again.
                    cons.push(format!("NULL::{} AS a{i}_m", a.result_type));
                    recompute.push("true".into());
                    continue;
                }
                AggKind::Min | AggKind::Max if multi => {
                    // Weights are not insertions and deletions here: recompute
                    // every touched group's extreme (flagged below).
                    cons.push(format!("NULL::{} AS a{i}_m", a.result_type));
                    cons.push(format!("NULL::{} AS a{i}_gone", a.result_type));
                    cons.push(nonnull);
                    recompute.push("true".into());
                }
                AggKind::Min | AggKind::Max => {
                    let f = extreme_fn(a.kind);
                    cons.push(format!("{f}({v}) FILTER (WHERE {WEIGHT} > 0) AS a{i}_m"));
                    cons.push(format!("{f}({v}) FILTER (WHERE {WEIGHT} < 0) AS a{i}_gone"));
                    cons.push(nonnull);
                    let least = if a.kind == AggKind::Min { "LEAST" } else { "GREATEST" };
                    let lost = if a.kind == AggKind::Min { "<=" } else { ">=" };
                    set.push(format!("a{i}_m = {least}(s.a{i}_m, excluded.a{i}_m)"));
                    set.push(format!("a{i}_gone = NULL"));
                    // A deleted value at or beyond the extreme (or an extreme not
                    // known) means the group's extreme must be found again.
                    recompute.push(format!("(excluded.a{i}_gone IS NOT NULL AND coalesce(excluded.a{i}_gone {lost} s.a{i}_m, true))"));
                }
            }
            if a.kind != AggKind::CountStar || a.filter.is_some() {
                set.push(format!("a{i}_n = s.a{i}_n + excluded.a{i}_n"));
            }
        }
        if self.aggs.iter().any(|a| a.kind == AggKind::Recomputed || (multi && is_extreme(a.kind))) {
            // A new group's row too.
            cons.push("true AS __tide_recompute".into());
        }
        let insert_cols: Vec<String> = cons.iter().map(|e| e.rsplit(" AS ").next().unwrap_or_default().to_string()).collect();
        if !self.global() {
            set.push("__tide_emptied = (s.__tide_count + excluded.__tide_count = 0)".into());
        }
        if !recompute.is_empty() {
            set.push(format!("__tide_recompute = s.__tide_recompute OR {}", recompute.join(" OR ")));
        }
        // Without GROUP BY, an empty change still aggregates to one row: skip it.
        let group = if nk == 0 {
            " HAVING count(*) > 0".to_string()
        } else {
            format!(" GROUP BY {}", (0..nk).map(c).collect::<Vec<_>>().join(", "))
        };
        let order = self.key_cols().join(", ");
        let insert_list = insert_cols.join(", ");
        // count(DISTINCT) / sum(DISTINCT): add the change to the distinct-value
        // table; a value whose count crosses 0 changes the group's aggregate.
        // The change's rows are read once, unless DISTINCT aggregates or
        // hidden keys read them again: only then is it worth materializing.
        let reread = self.hidden_keys() || self.aggs.iter().any(|a| is_distinct(a.kind));
        let materialized = if reread { "MATERIALIZED" } else { "NOT MATERIALIZED" };
        let mut ctes = vec![format!("d AS {materialized} ({rows})")];
        let mut outer: Vec<String> = insert_cols.iter().map(|c| format!("g.{c}")).collect();
        let mut joins = String::new();
        let mut distinct_emptied = Vec::new();
        let keys_g: Vec<String> = (0..nk).map(c).collect();
        for (i, a) in self.aggs.iter().enumerate() {
            if !is_distinct(a.kind) {
                continue;
            }
            let n = i + 1;
            let table = self.distinct_table(n);
            let v = c(nk + i);
            let mut sel: Vec<String> = keys_g.clone();
            if self.global() {
                sel.push("true".into());
            }
            let kc = self.key_cols();
            let group_by = keys_g.iter().cloned().chain([v.clone()]).collect::<Vec<_>>().join(", ");
            ctes.push(format!(
                "dv{n} AS (INSERT INTO {table} AS t ({kcols}, v, c, d) \
                 SELECT {sel}, {v}, sum({WEIGHT}), sum({WEIGHT}) FROM d WHERE {v} IS NOT NULL GROUP BY {group_by} ORDER BY {group_by} \
                 ON CONFLICT ({kcols}, v) DO UPDATE SET c = t.c + excluded.c, d = excluded.c RETURNING *)",
                kcols = kc.join(", "),
                sel = sel.join(", "),
            ));
            let sign = "((x.c > 0)::int - ((x.c - x.d) > 0)::int)";
            let key_list = kc.iter().map(|k| format!("x.{k}")).collect::<Vec<_>>().join(", ");
            let sum = if a.kind == AggKind::SumDistinct { format!(", sum({sign} * x.v) AS ds") } else { String::new() };
            ctes.push(format!("dd{n} AS (SELECT {key_list}, sum({sign})::bigint AS dn{sum} FROM dv{n} x GROUP BY {key_list})"));
            let on = if self.global() {
                "true".to_string()
            } else {
                kc.iter()
                    .enumerate()
                    .map(|(j, k)| not_distinct(&format!("g.{k}"), &format!("dd{n}.{k}"), self.key_eq(j)))
                    .collect::<Vec<_>>()
                    .join(" AND ")
            };
            joins.push_str(&format!(" LEFT JOIN dd{n} ON {on}"));
            for (col, expr) in insert_cols.iter().zip(outer.iter_mut()) {
                if *col == format!("a{n}_n") {
                    *expr = format!("coalesce(dd{n}.dn, 0)");
                } else if *col == format!("a{n}_s") {
                    *expr = format!("(dd{n}.ds)::{}", a.result_type);
                }
            }
            distinct_emptied.push(format!("(SELECT count(*) FROM dv{n} WHERE c = 0)"));
        }
        let emptied = std::iter::once("count(*) FILTER (WHERE l.__tide_count = 0)".to_string())
            .chain(distinct_emptied)
            .collect::<Vec<_>>()
            .join(" + ");
        let upsert = format!(
            "INSERT INTO {state} AS s ({insert_list}) \
             SELECT {outer} FROM (SELECT {cons} FROM d{group}) g{joins} ORDER BY {order_by} \
             ON CONFLICT ({order}) DO UPDATE SET {set} RETURNING *",
            state = self.state,
            cons = cons.join(", "),
            set = set.join(", "),
            outer = outer.join(", "),
            order_by = order.split(", ").map(|k| format!("g.{k}")).collect::<Vec<_>>().join(", "),
        );
        if self.hidden_keys() {
            // The touched groups' rows before the change, read before the
            // upsert (the same statement's snapshot; writers take turns).
            let touched = (0..nk).map(c).collect::<Vec<_>>().join(", ");
            let matches = (0..nk)
                .map(|j| same_value(&format!("o.{}", key_col(j)), &format!("t.{}", c(j)), false, self.key_eq(j)))
                .collect::<Vec<_>>()
                .join(" AND ");
            ctes.push(format!(
                "o AS (SELECT o.* FROM {state} o WHERE EXISTS (SELECT FROM (SELECT {touched} FROM d GROUP BY {touched}) t WHERE {matches}))",
                state = self.state
            ));
            return format!(
                "WITH {}, l AS ({upsert}), {} \
                 SELECT {emptied}, count(*) FILTER (WHERE l.__tide_recompute), count(*) FROM l",
                ctes.join(", "),
                self.replace_rows("o", "l")
            );
        }
        format!(
            "WITH {}, l AS ({upsert}), {} \
             SELECT {emptied}, count(*) FILTER (WHERE l.__tide_recompute), count(*) FROM l",
            ctes.join(", "),
            self.write_view("l", "NOT l.__tide_recompute")
        )
    }

    /// For a query without GROUP BY: write its one row (or none, if HAVING
    /// rejects it) from the state, after the state's row is locked and
    /// changed. A statement of its own, so that at READ COMMITTED its
    /// snapshot sees the row as the previous writer (who held the lock)
    /// left it; a delete and insert in the upsert's statement would miss it.
    pub fn publish(&self) -> Option<String> {
        if !self.global() {
            return None;
        }
        let rows = self.view_refill();
        Some(format!("WITH gone AS (DELETE FROM {}), put AS ({} {}) SELECT", self.view, rows.insert, rows.select))
    }

    /// For views with hidden keys: CTEs that take the old rows of the touched
    /// groups (state CTE `old`) out of the view and put the new ones (state
    /// CTE `new`, groups not waiting for a min/max recompute) in, as a bag.
    fn replace_rows(&self, old: &str, new: &str) -> String {
        let values: Vec<String> = self.columns.iter().map(|c| self.output_expr(&c.sql)).collect();
        let having = self.having.map(|h| self.output_expr(h)).unwrap_or_else(|| "true".into());
        let list = values.iter().enumerate().map(|(i, v)| format!("{v} AS c{}", i + 1)).collect::<Vec<_>>().join(", ");
        // output_expr reads the state row as `l`.
        let rows = format!(
            "SELECT {list}, -1 AS {WEIGHT} FROM {old} l WHERE l.__tide_count <> 0 AND coalesce({having}, false) \
             UNION ALL SELECT {list}, 1 FROM {new} l WHERE NOT l.__tide_recompute AND l.__tide_count <> 0 AND coalesce({having}, false)"
        );
        format!(
            "dv AS MATERIALIZED ({}), {}",
            bag::consolidate(&rows, self.equality),
            bag::write_rows(self.view, self.columns, self.equality, "dv")
        )
    }

    /// CTEs `gone` and `put` that write the groups of CTE `l` (new state
    /// rows) satisfying `which` into the view.
    fn write_view(&self, l: &str, which: &str) -> String {
        let cols: Vec<String> = self.columns.iter().map(|c| ident(&c.name)).collect();
        let values: Vec<String> = self.columns.iter().map(|c| format!("{} AS {}", self.output_expr(&c.sql), ident(&c.name))).collect();
        let having = self.having.map(|h| self.output_expr(h)).unwrap_or_else(|| "true".into());
        let view = self.view;
        let keep = format!("{l}.__tide_count <> 0 AND coalesce({having}, false)");
        if self.global() {
            // Written by `publish`, in a statement of its own (see there).
            return "unwritten AS (SELECT)".into();
        }
        let key_cols: Vec<(usize, String)> = self.columns.iter().filter_map(|c| c.key.map(|k| (k, ident(&c.name)))).collect();
        let conflict = key_cols.iter().map(|(_, c)| c.clone()).collect::<Vec<_>>().join(", ");
        let matches = self.view_row_of_group(l);
        let updates: Vec<String> =
            self.columns.iter().filter(|c| c.key.is_none()).map(|c| format!("{n} = excluded.{n}", n = ident(&c.name))).collect();
        let on_conflict = if updates.is_empty() {
            format!("ON CONFLICT ({conflict}) DO NOTHING")
        } else {
            format!("ON CONFLICT ({conflict}) DO UPDATE SET {}", updates.join(", "))
        };
        let put = format!(
            "put AS (INSERT INTO {view} AS v ({}) SELECT {} FROM {l} WHERE {which} AND {keep} ORDER BY {} {on_conflict})",
            cols.join(", "),
            values.join(", "),
            self.key_cols().iter().map(|k| format!("{l}.{k}")).collect::<Vec<_>>().join(", ")
        );
        if self.having.is_none() {
            // Without HAVING a group's row goes only when the group empties,
            // which `purge` handles: the common statement stays small.
            return put;
        }
        format!("gone AS (DELETE FROM {view} v USING {l} WHERE {which} AND NOT ({keep}) AND {matches}), {put}")
    }

    /// Row `v` of the view belongs to the group of state row `s` (keyed views).
    fn view_row_of_group(&self, s: &str) -> String {
        self.columns
            .iter()
            .filter_map(|c| {
                c.key.map(|k| same_value(&format!("v.{}", ident(&c.name)), &format!("{s}.{}", key_col(k)), c.not_null, self.key_eq(k)))
            })
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// Statement 2: recompute min/max of the groups that lost their extreme,
    /// and the aggregates without running state of every touched group, and
    /// write them into the view; None when the view has neither.
    pub fn recompute(&self) -> Option<String> {
        let mut sets = Vec::new();
        for (i, a) in self.aggs.iter().enumerate() {
            if !is_extreme(a.kind) && a.kind != AggKind::Recomputed {
                continue;
            }
            let i = i + 1;
            let mut conds = Vec::new();
            for (j, k) in self.keys.iter().enumerate() {
                let sk = format!("{RECOMPUTED}.{}", key_col(j));
                conds.push(same_value(&format!("({k})"), &sk, false, self.key_eq(j)));
            }
            if let Some(f) = &a.filter {
                conds.push(f.clone());
            }
            let call = if is_extreme(a.kind) { format!("{}({})", extreme_fn(a.kind), arg(a)) } else { a.call.clone() };
            sets.push(format!("a{i}_m = (SELECT {call}{})", self.source.sql(&conds)));
        }
        if sets.is_empty() {
            return None;
        }
        let write = if self.hidden_keys() {
            // Their old rows already left the view with the change.
            let cols: Vec<String> = self.columns.iter().map(|c| ident(&c.name)).collect();
            let values: Vec<String> = self.columns.iter().map(|c| self.output_expr(&c.sql)).collect();
            let having = self.having.map(|h| self.output_expr(h)).unwrap_or_else(|| "true".into());
            format!(
                "put AS (INSERT INTO {} ({}) SELECT {} FROM l WHERE l.__tide_count <> 0 AND coalesce({having}, false))",
                self.view,
                cols.join(", "),
                values.join(", ")
            )
        } else {
            self.write_view("l", "true")
        };
        Some(format!(
            "WITH l AS (UPDATE {} {RECOMPUTED} SET {}, __tide_recompute = false WHERE {RECOMPUTED}.__tide_recompute RETURNING *), {write} \
             SELECT count(*) FROM l",
            self.state,
            sets.join(", "),
        ))
    }

    /// Statement 3: drop the state of groups that emptied, and distinct
    /// values no row has any more.
    pub fn purge(&self) -> String {
        let mut ctes: Vec<String> =
            self.distinct_tables().iter().enumerate().map(|(i, (t, _))| format!("p{i} AS (DELETE FROM {t} WHERE c = 0)")).collect();
        if !self.global() && !self.hidden_keys() {
            // The emptied groups' rows (already gone if HAVING removed them).
            ctes.push(format!(
                "gone AS (DELETE FROM {} v USING {} s WHERE s.__tide_emptied AND s.__tide_count = 0 AND {})",
                self.view,
                self.state,
                self.view_row_of_group("s")
            ));
        }
        let with = if ctes.is_empty() { String::new() } else { format!("WITH {} ", ctes.join(", ")) };
        format!("{with}DELETE FROM {} WHERE __tide_emptied AND __tide_count = 0", self.state)
    }

    /// The output value of column `col` over a state row aliased `l`.
    fn output_expr(&self, sql: &str) -> String {
        let nagg = self.aggs.len();
        substitute_params(sql, &|n| {
            if n >= 1 && n <= nagg {
                let a = &self.aggs[n - 1];
                match a.kind {
                    AggKind::CountStar if a.filter.is_none() => "l.__tide_count".into(),
                    AggKind::CountStar | AggKind::Count | AggKind::CountDistinct => format!("l.a{n}_n"),
                    AggKind::SumDistinct => format!("(CASE WHEN l.a{n}_n > 0 THEN l.a{n}_s END)::{}", a.result_type),
                    AggKind::Sum => format!("(CASE WHEN l.a{n}_n > 0 THEN l.a{n}_s END)::{}", a.result_type),
                    AggKind::Avg => {
                        let state = sum_state_type(a);
                        let div = if state == "interval" { "double precision".to_string() } else { state };
                        format!("(CASE WHEN l.a{n}_n > 0 THEN l.a{n}_s / (l.a{n}_n)::{div} END)::{}", a.result_type)
                    }
                    AggKind::Min | AggKind::Max | AggKind::Recomputed => format!("l.a{n}_m"),
                    AggKind::BoolAnd => format!("(CASE WHEN l.a{n}_n > 0 THEN l.a{n}_c = 0 END)"),
                    AggKind::Variance { sample, root } => variance_expr(n, sample, root, &a.result_type),
                    AggKind::BoolOr => format!("(CASE WHEN l.a{n}_n > 0 THEN l.a{n}_c > 0 END)"),
                }
            } else {
                format!("l.{}", key_col(n - nagg - 1))
            }
        })
    }

    /// Index on the view that maintenance finds rows by.
    pub fn view_key_index(&self) -> Option<String> {
        if self.global() {
            return None;
        }
        if self.hidden_keys() {
            return bag::lookup_index(self.view, self.columns, self.equality);
        }
        let cols: Vec<String> = self.columns.iter().filter(|c| c.key.is_some()).map(|c| ident(&c.name)).collect();
        Some(format!("CREATE UNIQUE INDEX ON {} ({}) NULLS NOT DISTINCT", self.view, cols.join(", ")))
    }
}

/// The type a sum or avg keeps its running sum in: the aggregate's result
/// type, except for floats, summed exactly as numeric so that the error of
/// the maintained value does not grow with the history of changes (a value
/// added and later removed cancels exactly).
fn sum_state_type(a: &Agg) -> String {
    match a.result_type.as_str() {
        "double precision" | "real" => "numeric".into(),
        other => other.into(),
    }
}

/// var_samp / var_pop (and their square roots) from the state, computed as
/// PostgreSQL's numeric_stddev_internal does: (N·Σx² − (Σx)²) / (N·(N−1)) or
/// / N², 0 when rounding makes the numerator negative, NULL for no input (or
/// one, for the sample forms). The square root is taken at the variance's
/// scale, which is the scale PostgreSQL computes it at.
fn variance_expr(n: usize, sample: bool, root: bool, result_type: &str) -> String {
    let count = format!("(l.a{n}_n)::numeric");
    let numerator = format!("({count} * l.a{n}_q - l.a{n}_s * l.a{n}_s)");
    let denominator = if sample { format!("({count} * ({count} - 1))") } else { format!("({count} * {count})") };
    let least = if sample { 1 } else { 0 };
    let variance = format!("(CASE WHEN {numerator} <= 0 THEN 0::numeric ELSE {numerator} / {denominator} END)");
    let value = if root { format!("round(sqrt({variance}), scale({variance}))") } else { variance };
    format!("(CASE WHEN l.a{n}_n > {least} THEN {value} END)::{result_type}")
}

/// The value a bool_and counts (false) or a bool_or counts (true).
fn bool_counted(kind: AggKind) -> &'static str {
    if kind == AggKind::BoolAnd {
        "false"
    } else {
        "true"
    }
}

fn arg(a: &Agg) -> String {
    a.arg.clone().unwrap_or_else(|| "*".into())
}

/// What the build counts for the non-NULL values of `a`'s argument.
fn counted(a: &Agg) -> String {
    if a.arg_not_null {
        "*".into()
    } else {
        arg(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agg(kind: AggKind, arg: &str, arg_not_null: bool) -> Agg {
        Agg { kind, arg: Some(arg.into()), call: String::new(), filter: None, result_type: "numeric".into(), arg_not_null }
    }

    fn grouped<'a>(keys: &'a [String], aggs: &'a [Agg], columns: &'a [OutputColumn], source: &'a Source) -> Grouped<'a> {
        Grouped {
            terms: &[],
            source,
            keys,
            aggs,
            columns,
            having: None,
            state: "tide_state.state_1",
            view: "public.v",
            id: 1,
            key_equality: &[],
            equality: Box::leak(vec![Some("=".to_string()); 3].into_boxed_slice()),
        }
    }

    #[test]
    fn the_build_counts_values_that_are_never_null_as_rows() {
        let source = Source { from: "public.t AS t".into(), predicate: None };
        let keys = vec!["t.k".to_string()];
        let aggs = vec![agg(AggKind::Sum, "(t.a * t.b)", true), agg(AggKind::Avg, "t.c", false)];
        let columns = vec![
            OutputColumn { name: "k".into(), sql: "$3".into(), key: Some(0), not_null: false },
            OutputColumn { name: "s".into(), sql: "$1".into(), key: None, not_null: false },
            OutputColumn { name: "m".into(), sql: "$2".into(), key: None, not_null: false },
        ];
        let g = grouped(&keys, &aggs, &columns, &source);
        let q = g.backfill_query();
        assert!(q.contains("sum(((t.a * t.b))::numeric) AS a1_s, count(*) AS a1_n"), "{q}");
        assert!(q.contains("count(t.c) AS a2_n"), "{q}");
    }

    #[test]
    fn the_view_is_built_from_the_state() {
        let source = Source { from: "public.t AS t".into(), predicate: None };
        let keys = vec!["t.k".to_string()];
        let aggs = vec![agg(AggKind::Sum, "t.a", false)];
        let columns = vec![
            OutputColumn { name: "k".into(), sql: "$2".into(), key: Some(0), not_null: false },
            OutputColumn { name: "s".into(), sql: "$1".into(), key: None, not_null: false },
        ];
        let g = grouped(&keys, &aggs, &columns, &source);
        let r = g.view_refill();
        assert_eq!(r.insert, "INSERT INTO public.v (\"k\", \"s\")");
        assert!(r
            .select
            .starts_with("SELECT l.k1 AS \"k\", (CASE WHEN l.a1_n > 0 THEN l.a1_s END)::numeric AS \"s\" FROM tide_state.state_1 l"));
        assert!(r.select.ends_with("WHERE l.__tide_count <> 0 AND coalesce(true, false)"), "{}", r.select);
        // Without GROUP BY the row stays over an empty input.
        let columns = vec![OutputColumn { name: "s".into(), sql: "$1".into(), key: None, not_null: false }];
        let g = grouped(&[], &aggs, &columns, &source);
        assert!(g.view_refill().select.ends_with("FROM tide_state.state_1 l WHERE coalesce(true, false)"));
        let states = g.state_refills();
        assert_eq!(states.len(), 1);
        assert!(states[0]
            .select
            .starts_with("SELECT b.*, false AS __tide_emptied, false AS __tide_recompute FROM (SELECT true AS __tide_one"));
    }

    #[test]
    fn an_aggregate_without_running_state_is_computed_again_for_every_touched_group() {
        let source = Source { from: "public.t AS t".into(), predicate: None };
        let keys = vec!["t.k".to_string()];
        let call = "string_agg(t.s, ',' ORDER BY t.s)".to_string();
        let aggs = vec![Agg {
            kind: AggKind::Recomputed,
            arg: None,
            call: call.clone(),
            filter: None,
            result_type: "text".into(),
            arg_not_null: false,
        }];
        let columns = vec![
            OutputColumn { name: "k".into(), sql: "$2".into(), key: Some(0), not_null: false },
            OutputColumn { name: "s".into(), sql: "$1".into(), key: None, not_null: false },
        ];
        let g = grouped(&keys, &aggs, &columns, &source);
        assert!(g.backfill_query().contains(&format!("{call} AS a1_m")));
        let change = Change::Statement { relid: 1, event: super::super::join::Event::Update };
        let apply = g.apply(&change);
        assert!(apply.contains("true AS __tide_recompute"), "{apply}");
        assert!(apply.contains("__tide_recompute = s.__tide_recompute OR true"), "{apply}");
        let recompute = g.recompute().expect("a recompute statement");
        assert!(recompute.contains(&format!("a1_m = (SELECT {call} FROM public.t AS t WHERE")), "{recompute}");
    }
}
