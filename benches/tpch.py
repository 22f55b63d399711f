#!/usr/bin/env python3
"""The batch job against pg_tide on TPC-H (make bench; benches/tpch.sh loads
the data and calls this).

For every TPC-H query pg_tide maintains, in one run, on the same data:
  1. initial build: tide.create_view against CREATE MATERIALIZED VIEW;
  2. one-row changes (insert, update, delete of a lineitem; insert, update,
     delete of an order), the view alone in the database: the statement with
     no view, with the view in immediate mode, and in deferred mode the
     statement plus tide.refresh; against REFRESH MATERIALIZED VIEW;
  3. change batches of a fraction of lineitem and orders (RF1: new orders with
     their lineitems; updates of quantities, prices, discounts and dates;
     RF2: those orders deleted): tide.refresh of the deferred view against
     REFRESH MATERIALIZED VIEW after the same batch, with the peak memory of
     the server processes during each;
  4. the cost on writers: pgbench transactions of one-row changes per second
     with no view, with every view immediate, with every view deferred;
and the size of each view's bookkeeping state against the view itself.

Every figure is the median of RUNS runs with min and max. Writes a markdown
report and PNG plots into --out.
"""
import argparse
import datetime
import os
import pathlib
import re
import statistics
import subprocess
import sys
import threading
import time

import psycopg2

QUERIES = pathlib.Path(__file__).resolve().parent.parent / "tests" / "tpch" / "queries"
# RF1 copies orders to keys beyond every generated one (the largest at scale 100 is 6e8).
NEW_KEYS = 1_000_000_000


def median_min_max(xs):
    return statistics.median(xs), min(xs), max(xs)


def fmt(xs, digits=2):
    m, lo, hi = median_min_max(xs)
    return f"{m:.{digits}f} ({lo:.{digits}f}–{hi:.{digits}f})"


def ratio(a, b):
    return statistics.median(a) / statistics.median(b)


class Server:
    """The cluster: a connection for statements, and its processes for memory."""

    def __init__(self, args):
        self.args = args
        self.conn = psycopg2.connect(host=args.host, port=args.port, user="postgres", dbname=args.dbname)
        self.conn.autocommit = True
        self.cur = self.conn.cursor()
        self.cur.execute("SET client_min_messages = warning")
        self.postmaster = int(pathlib.Path(args.datadir, "postmaster.pid").read_text().split()[0])

    def sql(self, statement, params=None):
        self.cur.execute(statement, params)
        return self.cur.fetchall() if self.cur.description else None

    def one(self, statement, params=None):
        return self.sql(statement, params)[0][0]

    def timed(self, statement, params=None):
        """Milliseconds the statement took."""
        t0 = time.perf_counter()
        self.cur.execute(statement, params)
        return (time.perf_counter() - t0) * 1000

    def timed_transaction(self, statements):
        """Milliseconds the statements took as one transaction, and the rows they changed."""
        t0 = time.perf_counter()
        rows = 0
        self.cur.execute("BEGIN")
        for s in statements:
            self.cur.execute(s)
            rows += self.cur.rowcount
        self.cur.execute("COMMIT")
        return (time.perf_counter() - t0) * 1000, rows

    def peak_memory(self, statement, params=None):
        """Peak growth (MiB) of the anonymous memory of all server processes
        while the statement ran (measured apart from the timings: the sampler
        takes CPU from the server)."""
        sampler = MemorySampler(self.postmaster)
        sampler.start()
        self.cur.execute(statement, params)
        return sampler.stop()

    def pgbench(self, script, clients, seconds=None, transactions=None, defines=()):
        """pgbench over SCRIPT: (transactions per second, per-statement mean latencies in ms)."""
        cmd = [self.args.pgbench, "-n", "-r", "-h", self.args.host, "-p", str(self.args.port), "-U", "postgres",
               "-c", str(clients), "-j", str(min(clients, os.cpu_count() or 1)), "-f", script]
        cmd += ["-T", str(seconds)] if seconds else ["-t", str(transactions)]
        for d in defines:
            cmd += ["-D", d]
        out = subprocess.run(cmd + [self.args.dbname], capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"pgbench failed: {out.stderr}")
        tps = float(re.search(r"^tps = ([0-9.]+)", out.stdout, re.M).group(1))
        tail = out.stdout.split("statement latencies in milliseconds", 1)[1]
        lat = [float(line.split()[0]) for line in tail.splitlines()[1:] if line.strip() and not line.strip().startswith("\\")]
        return tps, lat


