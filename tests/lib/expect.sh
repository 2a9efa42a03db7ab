# tests/lib/expect.sh -- command checks for the smimectl and e2e tests.  Source it
# after tests/lib/tap.sh; the tests set $work (output goes to $work/out, or
# to $EXPECT_OUT when set) and, for q, $db.
#   expect CODE DESCRIPTION COMMAND...   the command exits with CODE
#   has TEXT DESCRIPTION                 $work/out holds the fixed string TEXT
#   q SQL                                sqlite3 "$db" SQL; on PostgreSQL
#                                        (me_db_pg) with $db a WORK/smime.db,
#                                        WORK's database through psql (me_sql)
#   q_is WANT DESCRIPTION SQL            one check: q SQL prints WANT (the
#                                        result is added to DESCRIPTION and
#                                        left in $qr)
#   q_rows_is WANT DESCRIPTION SQL       the same with the rows joined by ','
#                                        (group_concat is SQLite's alone)
#   ctl DESCRIPTION ARGS...             smimectl -c "$conf" ARGS succeeds

expect() {
	_want=$1 _what=$2
	shift 2
	"$@" >"${EXPECT_OUT:-$work/out}" 2>&1
	_got=$?
	if [ "$_got" = "$_want" ]; then ok "$_what (exit $_got)"; else
		nok "$_what (exit $_got, want $_want)"
		sed 's/^/#   /' "${EXPECT_OUT:-$work/out}" | head -8
	fi
}

has() {
	if grep -qF -- "$1" "${EXPECT_OUT:-$work/out}"; then ok "$2"; else
		nok "$2"
		echo "#   wanted: $1"
		sed 's/^/#   /' "${EXPECT_OUT:-$work/out}" | head -8
	fi
}

q() {
	case "$db" in
	*/smime.db) if me_db_pg; then
		me_sql "${db%/smime.db}" "$1"
		return
	fi ;;
	esac
	sqlite3 "$db" "$1"
}

q_is() {
	qr=$(q "$3")
	[ "$qr" = "$1" ]
	tap $? "$2 ($qr)"
}

q_rows_is() {
	qr=$(q "$3" | paste -sd,)
	[ "$qr" = "$1" ]
	tap $? "$2 ($qr)"
}

# ctl DESCRIPTION ARGS...: smimectl -c "$conf" ARGS succeeds ($CTL is the
# smimectl binary; its output goes to $work/ctl.out and is shown on failure)
ctl() {
	_d=$1
	shift
	if "$CTL" -c "$conf" "$@" >"$work/ctl.out" 2>&1; then
		ok "$_d"
	else
		nok "$_d"
		echo "# smimectl -c CONF $*"
		sed 's/^/#   /' "$work/ctl.out"
	fi
}
