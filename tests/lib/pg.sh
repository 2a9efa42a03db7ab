# tests/lib/pg.sh -- a private PostgreSQL 15 for a test (Debian's
# postgresql-15): initdb into a temp directory, listening on a unix socket
# in that directory only (listen_addresses = ''), trust authentication on
# that socket (the directory is the test user's alone), started with
# pg_ctl and removed by pg_stop.  As root the server runs as "nobody"
# (PostgreSQL refuses root), the directory owned by it.  No stdin needed.
#
#   pg_start DIR    make and start a cluster in DIR/pg (DIR exists; made
#                   searchable (0711) so the server user reaches it); sets
#                   PG_DIR, PG_USER (the superuser, "smime") and PG_URI (its
#                   maintenance database, postgresql://smime@/postgres?host=
#                   ...); 0, or 1 with the log as "# " lines
#   pg_uri DBNAME   the URI of database DBNAME of the cluster
#   pg_createdb DBNAME   create it (owner PG_USER); 0 or 1
#   pg_psql DBNAME SQL   run SQL with psql (-At: bare rows; SQL "-": read
#                   from stdin; notices below warnings not shown); its status
#   pg_stop         stop the cluster and remove PG_DIR (fine when none)
#   pg_halt         stop the server (-m immediate: as if it died), keeping
#                   the cluster; 0 or 1
#   pg_resume       start the halted cluster again; 0, or 1 with the log
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_DIR= PG_USER=smime PG_URI= PG_RUNAS=

# Run a command as the server's user (nobody under root, else oneself).
pg_as() {
	if [ -n "$PG_RUNAS" ]; then
		setpriv --reuid="$PG_RUNAS" --regid="$(id -g "$PG_RUNAS")" \
			--clear-groups -- "$@"
	else
		"$@"
	fi
}

pg_start() {
	[ -x "$PG_BIN/initdb" ] || {
		echo "# pg_start: no $PG_BIN/initdb (install postgresql-15)"
		return 1
	}
	PG_DIR=$1/pg
	mkdir -p "$PG_DIR" || return 1
	PG_RUNAS=
	if [ "$(id -u)" = 0 ]; then
		PG_RUNAS=nobody
		chmod 711 "$1"
		chown "$PG_RUNAS" "$PG_DIR"
	fi
	chmod 700 "$PG_DIR"
	if ! pg_as "$PG_BIN/initdb" -D "$PG_DIR/data" -U "$PG_USER" \
		--auth=trust --no-locale -E UTF8 </dev/null >"$PG_DIR/initdb.log" 2>&1; then
		sed 's/^/# initdb: /' "$PG_DIR/initdb.log"
		return 1
	fi
	cat >>"$PG_DIR/data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$PG_DIR'
fsync = off
max_connections = 50
EOF
	if ! pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" \
		-w -t 60 start </dev/null >/dev/null 2>&1; then
		sed 's/^/# postgres: /' "$PG_DIR/server.log"
		return 1
	fi
	PG_URI=$(pg_uri postgres)
	return 0
}

pg_uri() {
	echo "postgresql://$PG_USER@/$1?host=$PG_DIR"
}

pg__psql() { # DBNAME PSQL-ARGS...
	_pq_db=$1
	shift
	PGOPTIONS="-c client_min_messages=warning" \
		"$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$(pg_uri "$_pq_db")" "$@"
}

pg_psql() {
	if [ "$2" = - ]; then
		pg__psql "$1" -f -
	else
		pg__psql "$1" -c "$2" </dev/null
	fi
}

pg_createdb() {
	pg_psql postgres "CREATE DATABASE $1" >/dev/null
}

pg_halt() {
	pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop \
		</dev/null >/dev/null 2>&1
}

pg_resume() {
	pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" \
		-w -t 60 start </dev/null >/dev/null 2>&1 && return 0
	tail -20 "$PG_DIR/server.log" | sed 's/^/# postgres: /'
	return 1
}

pg_stop() {
	[ -n "$PG_DIR" ] || return 0
	if [ -f "$PG_DIR/data/postmaster.pid" ]; then
		pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop \
			</dev/null >/dev/null 2>&1
	fi
	rm -rf "$PG_DIR"
	PG_DIR=
}
