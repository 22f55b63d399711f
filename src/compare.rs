//! `tide.verify`'s comparison for views with float columns: a multiset
//! difference where float values match within a relative tolerance.
//!
//! Incrementally maintained float sums cannot equal a recomputation bit for
//! bit (PostgreSQL's own float sum depends on row order). Rows are matched
//! exactly on their other columns, and float columns within `TOLERANCE` of
//! each other, relative to the larger magnitude. Pure Rust.

use std::cmp::Ordering;

/// Relative tolerance for float columns (the README states the bound).
pub const TOLERANCE: f64 = 1e-9;

/// A row: its non-float columns as text, its float columns as f64.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub exact: Vec<Option<String>>,
    pub floats: Vec<Option<f64>>,
}

/// Whether two float values match: both NULL, both NaN, equal, or within
/// the relative tolerance.
pub fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => {
            if x.is_nan() || y.is_nan() {
                return x.is_nan() && y.is_nan();
            }
            if x == y {
                return true;
            }
            let scale = x.abs().max(y.abs());
            scale.is_finite() && (x - y).abs() <= TOLERANCE * scale
        }
        _ => false,
    }
}

fn cmp_floats(a: &[Option<f64>], b: &[Option<f64>]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let o = match (x, y) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(x), Some(y)) => x.total_cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

fn cmp_rows(a: &Row, b: &Row) -> Ordering {
    a.exact.cmp(&b.exact).then_with(|| cmp_floats(&a.floats, &b.floats))
}

/// (rows of `view` not matched in `query`, rows of `query` not matched in `view`).
/// Rows are sorted, then paired greedily within equal exact columns, in float order.
pub fn difference(mut view: Vec<Row>, mut query: Vec<Row>) -> (Vec<Row>, Vec<Row>) {
    view.sort_by(cmp_rows);
    query.sort_by(cmp_rows);
    let (mut i, mut j) = (0, 0);
    let (mut extra, mut missing) = (Vec::new(), Vec::new());
    while i < view.len() && j < query.len() {
        let (a, b) = (&view[i], &query[j]);
        match a.exact.cmp(&b.exact) {
            Ordering::Less => {
                extra.push(a.clone());
                i += 1;
            }
            Ordering::Greater => {
                missing.push(b.clone());
                j += 1;
            }
            Ordering::Equal => {
                if a.floats.iter().zip(&b.floats).all(|(x, y)| close(*x, *y)) {
                    i += 1;
                    j += 1;
                } else if cmp_floats(&a.floats, &b.floats) == Ordering::Less {
                    extra.push(a.clone());
                    i += 1;
                } else {
                    missing.push(b.clone());
                    j += 1;
                }
            }
        }
    }
    extra.extend(view[i..].iter().cloned());
    missing.extend(query[j..].iter().cloned());
    (extra, missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(k: &str, f: f64) -> Row {
        Row { exact: vec![Some(k.into())], floats: vec![Some(f)] }
    }

    #[test]
    fn floats_match_within_tolerance_only() {
        assert!(close(Some(4285714285.5), Some(4285714285.4999995)));
        assert!(close(Some(0.20006600000000002), Some(0.200066)));
        assert!(!close(Some(0.1), Some(0.1001)));
        assert!(close(Some(f64::NAN), Some(f64::NAN)));
        assert!(!close(Some(1.0), None));
        assert!(close(Some(f64::INFINITY), Some(f64::INFINITY)));
        assert!(!close(Some(f64::INFINITY), Some(f64::NEG_INFINITY)));
    }

    #[test]
    fn multiset_difference_counts_duplicates() {
        let view = vec![row("a", 1.0), row("a", 1.0), row("b", 2.0)];
        let query = vec![row("a", 1.0 + 1e-12), row("b", 2.0), row("c", 3.0)];
        let (extra, missing) = difference(view, query);
        assert_eq!(extra, vec![row("a", 1.0)]);
        assert_eq!(missing, vec![row("c", 3.0)]);
    }

    #[test]
    fn a_real_difference_is_reported_on_both_sides() {
        let (extra, missing) = difference(vec![row("a", 1.0)], vec![row("a", 1.5)]);
        assert_eq!((extra.len(), missing.len()), (1, 1));
    }
}
