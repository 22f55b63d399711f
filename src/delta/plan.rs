//! The maintainable shape of a view's query, as the delta rules need it.
//!
//! A maintained query is an input relation, and on top of it either a bag of
//! output rows, or groups (GROUP BY / DISTINCT) with aggregates and HAVING.
//! The input is a sum of select-project-join terms with signs (a Z-set): one
//! term for inner joins and for outer joins that pad one table (a
//! `Lookup` of the term); another outer join adds the unmatched rows of a
//! side, padded with NULLs, as that side's rows minus those that have a
//! match (see `Term`). Every term's expressions are written over the same aliases.
//! `analyze` builds a `ViewPlan` from PostgreSQL's analyzed Query; the SQL of
//! every expression is ruleutils' deparse, written over the FROM items'
//! aliases.

/// One FROM item of the join block: a base table under an alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub alias: String,
    /// 0 for a constant relation (the NULL row padding an outer join), which never changes.
    pub relid: u32,
    /// Schema-qualified, quoted.
    pub relation: String,
    /// Columns of the table the query reads (unquoted names), in attnum order.
    pub columns: Vec<String>,
    /// Every read column has an equality operator, so a change can be
    /// consolidated (an UPDATE of columns the view does not read cancels).
    pub consolidate: bool,
}

/// The select-project-join block: the inputs joined (their product,
/// filtered by the predicate), then each lookup left-joined in turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spj {
    pub inputs: Vec<Input>,
    /// The conjunction of join conditions and WHERE, if any.
    pub predicate: Option<String>,
    pub lookups: Vec<Lookup>,
}

/// A table an outer join pads, as the join has it: `LEFT JOIN <input> ON
/// <condition>`, the condition being equalities between an expression of
/// the items before it and one of the table (`keys`), and conditions on
/// either alone. A row of the items before it is kept once per matching
/// row of the table, or once with the table's columns NULL when none
/// matches. So the join is linear in the items before it, and a change of
/// the table changes the rows of the keys it touches only (see
/// `join::padded_delta`): no terms for the unmatched rows, and no internal
/// view of the table's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    pub input: Input,
    /// How many of the term's inputs come before it (the items its
    /// condition, and those after it, may refer to).
    pub after: usize,
    /// The condition is equalities and conditions on one side: a change
    /// of the table is found per key (else per row of the items before it).
    pub per_key: bool,
    /// The join's whole condition.
    pub condition: String,
    /// (expression over the items before it, expression over `input.alias`).
    pub keys: Vec<(String, String)>,
    /// Per key: the condition's equality operator between its two
    /// expressions, as `pg::operator_name` writes it.
    pub key_operators: Vec<String>,
    /// Per key: the equality operator of the table side's type (see
    /// `pg::equality_operator`), which its values are matched with.
    pub key_equality: Vec<String>,
    /// The condition's conjuncts on the table alone.
    pub own: Vec<String>,
    /// The condition's conjuncts on the items before it alone.
    pub others: Vec<String>,
    /// `NULL::<type> AS <column>` for each of `input.columns`: the row that pads.
    pub nulls: Vec<String>,
}

/// An aggregate the engine maintains from running state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggKind {
    CountStar,
    Count,
    Sum,
    Avg,
    Min,
    Max,
    /// bool_and / every: true when no non-NULL input is false.
    BoolAnd,
    /// bool_or: true when some non-NULL input is true.
    BoolOr,
    /// var_samp / variance / var_pop, and with `root` stddev_samp / stddev /
    /// stddev_pop: from the count, Σx and Σx², kept exactly as numeric.
    Variance {
        sample: bool,
        root: bool,
    },
    /// count(DISTINCT x) / sum(DISTINCT x): from a per-(group, x) count
    /// kept in a table of its own; a value counts while its count is above 0.
    CountDistinct,
    SumDistinct,
    /// Any other aggregate (array_agg, string_agg, percentile_cont, an
    /// aggregate with ORDER BY or DISTINCT, a user-defined one): no running
    /// state, so every group a change touches computes it again from the
    /// base tables, its key pushed into the scan. Its value is kept in the
    /// state row (`a<i>_m`), like an extreme.
    Recomputed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agg {
    pub kind: AggKind,
    /// The argument expression (None for count(*) and recomputed aggregates).
    pub arg: Option<String>,
    /// The whole call as the query has it (ORDER BY, WITHIN GROUP, FILTER
    /// and all), for aggregates computed again from the base tables.
    pub call: String,
    /// FILTER (WHERE ...) predicate.
    pub filter: Option<String>,
    /// The type of the aggregate's result, as SQL (for casts of state to output).
    pub result_type: String,
    /// The argument is never NULL (NOT NULL columns under operators that
    /// return NULL only for NULL): the build counts its values as count(*),
    /// without evaluating it a second time.
    pub arg_not_null: bool,
}

