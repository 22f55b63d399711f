//! The select-project-join block under a change: ΔQ as a Z-set (rows with a
//! weight column), by the bilinear expansion of the join.
//!
//! With only new states visible, for the set C of input positions reading the
//! changed table, ΔQ = Σ over non-empty S ⊆ C of (−1)^(|S|+1) · Q with the
//! inputs in S replaced by Δ and the others by their new state. One changed
//! input is the single term ΔA ⋈ (others); a self-join has the ΔA ⋈ ΔA term.

use super::plan::{Input, Lookup, Spj, Term};
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
        [t] => {
            t.sign > 0
                && t.spj.inputs.iter().filter(|i| change.reads(i.relid)).count() <= 1
                && !t.spj.lookups.iter().any(|l| change.reads(l.input.relid))
        }
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
/// A lookup is multilinear like an input, in the padded rows of each key
/// (the matching rows, or the NULL row): its Δ is `padded_delta`.
fn term_delta_rows(spj: &Spj, sign: i64, change: &Change, select: &[String]) -> String {
    let changed: Vec<usize> = spj.tables().enumerate().filter(|(_, i)| change.reads(i.relid)).map(|(p, _)| p).collect();
    let m = spj.inputs.len();
    let alias = |p: usize| spj.tables().nth(p).map(|i| i.alias.clone()).expect("a position of the term");
    let mut terms = Vec::new();
    let n = changed.len();
    for mask in 1u32..(1u32 << n) {
        let subset: Vec<usize> = (0..n).filter(|b| mask & (1 << b) != 0).map(|b| changed[b]).collect();
        let positive = (subset.len() % 2 == 1) == (sign > 0);
        let sign = if positive { "" } else { "-" };
        let items = spj
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
            .collect();
        let joins = spj
            .lookups
            .iter()
            .enumerate()
            .map(|(l, lookup)| if subset.contains(&(m + l)) { padded_delta_join(lookup, change) } else { lookup.left_join() })
            .collect();
        let from = spj.join_items(items, joins);
        let weight = subset.iter().map(|p| format!("{}.{WEIGHT}", alias(*p))).collect::<Vec<_>>().join(" * ");
        let mut list: Vec<String> = select.iter().enumerate().map(|(i, e)| format!("{e} AS c{}", i + 1)).collect();
        list.push(format!("{sign}({weight}) AS {WEIGHT}"));
        let mut conds: Vec<String> = spj.predicate.iter().cloned().collect();
        for (l, lookup) in spj.lookups.iter().enumerate() {
            if subset.contains(&(m + l)) && !lookup.per_key {
                conds.push(row_reached(lookup, change));
            }
        }
        let mut term = format!("SELECT {} FROM {from}", list.join(", "));
        if !conds.is_empty() {
            term.push_str(&format!(" WHERE {}", conds.join(" AND ")));
        }
        terms.push(term);
    }
    terms.join(" UNION ALL ")
}

/// The key columns of a lookup's padded delta.
fn key_column(i: usize) -> String {
    format!("__tide_k{}", i + 1)
}

/// Δ of a lookup's padded rows, joined: per key the change touches, the
/// rows that match it (or the NULL row when none does) now, minus those
/// that matched it before. That is the table's Δ (filtered by the
/// condition on the table alone), plus the NULL row of a key whose matches
/// went from some to none (+1) or from none to some (−1): whether a key has
/// a match now is a count over the table, through an index on the key
/// where there is one, and before, that count minus the Δ's weights.
/// Rows whose key is NULL match nothing: they are left out.
pub fn padded_delta(lookup: &Lookup, change: &Change) -> String {
    let a = &lookup.input.alias;
    let keys: Vec<String> = (0..lookup.keys.len()).map(key_column).collect();
    let key_list = keys.join(", ");
    let mut changed: Vec<String> = lookup.keys.iter().map(|(_, e)| format!("({e}) IS NOT NULL")).collect();
    changed.extend(lookup.own.iter().cloned());
    let computed: Vec<String> = lookup.keys.iter().zip(&keys).map(|((_, e), k)| format!("({e}) AS {k}")).collect();
    let cols: Vec<String> = lookup.input.columns.iter().map(|c| ident(c)).collect();
    let mut matched: Vec<String> =
        lookup.keys.iter().zip(&keys).zip(&lookup.key_equality).map(|(((_, e), k), eq)| format!("({e}) {eq} __tide_p.{k}")).collect();
    matched.extend(lookup.own.iter().cloned());
    let count = format!("count({})", lookup.keys[0].1);
    format!(
        "WITH __tide_d AS (SELECT {a}.*, {computed} FROM ({delta}) AS {a} WHERE {changed}) \
         SELECT {lead}{key_list}, {WEIGHT} FROM __tide_d \
         UNION ALL SELECT {nulls}{key_list}, {WEIGHT} FROM (\
           SELECT {pk}, {weight} AS {WEIGHT} \
           FROM (SELECT {key_list}, sum({WEIGHT}) AS s FROM __tide_d GROUP BY {key_list}) __tide_p \
           LEFT JOIN {relation} AS {a} ON {matched} GROUP BY {pk}, __tide_p.s) __tide_c WHERE {WEIGHT} <> 0",
        computed = computed.join(", "),
        weight = null_row_weight(&count, "__tide_p.s"),
        delta = delta_relation(&lookup.input, change),
        changed = changed.join(" AND "),
        lead = cols.iter().map(|c| format!("{c}, ")).collect::<String>(),
        nulls = lookup.nulls.iter().map(|c| format!("{c}, ")).collect::<String>(),
        pk = keys.iter().map(|k| format!("__tide_p.{k}")).collect::<Vec<_>>().join(", "),
        relation = lookup.input.relation,
        matched = matched.join(" AND "),
    )
}

