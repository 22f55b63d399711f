//! Views without GROUP BY or DISTINCT: the join block's rows, projected, as
//! a bag. ΔV is consolidated per distinct output row; a positive weight
//! inserts that many copies, a negative one deletes that many.
//!
//! Identical rows race: two writers deleting "one copy" could pick the same
//! physical row. So before deleting, a writer takes transaction advisory
//! locks on the rows it deletes, and the delete runs in a new statement
//! whose snapshot sees every writer that held such a lock before. The rows'
//! hashes fall in `ROW_BUCKETS` buckets: a change deleting at most that many
//! distinct rows locks each row (exclusive) under its bucket (shared); a
//! larger one locks its buckets (exclusive), so that a statement deleting a
//! million rows takes at most `ROW_BUCKETS` locks, not a million (the lock
//! table would run out). Locks are taken in (bucket, hash) order, so two
//! writers never wait on each other in opposite orders.

use super::join::{self, Change, WEIGHT};
use super::plan::{OutputColumn, Term};
use crate::sql::{ident, same_value};

/// Buckets of deleted-row locks per view (a power of two).
pub const ROW_BUCKETS: i64 = 64;

pub struct Bag<'a> {
    pub terms: &'a [Term],
    pub columns: &'a [OutputColumn],
    /// Copies per input row, as SQL over the inputs (see `Shape::Bag`).
    pub multiplicity: Option<&'a str>,
    /// Per output column: its type's equality operator (see
    /// `pg::equality_operator`); None: it has none, and the column is
    /// grouped and matched through its text form.
    pub equality: &'a [Option<String>],
    pub view: &'a str,
    /// The view's id, the first half of its advisory lock keys.
    pub view_id: i64,
}

/// ΔV consolidated per distinct row: `SELECT c1..cn, __tide_w FROM (rows)`,
/// with a non-zero weight. Columns whose type has no equality operator are
/// grouped by their text form.
pub fn consolidate(rows: &str, equality: &[Option<String>]) -> String {
    let mut group = Vec::new();
    let mut list = Vec::new();
    for (i, eq) in equality.iter().enumerate() {
        let c = format!("c{}", i + 1);
        if eq.is_some() {
            group.push(c.clone());
            list.push(c);
        } else {
            group.push(format!("{c}::text"));
            list.push(format!("(array_agg({c}))[1] AS {c}"));
        }
    }
    list.push(format!("sum({WEIGHT})::bigint AS {WEIGHT}"));
    let group_by = if group.is_empty() { String::new() } else { format!(" GROUP BY {}", group.join(", ")) };
    format!("SELECT {} FROM ({rows}) d{group_by} HAVING sum({WEIGHT}) <> 0", list.join(", "))
}

/// Row `v` of the view equals row `d` (columns c1..cn) of a change, NULLs equal.
fn match_row(columns: &[OutputColumn], equality: &[Option<String>], v: &str, d: &str) -> String {
    let conds: Vec<String> = columns
        .iter()
        .zip(equality)
        .enumerate()
        .map(|(i, (c, eq))| {
            let vc = format!("{v}.{}", ident(&c.name));
            let dc = format!("{d}.c{}", i + 1);
            match eq {
                Some(eq) => same_value(&vc, &dc, c.not_null, eq),
                None => format!("{vc}::text IS NOT DISTINCT FROM {dc}::text"),
            }
        })
        .collect();
    if conds.is_empty() {
        "true".into()
    } else {
        conds.join(" AND ")
    }
}

/// CTEs `gone` and `put` applying the consolidated change in CTE `dv`
/// (c1..cn, weight) to the view: delete that many copies, insert that many.
pub fn write_rows(view: &str, columns: &[OutputColumn], equality: &[Option<String>], dv: &str) -> String {
    let cols: Vec<String> = columns.iter().map(|c| ident(&c.name)).collect();
    let ds: Vec<String> = (1..=columns.len()).map(|i| format!("d.c{i}")).collect();
    format!(
        "gone AS (DELETE FROM {view} WHERE ctid = ANY (ARRAY( \
             SELECT x.ctid FROM {dv} d, LATERAL (SELECT v.ctid FROM {view} v WHERE {m} LIMIT -d.{WEIGHT}) x \
              WHERE d.{WEIGHT} < 0))), \
         put AS (INSERT INTO {view} ({cols}) SELECT {ds} FROM {dv} d, generate_series(1, d.{WEIGHT}) WHERE d.{WEIGHT} > 0)",
        m = match_row(columns, equality, "v", "d"),
        cols = cols.join(", "),
        ds = ds.join(", "),
    )
}