/// An output column of the view: its name and, for grouped views, its value
/// as SQL over placeholders `$1..$m` (aggregates, in order) and
/// `$(m+1)..$(m+k)` (group keys, in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputColumn {
    pub name: String,
    pub sql: String,
    /// For grouped views: the index of the group key this column is exactly, if any.
    pub key: Option<usize>,
    /// Never NULL (a bag view's column, or a group key, over NOT NULL
    /// columns with inner joins only): the view's rows are found by it with
    /// a plain `=`, one index scan, instead of the NULL-safe match.
    pub not_null: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// The join block's rows, projected: a bag (duplicates kept). With a
    /// `multiplicity` (SQL over the inputs), each input row stands for that
    /// many copies (INTERSECT ALL / EXCEPT ALL over per-row counts).
    Bag { columns: Vec<OutputColumn>, multiplicity: Option<String> },
    /// ORDER BY ... LIMIT over an internal view: `refill` reads the view's
    /// rows from it (see `topk`), through `index` on the internal view.
    TopK { columns: Vec<String>, refill: String, index: Option<String> },
    /// A recursive query, computed again on every change of a table it
    /// reads, the difference written (see `recompute`); inserts by
    /// `semi_naive` where it can.
    Recompute { columns: Vec<OutputColumn>, query: String, semi_naive: Option<super::recompute::SemiNaive> },
    /// Window functions: per PARTITION BY key (view column, expression), and
    /// the query with `$1` for "in an affected partition" (see `window`).
    /// `key_equality`: per key, its type's equality operator (see `pg::equality_operator`).
    Window { columns: Vec<String>, keys: Vec<(String, String)>, key_equality: Vec<String>, refill: String },
    /// GROUP BY keys (or DISTINCT over all columns), aggregates, HAVING.
    Grouped {
        keys: Vec<String>,
        /// Per key: its type's equality operator (see `pg::equality_operator`).
        key_equality: Vec<String>,
        aggs: Vec<Agg>,
        columns: Vec<OutputColumn>,
        /// HAVING over the same placeholders as the columns.
        having: Option<String>,
    },
}

/// A term of the input: `sign` · (its join block's rows). With an outer
/// join `L ⟕ R ON L.a = R.b`, the input is `L⋈R + L×NULL_R − (L⋈K)×NULL_R`,
/// where NULL_R is R's row of NULLs (a constant) and K the distinct keys `b`
/// of R, kept by an internal view: each term is maintained by the join rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub sign: i64,
    pub spj: Spj,
}

/// The whole input relation, as `FROM <from> [WHERE <predicate>]`, for the
/// statements that read full states (backfill, min/max recomputation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub from: String,
    pub predicate: Option<String>,
}

impl Source {
    /// ` FROM ... [WHERE ...]` with `extra` conditions added.
    pub fn sql(&self, extra: &[String]) -> String {
        let conds: Vec<&str> = self.predicate.iter().map(String::as_str).chain(extra.iter().map(String::as_str)).collect();
        if conds.is_empty() {
            format!(" FROM {}", self.from)
        } else {
            format!(" FROM {} WHERE {}", self.from, conds.join(" AND "))
        }
    }
}

impl Spj {
    /// The join block itself as a source.
    pub fn source(&self) -> Source {
        let from = self.inputs.iter().map(|i| format!("{} AS {}", i.relation, i.alias)).collect::<Vec<_>>();
        Source { from: self.join_items(from, self.lookups.iter().map(Lookup::left_join).collect()), predicate: self.predicate.clone() }
    }

