//! A recursive query (WITH RECURSIVE) is one component: when a table it
//! reads changes, pg_tide computes it again and writes only the difference
//! into the view (the rows that went, the rows that came), so that views
//! reading it see the change and nothing more.

use super::bag::{consolidate, write_rows};
use super::join::WEIGHT;
use super::plan::OutputColumn;
use crate::sql::ident;

pub struct Recompute<'a> {
    /// The view's table, qualified.
    pub view: &'a str,
    pub columns: &'a [OutputColumn],
    pub comparable: &'a [bool],
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
            consolidate(&rows, self.comparable),
            write_rows(self.view, self.columns, self.comparable, "dv")
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
            comparable: &[true],
            query: "WITH RECURSIVE t(a) AS (SELECT 1) SELECT a FROM t",
        };
        let sql = r.apply();
        assert!(sql.contains("SELECT n.\"a\" AS c1, 1 AS __tide_w FROM (WITH RECURSIVE t(a) AS (SELECT 1) SELECT a FROM t) n"), "{sql}");
        assert!(sql.contains("UNION ALL SELECT v.\"a\" AS c1, -1 AS __tide_w FROM public.reach v"), "{sql}");
    }
}
