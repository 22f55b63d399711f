#!/usr/bin/env python3
"""Randomized differential test, for immediate or deferred mode.

For each seed: create base tables with small value domains (so groups collide,
duplicates appear and rows move between groups), define one view per
construct, then run random mixed DML (inserts, updates that move rows between
groups, deletes, NULLs, multi-table statements, statements a row trigger runs inside
another one, TRUNCATE, rollbacks and
savepoints) and check every view with tide.verify after every step. In
deferred mode (--mode deferred) the views are deferred and, after a random
subset of the steps (and after the last), every view is refreshed and then
checked: batches of several statements' changes are applied at once.

A failure prints the seed, the step, the failing views and every statement
run so far, so that it reproduces with `differential.py --seed N`.

usage: differential.py --host DIR --port PORT [--seeds N] [--steps N] [--seed S]
"""
import argparse
import random
import subprocess
import sys

VIEWS = {
    "v_filter": "SELECT k, v, s FROM r WHERE v > 1",
    "v_bag_json": "SELECT g, s, j FROM r",
    "v_group": "SELECT g, count(*) AS c, count(v) AS cv, sum(v) AS sv, sum(n) AS sn, avg(n) AS an, "
               "avg(v) AS av, min(v) AS mn, max(s) AS mx, max(n) AS mxn FROM r GROUP BY g",
    "v_global": "SELECT count(*) AS c, sum(v) AS s, avg(v) AS a, min(n) AS mn, max(n) AS mx FROM r",
    "v_having": "SELECT g, s, sum(v) AS sv, sum(v) * 2 + count(*) AS e FROM r GROUP BY g, s HAVING count(*) > 1",
    "v_distinct": "SELECT DISTINCT g, s FROM r",
    "v_filter_agg": "SELECT g, count(*) FILTER (WHERE v > 2) AS c2, sum(v) FILTER (WHERE s = 'a') AS sa, "
                    "min(v) FILTER (WHERE s <> 'b') AS m FROM r GROUP BY g",
    "v_join": "SELECT r.k, q.t, r.v FROM r JOIN q ON r.k = q.k",
    "v_join_agg": "SELECT q.t, count(*) AS c, sum(r.v) AS s, min(r.v) AS mn, max(q.w) AS mw FROM r JOIN q ON r.k = q.k GROUP BY q.t",
    "v_self": "SELECT a.k, b.g, a.s FROM r a JOIN r b ON a.k = b.g",
    "v_three": "SELECT r.g, q.t, count(*) AS c FROM r JOIN q ON r.k = q.k JOIN q q2 ON q2.w = r.g GROUP BY r.g, q.t",
    "v_nonequi": "SELECT r.k, q.w FROM r, q WHERE r.v < q.w AND q.t = 'b'",
    "v_using": "SELECT k, r.v, q.w FROM r JOIN q USING (k)",
    "v_subquery": "SELECT x.k, x.vv, q.t FROM (SELECT k, v * 2 AS vv FROM r WHERE g IS NOT NULL) x JOIN q ON q.k = x.k",
    "v_cte": "WITH big AS (SELECT g, v FROM r WHERE v > 0) SELECT g, count(*) AS c, sum(v) AS s FROM big GROUP BY g",
    "v_float": "SELECT g, sum(f) AS sf, avg(f) AS af, count(f) AS cf, min(f) AS mf FROM r GROUP BY g",
    "v_stats": "SELECT g, variance(v) AS vv, stddev(v) AS sv, var_pop(n) AS vpn, stddev_pop(n) AS spn, "
               "var_samp(f) AS vf, stddev_samp(v) FILTER (WHERE s <> 'c') AS sf FROM r GROUP BY g",
    "v_distinct_agg": "SELECT g, count(DISTINCT v) AS dv, sum(DISTINCT n) AS sn, count(DISTINCT s) FILTER (WHERE k > 1) AS ds, "
                      "count(*) AS c FROM r GROUP BY g",
    "v_distinct_global": "SELECT count(DISTINCT k) AS dk, sum(DISTINCT v) AS sv FROM r",
    "v_hidden_keys": "SELECT sum(v) AS sv, count(*) AS c, max(n) AS mx FROM r GROUP BY g, s",
    "v_bool": "SELECT s, bool_and(v > 0) AS all_pos, bool_or(v > 4) AS any_big, every(n > 0) AS e, "
              "bool_or(g = 1) FILTER (WHERE k > 2) AS f FROM r GROUP BY s",
    # Aggregates without running state: touched groups computed again.
    "v_lists": "SELECT g, array_agg(v ORDER BY v, id) AS av, string_agg(s, ',' ORDER BY s DESC, id) FILTER (WHERE v > 0) AS ss, "
               "count(*) AS c FROM r GROUP BY g",
    "v_ordered_set": "SELECT s, percentile_cont(0.5) WITHIN GROUP (ORDER BY v) AS med, percentile_disc(0.25) WITHIN GROUP (ORDER BY n) AS pd, "
                     "mode() WITHIN GROUP (ORDER BY g) AS md, bit_or(v) AS bo, avg(DISTINCT v) AS adv FROM r GROUP BY s",
    "v_lists_join": "SELECT q.t, array_agg(r.id ORDER BY r.id) AS ids, max(r.v) AS mx FROM r JOIN q ON r.k = q.k GROUP BY q.t",
    "v_lists_global": "SELECT array_agg(DISTINCT g ORDER BY g) AS gs, bit_and(k) AS bk, count(*) AS c FROM r",
    "v_lists_hidden": "SELECT array_agg(id ORDER BY id) AS ids FROM r GROUP BY k, g",
    # Sub-queries that aggregate: internal views read by the view, also
    # together with their own base table in one join.
    "v_agg_sub": "SELECT m.g, m.top, q.t FROM (SELECT g, max(v) AS top, count(*) AS c FROM r GROUP BY g) m "
                 "JOIN q ON q.w = m.g",
    "v_above_avg": "SELECT r.k, r.v, a.av FROM r JOIN (SELECT g, avg(v) AS av FROM r GROUP BY g) a ON a.g = r.g "
                   "WHERE r.v > a.av",
    "v_agg_of_agg": "WITH per_k AS (SELECT k, sum(v) AS sv FROM r GROUP BY k) "
                    "SELECT count(*) AS c, sum(sv) AS total, max(sv) AS mx FROM per_k",
    "v_global_sub": "SELECT r.k, r.v FROM r, (SELECT avg(v) AS av FROM r) t WHERE r.v >= t.av",
    "v_cte_twice": "WITH c AS (SELECT k, count(*) AS n FROM q GROUP BY k) "
                   "SELECT c1.k, c1.n, c2.n AS n2 FROM c c1 JOIN c c2 ON c2.k = c1.k + 1",
    "v_distinct_sub": "SELECT d.g, count(*) AS c FROM (SELECT DISTINCT g, s FROM r) d GROUP BY d.g",
    # Outer joins: rows moving between matched and unmatched, NULL keys.
    "v_left": "SELECT r.k, r.v, q.t FROM r LEFT JOIN q ON q.k = r.k",
    "v_left_agg": "SELECT r.g, count(q.id) AS nq, sum(q.w) AS sw, min(q.w) AS mn, count(*) AS c "
                  "FROM r LEFT JOIN q ON q.k = r.k AND q.t <> 'c' GROUP BY r.g",
    "v_right": "SELECT r.g, q.w FROM r RIGHT JOIN q ON r.k = q.k AND r.v > 0 WHERE q.w IS NOT NULL",
    "v_full": "SELECT r.id AS rid, q.id AS qid, r.g FROM r FULL JOIN q ON q.k = r.g",
    # Lookups (an outer join padding one table): a self-lookup, a chain
    # through a looked-up column, conditions on the kept side, key
    # expressions, a lookup inside a FULL join's side, five scalar sub-queries.
    "v_left_self": "SELECT a.id, b.id AS bid, b.v FROM r a LEFT JOIN r b ON b.k = a.g AND b.s <> 'c'",
    "v_left_chain": "SELECT r.id, q.t, r2.v FROM r LEFT JOIN q ON q.k = r.k LEFT JOIN r r2 ON r2.id = q.w",
    "v_right_kept": "SELECT q.id, r.v, r.s FROM r RIGHT JOIN q ON r.k + 1 = q.k AND q.t <> 'a'",
    "v_left_in_full": "SELECT a.id, q.id AS qid, r2.id AS r2id FROM (r a LEFT JOIN r r2 ON r2.g = a.k) FULL JOIN q ON q.k = a.g",
    # Lookups on other conditions: the padded delta per row of the kept side.
    "v_left_nonequi": "SELECT r.id, q.id AS qid FROM r LEFT JOIN q ON q.w > r.v AND q.t <> 'c'",
    "v_left_or": "SELECT r.g, count(*) AS c, count(q.id) AS cq FROM r LEFT JOIN q ON q.k = r.k OR q.w = r.g GROUP BY r.g",
    "v_right_range": "SELECT q.id, r.id AS rid FROM r RIGHT JOIN q ON r.v BETWEEN q.w AND q.w + 1",
    "v_left_self_ne": "SELECT a.id, b.id AS bid FROM r a LEFT JOIN r b ON b.v > a.v AND b.g = a.g",
    "v_window_scalar": "SELECT r.id, r.g, (SELECT count(*) FROM q WHERE q.k = r.k) AS c, "
                       "sum(r.v) OVER (PARTITION BY r.g) AS sv, rank() OVER (PARTITION BY r.g ORDER BY r.id) AS rk FROM r",
    "v_five_scalars": "SELECT r.id, (SELECT count(*) FROM q WHERE q.k = r.k) AS c1, (SELECT max(w) FROM q WHERE q.k = r.g) AS c2, "
                      "(SELECT sum(v) FROM r r2 WHERE r2.g = r.k) AS c3, (SELECT min(q.id) FROM q WHERE q.w = r.v) AS c4, "
                      "(SELECT count(*) FROM r r3 WHERE r3.s = r.s) AS c5 FROM r",
    "v_anti": "SELECT r.id, r.k FROM r LEFT JOIN q ON q.k = r.k WHERE q.id IS NULL",
    "v_left_two": "SELECT r.id, q.id AS qid, q2.id AS q2id FROM r LEFT JOIN q ON q.k = r.k LEFT JOIN q q2 ON q2.w = r.g",
    "v_inner_left": "SELECT a.k, b.t, c.v FROM r a JOIN q b ON b.k = a.k LEFT JOIN r c ON c.g = b.w AND c.s = 'a'",
    "v_left_grouped": "SELECT r.id, a.n, a.s FROM r LEFT JOIN (SELECT k, count(*) AS n, sum(w) AS s FROM q GROUP BY k) a ON a.k = r.k",
    "v_full_grouped": "SELECT r.id, a.k, a.mx FROM r FULL JOIN (SELECT k, max(w) AS mx FROM q WHERE t <> 'c' GROUP BY k) a ON a.k = r.g",
    "v_q13": "SELECT c_count, count(*) AS custdist FROM (SELECT r.k, count(q.id) AS c_count FROM r LEFT JOIN q "
             "ON q.k = r.k AND q.t IS DISTINCT FROM 'b' GROUP BY r.k) x GROUP BY c_count",
    # Sub-queries in expressions: semi-joins, anti-joins, scalar sub-queries.
    "v_exists": "SELECT r.id, r.g FROM r WHERE EXISTS (SELECT 1 FROM q WHERE q.k = r.k AND q.t <> 'a')",
    "v_not_exists": "SELECT r.id, r.v FROM r WHERE NOT EXISTS (SELECT 1 FROM q WHERE q.w = r.g)",
    "v_not_exists_two": "SELECT r.id FROM r WHERE NOT EXISTS (SELECT 1 FROM q WHERE q.k = r.k) "
                        "AND NOT EXISTS (SELECT 1 FROM q WHERE q.w = r.v) AND r.s IS NOT NULL",
    "v_exists_uncorr": "SELECT q.id FROM q WHERE EXISTS (SELECT 1 FROM r WHERE r.v > 5)",
    "v_exists_other": "SELECT r1.id, r1.g FROM r r1 WHERE EXISTS (SELECT 1 FROM r r2 WHERE r2.k = r1.k AND r2.g <> r1.g)",
    "v_not_exists_other": "SELECT r1.id FROM r r1 WHERE r1.v > 0 AND NOT EXISTS "
                          "(SELECT 1 FROM r r3 WHERE r3.k = r1.k AND r3.g <> r1.g AND r3.v > 0)",
    "v_q21": "SELECT r1.g, count(*) AS c FROM r r1 JOIN q ON q.k = r1.k WHERE q.t IS DISTINCT FROM 'c' "
             "AND EXISTS (SELECT 1 FROM r r2 WHERE r2.k = r1.k AND r2.g <> r1.g) "
             "AND NOT EXISTS (SELECT 1 FROM r r3 WHERE r3.k = r1.k AND r3.g <> r1.g AND r3.v > 2) GROUP BY r1.g",
    "v_in": "SELECT q.id, q.t FROM q WHERE q.k IN (SELECT g FROM r WHERE v > 0)",
    "v_in_agg": "SELECT q.id FROM q WHERE q.w IN (SELECT k FROM r GROUP BY k HAVING count(*) > 1)",
    "v_scalar": "SELECT r.id, r.v FROM r WHERE r.v > (SELECT avg(v) FROM r r2 WHERE r2.s = 'a')",
    "v_corr_scalar": "SELECT r.id, r.v FROM r WHERE r.v >= (SELECT max(r2.v) FROM r r2 WHERE r2.g = r.g)",
    "v_corr_agg": "SELECT r.g, sum(r.v) AS s, count(*) AS c FROM r "
                  "WHERE r.v < (SELECT 2 * avg(q.w) FROM q WHERE q.k = r.k) GROUP BY r.g",
    "v_select_scalar": "SELECT r.id, (SELECT count(*) FROM q WHERE q.k = r.k) AS nq, "
                       "(SELECT max(q.w) FROM q WHERE q.k = r.k AND q.t <> 'a') + r.v AS mw, "
                       "coalesce((SELECT sum(q.w) FROM q WHERE q.k = r.k), -1) AS sw FROM r WHERE r.g IS NOT NULL",
    "v_distinct_scalar": "SELECT DISTINCT r.g, (SELECT count(*) FROM q WHERE q.k = r.k) AS n FROM r",
    "v_topk_scalar": "SELECT r.id, (SELECT max(q.w) FROM q WHERE q.k = r.k) AS mw FROM r ORDER BY mw DESC NULLS LAST, r.id LIMIT 3",
    "v_lookup": "SELECT r.id, (SELECT q.t FROM q WHERE q.id = r.k) AS t, (SELECT q.w FROM q WHERE q.id = r.g AND q.t <> 'a') + r.v AS w "
                "FROM r WHERE (SELECT q.w FROM q WHERE q.id = r.k) IS DISTINCT FROM 3",
    "v_lateral_topk": "SELECT r.id, x.w, x.qid FROM r, LATERAL (SELECT q.w, q.id AS qid FROM q WHERE q.k = r.k ORDER BY q.w DESC NULLS LAST, q.id LIMIT 2) x",
    "v_lateral_topk_left": "SELECT r.id, x.t FROM r LEFT JOIN LATERAL (SELECT q.t FROM q WHERE q.w = r.g AND q.t IS NOT NULL "
                           "ORDER BY q.id DESC LIMIT 1 OFFSET 1) x ON true",
    "v_scalar_topk": "SELECT r.id, (SELECT q.w FROM q WHERE q.k = r.k ORDER BY q.id DESC LIMIT 1) AS last_w, "
                     "(SELECT q.t FROM q WHERE q.w = r.g ORDER BY q.t NULLS FIRST, q.id LIMIT 1 OFFSET 1) AS t2 FROM r",
    "v_lateral_agg": "SELECT r.id, x.n, x.mw FROM r, LATERAL (SELECT count(*) AS n, max(q.w) AS mw FROM q WHERE q.k = r.k) x",
    "v_lateral_join": "SELECT r.id, x.t FROM r, LATERAL (SELECT q.t FROM q WHERE q.k = r.g AND q.w > r.v) x",
    "v_group_scalar": "SELECT r.g, count(*) AS c, (SELECT max(q.w) FROM q WHERE q.k = r.g) AS mw, "
                      "sum(r.v) + (SELECT count(*) FROM q WHERE q.k = r.g) AS s FROM r GROUP BY r.g",
    "v_group_uncorr": "SELECT r.s, count(*) AS c, (SELECT count(*) FROM q) AS nq FROM r GROUP BY r.s HAVING count(*) > 1",
    "v_distinct_groups": "SELECT DISTINCT count(*) AS c, max(v) AS mx FROM r GROUP BY g, s",
    "v_where_count": "SELECT q.id, q.t FROM q WHERE (SELECT count(*) FROM r WHERE r.k = q.k AND r.g = q.w) < 2",
    "v_scalar_select": "SELECT q.id, q.w - (SELECT min(v) FROM r) AS d FROM q",
    "v_having_scalar": "SELECT g, sum(v) AS s FROM r GROUP BY g HAVING sum(v) > (SELECT avg(v) FROM r) AND count(*) > 1",
    # Top-K (ORDER BY lists that decide the result).
    "v_topk": "SELECT id, v, k FROM r ORDER BY v DESC NULLS LAST, id LIMIT 3",
    "v_topk_agg": "SELECT g, sum(v) AS s FROM r GROUP BY g ORDER BY sum(v) DESC NULLS LAST, g NULLS FIRST LIMIT 2",
    "v_topk_offset": "SELECT id FROM q ORDER BY w NULLS FIRST, id LIMIT 2 OFFSET 1",
    "v_topk_join": "SELECT r.id, q.id AS qid FROM r JOIN q ON q.k = r.k ORDER BY r.id DESC, q.id LIMIT 4",
    # Set operations.
    "v_union_all": "SELECT k, g AS x FROM r WHERE v > 0 UNION ALL SELECT k, w FROM q UNION ALL SELECT g, k FROM r WHERE s = 'a'",
    "v_union": "SELECT k, s FROM r UNION SELECT k, t FROM q",
    "v_intersect": "SELECT k, g FROM r INTERSECT SELECT k, w FROM q",
    "v_except": "SELECT k, g FROM r EXCEPT SELECT k, w FROM q",
    "v_intersect_all": "SELECT k, g FROM r INTERSECT ALL SELECT k, w FROM q",
    "v_except_all": "SELECT g, s FROM r EXCEPT ALL SELECT w, t FROM q",
    "v_setop_mixed": "SELECT k, g FROM r UNION SELECT k, w FROM q EXCEPT SELECT g, k FROM r WHERE s = 'a'",
    "v_setop_nested_all": "(SELECT k FROM r INTERSECT ALL SELECT w FROM q) UNION ALL (SELECT g FROM r EXCEPT SELECT k FROM q)",
    "v_union_agg": "SELECT x, count(*) AS c, sum(y) AS s FROM (SELECT k AS x, v AS y FROM r UNION ALL SELECT k, w FROM q) u GROUP BY x",
    # Window functions (orderings that decide the result).
    "v_window": "SELECT g, id, rank() OVER (PARTITION BY g ORDER BY v DESC NULLS LAST, id) AS rk, "
                "sum(v) OVER (PARTITION BY g ORDER BY id) AS rs, lag(k) OVER (PARTITION BY g ORDER BY id) AS pk FROM r",
    "v_window_two": "SELECT g, s, id, rank() OVER (PARTITION BY g ORDER BY v NULLS FIRST, id) AS rk, "
                    "count(*) OVER (PARTITION BY g, s) AS n, sum(v) OVER (PARTITION BY s, g ORDER BY id) AS run FROM r",
    "v_window_apart": "SELECT g, id, lag(v) OVER (PARTITION BY g ORDER BY id) AS prev, row_number() OVER (ORDER BY id) AS n FROM r",
    "v_window_sub": "SELECT s.k, s.id, rank() OVER (PARTITION BY s.k ORDER BY s.v NULLS FIRST, s.id) AS rk FROM (SELECT k, id, v FROM r WHERE g IS NOT NULL) s",
    "v_window_join": "SELECT q.t, r.id, row_number() OVER (PARTITION BY q.t ORDER BY r.id, q.id) AS rn FROM r JOIN q ON q.k = r.k",
    "v_window_all": "SELECT id, count(*) OVER () AS n, first_value(id) OVER (ORDER BY id) AS f, "
                    "dense_rank() OVER (ORDER BY k NULLS FIRST) AS dr FROM q",
    "v_window_groups": "SELECT g, s, sum(v) AS sv, rank() OVER (PARTITION BY g ORDER BY sum(v) DESC NULLS LAST, s NULLS FIRST) AS rk, "
                       "count(*) * 100 / sum(count(*)) OVER (PARTITION BY g) AS pct FROM r GROUP BY g, s",
    "v_distinct_on": "SELECT DISTINCT ON (g) g, id, v FROM r ORDER BY g, v DESC NULLS LAST, id",
    "v_distinct_on_groups": "SELECT DISTINCT ON (g) g, s, count(*) AS c FROM r GROUP BY g, s ORDER BY g, count(*) DESC, s NULLS FIRST",
    "v_not_in": "SELECT r.id, r.k FROM r WHERE r.k NOT IN (SELECT w FROM q WHERE t IS DISTINCT FROM 'c')",
    "v_not_in_agg": "SELECT q.t, count(*) AS c FROM q WHERE q.w NOT IN (SELECT g FROM r WHERE v > 2) GROUP BY q.t",
    # Sub-links as comparisons with aggregating sub-queries (see src/analyze/quantified.rs).
    "v_exists_select": "SELECT r.id, EXISTS (SELECT 1 FROM q WHERE q.k = r.k AND q.t <> 'a') AS has, "
                       "CASE WHEN NOT EXISTS (SELECT 1 FROM q WHERE q.w = r.g) THEN r.v END AS lone FROM r",
    "v_exists_or": "SELECT r.id FROM r WHERE r.v > 4 OR EXISTS (SELECT 1 FROM q WHERE q.k = r.k) "
                   "OR NOT EXISTS (SELECT 1 FROM q WHERE q.w = r.g LIMIT 1)",
    "v_any_all": "SELECT r.id, r.v > ALL (SELECT q.w FROM q WHERE q.k = r.k) AS above, r.v = ANY (SELECT q.w FROM q WHERE q.k = r.g) AS hit FROM r",
    "v_any_ne": "SELECT r.id, r.v <> ALL (SELECT w FROM q) AS nin, r.g <> ANY (SELECT q.k FROM q WHERE q.t = r.s) AS ne FROM r",
    "v_any_where": "SELECT r.id FROM r WHERE r.v < ANY (SELECT q.w FROM q WHERE q.k = r.k) AND r.g >= ALL (SELECT q.k FROM q WHERE q.t = 'b')",
    "v_not_in_corr": "SELECT r.id, r.v FROM r WHERE r.v NOT IN (SELECT q.w FROM q WHERE q.k = r.k)",
    "v_exists_range": "SELECT r.id, r.g FROM r WHERE EXISTS (SELECT 1 FROM q WHERE q.k = r.k AND q.w > r.v) "
                      "AND NOT EXISTS (SELECT 1 FROM q WHERE q.k = r.g AND q.w <= r.v)",
    "v_in_or": "SELECT q.id FROM q WHERE q.t = 'c' OR (q.k, q.w) IN (SELECT r.k, r.g FROM r)",
    # EXISTS correlated by other conditions: by the primary key of the table it refers to.
    "v_exists_between": "SELECT r.id, r.k FROM r WHERE EXISTS (SELECT 1 FROM q WHERE q.w BETWEEN r.g AND r.v)",
    "v_not_exists_two": "SELECT r.g, count(*) AS c, sum(r.v) AS s FROM r "
                        "WHERE NOT EXISTS (SELECT 1 FROM q WHERE q.k = r.k AND q.w > r.g AND q.w < r.v) GROUP BY r.g",
    "v_exists_or_select": "SELECT q.id, q.t, EXISTS (SELECT 1 FROM r WHERE r.k = q.k OR r.v = q.w) AS hit FROM q",
    # Functions and VALUES in FROM (LATERAL over the rows before them).
    "v_lateral": "SELECT r.id, x.n FROM r, generate_series(1, coalesce(r.g, 0)) AS x(n) WHERE r.v IS NOT NULL",
    "v_values": "SELECT q.id, v.label FROM q JOIN (VALUES ('a', 'first'), ('b', 'second')) AS v(t, label) ON v.t = q.t",
    "v_unnest_agg": "SELECT e.x, count(*) AS c FROM r, unnest(ARRAY[r.k, r.g]) AS e(x) GROUP BY e.x",
    # GROUPING SETS, ROLLUP, CUBE.
    "v_rollup": "SELECT g, s, sum(v) AS sv, count(*) AS c, GROUPING(g, s) AS gr FROM r GROUP BY ROLLUP (g, s)",
    "v_cube": "SELECT k, t, count(*) AS c, max(w) AS mx FROM q GROUP BY CUBE (k, t) HAVING count(*) > 1",
    # WITH RECURSIVE: reachability over q's edges k -> w.
    "v_reach": "WITH RECURSIVE t(a, b) AS (SELECT k, w FROM q WHERE k IS NOT NULL UNION SELECT t.a, q.w FROM t JOIN q ON q.k = t.b) "
               "SELECT a, b FROM t",
    "v_reach_agg": "WITH RECURSIVE t(a, b) AS (SELECT k, w FROM q UNION SELECT t.a, q.w FROM t JOIN q ON q.k = t.b) "
                   "SELECT t.a, count(*) AS n, count(r.id) AS rows_at FROM t LEFT JOIN r ON r.k = t.b GROUP BY t.a",
    # A recursive term over two tables, one of them twice.
    "v_reach_two": "WITH RECURSIVE t(a, b) AS (SELECT k, w FROM q UNION SELECT t.a, q2.w FROM t JOIN q q1 ON q1.k = t.b "
                   "JOIN q q2 ON q2.k = q1.w JOIN r ON r.k = q1.w) SELECT a, b FROM t",
    # A partitioned table (sub-partitioned), read from its root.
    "v_part_agg": "SELECT g, count(*) AS c, sum(v) AS s, max(k) AS mk FROM p GROUP BY g",
    "v_part_join": "SELECT p.id, p.v, q.t FROM p JOIN q ON q.k = p.k WHERE p.v IS NOT NULL",
    # Views over views (made above): changes cascade.
    "v_over_group": "SELECT c, count(*) AS n, sum(sv) AS total FROM v_group GROUP BY c",
    "v_over_join": "SELECT v_join.t, count(*) AS n FROM v_join JOIN q ON q.k = v_join.k GROUP BY v_join.t",
}

