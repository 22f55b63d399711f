//! Window functions: only the partitions a change touches are recomputed.
//! The partitions come from the change itself (the PARTITION BY keys of its
//! rows, old and new); their rows leave the view, and the query, restricted
//! to those partitions before its windows are computed, puts them back. A
//! window without PARTITION BY is one partition: the view is recomputed.

use super::join::{self, Change, WEIGHT};
use super::plan::{substitute_params, Term};
use crate::sql::{ident, ident_list, not_distinct};

pub struct Window<'a> {
    pub terms: &'a [Term],
    /// The view's table, qualified.
    pub view: &'a str,
    /// The view's columns (unquoted names).
    pub columns: &'a [String],
    /// Per PARTITION BY key: the view column holding it, and its expression over the inputs.
    pub keys: &'a [(String, String)],
    /// Per key: its type's equality operator (see `pg::equality_operator`).
    pub key_equality: &'a [String],
    /// The view's query with `$1` standing for "the row is in an affected partition".
    pub refill: &'a str,
}

impl Window<'_> {
    /// The index the affected partitions' rows are found by.
    pub fn view_index(&self) -> Option<String> {
        (!self.keys.is_empty()).then(|| {
            let cols: Vec<String> = self.keys.iter().take(32).map(|(c, _)| c.clone()).collect();
            format!("CREATE INDEX ON {} ({})", self.view, ident_list(&cols))
        })
    }

    /// One statement: the affected partitions' rows out, recomputed rows in.
    pub fn apply(&self, change: &Change) -> String {
        let select: Vec<String> =
            if self.keys.is_empty() { vec!["true".into()] } else { self.keys.iter().map(|(_, e)| e.clone()).collect() };
        let rows = join::delta_rows(self.terms, change, &select);
        let cs: Vec<String> = (1..=select.len()).map(|i| format!("c{i}")).collect();
        let same = |left: &dyn Fn(usize) -> String| -> String {
            if self.keys.is_empty() {
                "true".into()
            } else {
                (0..self.keys.len())
                    .map(|i| not_distinct(&left(i), &format!("a.c{}", i + 1), &self.key_equality[i]))
                    .collect::<Vec<_>>()
                    .join(" AND ")
            }
        };
        let in_view = same(&|i| format!("v.{}", ident(&self.keys[i].0)));
        let in_query = same(&|i| format!("({})", self.keys[i].1));
        let refill = substitute_params(self.refill, &|_| format!("EXISTS (SELECT 1 FROM affected a WHERE {in_query})"));
        format!(
            "WITH d AS ({rows}), \
                  affected AS MATERIALIZED (SELECT DISTINCT {cols} FROM d WHERE d.{WEIGHT} <> 0), \
                  gone AS (DELETE FROM {view} v USING affected a WHERE {in_view}) \
             INSERT INTO {view} ({columns}) {refill}",
            cols = cs.join(", "),
            view = self.view,
            columns = ident_list(self.columns),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::join::Event;
    use crate::delta::plan::{Input, Spj};

    #[test]
    fn recomputes_only_the_touched_partitions() {
        let input = Input { alias: "e".into(), relid: 1, relation: "public.emp".into(), columns: vec!["dept".into()], consolidate: true };
        let terms = vec![Term { sign: 1, spj: Spj { inputs: vec![input], predicate: None, lookups: vec![] } }];
        let columns = vec!["dept".to_string(), "r".to_string()];
        let keys = vec![("dept".to_string(), "e.dept".to_string())];
        let w = Window {
            terms: &terms,
            view: "public.ranked",
            columns: &columns,
            keys: &keys,
            key_equality: &["=".to_string()],
            refill: "SELECT e.dept, rank() OVER (PARTITION BY e.dept ORDER BY e.pay) FROM public.emp e WHERE $1",
        };
        let sql = w.apply(&Change::Statement { relid: 1, event: Event::Update });
        assert!(sql.contains("affected AS MATERIALIZED (SELECT DISTINCT c1 FROM d WHERE d.__tide_w <> 0)"), "{sql}");
        assert!(sql.contains("DELETE FROM public.ranked v USING affected a WHERE v.\"dept\" IS NOT DISTINCT FROM a.c1"), "{sql}");
        assert!(
            sql.ends_with("FROM public.emp e WHERE EXISTS (SELECT 1 FROM affected a WHERE (e.dept) IS NOT DISTINCT FROM a.c1)"),
            "{sql}"
        );
    }
}
