#!/bin/sh
# smimectl migrate --to URI (issue 16): an SQLite database with real
# content made the normal way (init, imports, a renewal that supersedes a
# certificate, recipient certificates, a CRL, mail signed by the daemon, an
# RFC 3161 anchor) copied into an empty PostgreSQL database of a private
# PostgreSQL 15 (tests/lib/pg.sh).  On the copy: audit verify passes with
# the source's head hash, list, show, recipient list and report print what
# they print on the source, new imports get new ids (the identity
# sequences were set), and the milter signs from it.  Refusals, each with
# its exit code and message and nothing written: a target that is not
# empty, a source at an old schema, a source whose chain is broken, a
# source with text that is not UTF-8 (rolled back, the row named), a URI
# with a password, an unreachable server, a target that is no
# postgresql:// URI.  The unit test test_db_copy on both backends.
# Prints TAP.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
. "$TOP/tests/lib/pg.sh"
. "$TOP/tests/lib/tsa.sh"
fx_begin migrate
# loopback only: no proxy from the environment (libcurl reads these)
unset http_proxy https_proxy HTTPS_PROXY all_proxy ALL_PROXY
mpid=
fx_on_exit() {
	me_stop "$mpid"
	tsa_stop
	pg_stop
}

pg_start "$work" || bail "a private PostgreSQL 15"
ok "a private PostgreSQL on a unix socket in $PG_DIR"

# ---- the pure parts and the copy in C, on SQLite and on PostgreSQL
bin=$TOP/tests/unit/test_db_copy
[ -x "$bin" ] || bail "$bin is not built (make test-bins)"
unit() { # unit NAME [URI]: test_db_copy into SQLite, or PostgreSQL at URI
	SMIME_TEST_DB_URI=${2:-} "$bin" >"$work/u.$1" 2>&1 </dev/null &&
		! grep -q '^not ok' "$work/u.$1"
	tap $? "test_db_copy into $1: $(grep -c '^ok ' "$work/u.$1") checks pass"
	grep -E '^(not ok|#)' "$work/u.$1" | head -10 | sed 's/^/#   /'
}
unit SQLite
unit PostgreSQL "$PG_URI"

# ---- a source with real content
fx_pki || bail "test PKI"
t=$work/tsa
mkdir -p "$t"
tsa_start "$t" || bail "the loopback TSA"
set -- $(me_free_ports 1)
port=$1
ts="timestamp_url = \"$tsa_url\";"
tsca="timestamp_ca_file = \"$t/a-ca.crt\";"
conf=$work/m.conf
db=$work/smime.db
me_conf "$conf" "$work" "inet:$port@127.0.0.1" "$ts" "$tsca"
me_import "$conf" "$pki" init andi sekda noreply legacy || bail "init and imports"
ctl "renew andi (a new key and CSR)" renew andi@banjarkota.go.id --out "$work"
openssl x509 -req -in "$work/andi@banjarkota.go.id.csr.pem" \
	-CA "$pki/inter.crt.pem" -CAkey "$pki/inter.key.pem" -set_serial 0x7001 \
	-days 365 -copy_extensions copyall -out "$work/andi-new.crt.pem" 2>/dev/null ||
	bail "the CA issues andi's new certificate"
ctl "import andi's renewed certificate" import --mailbox andi@banjarkota.go.id \
	--kind individual --cert "$work/andi-new.crt.pem"
ctl "recipient import mitra and auditor" recipient import \
	"$pki/mitra.crt.pem" "$pki/auditor.crt.pem"
ctl "crl import" crl import "$pki/crl.pem"