    /// A FROM clause of `items` (one per input), with `joins` (one per
    /// lookup) each after the items it follows: a list, or with lookups,
    /// explicit joins (a lookup's condition refers to the items before it,
    /// and a function after it may refer to its columns).
    pub fn join_items(&self, items: Vec<String>, joins: Vec<String>) -> String {
        if joins.is_empty() {
            return items.join(", ");
        }
        let mut from = String::new();
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                from.push_str(" CROSS JOIN ");
            }
            from.push_str(item);
            for (lookup, join) in self.lookups.iter().zip(&joins) {
                if lookup.after == i + 1 {
                    from.push(' ');
                    from.push_str(join);
                }
            }
        }
        from
    }

    /// The inputs and the lookups' tables, in order.
    pub fn tables(&self) -> impl Iterator<Item = &Input> {
        self.inputs.iter().chain(self.lookups.iter().map(|l| &l.input))
    }
}

impl Lookup {
    /// The join with the table's state.
    pub fn left_join(&self) -> String {
        format!("LEFT JOIN {} AS {} ON {}", self.input.relation, self.input.alias, self.condition)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewPlan {
    pub terms: Vec<Term>,
    pub source: Source,
    pub shape: Shape,
    /// Tables read other than through the terms (a recursive query's).
    pub reads: Vec<u32>,
}

impl ViewPlan {
    /// Distinct base tables, in order of first appearance.
    pub fn base_tables(&self) -> Vec<u32> {
        let mut out = Vec::new();
        for relid in self.terms.iter().flat_map(|t| t.spj.tables()).map(|i| i.relid).chain(self.reads.iter().copied()) {
            if relid != 0 && !out.contains(&relid) {
                out.push(relid);
            }
        }
        out
    }

    /// Whether a change of two inputs at once has a correction term
    /// (ΔA⋈ΔB): some term reads two or more inputs that can change (a
    /// self-join included), or the input has several terms. A top-K view
    /// counts too: it is rewritten once per round, and writers take turns.
    pub fn joins(&self) -> bool {
        self.terms.len() > 1
            || self.terms.iter().any(|t| t.spj.tables().filter(|i| i.relid != 0).count() > 1)
            || matches!(self.shape, Shape::TopK { .. } | Shape::Window { .. } | Shape::Recompute { .. })
    }

    /// Whether writers must take turns: any view joining two or more inputs
    /// (a self-join included) has the ΔA⋈ΔB term; a grouped view with hidden
    /// keys replaces rows found by value, which two writers could both pick.
    pub fn needs_view_lock(&self) -> bool {
        self.joins() || self.hidden_group_keys()
    }

    /// A grouped view with a GROUP BY key that is not one of its columns: its
    /// rows cannot be found by group, only by value (a bag of group rows).
    pub fn hidden_group_keys(&self) -> bool {
        match &self.shape {
            Shape::Grouped { keys, columns, .. } => (0..keys.len()).any(|k| !columns.iter().any(|c| c.key == Some(k))),
            Shape::Bag { .. } | Shape::TopK { .. } | Shape::Window { .. } | Shape::Recompute { .. } => false,
        }
    }
}

/// Replace placeholders `$n` (outside quoted literals and identifiers) with `f(n)`.
pub fn substitute_params(sql: &str, f: &dyn Fn(usize) -> String) -> String {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' || c == '"' {
            // Copy the quoted span, with doubled quotes inside it.
            out.push(c);
            i += 1;
            while i < chars.len() {
                out.push(chars[i]);
                if chars[i] == c {
                    if i + 1 < chars.len() && chars[i + 1] == c {
                        out.push(c);
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                i += 1;
            }
            continue;
        }
        if c == '$' && i + 1 < chars.len() && chars[i + 1].is_ascii_digit() {
            let mut j = i + 1;
            while j < chars.len() && chars[j].is_ascii_digit() {
                j += 1;
            }
            let n: usize = chars[i + 1..j].iter().collect::<String>().parse().unwrap_or(0);
            out.push_str(&f(n));
            i = j;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_outside_quotes_are_replaced() {
        let s = substitute_params("($1 / $2) + length('$1') + \"$2\"", &|n| format!("s.a{n}"));
        assert_eq!(s, "(s.a1 / s.a2) + length('$1') + \"$2\"");
        let s = substitute_params("$10 || 'it''s $1' || $1", &|n| format!("<{n}>"));
        assert_eq!(s, "<10> || 'it''s $1' || <1>");
    }
}