class MemorySampler(threading.Thread):
    """Samples the summed RssAnon of the postmaster's children every few ms.
    Pure Python reading /proc: touches no PostgreSQL state."""

    def __init__(self, postmaster):
        super().__init__(daemon=True)
        self.postmaster = postmaster
        self.done = threading.Event()
        self.base = self.total()
        self.peak = self.base

    def children(self):
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    stat = pathlib.Path(entry.path, "stat").read_text()
                    if int(stat.rsplit(")", 1)[1].split()[1]) == self.postmaster:
                        yield entry.path
                except (OSError, ValueError, IndexError):
                    pass

    def total(self):
        kib = 0
        for path in self.children():
            try:
                for line in pathlib.Path(path, "status").read_text().splitlines():
                    if line.startswith("RssAnon:"):
                        kib += int(line.split()[1])
            except OSError:
                pass
        return kib

    def run(self):
        while not self.done.wait(0.01):
            self.peak = max(self.peak, self.total())

    def stop(self):
        self.done.set()
        self.join()
        self.peak = max(self.peak, self.total())
        return (self.peak - self.base) / 1024


def one_row_script(path, key, tail=""):
    """One transaction per statement: insert, update and delete a lineitem of
    order KEY, then insert, update and delete an order. TAIL follows each."""
    ops = [
        f"INSERT INTO lineitem SELECT l_orderkey, l_partkey, l_suppkey, 100 + :client_id, l_quantity, l_extendedprice, "
        f"l_discount, l_tax, l_returnflag, l_linestatus, l_shipdate, l_commitdate, l_receiptdate, l_shipinstruct, "
        f"l_shipmode, l_comment FROM lineitem WHERE l_orderkey = {key} AND l_linenumber = 1;",
        f"UPDATE lineitem SET l_quantity = l_quantity + 1, l_extendedprice = l_extendedprice + 1 "
        f"WHERE l_orderkey = {key} AND l_linenumber = 100 + :client_id;",
        f"DELETE FROM lineitem WHERE l_orderkey = {key} AND l_linenumber = 100 + :client_id;",
        f"INSERT INTO orders SELECT {NEW_KEYS} - 1 - :client_id, o_custkey, o_orderstatus, o_totalprice, o_orderdate, "
        f"o_orderpriority, o_clerk, o_shippriority, o_comment FROM orders WHERE o_orderkey = {key};",
        f"UPDATE orders SET o_totalprice = o_totalprice + 1, o_orderpriority = '1-URGENT' "
        f"WHERE o_orderkey = {NEW_KEYS} - 1 - :client_id;",
        f"DELETE FROM orders WHERE o_orderkey = {NEW_KEYS} - 1 - :client_id;",
    ]
    pathlib.Path(path).write_text("".join(op + "\n" + tail for op in ops))
    return len(ops)


ONE_ROW_OPS = ["insert lineitem", "update lineitem", "delete lineitem", "insert order", "update order", "delete order"]


def stream_script(path):
    """The writers' change stream: one-row changes of random orders (a
    lineitem added, changed and removed; the order's price changed)."""
    pathlib.Path(path).write_text(
        "\\set i random(0, :norders - 1)\n"
        # TPC-H's sparse order keys: the first 8 of every 32.
        "\\set k 32 * (:i / 8) + :i % 8 + 1\n"
        "INSERT INTO lineitem SELECT l_orderkey, l_partkey, l_suppkey, 100 + :client_id, l_quantity, l_extendedprice, "
        "l_discount, l_tax, l_returnflag, l_linestatus, l_shipdate, l_commitdate, l_receiptdate, l_shipinstruct, "
        "l_shipmode, l_comment FROM lineitem WHERE l_orderkey = :k AND l_linenumber = 1;\n"
        "UPDATE lineitem SET l_quantity = l_quantity + 1 WHERE l_orderkey = :k AND l_linenumber = 100 + :client_id;\n"
        "DELETE FROM lineitem WHERE l_orderkey = :k AND l_linenumber = 100 + :client_id;\n"
        "UPDATE orders SET o_totalprice = o_totalprice + 1 WHERE o_orderkey = :k;\n")
    return 4


