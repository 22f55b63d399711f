# PostgreSQL 15 with pg_tide installed, built by the same script `make install` uses.
#   docker build -t pg_tide .
#   docker run -e POSTGRES_PASSWORD=secret -p 5432:5432 pg_tide
#   psql -h localhost -U postgres -c 'CREATE EXTENSION pg_tide'
FROM postgres:15-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl build-essential sudo \
 && rm -rf /var/lib/apt/lists/*
RUN curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain 1.95.0
ENV PATH=/root/.cargo/bin:$PATH
WORKDIR /src
COPY . .
RUN scripts/install.sh

FROM postgres:15-bookworm
COPY --from=build /usr/lib/postgresql/15/lib/pg_tide.so /usr/lib/postgresql/15/lib/
COPY --from=build /usr/share/postgresql/15/extension/pg_tide* /usr/share/postgresql/15/extension/
# Preloaded, so that deferred views have their background refresher.
CMD ["postgres", "-c", "shared_preload_libraries=pg_tide"]
