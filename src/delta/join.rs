//! The select-project-join block under a change: ΔQ as a Z-set (rows with a
//! weight column), by the bilinear expansion of the join.
//!
//! With only new states visible, for the set C of input positions reading the
//! changed table, ΔQ = Σ over non-empty S ⊆ C of (−1)^(|S|+1) · Q with the
//! inputs in S replaced by Δ and the others by their new state. One changed
//! input is the single term ΔA ⋈ (others); a self-join has the ΔA ⋈ ΔA term.

use super::plan::{Input, Spj, Term};
use crate::sql::ident;

/// Name of the weight column carried by every delta relation.
pub const WEIGHT: &str = "__tide_w";

/// Which transition tables a statement left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    Insert,
    Delete,
    Update,
}

/// The transition tables of one statement, as registered from the trigger's
/// REFERENCING clause.
pub const NEW_TABLE: &str = "tide_new";
pub const OLD_TABLE: &str = "tide_old";

/// A change to apply: one statement's change of one table, or the changes of
/// several tables that one SQL statement made together (collected, then
/// applied at once against the new states, so ΔA⋈ΔB is counted once).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Change {
    Statement {
        relid: u32,
        event: Event,
    },
    /// `inserts_only`: no table of the round lost rows; `deletes_only`:
    /// none gained any.
    Round {
        relids: Vec<u32>,
        inserts_only: bool,
        deletes_only: bool,
    },
}

/// The collected old and new rows of table `relid` in a round.
pub fn round_table(relid: u32, new: bool) -> String {
    format!("tide_{}_{relid}", if new { "new" } else { "old" })
}

impl Change {
    fn reads(&self, relid: u32) -> bool {
        match self {
            Change::Statement { relid: r, .. } => *r == relid,
            Change::Round { relids, .. } => relids.contains(&relid),
        }
    }

    /// Whether the change can only add rows (no old rows).
    pub fn inserts_only(&self) -> bool {
        matches!(self, Change::Statement { event: Event::Insert, .. })
    }

    /// (new rows, old rows) relation names for an input reading `relid`.
    fn sources(&self, relid: u32) -> (Option<String>, Option<String>) {
        match self {
            Change::Statement { event: Event::Insert, .. } => (Some(NEW_TABLE.into()), None),
            Change::Statement { event: Event::Delete, .. } => (None, Some(OLD_TABLE.into())),
            Change::Statement { event: Event::Update, .. } => (Some(NEW_TABLE.into()), Some(OLD_TABLE.into())),
            Change::Round { .. } => (Some(round_table(relid, true)), Some(round_table(relid, false))),
        }
    }
}

/// Δ of one input: its read columns with a weight, +1 for new rows and −1
/// for old ones; with both, consolidated so that rows whose read columns
/// did not change cancel out before any join.
pub fn delta_relation(input: &Input, change: &Change) -> String {
    let cols = input.columns.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ");
    let lead = if cols.is_empty() { String::new() } else { format!("{cols}, ") };
    let (new, old) = change.sources(input.relid);
    let new = new.map(|t| format!("SELECT {lead}1 AS {WEIGHT} FROM {t}"));
    let old = old.map(|t| format!("SELECT {lead}-1 AS {WEIGHT} FROM {t}"));
    match (new, old) {
        (Some(n), None) => n,
        (None, Some(o)) => o,
        (Some(n), Some(o)) if input.consolidate => {
            let group = if cols.is_empty() { String::new() } else { format!(" GROUP BY {cols}") };
            format!("SELECT {lead}sum({WEIGHT})::int AS {WEIGHT} FROM ({n} UNION ALL {o}) d{group} HAVING sum({WEIGHT}) <> 0")
        }
        (Some(n), Some(o)) => format!("{n} UNION ALL {o}"),
        (None, None) => unreachable!("a change has new or old rows"),
    }
}