def batch_sql(kind, modulus, r, sign):
    """A change batch touching the orders with o_orderkey % MODULUS = R and their lineitems."""
    if kind == "rf1":
        return [f"INSERT INTO orders SELECT o_orderkey + {NEW_KEYS}, o_custkey, o_orderstatus, o_totalprice, "
                f"o_orderdate + 7, o_orderpriority, o_clerk, o_shippriority, o_comment FROM orders "
                f"WHERE o_orderkey % {modulus} = {r} AND o_orderkey < {NEW_KEYS}",
                f"INSERT INTO lineitem SELECT l_orderkey + {NEW_KEYS}, l_partkey, l_suppkey, l_linenumber, l_quantity, "
                f"l_extendedprice, l_discount, l_tax, l_returnflag, l_linestatus, l_shipdate + 7, l_commitdate + 7, "
                f"l_receiptdate + 7, l_shipinstruct, l_shipmode, l_comment FROM lineitem "
                f"WHERE l_orderkey % {modulus} = {r} AND l_orderkey < {NEW_KEYS}"]
    if kind == "update":
        return [f"UPDATE lineitem SET l_quantity = l_quantity + {sign}, l_extendedprice = l_extendedprice + {sign}, "
                f"l_discount = CASE WHEN l_discount >= 0.05 THEN l_discount - 0.01 ELSE l_discount + 0.01 END, "
                f"l_shipdate = l_shipdate + {sign} WHERE l_orderkey % {modulus} = {r} AND l_orderkey < {NEW_KEYS}"]
    return [f"DELETE FROM lineitem WHERE l_orderkey >= {NEW_KEYS}", f"DELETE FROM orders WHERE o_orderkey >= {NEW_KEYS}"]