# mail through the daemon: audit rows (written at its shutdown)
mail() { # mail CONF QID FROM: one message through the daemon of CONF
	printf 'From: %s\r\nTo: partner@example.org\r\nSubject: m\r\nMessage-ID: <%s@banjarkota.go.id>\r\n\r\nbody %s\r\n' \
		"$3" "$2" "$2" >"$work/$2.eml"
	$PY "$CLI" --socket "inet:$port@127.0.0.1" --rcpt partner@example.org \
		--qid "$2" "$work/$2.eml" >"$work/$2.out" 2>&1 ||
		{ sed 's/^/#   /' "$work/$2.out"; bail "miltercli $2"; }
}
me_start "$conf" "$work/milter.log" "$port" || bail "the milter on SQLite"
mpid=$ME_PID
mail "$conf" S1 andi@banjarkota.go.id
mail "$conf" S2 sekda@banjarkota.go.id
mail "$conf" S3 nobody@banjarkota.go.id
me_stop "$mpid"
mpid=
ctl "audit anchor over the head of the chain" audit anchor
me_start "$conf" "$work/milter.log" "$port" || bail "the milter on SQLite"
mpid=$ME_PID
mail "$conf" S4 noreply@banjarkota.go.id
me_stop "$mpid"
mpid=
c=$(q "SELECT (SELECT count(*) FROM audit) || ',' ||
	(SELECT count(*) FROM audit_anchors) || ',' ||
	(SELECT count(*) FROM certificates WHERE status = 'superseded') || ',' ||
	(SELECT count(*) FROM renewals WHERE completed_at IS NOT NULL) || ',' ||
	(SELECT count(*) FROM recipient_certs) || ',' ||
	(SELECT count(*) FROM revoked_serials) || ',' || (SELECT count(*) FROM crls)")
[ "$c" = "4,1,1,1,2,2,1" ]
tap $? "the source has audit rows, an anchor, a superseded certificate, a renewal, recipients and a CRL ($c)"
expect 0 "audit verify on the source" "$CTL" -c "$conf" audit verify
src_head=$(sed -n 's/^audit log OK: \(.*\)$/\1/p' "$work/out")

# ---- refusals before anything is copied
pg_createdb fresh || bail "CREATE DATABASE fresh"
tables() { pg_psql "$1" "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"; }
expect 64 "a target that is no postgresql:// URI is refused" \
	"$CTL" -c "$conf" migrate --to "$work/other.db"
has "not a postgresql:// URI" "... and says so"
expect 69 "a URI with a password is refused" "$CTL" -c "$conf" migrate \
	--to "postgresql://smime:secret@/fresh?host=$PG_DIR"
has "a password in the URI is refused: put it in ~/.pgpass" "... and says where it goes"
expect 69 "an unreachable server" "$CTL" -c "$conf" migrate \
	--to "postgresql://smime@/fresh?host=$work/nowhere"
has "connection to server" "... libpq says why"
sqlite3 "$db" ".backup '$work/old.db'" && sqlite3 "$work/old.db" "PRAGMA user_version = 7"
me_conf "$work/old.conf" "$work" "inet:$port@127.0.0.1" "database = \"$work/old.db\";"
expect 66 "a source at schema 7 is refused" "$CTL" -c "$work/old.conf" migrate --to "$(pg_uri fresh)"
has 'run "smimectl init"' "... and says to run smimectl init first"
sqlite3 "$db" ".backup '$work/broken.db'" &&
	sqlite3 "$work/broken.db" "UPDATE audit SET result = 'forged' WHERE id = 2"
me_conf "$work/broken.conf" "$work" "inet:$port@127.0.0.1" "database = \"$work/broken.db\";"
expect 65 "a source whose audit chain is broken is refused" \
	"$CTL" -c "$work/broken.conf" migrate --to "$(pg_uri fresh)"
has "the audit chain of the source is broken at row 2" "... at row 2"
pg_createdb latin1 || bail "CREATE DATABASE latin1"
sqlite3 "$db" ".backup '$work/latin1.db'" &&
	sqlite3 "$work/latin1.db" "UPDATE certificates SET unit = CAST(X'44696E617320E9' AS TEXT) WHERE id = 2"
me_conf "$work/latin1.conf" "$work" "inet:$port@127.0.0.1" "database = \"$work/latin1.db\";"
expect 65 "a source with text that is not UTF-8 (a Latin-1 unit) is refused" \
	"$CTL" -c "$work/latin1.conf" migrate --to "$(pg_uri latin1)"
has "table certificates, after 1 rows: column unit of the row whose id is 2 is not UTF-8" \
	"... naming the table, the column and the row"
n0=$(pg_psql latin1 "SELECT count(*) FROM certificates")
[ "$n0" = 0 ]
tap $? "... and the copy is rolled back ($n0 certificates in latin1)"
n0=$(tables fresh)
[ "$n0" = 0 ]
tap $? "nothing was written by the refusals ($n0 tables in fresh)"

# ---- the copy
pg_createdb smime || bail "CREATE DATABASE smime"
uri=$(pg_uri smime)
expect 0 "migrate --to the empty database" "$CTL" -c "$conf" migrate --to "$uri"
cp "$work/out" "$work/migrate.out"
grep -Eq '^audit +4 +4$' "$work/out" && grep -Eq '^audit_anchors +1 +1$' "$work/out" &&
	grep -Eq '^certificates +5 +5$' "$work/out"
tap $? "... a summary per table: rows in the source, rows copied"
has "audit chain: 4 rows, head row 4" "... the audit chain's head"
has "identity sequences set past the largest id: 7" "... 7 identity sequences set"
has "set  database = \"$uri\";" "... and the next steps"
cmp=$(pg_psql smime "SELECT (SELECT count(*) FROM audit) || ',' || (SELECT count(*) FROM audit_anchors)
	|| ',' || (SELECT count(*) FROM certificates WHERE status = 'superseded') || ',' ||
	(SELECT count(*) FROM renewals WHERE completed_at IS NOT NULL) || ',' ||
	(SELECT count(*) FROM recipient_certs) || ',' || (SELECT count(*) FROM revoked_serials)
	|| ',' || (SELECT count(*) FROM crls)")
[ "$cmp" = "$c" ]
tap $? "the same rows in PostgreSQL ($cmp)"
a=$(q "SELECT group_concat(id || ':' || queue_id || ':' || hash, ' ') FROM (SELECT * FROM audit ORDER BY id)")
b=$(pg_psql smime "SELECT string_agg(id || ':' || queue_id || ':' || hash, ' ' ORDER BY id) FROM audit")
[ -n "$a" ] && [ "$a" = "$b" ]
tap $? "audit ids and hashes kept"
tok_a=$(q "SELECT hex(token) FROM audit_anchors")
tok_b=$(pg_psql smime "SELECT upper(encode(token, 'hex')) FROM audit_anchors")
[ -n "$tok_a" ] && [ "$tok_a" = "$tok_b" ]
tap $? "the anchor's token is copied as bytes (${#tok_b} hex digits)"

pgconf=$work/pg.conf
me_conf "$pgconf" "$work" "inet:$port@127.0.0.1" "$ts" "$tsca" "database = \"$uri\";"
expect 0 "audit verify on the copy" "$CTL" -c "$pgconf" audit verify
has "audit log OK: $src_head" "... the same rows and head hash as the source ($src_head)"
has "1 anchors ok" "... and the anchor holds"

year=$(date -u +%Y)
same() { # same WHAT ARGS...: smimectl ARGS prints the same on both
	_w=$1
	shift
	"$CTL" -c "$conf" "$@" >"$work/same.a" 2>&1
	_ra=$?
	"$CTL" -c "$pgconf" "$@" >"$work/same.b" 2>&1
	_rb=$?
	[ "$_ra" = 0 ] && [ "$_rb" = 0 ] && [ -s "$work/same.a" ] &&
		cmp -s "$work/same.a" "$work/same.b"
	tap $? "$_w prints the same on the source and the copy ($(wc -l <"$work/same.b") lines)"
	diff "$work/same.a" "$work/same.b" | head -8 | sed 's/^/#   /'
}
same "list" list
same "list --json" list --json
same "show andi (history included)" show andi@banjarkota.go.id
same "recipient list" recipient list
same "report (csv)" report --year "$year" --format csv
same "report (json)" report --year "$year" --format json

# ---- the target is not empty now: refused, nothing written
sum() { pg_psql smime "SELECT (SELECT count(*) FROM certificates) || ',' || (SELECT count(*) FROM audit) || ',' || (SELECT count(*) FROM mailbox_history)"; }
s0=$(sum)
expect 73 "migrate again into the copy is refused" "$CTL" -c "$conf" migrate --to "$uri"
has "the target is not empty: certificates (5 rows)" "... and names the tables that hold rows"
s1=$(sum)
[ "$s0" = "$s1" ]
tap $? "... nothing written ($s1)"

# ---- PostgreSQL goes on from the copy: new ids, the milter signs
maxc=$(pg_psql smime "SELECT max(id) FROM certificates")
maxr=$(pg_psql smime "SELECT max(id) FROM recipient_certs")
me_import "$pgconf" "$pki" ec || bail "import ec into the copy"
ok "a new import on PostgreSQL after the copy"
expect 0 "a new recipient import on PostgreSQL" \
	"$CTL" -c "$pgconf" recipient import "$pki/ecmitra.crt.pem"
ids=$(pg_psql smime "SELECT (SELECT id FROM certificates WHERE mailbox = 'ec@banjarkota.go.id') || ',' ||
	(SELECT id FROM recipient_certs WHERE address = 'ecmitra@jabarprov.go.id')")
[ "$ids" = "$((maxc + 1)),$((maxr + 1))" ]
tap $? "... the new rows take the ids after the copied ones ($ids)"
me_start "$pgconf" "$work/milter-pg.log" "$port" || bail "the milter on the copy"
mpid=$ME_PID
mail "$pgconf" P1 andi@banjarkota.go.id
mail "$pgconf" P2 ec@banjarkota.go.id
me_stop "$mpid"
mpid=
grep -q 'multipart/signed' "$work/P1.out" && grep -q 'multipart/signed' "$work/P2.out"
tap $? "the milter signs from the copy (andi's renewed and ec's new certificate)"
r=$(pg_psql smime "SELECT string_agg(id || ':' || queue_id || ':' || action, ',' ORDER BY id) FROM audit WHERE id > 4")
[ "$r" = "5:P1:signed,6:P2:signed" ]
tap $? "... its audit rows follow the copied chain ($r)"
expect 0 "audit verify on PostgreSQL after new mail" "$CTL" -c "$pgconf" audit verify
has "audit log OK: 6 rows" "... 6 rows"

# ---- a source written during the copy: rolled back, and run again
sqlite3 "$db" ".backup '$work/busy.db'" && sqlite3 "$work/busy.db" \
	"WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 20000)
	 INSERT INTO crls (issuer, entries, imported_at) SELECT 'bulk', i, 0 FROM c"
me_conf "$work/busy.conf" "$work" "inet:$port@127.0.0.1" "database = \"$work/busy.db\";"
pg_createdb busy || bail "CREATE DATABASE busy"
( # a writer, as a milter would be, until told to stop
	i=0
	while [ ! -f "$work/stop" ] && [ $i -lt 600 ]; do
		sqlite3 -cmd ".timeout 5000" "$work/busy.db" \
			"INSERT INTO crls (issuer, entries, imported_at) VALUES ('w', 0, 0)"
		sleep 0.05
		i=$((i + 1))
	done
) &
wpid=$!
sleep 0.3
expect 75 "a source written during the copy: the copy is rolled back" \
	"$CTL" -c "$work/busy.conf" migrate --to "$(pg_uri busy)"
touch "$work/stop"
wait "$wpid"
has "the source was written while it was copied" "... and says to stop the writers"
k=$(pg_psql busy "SELECT count(*) FROM crls")
[ "$k" = 0 ]
tap $? "... no row is left in the target ($k)"
t0=$(date +%s)
expect 0 "with the writer stopped, migrate into the same (empty) database" \
	"$CTL" -c "$work/busy.conf" migrate --to "$(pg_uri busy)"
t1=$(date +%s)
w=$(sqlite3 "$work/busy.db" "SELECT count(*) FROM crls")
grep -Eq "^crls +$w +$w\$" "$work/out"
tap $? "... all $w crls rows copied in $((t1 - t0)) s"

# ---- a copy that does not verify: reported, and the copied rows deleted
# again (a trigger on the target changes what is written, as a faulty
# target would)
pg_createdb trig || bail "CREATE DATABASE trig"
me_conf "$work/trig.conf" "$work" "inet:$port@127.0.0.1" "database = \"$(pg_uri trig)\";"
expect 0 "init the target first (empty tables are fine)" "$CTL" -c "$work/trig.conf" init
pg_psql trig "CREATE FUNCTION tamper() RETURNS trigger LANGUAGE plpgsql AS
	\$\$ BEGIN NEW.result := 'tampered'; RETURN NEW; END \$\$;
	CREATE TRIGGER tamper BEFORE INSERT ON audit FOR EACH ROW EXECUTE FUNCTION tamper()" ||
	bail "a trigger on the target"
expect 70 "a copy whose audit chain does not verify fails" "$CTL" -c "$conf" migrate --to "$(pg_uri trig)"
has "the audit chain of the copy is broken at row 1" "... and says where"
k=$(pg_psql trig "SELECT (SELECT count(*) FROM certificates) + (SELECT count(*) FROM audit) + (SELECT count(*) FROM mailbox_history)")
[ "$k" = 0 ]
tap $? "... the copied rows are deleted again ($k left)"

echo "1..$n"