SETUP = """
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS pg_tide CASCADE;
DROP TABLE IF EXISTS r, q, p CASCADE;
CREATE EXTENSION pg_tide;
CREATE TABLE r (id serial PRIMARY KEY, k int, g int, v int, n numeric, s text, j json, f float8);
CREATE TABLE q (id serial PRIMARY KEY, k int, w int, t text);
CREATE TABLE p (id serial, k int, g int, v int) PARTITION BY LIST (g);
CREATE TABLE p_0 PARTITION OF p FOR VALUES IN (0);
CREATE TABLE p_rest PARTITION OF p FOR VALUES IN (1, 2, 3) PARTITION BY RANGE (k);
CREATE TABLE p_rest_lo PARTITION OF p_rest FOR VALUES FROM (MINVALUE) TO (3);
CREATE TABLE p_rest_hi PARTITION OF p_rest DEFAULT;
CREATE TABLE p_other PARTITION OF p DEFAULT;
-- A user's row trigger whose statements run inside the inserting one (their
-- AFTER triggers fire before the outer statement's).
CREATE OR REPLACE FUNCTION r_nested() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  UPDATE r SET v = coalesce(v, 0) + 1, g = (coalesce(g, 0) + 1) % 4 WHERE k = NEW.k AND id <> NEW.id;
  DELETE FROM q WHERE k = NEW.g;
  RETURN NULL;
END $f$;
CREATE TRIGGER r_nested AFTER INSERT ON r FOR EACH ROW WHEN (NEW.s = 'n') EXECUTE FUNCTION r_nested();
"""