/// Whether every weight of a change's ΔQ is a real insertion (positive) or
/// deletion (negative): one term, positive, with one input position reading
/// a changed table. Otherwise the expansion has correction terms (−ΔA⋈ΔB)
/// or negative terms, and a row of negative weight is not necessarily a
/// deleted row, nor one of positive weight an inserted one.
pub fn weights_are_net(terms: &[Term], change: &Change) -> bool {
    match terms {
        [t] => t.sign > 0 && t.spj.inputs.iter().filter(|i| change.reads(i.relid)).count() <= 1,
        _ => false,
    }
}

/// ΔQ for a change: the union, over the input's terms, of each term's
/// expansion (its weights times its sign).
pub fn delta_rows(terms: &[Term], change: &Change, select: &[String]) -> String {
    let parts: Vec<String> = terms.iter().map(|t| term_delta_rows(&t.spj, t.sign, change, select)).filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        // No term reads a changed table: an empty change of the right shape.
        let mut list: Vec<String> = select.iter().enumerate().map(|(i, e)| format!("{e} AS c{}", i + 1)).collect();
        list.push(format!("0 AS {WEIGHT}"));
        let from = terms.first().map(|t| t.spj.source().sql(&["false".into()])).unwrap_or_default();
        return format!("SELECT {}{from}", list.join(", "));
    }
    parts.join(" UNION ALL ")
}