STATE_BYTES = """
WITH RECURSIVE tree AS (
    SELECT id, true AS root FROM tide.catalog WHERE view = %s::regclass
    UNION ALL
    SELECT c.id, false FROM tide.catalog c JOIN tree t ON c.parent = t.id)
SELECT coalesce(sum(pg_total_relation_size(r.oid)), 0)::bigint
  FROM pg_class r
 WHERE r.relnamespace = 'tide_state'::regnamespace AND r.relkind = 'r'
   AND EXISTS (SELECT 1 FROM tree t WHERE r.relname = 'state_' || t.id OR r.relname LIKE 'state\\_' || t.id || '\\_%%'
                                       OR (NOT t.root AND r.oid = (SELECT view FROM tide.catalog WHERE id = t.id)))
"""


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dbname", default="postgres")
    p.add_argument("--datadir", required=True, help="the cluster's data directory (for its postmaster's pid)")
    p.add_argument("--pgbench", default="pgbench")
    p.add_argument("--sf", required=True)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--one-row", type=int, default=200, help="transactions of each one-row statement per run")
    p.add_argument("--batches", default="0.0001,0.001,0.01,0.1", help="fractions of orders (and their lineitems)")
    p.add_argument("--stream-seconds", type=int, default=10)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--capture", default="trigger", choices=["trigger", "wal"])
    p.add_argument("--queries", default="", help="comma-separated query names (q01,...), default all")
    p.add_argument("--settings", default="")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = pathlib.Path(os.environ.get("TMPDIR", "/tmp"))
    db = Server(args)
    queries = {f.stem: f.read_text().strip() for f in sorted(QUERIES.glob("q*.sql"))}
    if args.queries:
        queries = {k: v for k, v in queries.items() if k in args.queries.split(",")}
    orders = db.one("SELECT count(*) FROM orders")
    lineitems = db.one("SELECT count(*) FROM lineitem")
    # A mid-range order with at least one lineitem, for the one-row changes.
    key = db.one("SELECT l_orderkey FROM lineitem WHERE l_linenumber = 1 ORDER BY l_orderkey OFFSET %s LIMIT 1", (lineitems // 8,))
    log = lambda msg: print(f"  [{datetime.datetime.now():%H:%M:%S}] {msg}", flush=True)

    build_mv, build_tide, refresh_mv = {}, {}, {}
    one_none, one_imm, one_def, one_refresh = {}, {}, {}, {}
    maintained, refused = [], {}
    plain = str(work / "tide-bench-onerow.sql")
    deferred = str(work / "tide-bench-onerow-refresh.sql")
    n_ops = one_row_script(plain, key)

    # 1 and 2: each query alone.
    for q, text in queries.items():
        tv, mv = f"tv_{q}", f"mv_{q}"
        try:
            db.sql("SELECT tide.explain(%s)", (text,))
            db.sql("SELECT tide.create_view(%s, %s)", (tv, text))
        except psycopg2.Error as e:
            refused[q] = str(e).strip().splitlines()[0]
            log(f"{q}: refused: {refused[q]}")
            continue
        maintained.append(q)
        db.sql(f"SELECT tide.drop_view('{tv}')")
        log(f"{q}: build")
        build_mv[q], build_tide[q] = [], []
        for _ in range(args.runs):
            db.sql(f"DROP MATERIALIZED VIEW IF EXISTS {mv}")
            build_mv[q].append(db.timed(f"CREATE MATERIALIZED VIEW {mv} AS {text}"))
            db.sql(f"SELECT tide.drop_view('{tv}') FROM tide.views WHERE name::text = '{tv}'")
            build_tide[q].append(db.timed("SELECT tide.create_view(%s, %s)", (tv, text)))
        refresh_mv[q] = [db.timed(f"REFRESH MATERIALIZED VIEW {mv}") for _ in range(args.runs)]
        log(f"{q}: one-row changes")
        one_imm[q] = [db.pgbench(plain, 1, transactions=args.one_row)[1] for _ in range(args.runs)]
        db.sql("SELECT tide.alter_view(%s, mode => 'deferred', capture => %s, refresh_interval => '1 hour')", (tv, args.capture))
        one_row_script(deferred, key, f"SELECT tide.refresh('{tv}');\n")
        runs = [db.pgbench(deferred, 1, transactions=args.one_row)[1] for _ in range(args.runs)]
        one_def[q] = [r[0::2] for r in runs]
        one_refresh[q] = [r[1::2] for r in runs]
        assert db.one(f"SELECT tide.verify('{tv}')"), f"{q}: view differs from its query after the one-row changes"
        db.sql(f"SELECT tide.drop_view('{tv}')")
        one_none[q] = [db.pgbench(plain, 1, transactions=args.one_row)[1] for _ in range(args.runs)]

    # 3: change batches, every view deferred, each refreshed alone after each batch.
    log("batches: building the deferred views")
    for q in maintained:
        db.sql("SELECT tide.create_view(%s, %s, mode => 'deferred', capture => %s, refresh_interval => '1 hour')",
               (f"tv_{q}", queries[q], args.capture))
    for q in maintained:
        db.sql("SELECT tide.wait(%s, '1 hour')", (f"tv_{q}",))
    sizes = {q: (db.one(STATE_BYTES, (f"tv_{q}",)), db.one(f"SELECT pg_total_relation_size('tv_{q}')"),
                 db.one(f"SELECT count(*) FROM tv_{q}")) for q in maintained}
    fractions = [float(f) for f in args.batches.split(",")]
    kinds = ["rf1", "update", "rf2"]
    batch_rows, batch_write = {}, {}
    inc, full, inc_mem, full_mem = {}, {}, {}, {}
    rebuilt = {}  # (query, fraction, kind): refreshes that rebuilt the view instead of applying the batch
    mid = min(fractions, key=lambda f: abs(f - 0.01))
    for f in fractions:
        modulus = max(1, round(1 / f))
        for run in range(args.runs):
            for kind in kinds:
                ms, rows = db.timed_transaction(batch_sql(kind, modulus, (run * 7919) % modulus, 1 if run % 2 == 0 else -1))
                batch_rows.setdefault((f, kind), []).append(rows)
                batch_write.setdefault((f, kind), []).append(ms)
                log(f"batch {f:g} run {run + 1} {kind}: {rows} rows, {ms:.0f} ms")
                for q in maintained:
                    inc.setdefault((q, f, kind), []).append(db.timed("SELECT tide.refresh(%s)", (f"tv_{q}",)))
                    last = db.one("SELECT kind FROM tide.refresh_history h JOIN tide.catalog c ON c.id = h.view_id "
                                  "WHERE c.view = %s::regclass ORDER BY h.started_at DESC LIMIT 1", (f"tv_{q}",))
                    rebuilt[(q, f, kind)] = rebuilt.get((q, f, kind), 0) + (last == "full")
                    full.setdefault((q, f, kind), []).append(db.timed(f"REFRESH MATERIALIZED VIEW mv_{q}"))
        if f == mid:
            # Memory, apart from the timings: rf1 batches again, each refresh sampled.
            for run in range(args.runs):
                db.timed_transaction(batch_sql("rf1", modulus, (run * 7919 + 1) % modulus, 1))
                for q in maintained:
                    inc_mem.setdefault(q, []).append(db.peak_memory("SELECT tide.refresh(%s)", (f"tv_{q}",)))
                    full_mem.setdefault(q, []).append(db.peak_memory(f"REFRESH MATERIALIZED VIEW mv_{q}"))
                db.timed_transaction(batch_sql("rf2", modulus, 0, 1))
                for q in maintained:
                    db.sql("SELECT tide.refresh(%s)", (f"tv_{q}",))
    wrong = [q for q in maintained if not db.one(f"SELECT tide.verify('tv_{q}')")]
    assert not wrong, f"views differ from their queries after the batches: {wrong}"

    # 4: the cost on writers.
    stream = str(work / "tide-bench-stream.sql")
    stream_script(stream)
    nord = f"norders={orders}"
    writers = {}
    log("writers: every view deferred")
    for q in maintained:
        db.sql("SELECT tide.alter_view(%s, refresh_interval => '1 second')", (f"tv_{q}",))
    writers["every view deferred"] = [db.pgbench(stream, args.clients, seconds=args.stream_seconds, defines=[nord])[0]
                                      for _ in range(args.runs)]
    lag = db.one("SELECT max(lag_seconds) FROM tide.views")
    for q in maintained:
        db.sql("SELECT tide.refresh(%s)", (f"tv_{q}",))
    wrong = [q for q in maintained if not db.one(f"SELECT tide.verify('tv_{q}')")]
    for q in maintained:
        db.sql("SELECT tide.drop_view(%s)", (f"tv_{q}",))
    log("writers: no view")
    writers["no view"] = [db.pgbench(stream, args.clients, seconds=args.stream_seconds, defines=[nord])[0]
                          for _ in range(args.runs)]
    log("writers: every view immediate")
    for q in maintained:
        db.sql("SELECT tide.create_view(%s, %s)", (f"tv_{q}", queries[q]))
    writers["every view immediate"] = [db.pgbench(stream, args.clients, seconds=args.stream_seconds, defines=[nord])[0]
                                       for _ in range(args.runs)]
    wrong += [q for q in maintained if not db.one(f"SELECT tide.verify('tv_{q}')")]
    assert not wrong, f"views differ from their queries after the writers: {wrong}"

    report = Report(args, db, maintained, refused, orders, lineitems, fractions, kinds)
    report.write(out / "tpch.md", locals())
    plot(out, maintained, fractions, kinds, inc, full, lineitems, batch_rows)
    print(f"report: {out / 'tpch.md'}")


class Report:
    def __init__(self, args, db, maintained, refused, orders, lineitems, fractions, kinds):
        self.args, self.db, self.maintained, self.refused = args, db, maintained, refused
        self.orders, self.lineitems, self.fractions, self.kinds = orders, lineitems, fractions, kinds

    def write(self, path, m):
        a = self.args
        version = self.db.one("SHOW server_version")
        L = []
        w = L.append
        w(f"# pg_tide against the batch job: TPC-H, scale factor {a.sf}")
        w("")
        w(f"Run {datetime.date.today():%Y-%m-%d} by `make bench` (benches/tpch.sh, benches/tpch.py): PostgreSQL {version}, "
          f"{os.cpu_count()} cores, {self.orders:,} orders, {self.lineitems:,} lineitems, server settings `{a.settings}`, "
          f"deferred views in {a.capture} capture. Every figure is the median of {a.runs} runs (min–max); every ratio is "
          f"taken between medians of this run. Every view was checked with tide.verify after each part.")
        w("")
        w(f"Maintained: {len(self.maintained)} of {len(self.maintained) + len(self.refused)} queries."
          + "".join(f" {q} refused: {e}." for q, e in self.refused.items()))
        w("")
        w("## Initial build and one-row changes")
        w("")
        w("Build: `tide.create_view` (immediate) against `CREATE MATERIALIZED VIEW`. One-row change: the mean over six "
          "one-row statements (insert, update, delete of a lineitem; of an order), each its own transaction and each "
          f"run {a.one_row} times, the view alone in the database; *added* is the statement with the view in "
          "immediate mode minus the statement with no view; *deferred* is the statement plus `tide.refresh` of the "
          "view. *REFRESH ÷ immediate* is how many one-row changes cost one `REFRESH MATERIALIZED VIEW`.")
        w("")
        w("| query | CREATE MATERIALIZED VIEW (ms) | tide.create_view (ms) | build ratio | REFRESH MATERIALIZED VIEW (ms) "
          "| no view (ms) | immediate (ms) | added (ms) | deferred (ms) | REFRESH ÷ immediate |")
        w("|---|---|---|---|---|---|---|---|---|---|")
        per_op = {}
        # The statements with no view are the same for every query: their
        # baseline is the median over all queries' runs (one query's runs can
        # fall on a checkpoint).
        baseline = statistics.median(statistics.mean(r) for q in self.maintained for r in m["one_none"][q])
        op_baseline = [statistics.median(r[i] for q in self.maintained for r in m["one_none"][q])
                       for i in range(len(ONE_ROW_OPS))]
        for q in self.maintained:
            none = [statistics.mean(r) for r in m["one_none"][q]]
            imm = [statistics.mean(r) for r in m["one_imm"][q]]
            dfr = [statistics.mean(r) + statistics.mean(s) for r, s in zip(m["one_def"][q], m["one_refresh"][q])]
            added = statistics.median(imm) - baseline
            per_op[q] = added
            w(f"| {q} | {fmt(m['build_mv'][q], 0)} | {fmt(m['build_tide'][q], 0)} | "
              f"{ratio(m['build_tide'][q], m['build_mv'][q]):.2f}x | {fmt(m['refresh_mv'][q], 1)} | {fmt(none, 3)} | "
              f"{fmt(imm, 3)} | {added:.3f} | {fmt(dfr, 3)} | {statistics.median(m['refresh_mv'][q]) / statistics.median(imm):,.0f}x |")
        w("")
        w(f"*Added* is taken against the median with no view over all queries' runs: {baseline:.3f} ms "
          "(the no-view column is each query's own runs, measured after its view was dropped).")
        w("")
        w("Per statement, immediate mode (ms, median of the runs' means; no view, over all queries, in brackets):")
        w("")
        w("| query | " + " | ".join(ONE_ROW_OPS) + " |")
        w("|---|" + "---|" * len(ONE_ROW_OPS))
        for q in self.maintained:
            cells = []
            for i in range(len(ONE_ROW_OPS)):
                imm = statistics.median(r[i] for r in m["one_imm"][q])
                cells.append(f"{imm:.3f} ({op_baseline[i]:.3f})")
            w(f"| {q} | " + " | ".join(cells) + " |")
        w("")
        w("## Change batches: incremental refresh against REFRESH MATERIALIZED VIEW")
        w("")
        w("A batch changes the orders with `o_orderkey % (1/fraction) = r` and their lineitems: *rf1* inserts copies "
          "of them under new keys, *update* changes quantity, price, discount and ship date of their lineitems, *rf2* "
          "deletes the rf1 copies. After each batch every view is refreshed alone: `tide.refresh` of the deferred view, "
          "then `REFRESH MATERIALIZED VIEW` of the same query. Cells: speed-up (REFRESH time ÷ tide.refresh time, "
          "medians), with the tide.refresh time in ms; *rebuilt k/n*: k of the n refreshes rebuilt the view, its "
          "history saying that costs less than applying the batch.")
        w("")
        w("| batch | " + " | ".join(f"{k}: rows changed" for k in self.kinds) + " | " +
          " | ".join(f"{k}: statement (ms)" for k in self.kinds) + " |")
        w("|---|" + "---|" * (2 * len(self.kinds)))
        for f in self.fractions:
            w(f"| {f * 100:g}% | " + " | ".join(f"{statistics.median(m['batch_rows'][(f, k)]):,.0f}" for k in self.kinds)
              + " | " + " | ".join(fmt(m["batch_write"][(f, k)], 0) for k in self.kinds) + " |")
        w("")
        for kind in self.kinds:
            w(f"### {kind}")
            w("")
            w("| query | " + " | ".join(f"{f * 100:g}%" for f in self.fractions) + " |")
            w("|---|" + "---|" * len(self.fractions))
            for q in self.maintained:
                cells = []
                for f in self.fractions:
                    inc, full = m["inc"][(q, f, kind)], m["full"][(q, f, kind)]
                    k = m["rebuilt"].get((q, f, kind), 0)
                    note = f", rebuilt {k}/{len(inc)}" if k else ""
                    cells.append(f"{ratio(full, inc):.1f}x ({fmt(inc, 1)}{note})")
                w(f"| {q} | " + " | ".join(cells) + " |")
            w("")
        w("REFRESH MATERIALIZED VIEW after the same batches (ms):")
        w("")
        w("| query | " + " | ".join(f"{f * 100:g}% {k}" for f in self.fractions for k in self.kinds) + " |")
        w("|---|" + "---|" * (len(self.fractions) * len(self.kinds)))
        for q in self.maintained:
            w(f"| {q} | " + " | ".join(f"{statistics.median(m['full'][(q, f, k)]):.0f}" for f in self.fractions for k in self.kinds) + " |")
        w("")
        w("![refresh time against change size](tpch-refresh.png)")
        w("")
        w("![speed-up against change size](tpch-speedup.png)")
        w("")
        mid = m["mid"]
        w(f"## Memory and bookkeeping state")
        w("")
        w(f"Peak growth of the summed anonymous memory (RssAnon) of all server processes during the refresh after the "
          f"{mid * 100:g}% rf1 batch, sampled every 10 ms (MiB). Bookkeeping: pg_tide's state tables for the view "
          "(per-group counts and sums, DISTINCT multiplicities, sub-query views), against the view's own table.")
        w("")
        w("| query | tide.refresh (MiB) | REFRESH MATERIALIZED VIEW (MiB) | view rows | view size (kB) | state size (kB) | state ÷ view |")
        w("|---|---|---|---|---|---|---|")
        for q in self.maintained:
            state, view, rows = m["sizes"][q]
            w(f"| {q} | {fmt(m['inc_mem'][q], 1)} | {fmt(m['full_mem'][q], 1)} | {rows:,} | "
              f"{view / 1024:,.0f} | {state / 1024:,.0f} | {state / view:.2f} |")
        w("")
        w("## The cost on writers")
        w("")
        w(f"pgbench, {a.clients} clients, {a.stream_seconds} s per run: each transaction adds a lineitem to a random "
          "order, changes and deletes it, and changes the order's price (4 one-row statements). Deferred views refresh "
          f"every second in the background; the largest lag seen at the end of the deferred runs: {m['lag'] or 0:.2f} s.")
        w("")
        w("| views | transactions per second | against no view |")
        w("|---|---|---|")
        base = m["writers"]["no view"]
        for k in ["no view", "every view immediate", "every view deferred"]:
            w(f"| {k} ({0 if k == 'no view' else len(self.maintained)}) | {fmt(m['writers'][k], 0)} | {ratio(m['writers'][k], base):.2f}x |")
        w("")
        path.write_text("\n".join(L))


def plot(out, maintained, fractions, kinds, inc, full, lineitems, batch_rows):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    kind = "rf1"
    xs = [statistics.median(batch_rows[(f, kind)]) for f in fractions]
    cmap = plt.get_cmap("tab20")
    fig, ax = plt.subplots(figsize=(10, 7))
    for i, q in enumerate(maintained):
        c = cmap(i % 20)
        ax.plot(xs, [statistics.median(inc[(q, f, kind)]) for f in fractions], "-o", color=c, label=q, markersize=3)
        ax.plot(xs, [statistics.median(full[(q, f, kind)]) for f in fractions], "--", color=c, linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rows inserted (rf1: orders + lineitems)")
    ax.set_ylabel("refresh time (ms)")
    ax.set_title("tide.refresh (solid) against REFRESH MATERIALIZED VIEW (dashed), one colour per query")
    ax.legend(ncol=2, fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "tpch-refresh.png", dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(10, 7))
    for i, q in enumerate(maintained):
        ax.plot(xs, [ratio(full[(q, f, kind)], inc[(q, f, kind)]) for f in fractions], "-o", color=cmap(i % 20),
                label=q, markersize=3)
    ax.axhline(1, color="black", linewidth=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rows inserted (rf1: orders + lineitems)")
    ax.set_ylabel("speed-up: REFRESH time ÷ tide.refresh time")
    ax.set_title("Where incremental refresh wins (above 1) and where it stops winning")
    ax.legend(ncol=2, fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "tpch-speedup.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