def val(rng, choices, null=0.15):
    return "NULL" if rng.random() < null else str(rng.choice(choices))


def r_row(rng):
    return "({k}, {g}, {v}, {n}, {s}, {j}, {f})".format(
        k=val(rng, range(0, 6)), g=val(rng, range(0, 4)), v=val(rng, range(-3, 7)),
        n=val(rng, ["1.5", "2", "0.25", "-3.125", "10"]),
        s=val(rng, ["'a'", "'b'", "'c'"]), j=val(rng, ["'{\"a\": 1}'", "'[1, 2]'", "'\"x\"'"]),
        f=val(rng, ["0.1", "1e10", "-2.5", "1.0/3", "3.3e-5"]))


def q_row(rng):
    return "({k}, {w}, {t})".format(k=val(rng, range(0, 6)), w=val(rng, range(0, 6)), t=val(rng, ["'a'", "'b'", "'c'"]))


def pred(rng, table):
    col = rng.choice(["k", "g", "v"] if table == "r" else ["k", "w"])
    op = rng.choice(["=", "<", ">", "IS NULL"])
    if op == "IS NULL":
        return f"{col} IS NULL"
    return f"{col} {op} {rng.randint(-1, 5)}"


def statement(rng):
    kind = rng.choices(
        ["ins_r", "ins_q", "upd_r", "upd_q", "del_r", "del_q", "cte", "truncate", "rollback", "savepoint", "upd_noop", "merge",
         "ins_p", "upd_p", "del_p", "trunc_p", "nested"],
        weights=[18, 8, 18, 6, 10, 5, 4, 1, 4, 4, 4, 4, 6, 6, 3, 1, 3])[0]
    if kind == "ins_p":
        # Through the root, or straight into a partition or sub-partition.
        table, g = rng.choice([("p", None), ("p_0", 0), ("p_rest", None), ("p_rest_lo", None)])
        rows = []
        for _ in range(rng.randint(1, 4)):
            if table == "p_0":
                gk = (0, val(rng, range(0, 6)))
            elif table == "p_rest":
                gk = (rng.randint(1, 3), val(rng, range(0, 6)))
            elif table == "p_rest_lo":
                gk = (rng.randint(1, 3), rng.randint(0, 2))
            else:
                gk = (val(rng, range(0, 6)), val(rng, range(0, 6)))
            rows.append(f"({gk[1]}, {gk[0]}, {val(rng, range(-3, 7))})")
        return f"INSERT INTO {table} (k, g, v) VALUES {', '.join(rows)};"
    if kind == "upd_p":
        # Rows moving between partitions (through the root) or within one.
        table, sets = rng.choice([("p", f"g = {val(rng, range(0, 6))}"), ("p", f"k = {val(rng, range(0, 6))}"),
                                  ("p_rest", f"k = {val(rng, range(0, 6))}"), ("p_0", f"v = {val(rng, range(-3, 7))}")])
        return f"UPDATE {table} SET {sets} WHERE {pred(rng, 'r')};"
    if kind == "del_p":
        return f"DELETE FROM {rng.choice(['p', 'p_rest', 'p_other'])} WHERE {pred(rng, 'r')};"
    if kind == "trunc_p":
        return f"TRUNCATE {rng.choice(['p_0', 'p_rest_hi'])};"
    if kind == "ins_r":
        rows = ", ".join(r_row(rng) for _ in range(rng.randint(1, 6)))
        return f"INSERT INTO r (k, g, v, n, s, j, f) VALUES {rows};"
    if kind == "nested":
        # Rows whose insert fires r_nested: an update of r and a delete from
        # q inside the INSERT.
        rows = ", ".join(f"({val(rng, range(0, 6))}, {val(rng, range(0, 4))}, {val(rng, range(-3, 7))}, 'n')"
                         for _ in range(rng.randint(1, 3)))
        return f"INSERT INTO r (k, g, v, s) VALUES {rows};"
    if kind == "ins_q":
        rows = ", ".join(q_row(rng) for _ in range(rng.randint(1, 3)))
        return f"INSERT INTO q (k, w, t) VALUES {rows};"
    if kind == "upd_r":
        col, value = rng.choice([("k", lambda: val(rng, range(0, 6))), ("g", lambda: val(rng, range(0, 4))),
                                 ("v", lambda: val(rng, range(-3, 7))), ("s", lambda: val(rng, ["'a'", "'b'", "'c'"])),
                                 ("n", lambda: val(rng, ["1.5", "2", "-3.125"]))])
        return f"UPDATE r SET {col} = {value()} WHERE {pred(rng, 'r')};"
    if kind == "upd_noop":
        # An update of a column no view reads.
        return f"UPDATE r SET id = id WHERE {pred(rng, 'r')};"
    if kind == "upd_q":
        return f"UPDATE q SET w = {val(rng, range(0, 6))}, k = coalesce(k, 0) + 1 WHERE {pred(rng, 'q')};"
    if kind == "del_r":
        return f"DELETE FROM r WHERE {pred(rng, 'r')};"
    if kind == "del_q":
        return f"DELETE FROM q WHERE {pred(rng, 'q')};"
    if kind == "cte":
        # One statement changing two inputs of the join views.
        return (f"WITH d AS (DELETE FROM q WHERE {pred(rng, 'q')} RETURNING k, w) "
                f"INSERT INTO r (k, g, v, s) SELECT k, w % 4, w, 'c' FROM d;")
    if kind == "merge":
        # Insert, update and delete in one statement.
        return (f"MERGE INTO r USING (SELECT DISTINCT k, w FROM q) s ON r.k = s.k AND r.g = s.w "
                f"WHEN MATCHED AND s.w > 2 THEN DELETE "
                f"WHEN MATCHED THEN UPDATE SET v = coalesce(r.v, 0) + s.w "
                f"WHEN NOT MATCHED THEN INSERT (k, g, v, s) VALUES (s.k, s.w % 4, s.w, 'm');")
    if kind == "truncate":
        return "TRUNCATE q;"
    if kind == "rollback":
        return f"BEGIN; INSERT INTO r (k, g, v, n, s, j, f) VALUES {r_row(rng)}; DELETE FROM q WHERE {pred(rng, 'q')}; ROLLBACK;"
    # savepoint: part of a transaction rolled back, the rest committed
    return (f"BEGIN; INSERT INTO r (k, g, v) VALUES ({rng.randint(0, 5)}, {rng.randint(0, 3)}, {rng.randint(0, 5)}); "
            f"SAVEPOINT s; DELETE FROM r WHERE {pred(rng, 'r')}; UPDATE q SET w = 1; ROLLBACK TO SAVEPOINT s; "
            f"UPDATE r SET v = coalesce(v, 0) + 1 WHERE {pred(rng, 'r')}; COMMIT;")


