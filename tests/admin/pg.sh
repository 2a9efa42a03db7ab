#!/bin/sh
# PostgreSQL as the store (issue 16, the database interface): a private
# PostgreSQL 15 (tests/lib/pg.sh: initdb in $work, a unix socket only,
# stopped and removed at the end).  The unit tests that use a database run
# again with SMIME_TEST_DB_URI, on PostgreSQL (fresh schema and migrations
# from old versions included); then smimectl and the milter with
# `database` a postgresql:// URI: init, import and map, show, mail signed
# with the certificates from PostgreSQL and audited there, audit verify, a
# changed row found, unmap and map, revoke; a URI with a password is
# refused.  Prints TAP.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
. "$TOP/tests/lib/pg.sh"
fx_begin pg
mpid=
fx_on_exit() {
	me_stop "$mpid"
	pg_stop
}

pg_start "$work" || bail "a private PostgreSQL 15"
ok "a private PostgreSQL on a unix socket in $PG_DIR"

# ---- the unit tests on PostgreSQL: every check passes, and as many as on
# SQLite (each binary's own count, run here on both)
for t in test_db test_db_schema test_audit test_audit_node test_recipient \
	test_evidence test_smime_verify test_snapshot test_inbound test_message \
	test_crl test_ocsp test_metrics test_db_jobs; do
	bin=$TOP/tests/unit/$t
	[ -x "$bin" ] || bail "$bin is not built (make test-bins)"
	"$bin" >"$work/$t.sqlite.log" 2>&1 </dev/null
	ns=$(grep -c '^ok ' "$work/$t.sqlite.log")
	SMIME_TEST_DB_URI=$PG_URI "$bin" >"$work/$t.pg.log" 2>&1 </dev/null
	rc=$?
	np=$(grep -c '^ok ' "$work/$t.pg.log")
	nf=$(grep -c '^not ok ' "$work/$t.pg.log")
	[ "$rc" = 0 ] && [ "$nf" = 0 ] && [ "$np" -gt 0 ] && [ "$np" = "$ns" ]
	tap $? "$t on PostgreSQL: $np checks pass, $nf fail (SQLite: $ns)"
	if [ "$rc" != 0 ] || [ "$nf" != 0 ]; then
		grep -E '^(not ok|#)' "$work/$t.pg.log" | head -20 | sed 's/^/#   /'
	fi
done

# ---- smimectl and the milter on a postgresql:// URI
fx_pki || bail "test PKI"
pg_createdb smime || bail "CREATE DATABASE smime"
uri=$(pg_uri smime)
set -- $(me_free_ports 1)
port=$1
conf=$work/m.conf
me_conf "$conf" "$work" "inet:$port@127.0.0.1" "database = \"$uri\";"

me_conf "$work/pw.conf" "$work" "inet:$port@127.0.0.1" \
	"database = \"postgresql://smime:secret@/smime?host=$PG_DIR\";"
expect 73 "a URI with a password is refused" "$CTL" -c "$work/pw.conf" init
has "a password in the URI is refused: put it in ~/.pgpass" "... and says where it goes"
me_conf "$work/pw2.conf" "$work" "inet:$port@127.0.0.1" \
	"database = \"postgres://smime@/smime?host=$PG_DIR&password=secret\";"
expect 73 "... also as password= (postgres://)" "$CTL" -c "$work/pw2.conf" init

