//! SQL text that pg_tide generates. Pure Rust: no pgrx, unit-tested with `cargo test`.
//!
//! Generated statements quote every identifier unconditionally (`ident`), which
//! is always correct whatever the name (keywords, mixed case, quotes).

/// A double-quoted SQL identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `a` equals `b` by the equality operator `eq` of their type (`=`, or a
/// qualified `OPERATOR(schema.=)`, see `pg::equality_operator`), two NULLs
/// counting as equal: a plain `eq` where neither can be NULL (one index
/// scan; the NULL-safe form takes two bitmap scans).
pub fn same_value(a: &str, b: &str, never_null: bool, eq: &str) -> String {
    if never_null {
        format!("{a} {eq} {b}")
    } else {
        format!("({a} {eq} {b} OR ({a} IS NULL AND {b} IS NULL))")
    }
}

/// `a IS NOT DISTINCT FROM b`, which resolves `=` by name: for a type whose
/// equality operator `eq` is qualified, the NULL-safe match with it (in a
/// join or WHERE condition, where NULL and false drop a row alike).
pub fn not_distinct(a: &str, b: &str, eq: &str) -> String {
    if eq == "=" {
        format!("{a} IS NOT DISTINCT FROM {b}")
    } else {
        same_value(a, b, false, eq)
    }
}

/// A comma-separated list of quoted identifiers.
pub fn ident_list<S: AsRef<str>>(names: &[S]) -> String {
    names.iter().map(|n| ident(n.as_ref())).collect::<Vec<_>>().join(", ")
}

/// The internal view holding a pg_tide view's query, in schema `tide_state`.
pub fn definition_name(id: i64) -> String {
    format!("tide_state.{}", ident(&format!("query_{id}")))
}

/// How `tide.verify` compares a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    /// By the type's equality operator.
    Equal,
    /// The type has no equality operator (json, point, xml): by its text form.
    Text,
    /// float4 / float8: to 10 significant digits, the error bound of
    /// incrementally maintained float sums (see the README).
    Float,
}

/// A column of a view, as `tide.verify` compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyColumn {
    pub name: String,
    pub compare: Compare,
}

/// The value `tide.verify` compares for a column.
fn compared(c: &VerifyColumn) -> String {
    let n = ident(&c.name);
    match c.compare {
        Compare::Equal => n,
        Compare::Text => format!("{n}::text AS {n}"),
        Compare::Float => format!(
            "CASE WHEN {n} IS NULL THEN NULL WHEN {n} = 0 THEN '0' \
                  WHEN {n}::text IN ('NaN', 'Infinity', '-Infinity') THEN {n}::text \
                  ELSE to_char({n}::float8, '9.999999999EEEE') END AS {n}"
        ),
    }
}

/// One statement returning (rows in the view but not the query, rows in the
/// query but not the view, up to `sample` differing rows as text), comparing
/// both as multisets with EXCEPT ALL in each direction. (Rows are written
/// `ROW(e.*)`, not `e`: a column of the view may be named `e` or `m`.)
pub fn verify_statement(view: &str, definition: &str, columns: &[VerifyColumn], sample: usize) -> String {
    let select_list = if columns.is_empty() {
        // A view with no columns: compare row counts only.
        "".to_string()
    } else {
        columns.iter().map(compared).collect::<Vec<_>>().join(", ")
    };
    format!(
        "WITH v AS MATERIALIZED (SELECT {select_list} FROM {view}), \
              q AS MATERIALIZED (SELECT {select_list} FROM {definition}), \
              extra AS (SELECT * FROM v EXCEPT ALL SELECT * FROM q), \
              missing AS (SELECT * FROM q EXCEPT ALL SELECT * FROM v) \
         SELECT (SELECT count(*) FROM extra), (SELECT count(*) FROM missing), \
                ARRAY(SELECT d FROM (SELECT 'in the view, not in the query: ' || ROW(e.*)::text AS d FROM extra e \
                                     UNION ALL \
                                     SELECT 'in the query, not in the view: ' || ROW(m.*)::text FROM missing m) s \
                      ORDER BY d LIMIT {sample})"
    )
}

/// For the float-tolerant comparison: every row of `relation` as an array of
/// its other columns' text and an array of its float columns.
pub fn verify_rows_statement(relation: &str, columns: &[VerifyColumn]) -> String {
    let exact: Vec<String> = columns.iter().filter(|c| c.compare != Compare::Float).map(|c| format!("{}::text", ident(&c.name))).collect();
    let floats: Vec<String> =
        columns.iter().filter(|c| c.compare == Compare::Float).map(|c| format!("{}::float8", ident(&c.name))).collect();
    format!("SELECT ARRAY[{}]::text[], ARRAY[{}]::float8[] FROM {relation}", exact.join(", "), floats.join(", "))
}