/// `padded_delta` for one row of the items before the lookup (a LATERAL
/// sub-query over their columns): the Δ rows matching it, plus the NULL row
/// when its matches went from some to none (+1) or back (−1): a count of
/// the table's rows matching it now, and before (minus the Δ's weights).
/// The rows the change reaches are found by `row_reached`.
fn padded_delta_per_row(lookup: &Lookup, change: &Change) -> String {
    let a = &lookup.input.alias;
    let delta = delta_relation(&lookup.input, change);
    let theta = &lookup.condition;
    let cols: Vec<String> = lookup.input.columns.iter().map(|c| format!("{a}.{}", ident(c))).collect();
    let lead = cols.iter().map(|c| format!("{c}, ")).collect::<String>();
    let nulls = lookup.nulls.iter().map(|c| format!("{c}, ")).collect::<String>();
    format!(
        "SELECT {lead}{a}.{WEIGHT} FROM ({delta}) AS {a} WHERE {theta} \
         UNION ALL SELECT {nulls}__tide_c.{WEIGHT} FROM (\
           SELECT {weight} AS {WEIGHT} \
           FROM (SELECT sum({a}.{WEIGHT}) AS s FROM ({delta}) AS {a} WHERE {theta}) __tide_p, \
           LATERAL (SELECT count(*) AS n FROM {relation} AS {a} WHERE {theta}) __tide_n \
           WHERE __tide_p.s IS NOT NULL) __tide_c WHERE __tide_c.{WEIGHT} <> 0",
        weight = null_row_weight("__tide_n.n", "__tide_p.s"),
        relation = lookup.input.relation,
    )
}

/// The weight of the NULL row that pads a key (or a row) whose matches
/// number `now` and whose Δ's weights sum to `delta` (so `now − delta`
/// before): +1 from some matches to none, −1 from none to some, else 0.
fn null_row_weight(now: &str, delta: &str) -> String {
    format!("(CASE WHEN {now} = 0 THEN 1 ELSE 0 END) - (CASE WHEN {now} = {delta} THEN 1 ELSE 0 END)")
}

/// For a lookup per row in a term's Δ position: the rows of the items
/// before it that some Δ row matches (a semi-join, which PostgreSQL can
/// run from the Δ's side), so that only those evaluate the padded delta.
fn row_reached(lookup: &Lookup, change: &Change) -> String {
    let a = &lookup.input.alias;
    format!("EXISTS (SELECT FROM ({}) AS {a} WHERE {})", delta_relation(&lookup.input, change), lookup.condition)
}