/// An index the deletes find rows through: the comparable columns (up to 32).
pub fn lookup_index(view: &str, columns: &[OutputColumn], equality: &[Option<String>]) -> Option<String> {
    let cols: Vec<String> = columns.iter().zip(equality).filter(|(_, eq)| eq.is_some()).take(32).map(|(c, _)| ident(&c.name)).collect();
    if cols.is_empty() {
        return None;
    }
    Some(format!("CREATE INDEX ON {view} ({})", cols.join(", ")))
}

impl Bag<'_> {
    /// ΔV consolidated: c1..cn and a non-zero weight.
    fn delta(&self, change: &Change) -> String {
        let mut select: Vec<String> = self.columns.iter().map(|c| c.sql.clone()).collect();
        let rows = match self.multiplicity {
            None => join::delta_rows(self.terms, change, &select),
            Some(m) => {
                select.push(m.to_string());
                let n = self.columns.len();
                let cols: Vec<String> = (1..=n).map(|i| format!("m.c{i}")).collect();
                let lead = if cols.is_empty() { String::new() } else { format!("{}, ", cols.join(", ")) };
                format!("SELECT {lead}m.{WEIGHT} * m.c{} AS {WEIGHT} FROM ({}) m", n + 1, join::delta_rows(self.terms, change, &select))
            }
        };
        consolidate(&rows, self.equality)
    }

    fn row_hash(&self, d: &str) -> String {
        let parts: Vec<String> = (1..=self.columns.len()).map(|i| format!("{d}.c{i}::text")).collect();
        if parts.is_empty() {
            "0".into()
        } else {
            format!("hashtext(concat_ws(',', {}))", parts.iter().map(|p| format!("quote_nullable({p})")).collect::<Vec<_>>().join(", "))
        }
    }

    /// Statement 1 (only for changes that delete): lock the rows to delete.
    /// Bucket locks are keyed (view id, bucket), row locks (−view id, hash).
    pub fn lock_rows(&self, change: &Change) -> Option<String> {
        // Without negative terms, an insertion only adds rows.
        if change.inserts_only() && self.terms.iter().all(|t| t.sign > 0) {
            return None;
        }
        Some(format!(
            "WITH l AS MATERIALIZED (SELECT DISTINCT {hash} AS h FROM ({delta}) d WHERE d.{WEIGHT} < 0) \
             SELECT CASE WHEN (SELECT count(*) FROM l) <= {ROW_BUCKETS} \
               THEN (SELECT count(pg_advisory_xact_lock_shared({id}::int, h & {mask})) + count(pg_advisory_xact_lock(-{id}::int, h)) \
                       FROM (SELECT h FROM l ORDER BY h & {mask}, h) r) \
               ELSE (SELECT count(pg_advisory_xact_lock({id}::int, b)) FROM (SELECT DISTINCT h & {mask} AS b FROM l ORDER BY 1) r) END",
            id = self.view_id,
            hash = self.row_hash("d"),
            delta = self.delta(change),
            mask = ROW_BUCKETS - 1,
        ))
    }

    /// Statement 2: apply ΔV to the view.
    pub fn apply(&self, change: &Change) -> String {
        format!(
            "WITH dv AS MATERIALIZED ({}), {} SELECT count(*) FROM dv",
            self.delta(change),
            write_rows(self.view, self.columns, self.equality, "dv")
        )
    }

    /// An index the deletes find rows through.
    pub fn view_index(&self) -> Option<String> {
        lookup_index(self.view, self.columns, self.equality)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, not_null: bool) -> OutputColumn {
        OutputColumn { name: name.into(), sql: String::new(), key: None, not_null }
    }

    #[test]
    fn rows_are_matched_null_safely_unless_their_column_is_never_null() {
        let columns = [column("id", true), column("note", false), column("doc", false), column("u", false)];
        let m = match_row(&columns, &[Some("=".into()), Some("=".into()), None, Some("OPERATOR(ut.=)".into())], "v", "d");
        assert_eq!(
            m,
            r#"v."id" = d.c1 AND (v."note" = d.c2 OR (v."note" IS NULL AND d.c2 IS NULL)) AND v."doc"::text IS NOT DISTINCT FROM d.c3::text AND (v."u" OPERATOR(ut.=) d.c4 OR (v."u" IS NULL AND d.c4 IS NULL))"#
        );
    }
}