/// A table's rows replaced in full (the initial build, a full refresh):
/// `DELETE FROM table`, then `insert select`.
#[derive(Debug, PartialEq, Eq)]
pub struct Refill {
    pub table: String,
    /// `INSERT INTO table` or `INSERT INTO table (columns)`.
    pub insert: String,
    /// The rows, one column per table column in order, named as they are.
    pub select: String,
}

/// The view's rows replaced by its query's.
pub fn view_refill(view: &str, definition: &str, columns: &[String]) -> Refill {
    let cols = ident_list(columns);
    let (insert, select) = if columns.is_empty() {
        (format!("INSERT INTO {view}"), format!("SELECT FROM {definition}"))
    } else {
        (format!("INSERT INTO {view} ({cols})"), format!("SELECT {cols} FROM {definition}"))
    };
    Refill { table: view.to_string(), insert, select }
}

/// "at character N of the view's query (line L):" with that line and a caret
/// under the spot. `position` is 1-based and counts characters, as
/// PostgreSQL's error cursor positions do.
pub fn format_position(sql: &str, position: usize) -> String {
    let chars: Vec<char> = sql.chars().collect();
    let idx = position.saturating_sub(1).min(chars.len());
    let line_start = chars[..idx].iter().rposition(|&c| c == '\n').map(|i| i + 1).unwrap_or(0);
    let line_end = chars[idx..].iter().position(|&c| c == '\n').map(|i| idx + i).unwrap_or(chars.len());
    let line_no = chars[..idx].iter().filter(|&&c| c == '\n').count() + 1;
    let line: String = chars[line_start..line_end].iter().map(|&c| if c == '\t' { ' ' } else { c }).collect();
    let caret = " ".repeat(idx - line_start) + "^";
    format!("at character {position} of the view's query (line {line_no}):\n{line}\n{caret}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_always_quoted() {
        assert_eq!(ident("a"), "\"a\"");
        assert_eq!(ident("Order Items"), "\"Order Items\"");
        assert_eq!(ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(ident_list(&["select", "x"]), "\"select\", \"x\"");
        assert_eq!(definition_name(42), "tide_state.\"query_42\"");
    }

    #[test]
    fn position_points_at_the_character() {
        let s = format_position("SELECT a\nFORM t", 10);
        assert_eq!(s, "at character 10 of the view's query (line 2):\nFORM t\n^");
        let s = format_position("SELECT a FORM t", 10);
        assert_eq!(s, "at character 10 of the view's query (line 1):\nSELECT a FORM t\n         ^");
        // Past the end: the caret follows the last character.
        let s = format_position("SELECT", 7);
        assert!(s.ends_with("SELECT\n      ^"), "{s}");
    }

    #[test]
    fn verify_compares_both_ways_and_casts_uncomparable_columns() {
        let cols = vec![
            VerifyColumn { name: "k".into(), compare: Compare::Equal },
            VerifyColumn { name: "doc".into(), compare: Compare::Text },
            VerifyColumn { name: "f".into(), compare: Compare::Float },
        ];
        let s = verify_statement("public.v", "tide_state.\"query_1\"", &cols, 10);
        assert!(s.contains("SELECT \"k\", \"doc\"::text AS \"doc\", CASE WHEN \"f\" IS NULL"), "{s}");
        assert!(s.contains("to_char(\"f\"::float8, '9.999999999EEEE') END AS \"f\" FROM public.v"), "{s}");
        assert!(s.contains("SELECT * FROM v EXCEPT ALL SELECT * FROM q"));
        assert!(s.contains("SELECT * FROM q EXCEPT ALL SELECT * FROM v"));
        assert!(s.ends_with("LIMIT 10)"));
    }

    #[test]
    fn refill_lists_columns() {
        let r = view_refill("v", "d", &["a".into(), "B".into()]);
        assert_eq!(r.insert, "INSERT INTO v (\"a\", \"B\")");
        assert_eq!(r.select, "SELECT \"a\", \"B\" FROM d");
        let r = view_refill("v", "d", &[]);
        assert_eq!((r.insert.as_str(), r.select.as_str()), ("INSERT INTO v", "SELECT FROM d"));
    }
}
