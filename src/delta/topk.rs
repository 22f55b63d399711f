//! ORDER BY ... LIMIT (top-K). The query without its LIMIT is kept whole by
//! an internal view, with an index on the ORDER BY keys; the view holds the
//! first rows of it. When the internal view changes, the view's rows are
//! read again from it, through that index: the cost is that of K rows, and
//! a row leaving the top is replaced from the maintained rows, never by
//! recomputing the query.

use crate::sql::{ident_list, Refill};

pub struct TopK<'a> {
    /// The view's table, qualified.
    pub view: &'a str,
    /// The view's columns (unquoted names).
    pub columns: &'a [String],
    /// `SELECT ... FROM <internal view> ORDER BY ... LIMIT ...`: the view's rows.
    pub refill: &'a str,
}

impl TopK<'_> {
    /// The statements that bring the view up to date, whatever changed.
    pub fn apply(&self) -> Vec<String> {
        let r = self.view_refill();
        vec![format!("DELETE FROM {}", r.table), format!("{} {}", r.insert, r.select)]
    }

    /// The view's rows read again from the internal view.
    pub fn view_refill(&self) -> Refill {
        Refill {
            table: self.view.to_string(),
            insert: format!("INSERT INTO {} ({})", self.view, ident_list(self.columns)),
            select: self.refill.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refills_the_view_from_the_ordered_rows() {
        let columns = vec!["id".to_string(), "total".to_string()];
        let t = TopK {
            view: "public.top",
            columns: &columns,
            refill: "SELECT s.id, s.total FROM tide_state.subquery_3 s ORDER BY s.total DESC LIMIT 10",
        };
        assert_eq!(
            t.apply(),
            vec![
                "DELETE FROM public.top".to_string(),
                "INSERT INTO public.top (\"id\", \"total\") SELECT s.id, s.total FROM tide_state.subquery_3 s ORDER BY s.total DESC LIMIT 10".to_string()
            ]
        );
    }
}