/// A lookup's padded delta joined by its keys (and the condition on the
/// items before it: rows failing it are padded whatever the table holds);
/// for another condition, per row of the items before it (see
/// `padded_delta_per_row`).
fn padded_delta_join(lookup: &Lookup, change: &Change) -> String {
    let a = &lookup.input.alias;
    if !lookup.per_key {
        return format!("JOIN LATERAL ({}) AS {a} ON true", padded_delta_per_row(lookup, change));
    }
    let mut on: Vec<String> = lookup
        .keys
        .iter()
        .zip(&lookup.key_operators)
        .enumerate()
        .map(|(i, ((o, _), op))| format!("({o}) {op} {a}.{}", key_column(i)))
        .collect();
    on.extend(lookup.others.iter().cloned());
    format!("JOIN ({}) AS {a} ON {}", padded_delta(lookup, change), on.join(" AND "))
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
        let spj = Spj {
            inputs: vec![input("a", 1, &["id", "x"]), input("b", 2, &["id"])],
            predicate: Some("(a.id = b.id)".into()),
            lookups: vec![],
        };
        let sql = delta_rows(&[Term { sign: 1, spj }], &Change::Statement { relid: 1, event: Event::Insert }, &["a.x".into()]);
        assert_eq!(
            sql,
            "SELECT a.x AS c1, (a.__tide_w) AS __tide_w FROM (SELECT \"id\", \"x\", 1 AS __tide_w FROM tide_new) AS a, public.t2 AS b WHERE (a.id = b.id)"
        );
    }

    #[test]
    fn self_join_has_three_terms_with_signs() {
        let spj = Spj { inputs: vec![input("a", 1, &["id"]), input("b", 1, &["id"])], predicate: None, lookups: vec![] };
        let sql = delta_rows(&[Term { sign: 1, spj }], &Change::Statement { relid: 1, event: Event::Delete }, &["a.id".into()]);
        let terms: Vec<&str> = sql.split(" UNION ALL ").collect();
        assert_eq!(terms.len(), 3);
        assert!(terms[0].contains("(a.__tide_w) AS __tide_w") && terms[0].contains("public.t1 AS b"));
        assert!(terms[1].contains("(b.__tide_w) AS __tide_w") && terms[1].contains("public.t1 AS a"));
        assert!(terms[2].contains("-(a.__tide_w * b.__tide_w) AS __tide_w"));
    }

    #[test]
    fn a_round_reads_collected_rows_of_every_changed_table() {
        let spj =
            Spj { inputs: vec![input("a", 1, &["id"]), input("b", 2, &["id"]), input("c", 3, &["id"])], predicate: None, lookups: vec![] };
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
        let term = |sign, inputs| Term { sign, spj: Spj { inputs, predicate: None, lookups: vec![] } };
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

    fn lookup(alias: &str, relid: u32) -> Lookup {
        Lookup {
            input: input(alias, relid, &["k", "v"]),
            after: 1,
            per_key: true,
            condition: format!("(a.id = {alias}.k AND {alias}.v > 0)"),
            keys: vec![("a.id".into(), format!("{alias}.k"))],
            key_operators: vec!["=".into()],
            key_equality: vec!["=".into()],
            own: vec![format!("({alias}.v > 0)")],
            others: vec![],
            nulls: vec!["NULL::integer AS k".into(), "NULL::integer AS v".into()],
        }
    }

    #[test]
    fn a_lookup_is_one_term_for_either_side() {
        let spj = Spj { inputs: vec![input("a", 1, &["id"])], predicate: None, lookups: vec![lookup("b", 2)] };
        let terms = [Term { sign: 1, spj }];
        let insert_a = Change::Statement { relid: 1, event: Event::Insert };
        let sql = delta_rows(&terms, &insert_a, &["a.id".into(), "b.v".into()]);
        assert_eq!(
            sql,
            "SELECT a.id AS c1, b.v AS c2, (a.__tide_w) AS __tide_w FROM (SELECT \"id\", 1 AS __tide_w FROM tide_new) AS a LEFT JOIN public.t2 AS b ON (a.id = b.k AND b.v > 0)"
        );
        assert!(weights_are_net(&terms, &insert_a));
        let delete_b = Change::Statement { relid: 2, event: Event::Delete };
        let sql = delta_rows(&terms, &delete_b, &["a.id".into(), "b.v".into()]);
        assert!(
            sql.starts_with("SELECT a.id AS c1, b.v AS c2, (b.__tide_w) AS __tide_w FROM public.t1 AS a JOIN (WITH __tide_d AS"),
            "{sql}"
        );
        assert!(
            sql.contains("FROM (SELECT \"k\", \"v\", -1 AS __tide_w FROM tide_old) AS b WHERE (b.k) IS NOT NULL AND (b.v > 0)"),
            "{sql}"
        );
        assert!(sql.contains("LEFT JOIN public.t2 AS b ON (b.k) = __tide_p.__tide_k1 AND (b.v > 0)"), "{sql}");
        assert!(sql.ends_with(") AS b ON (a.id) = b.__tide_k1"), "{sql}");
        assert!(!weights_are_net(&terms, &delete_b));
    }

    #[test]
    fn a_self_lookup_has_the_correction_term() {
        let spj = Spj { inputs: vec![input("a", 1, &["id"])], predicate: None, lookups: vec![lookup("b", 1)] };
        let sql = delta_rows(&[Term { sign: 1, spj }], &Change::Statement { relid: 1, event: Event::Update }, &["a.id".into()]);
        let heads: Vec<&str> = sql.split("SELECT a.id AS c1").skip(1).collect();
        assert_eq!(heads.len(), 3, "{sql}");
        assert!(heads[0].contains("(a.__tide_w) AS __tide_w") && heads[0].contains("LEFT JOIN public.t1 AS b"), "{sql}");
        assert!(heads[1].starts_with(", (b.__tide_w) AS __tide_w FROM public.t1 AS a JOIN"), "{sql}");
        assert!(heads[2].starts_with(", -(a.__tide_w * b.__tide_w) AS __tide_w"), "{sql}");
    }
}