expect 0 "init on PostgreSQL" "$CTL" -c "$conf" init
has "schema version 9" "... at schema version 9"
v=$(pg_psql smime "SELECT version FROM schema_version")
t=$(pg_psql smime "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
[ "$v" = 9 ] && [ "$t" = 13 ]
tap $? "schema_version says 9; the 12 tables and schema_version are there ($v, $t)"
expect 0 "init again changes nothing" "$CTL" -c "$conf" init

me_import "$conf" "$work/pki" andi sekda noreply legacy ||
	bail "imports into PostgreSQL"
ok "andi, sekda, noreply and legacy imported and mapped"
expect 0 "list" "$CTL" -c "$conf" list
has "andi@banjarkota.go.id" "... shows andi"
expect 0 "show andi" "$CTL" -c "$conf" show andi@banjarkota.go.id
has "status:       active" "... active"
has "history:" "... with its history"

sid=$(pg_psql smime "SELECT cert_id FROM mailboxes WHERE address = 'sekda@banjarkota.go.id'")
expect 0 "unmap sekda" "$CTL" -c "$conf" unmap sekda@banjarkota.go.id
q1=$(pg_psql smime "SELECT count(*) FROM mailboxes WHERE address = 'sekda@banjarkota.go.id'")
expect 0 "map sekda to its certificate again, by id" "$CTL" -c "$conf" map sekda@banjarkota.go.id "$sid"
q2=$(pg_psql smime "SELECT cert_id FROM mailboxes WHERE address = 'sekda@banjarkota.go.id'")
h=$(pg_psql smime "SELECT string_agg(event, ',' ORDER BY id) FROM mailbox_history WHERE address = 'sekda@banjarkota.go.id'")
[ "$q1" = 0 ] && [ "$q2" = "$sid" ] && [ "${h%unmapped,mapped}" != "$h" ]
tap $? "... the mapping gone, then back, in PostgreSQL, with its history ($q1, $q2, $h)"

# mail through the milter, its certificates and audit rows in PostgreSQL
printf 'From: andi@banjarkota.go.id\r\nTo: partner@example.org\r\nSubject: pg\r\nMessage-ID: <pg1@banjarkota.go.id>\r\n\r\nsigned from PostgreSQL\r\n' >"$work/m1.eml"
printf 'From: nobody@banjarkota.go.id\r\nTo: partner@example.org\r\nSubject: pg\r\nMessage-ID: <pg2@banjarkota.go.id>\r\n\r\nno certificate\r\n' >"$work/m2.eml"
me_start "$conf" "$work/milter.log" "$port" || bail "the milter on PostgreSQL"
mpid=$ME_PID
for i in 1 2; do
	$PY "$CLI" --socket "inet:$port@127.0.0.1" --rcpt partner@example.org \
		--qid "PG$i" "$work/m$i.eml" >"$work/cli$i.out" 2>&1 ||
		{ sed 's/^/#   /' "$work/cli$i.out"; bail "miltercli message $i"; }
done
grep -q 'multipart/signed' "$work/cli1.out"
tap $? "andi's message is signed with the certificate from PostgreSQL"
me_stop "$mpid" # the audit queue is written at shutdown
mpid=
a=$(pg_psql smime "SELECT string_agg(queue_id || ':' || action, ',' ORDER BY id) FROM audit")
[ "$a" = "PG1:signed,PG2:unsigned" ]
tap $? "the audit rows are in PostgreSQL ($a)"
last=$(pg_psql smime "SELECT hash FROM audit ORDER BY id DESC LIMIT 1")
expect 0 "audit verify" "$CTL" -c "$conf" audit verify
has "audit log OK: 2 rows, last hash $last" "... 2 rows, the last row's hash"
pg_psql smime "UPDATE audit SET result = 'forged' WHERE id = 1" >/dev/null
expect 1 "a row changed in PostgreSQL breaks the chain" "$CTL" -c "$conf" audit verify
has "audit log BROKEN at row 1" "... at row 1"
pg_psql smime "UPDATE audit SET result = 'ok' WHERE id = 1" >/dev/null
expect 0 "put back, it verifies" "$CTL" -c "$conf" audit verify

id=$(pg_psql smime "SELECT cert_id FROM mailboxes WHERE address = 'andi@banjarkota.go.id'")
expect 0 "revoke andi's certificate" "$CTL" -c "$conf" revoke "$id" --reason keyCompromise
s=$(pg_psql smime "SELECT status || ',' || revocation_reason FROM certificates WHERE id = $id")
[ "$s" = "revoked,keyCompromise" ]
tap $? "... revoked in PostgreSQL ($s)"
expect 0 "show andi after the revocation" "$CTL" -c "$conf" show andi@banjarkota.go.id
has "revoked" "... says revoked"

echo "1..$n"
