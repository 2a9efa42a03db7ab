# tests/lib/milterenv.sh -- set up and run smime-milter for tests.  Source it
# after setting TOP:  . "$TOP/tests/lib/milterenv.sh"
#
#   me_conf FILE WORK SOCKET [EXTRA_LINE...]
#       Writes a milter config using WORK's database (me_db), WORK/keys, WORK/tmp,
#       WORK/pki/ca-bundle.pem; EXTRA_LINEs (e.g. 'on_no_certificate =
#       "reject";') are appended and override the defaults (the config is
#       written with each key once: an extra line replaces a default line
#       with the same key).  pidfile is FILE.pid.
#   me_db WORK
#       The database of WORK: the SQLite file WORK/smime.db, or, when
#       SMIME_TEST_PG_DIR names the socket directory of a running cluster
#       (tests/admin/pg-admin.sh runs tests so), the URI of a PostgreSQL
#       database of its own for WORK, made empty the first time.
#   me_sql WORK SQL|-   runs SQL (or stdin) on WORK's database, sqlite3 or
#       psql, and prints bare rows ('|' between columns); its status.
#   me_db_version WORK  the schema version of WORK's database.
#   me_db_tables WORK   the names of its tables, one a line, sorted.
#   me_db_pg            true when the tests run on PostgreSQL.
#   me_setup WORK CONF
#       Builds the PKI in WORK/pki, runs `smimectl init` and imports andi
#       (p12), sekda (PEM), noreply (p12), legacy (p12).  Prints "# ..." on
#       failure and returns 1.
#   me_import CONF PKI ITEM...
#       Quietly, in order: "init" runs `smimectl init`, a NAME imports
#       NAME@banjarkota.go.id from PKI (me_import_cmd).  Prints "# ..." and
#       returns 1 at the first failure (output in PKI/../ctl.log).
#   me_import_cmd NAME PKI COMMAND...
#       Runs COMMAND... import --mailbox NAME@banjarkota.go.id with NAME's
#       kind and files in PKI (tests/lib/pki.sh): sekda role (PEM cert and
#       key), noreply system (PKCS#12), any other individual (PKCS#12).
#   me_start CONF LOG PORT   starts `smime-milter -c CONF -f` in the
#       background, waits for 127.0.0.1:PORT; sets ME_PID; 1 on failure.
#   me_stop PID [SECONDS]    TERM, wait up to SECONDS (5), then KILL (pf_kill).
#   me_wait_log FILE REGEX [SECONDS]
#                            waits (default 5 s) for a line of FILE that
#                            matches; 1 if none came.
#   me_wait_port PORT SECONDS  waits until 127.0.0.1:PORT accepts.
#   me_free_ports N          N free loopback TCP ports.

ME_MILTER=${SMIME_MILTER:-$TOP/milter/smime-milter}
ME_CTL=${SMIMECTL:-$TOP/admin/smimectl}
ME_PY=/usr/bin/python3

# the free-port probe lives in postfix.sh; psql on a test cluster in pg.sh
. "$TOP/tests/lib/postfix.sh"
. "$TOP/tests/lib/pg.sh"
me_free_ports() {
	pf_free_ports "$@"
}

me_conf() {
	_file=$1 _work=$2 _sock=$3
	shift 3
	mkdir -p "$_work/keys" "$_work/tmp"
	chmod 0700 "$_work/keys" "$_work/tmp"
	{
		echo "socket = \"$_sock\";"
		echo "database = \"$(me_db "$_work")\";"
		echo "audit_spool = \"$_work/audit.spool\";"
		echo "key_dir = \"$_work/keys\";"
		echo "temp_dir = \"$_work/tmp\";"
		echo "pidfile = \"$_file.pid\";"
		echo "ca_file = \"$_work/pki/ca-bundle.pem\";"
		echo 'domains = [ "banjarkota.go.id" ];'
		echo 'internal_hosts = [ "127.0.0.0/8", "::1/128" ];'
		echo 'on_error = "tempfail";'
		echo 'on_no_certificate = "accept";'
		echo 'digest = "sha256";'
		echo 'max_memory_body = 1048576;'
	} >"$_file.tmp"
	for _l in "$@"; do
		_k=$(printf '%s' "$_l" | sed 's/[ =:].*//')
		grep -v "^$_k[ =:]" "$_file.tmp" >"$_file.tmp2"
		mv "$_file.tmp2" "$_file.tmp"
		printf '%s\n' "$_l" >>"$_file.tmp"
	done
	mv "$_file.tmp" "$_file"
}

