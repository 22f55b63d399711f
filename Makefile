# pg_tide: make test | make demo | make install | make bench
# Everything a fresh Debian bookworm machine lacks is installed by scripts/install-deps.sh.
SHELL := /bin/bash
PG_MAJOR ?= 15
PG_CONFIG ?= /usr/lib/postgresql/$(PG_MAJOR)/bin/pg_config
PGRX_TEST_DIR ?= /tmp/pg_tide-pgrx-test
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: test deps unit pgtest regress isolation random concurrent crash tpch bench bench-pgbench bench-deferred bench-recursive install demo clean

test: deps unit pgtest regress isolation random concurrent crash tpch

deps:
	@scripts/install-deps.sh

# Pure Rust: IR, explain, SQL generation (no PostgreSQL needed).
unit: deps
	cargo test --lib -- --skip tests::pg_

# #[pg_test] functions, inside a temporary PostgreSQL started by cargo-pgrx
# as a non-root user (initdb refuses root).
pgtest: deps
	mkdir -p $(PGRX_TEST_DIR) && chown $${PG_USER:-postgres} $(PGRX_TEST_DIR) 2>/dev/null || true
	cargo pgrx test pg$(PG_MAJOR) --runas $${PG_USER:-postgres} --pgdata $(PGRX_TEST_DIR)/data

# pg_regress suite against a throwaway cluster, with the extension installed (debug build).
regress: deps
	PROFILE=debug scripts/install.sh
	scripts/regress.sh

# Concurrency: isolation specs (pg_isolation_regress) against the installed build.
isolation: regress
	scripts/isolation.sh

# Seeded randomized differential test: random DML, tide.verify after every step.
random: regress
	scripts/random.sh

# Concurrent writers (pgbench clients, READ COMMITTED and REPEATABLE READ), views verified after.
concurrent: regress
	scripts/concurrent.sh

# Deferred mode under SIGKILL (during capture, during a refresh), views verified after recovery.
crash: regress
	scripts/crash.sh

# TPC-H (scale factor 0.01, data from the tpchgen crate) under RF1 / RF2 /
# updates: every query pg_tide maintains verified after each step.
tpch: regress
	scripts/tpch.sh

# TPC-H: pg_tide against CREATE / REFRESH MATERIALIZED VIEW (SF=1; SF=0.1 for a
# quick run), report and plots in benches/results/tpch.md.
bench:
	scripts/install.sh
	benches/tpch.sh

# Immediate mode's cost on writers, on pgbench data (report in benches/results/).
bench-pgbench:
	scripts/install.sh
	benches/pgbench.sh

# Deferred mode's cost on writers and the views' lag (report in benches/results/).
bench-deferred:
	scripts/install.sh
	benches/deferred.sh

# WITH RECURSIVE: semi-naive inserts against REFRESH (report in benches/results/).
bench-recursive:
	scripts/install.sh
	benches/recursive.sh

install:
	scripts/install.sh

demo:
	scripts/demo.sh

clean:
	cargo clean
	rm -rf $(PGRX_TEST_DIR) tests/pg_regress/results tests/pg_regress/regression.*