/// One term's ΔQ: the union of the expansion's terms over every input
/// position reading a changed table, each `SELECT <select>, <weight> AS
/// __tide_w FROM ... WHERE ...`. `select` are expressions over the inputs' aliases.
fn term_delta_rows(spj: &Spj, sign: i64, change: &Change, select: &[String]) -> String {
    let changed: Vec<usize> = spj.inputs.iter().enumerate().filter(|(_, i)| change.reads(i.relid)).map(|(p, _)| p).collect();
    let mut terms = Vec::new();
    let n = changed.len();
    for mask in 1u32..(1u32 << n) {
        let subset: Vec<usize> = (0..n).filter(|b| mask & (1 << b) != 0).map(|b| changed[b]).collect();
        let positive = (subset.len() % 2 == 1) == (sign > 0);
        let sign = if positive { "" } else { "-" };
        let from = spj
            .inputs
            .iter()
            .enumerate()
            .map(|(p, input)| {
                if subset.contains(&p) {
                    format!("({}) AS {}", delta_relation(input, change), input.alias)
                } else {
                    format!("{} AS {}", input.relation, input.alias)
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        let weight = subset.iter().map(|p| format!("{}.{WEIGHT}", spj.inputs[*p].alias)).collect::<Vec<_>>().join(" * ");
        let mut list: Vec<String> = select.iter().enumerate().map(|(i, e)| format!("{e} AS c{}", i + 1)).collect();
        list.push(format!("{sign}({weight}) AS {WEIGHT}"));
        let mut term = format!("SELECT {} FROM {from}", list.join(", "));
        if let Some(p) = &spj.predicate {
            term.push_str(&format!(" WHERE {p}"));
        }
        terms.push(term);
    }
    terms.join(" UNION ALL ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(alias: &str, relid: u32, cols: &[&str]) -> Input {
        Input {
            alias: alias.into(),
            relid,
            relation: format!("public.t{relid}"),
            columns: cols.iter().map(|c| c.to_string()).collect(),
            consolidate: true,
        }
    }

    #[test]
    fn one_changed_input_is_one_term() {
        let spj = Spj { inputs: vec![input("a", 1, &["id", "x"]), input("b", 2, &["id"])], predicate: Some("(a.id = b.id)".into()) };
        let sql = delta_rows(&[Term { sign: 1, spj }], &Change::Statement { relid: 1, event: Event::Insert }, &["a.x".into()]);
        assert_eq!(
            sql,
            "SELECT a.x AS c1, (a.__tide_w) AS __tide_w FROM (SELECT \"id\", \"x\", 1 AS __tide_w FROM tide_new) AS a, public.t2 AS b WHERE (a.id = b.id)"
        );
    }

    #[test]
    fn self_join_has_three_terms_with_signs() {
        let spj = Spj { inputs: vec![input("a", 1, &["id"]), input("b", 1, &["id"])], predicate: None };
        let sql = delta_rows(&[Term { sign: 1, spj }], &Change::Statement { relid: 1, event: Event::Delete }, &["a.id".into()]);
        let terms: Vec<&str> = sql.split(" UNION ALL ").collect();
        assert_eq!(terms.len(), 3);
        assert!(terms[0].contains("(a.__tide_w) AS __tide_w") && terms[0].contains("public.t1 AS b"));
        assert!(terms[1].contains("(b.__tide_w) AS __tide_w") && terms[1].contains("public.t1 AS a"));
        assert!(terms[2].contains("-(a.__tide_w * b.__tide_w) AS __tide_w"));
    }

    #[test]
    fn a_round_reads_collected_rows_of_every_changed_table() {
        let spj = Spj { inputs: vec![input("a", 1, &["id"]), input("b", 2, &["id"]), input("c", 3, &["id"])], predicate: None };
        let sql = delta_rows(
            &[Term { sign: 1, spj }],
            &Change::Round { relids: vec![1, 3], inserts_only: false, deletes_only: false },
            &["a.id".into()],
        );
        assert!(sql.contains("FROM tide_new_1") && sql.contains("FROM tide_old_3"), "{sql}");
        assert!(sql.contains("-(a.__tide_w * c.__tide_w) AS __tide_w"), "{sql}");
        assert!(!sql.contains("tide_new_2"), "{sql}");
        // Three terms: Δa, Δc, and the correction −Δa⋈Δc.
        assert_eq!(sql.matches(".__tide_w) AS __tide_w FROM").count(), 3, "{sql}");
    }

    #[test]
    fn updates_consolidate_read_columns() {
        let update = Change::Statement { relid: 1, event: Event::Update };
        let sql = delta_relation(&input("a", 1, &["k"]), &update);
        assert_eq!(
            sql,
            "SELECT \"k\", sum(__tide_w)::int AS __tide_w FROM (SELECT \"k\", 1 AS __tide_w FROM tide_new UNION ALL SELECT \"k\", -1 AS __tide_w FROM tide_old) d GROUP BY \"k\" HAVING sum(__tide_w) <> 0"
        );
        // No column read (count(*)): the weights still add up.
        let sql = delta_relation(&input("a", 1, &[]), &update);
        assert!(sql.starts_with("SELECT sum(__tide_w)::int AS __tide_w FROM (SELECT 1 AS"), "{sql}");
    }

    #[test]
    fn negative_terms_flip_their_signs() {
        let term = |sign, inputs| Term { sign, spj: Spj { inputs, predicate: None } };
        let null_b = Input { alias: "b".into(), relid: 0, relation: "(SELECT NULL::int AS id)".into(), columns: vec![], consolidate: true };
        let terms = vec![
            term(1, vec![input("a", 1, &["id"]), input("b", 2, &["id"])]),
            term(1, vec![input("a", 1, &["id"]), null_b.clone()]),
            term(-1, vec![input("a", 1, &["id"]), input("k", 3, &["k1"]), null_b]),
        ];
        let insert_a = Change::Statement { relid: 1, event: Event::Insert };
        let sql = delta_rows(&terms, &insert_a, &["a.id".into()]);
        let parts: Vec<&str> = sql.split(" UNION ALL ").collect();
        assert_eq!(parts.len(), 3, "{sql}");
        assert!(parts[1].contains("(a.__tide_w) AS __tide_w") && parts[1].contains("(SELECT NULL::int AS id) AS b"), "{sql}");
        assert!(parts[2].contains("-(a.__tide_w) AS __tide_w"), "{sql}");
        assert!(!weights_are_net(&terms, &insert_a));
        // A change of the keys' table reaches only the negative term.
        let sql = delta_rows(&terms, &Change::Statement { relid: 3, event: Event::Insert }, &["a.id".into()]);
        assert_eq!(sql.split(" UNION ALL ").count(), 1, "{sql}");
        assert!(sql.contains("-(k.__tide_w) AS __tide_w"), "{sql}");
        // A change no term reads is empty.
        let sql = delta_rows(&terms[..1], &Change::Statement { relid: 9, event: Event::Insert }, &["a.id".into()]);
        assert!(sql.ends_with("WHERE false"), "{sql}");
    }
}