REFRESH = "SELECT count(tide.refresh(name::text)) >= 0 AS refreshed FROM tide.views \\gset"

CHECK = ("SELECT 'CHECK {step} ' || coalesce(string_agg(name::text, ',' ORDER BY name::text), 'ok') "
         "FROM tide.views WHERE NOT tide.verify(name::text);")


def run_seed(args, seed):
    rng = random.Random(seed)
    script = [SETUP]
    for i in range(rng.randint(5, 15)):
        script.append(f"INSERT INTO r (k, g, v, n, s, j, f) VALUES {r_row(rng)};")
    for i in range(rng.randint(3, 8)):
        script.append(f"INSERT INTO q (k, w, t) VALUES {q_row(rng)};")
    for name, query in VIEWS.items():
        if args.views and name not in args.views.split(","):
            continue
        script.append(f"SELECT tide.create_view('{name}', $q${query}$q$, mode => '{args.mode}', capture => '{args.capture}') "
                      f"IS NULL AS deferred \\gset")
    if args.mode == "deferred":
        # Built in the background: wait for the builds.
        script.append("SELECT bool_and(tide.wait(name::text)) AS built FROM tide.views \\gset")
    script.append(CHECK.format(step=0))
    steps = []
    checks_expected = 1
    for step in range(1, args.steps + 1):
        stmt = statement(rng)
        steps.append(stmt)
        script.append(stmt)
        if args.mode == "immediate":
            script.append(CHECK.format(step=step))
            checks_expected += 1
        elif step == args.steps or rng.random() < 0.35:
            script.append(REFRESH)
            script.append(CHECK.format(step=step))
            checks_expected += 1
    proc = subprocess.run(
        ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", args.host, "-p", str(args.port), "-U", "postgres",
         "-d", args.dbname],
        input="\n".join(script), capture_output=True, text=True)
    checks = [l for l in proc.stdout.splitlines() if l.startswith("CHECK ")]
    failed = [l for l in checks if not l.endswith(" ok")]
    if proc.returncode != 0 or failed or len(checks) != checks_expected:
        print(f"FAILED seed {seed}")
        if failed:
            print("first failing check:", failed[0])
        if proc.returncode != 0 or len(checks) != checks_expected:
            print("psql stopped after", len(checks), "checks:", proc.stderr.strip()[-2000:])
        last = int(failed[0].split()[1]) if failed else (int(checks[-1].split()[1]) + 1 if checks else 0)
        print("statements (reproduce with --seed %d):" % seed)
        for i, s in enumerate(steps[:last], 1):
            print(f"  {i:3d}  {s}")
        return False
    return True


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dbname", default="postgres")
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--seed", type=int, default=None, help="run only this seed")
    p.add_argument("--first-seed", type=int, default=None)
    p.add_argument("--mode", choices=["immediate", "deferred"], default="immediate")
    p.add_argument("--capture", choices=["trigger", "wal"], default="trigger", help="deferred mode's capture")
    p.add_argument("--views", default="", help="only these views (comma-separated names)")
    args = p.parse_args()
    first = args.first_seed if args.first_seed is not None else random.SystemRandom().randint(1, 10**6)
    seeds = [args.seed] if args.seed is not None else list(range(first, first + args.seeds))
    passed = failed = 0
    for seed in seeds:
        if run_seed(args, seed):
            passed += 1
        else:
            failed += 1
    how = args.mode if args.mode == "immediate" else f"deferred ({args.capture} capture)"
    count = len(args.views.split(",")) if args.views else len(VIEWS)
    print(f"{count} {how} views, {args.steps} random statements per seed, seeds {seeds[0]}..{seeds[-1]}")
    print(f"differential: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
