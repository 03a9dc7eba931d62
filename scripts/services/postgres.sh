# PostgreSQL from Debian packages, run as the postgres user on its own data dir under build/.
# shellcheck shell=bash

PG_DIR=$SVC_DIR/postgres
# When the postgres user cannot reach build/ (a parent dir not searchable by others), the data dir
# moves under /var/lib/postgresql and this file records where.
if [ -s "$SVC_DIR/postgres.location" ]; then
	PG_DIR=$(cat "$SVC_DIR/postgres.location")
fi
PG_DATA=$PG_DIR/data
PG_LOG=$PG_DIR/postgres.log

pg_bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1; }

as_postgres() { runuser -u postgres -- "$@"; }

postgres_install() {
	if [ -z "$(pg_bindir)" ] || ! command -v psql >/dev/null; then
		apt_install postgresql postgresql-client
	fi
	id postgres >/dev/null 2>&1 || fail postgres "" "the postgres user does not exist"
}

postgres_probe() {
	[ "$(PGCONNECT_TIMEOUT=3 psql "postgresql://postgres@$SVC_HOST:$PG_PORT/postgres?sslmode=disable" \
		-Atc 'select 40 + 2' 2>&1)" = 42 ]
}

postgres_pid() {
	[ -s "$PG_DATA/postmaster.pid" ] && kill -0 "$(head -n1 "$PG_DATA/postmaster.pid")" 2>/dev/null &&
		head -n1 "$PG_DATA/postmaster.pid"
}

postgres_start() {
	local bin
	bin=$(pg_bindir)
	mkdir -p "$PG_DIR"
	chown postgres:postgres "$PG_DIR"
	if ! as_postgres test -w "$PG_DIR"; then
		local alt
		alt=/var/lib/postgresql/sluice-$(echo "$SVC_DIR" | sha256sum | cut -c1-12)
		log "the postgres user cannot reach $PG_DIR (a parent dir is not searchable); using $alt"
		mkdir -p "$alt"
		chown postgres:postgres "$alt"
		as_postgres test -w "$alt" || fail postgres "" "the postgres user cannot write $alt either"
		echo "$alt" >"$SVC_DIR/postgres.location"
		PG_DIR=$alt PG_DATA=$alt/data PG_LOG=$alt/postgres.log
	fi
	if postgres_pid >/dev/null; then
		return 0
	fi
	port_free postgres "$PG_PORT" || return 0
	if [ ! -f "$PG_DATA/PG_VERSION" ]; then
		as_postgres "$bin/initdb" -D "$PG_DATA" -A trust -U postgres -E UTF8 --no-sync >"$PG_DIR/initdb.log" 2>&1 ||
			fail postgres "$PG_DIR/initdb.log" "initdb failed"
	fi
	log "starting postgres on $SVC_HOST:$PG_PORT"
	as_postgres "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -W start -o "-c listen_addresses=$SVC_HOST \
-p $PG_PORT -c unix_socket_directories=$PG_DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
-c max_connections=200 -c shared_buffers=64MB -c wal_level=logical -c max_replication_slots=16 \
-c max_wal_senders=16" >"$PG_DIR/pg_ctl.log" 2>&1 || fail postgres "$PG_LOG" "pg_ctl start failed"
}

postgres_wait() { wait_for postgres "$PG_LOG" 60 "" postgres_probe; }

postgres_stop() {
	if postgres_pid >/dev/null; then
		log "stopping postgres"
		as_postgres "$(pg_bindir)/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null 2>&1 || true
	fi
}

postgres_env() { echo "PG_DSN=postgres://postgres@$SVC_HOST:$PG_PORT/postgres?sslmode=disable"; }