me_db_pg() {
	[ -n "${SMIME_TEST_PG_DIR:-}" ]
}

# the PostgreSQL database name of work directory $1
me_db_name() {
	echo "t_$(printf '%s' "$1" | md5sum | cut -c1-16)"
}

# pg.sh's functions on the cluster of SMIME_TEST_PG_DIR (a test that runs
# under pg-admin.sh starts none of its own)
me_pg() {
	PG_DIR=$SMIME_TEST_PG_DIR "$@"
}

me_db() {
	if ! me_db_pg; then
		echo "$1/smime.db"
		return 0
	fi
	_dn=$(me_db_name "$1")
	if [ ! -e "$1/.pg-$_dn" ]; then
		me_pg pg_createdb "$_dn" && mkdir -p "$1" && : >"$1/.pg-$_dn"
	fi
	me_pg pg_uri "$_dn"
}

me_sql() {
	if me_db_pg; then
		me_pg pg_psql "$(me_db_name "$1")" "$2"
	elif [ "$2" = - ]; then
		sqlite3 "$1/smime.db"
	else
		sqlite3 "$1/smime.db" "$2" </dev/null
	fi
}

me_db_version() {
	if me_db_pg; then
		me_sql "$1" "SELECT max(version) FROM schema_version"
	else
		me_sql "$1" "PRAGMA user_version"
	fi
}

me_db_tables() {
	if me_db_pg; then
		me_sql "$1" "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1"
	else
		me_sql "$1" "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1"
	fi
}

me_setup() {
	_work=$1 _conf=$2
	if ! sh "$TOP/tests/lib/pki.sh" "$_work/pki" >"$_work/pki.log" 2>&1; then
		sed 's/^/# pki: /' "$_work/pki.log"
		return 1
	fi
	me_import "$_conf" "$_work/pki" init andi sekda noreply legacy
}

me_import() {
	_ic=$1 _ip=$2
	shift 2
	for _in in "$@"; do
		if [ "$_in" = init ]; then
			"$ME_CTL" -c "$_ic" init >"$_ip/../ctl.log" 2>&1
		else
			me_import_cmd "$_in" "$_ip" "$ME_CTL" -c "$_ic" >"$_ip/../ctl.log" 2>&1
		fi || {
			echo "# smimectl -c $_ic: $_in failed:"
			sed 's/^/#   /' "$_ip/../ctl.log"
			return 1
		}
	done
	return 0
}

me_import_cmd() {
	_mn=$1 _mp=$2
	shift 2
	case $_mn in
	sekda) set -- "$@" import --mailbox "$_mn@banjarkota.go.id" --kind role \
		--cert "$_mp/$_mn.crt.pem" --key "$_mp/$_mn.key.pem" ;;
	noreply) set -- "$@" import --mailbox "$_mn@banjarkota.go.id" --kind system \
		--p12 "$_mp/$_mn.p12" --passphrase-file "$_mp/$_mn.pass" ;;
	*) set -- "$@" import --mailbox "$_mn@banjarkota.go.id" --kind individual \
		--p12 "$_mp/$_mn.p12" --passphrase-file "$_mp/$_mn.pass" ;;
	esac
	"$@"
}

# (postfix.sh has the port probe)
me_wait_port() {
	pf__wait_port "$@"
}

me_start() {
	"$ME_MILTER" -c "$1" -f >"$2" 2>&1 &
	ME_PID=$!
	if me_wait_port "$3" 15 && kill -0 "$ME_PID" 2>/dev/null; then
		return 0
	fi
	echo "# smime-milter -c $1 -f did not come up on port $3"
	tail -20 "$2" | sed 's/^/#   milter: /'
	return 1
}

me_stop() {
	[ -n "${1:-}" ] || return 0
	pf_kill "$1" "${2:-5}"
	return 0
}

me_wait_log() {
	_wi=0
	while ! grep -q "$2" "$1" 2>/dev/null && [ $_wi -lt $((${3:-5} * 10)) ]; do
		sleep 0.1
		_wi=$((_wi + 1))
	done
	grep -q "$2" "$1" 2>/dev/null
}
