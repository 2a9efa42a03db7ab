#!/bin/sh
# The admin tests on PostgreSQL (issue 16: the database test set on both
# backends).  A private PostgreSQL 15 (tests/lib/pg.sh), started once;
# then lifecycle.sh, recipients.sh (its schema 3 migration included),
# report.sh and stats.sh run again with
# SMIME_TEST_PG_DIR set, so that me_conf gives each of their work
# directories a database of its own on that cluster (me_db) and their SQL
# goes through psql (me_sql).  Each must end with its plan, every check
# in it passed (a bail or an early end fails), and must have written its
# certificates to PostgreSQL, not to a file.  Prints TAP.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
. "$TOP/tests/lib/pg.sh"
fx_begin pgadmin
fx_on_exit() {
	pg_stop
}

pg_start "$work" || bail "a private PostgreSQL 15"
ok "a private PostgreSQL on a unix socket in $PG_DIR"

for t in lifecycle recipients report stats; do
	before=$(pg_psql postgres "SELECT count(*) FROM pg_database WHERE datname LIKE 't\_%'")
	SMIME_TEST_PG_DIR=$PG_DIR sh "$TOP/tests/admin/$t.sh" \
		>"$work/$t.pg.log" 2>&1 </dev/null
	rc=$?
	plan=$(sed -n 's/^1\.\.\([0-9][0-9]*\)$/\1/p' "$work/$t.pg.log" | tail -1)
	np=$(grep -c '^ok ' "$work/$t.pg.log")
	nf=$(grep -c '^not ok ' "$work/$t.pg.log")
	[ "$rc" = 0 ] && [ "$nf" = 0 ] && [ -n "$plan" ] && [ "$np" -gt 0 ] &&
		[ "$np" = "$plan" ]
	tap $? "$t.sh on PostgreSQL: $np checks pass, $nf fail (planned: ${plan:-none})"
	if [ "$rc" != 0 ] || [ "$nf" != 0 ]; then
		grep -E '^(not ok|#)' "$work/$t.pg.log" | head -20 | sed 's/^/#   /'
	fi
	# its databases are on this cluster, and hold what it imported
	certs=0
	for d in $(pg_psql postgres "SELECT datname FROM pg_database WHERE datname LIKE 't\_%' ORDER BY oid OFFSET $before"); do
		c=$(pg_psql "$d" "SELECT count(*) FROM certificates" 2>/dev/null) || c=0
		certs=$((certs + c))
	done
	[ "$certs" -gt 0 ]
	tap $? "... and wrote to PostgreSQL ($certs certificates in its databases)"
done
echo "1..$n"
