#!/bin/sh
# The audit log as a hash chain (issue 6, Pasal 3, 8) and SQL
# metacharacters that stay data: the daemon signs and passes messages whose
# From and Message-ID carry SQL, LIKE and escape metacharacters and UTF-8;
# they land byte for byte in audit.message_id and audit.from_addr, every
# table is still there, and `smimectl audit verify` (text and --json)
# accepts the chain.  Then each kind of tampering with sqlite3 (a column
# changed, a row deleted, a forged row inserted, two rows swapped, a hash
# removed) is named at the right row with exit 1; a schema 4 database
# with audit rows becomes verifiable through `smimectl init`; two daemons
# appending to one database at once keep one chain.  Prints TAP.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
fx_begin audit
pid1= pid2=
fx_on_exit() {
	me_stop "$pid1"
	me_stop "$pid2"
}
# restore the untouched copy of the database
restore() { cp "$work/good.db" "$db" && rm -f "$db-wal" "$db-shm"; }

set -- $(me_free_ports 2)
port1=$1 port2=$2
conf=$work/m.conf
db=$work/smime.db
me_conf "$conf" "$work" "inet:$port1@127.0.0.1"
me_setup "$work" "$conf" || bail "PKI, init and imports"

expect 0 "an empty audit log verifies" "$CTL" -c "$conf" audit verify
has "audit log OK: 0 rows, last hash 0000000000000000000000000000000000000000000000000000000000000000" \
	"... 0 rows, the zero hash"

# ---- SQL metacharacters in From and Message-ID, through the daemon
# Each message: the From header, the Message-ID header, the from_addr the
# milter reads from it (the address, lower-cased, without white space) and
# the message_id stored (the header value as sent).
$PY - "$work" <<'EOF' || bail "test messages"
import json, sys
work = sys.argv[1]
cases = [
    ('"\'); DROP TABLE audit; --" <andi@banjarkota.go.id>',
     "<'); DROP TABLE audit; --@banjarkota.go.id>",
     "andi@banjarkota.go.id"),
    ("Mallory <');drop_table_audit;--@banjarkota.go.id>",
     '<" OR 1=1 --@banjarkota.go.id>',
     "');drop_table_audit;--@banjarkota.go.id"),
    ('"\\" OR 1=1 --" <"x\\"or1=1--"@banjarkota.go.id>',
     "<50%_off\\%\\\\x'';@banjarkota.go.id>",
     '"x\\"or1=1--"@banjarkota.go.id'),
    ("100% \\ off <100%\\off_%@banjarkota.go.id>",
     "<\\'\\\";%%_\\0@banjarkota.go.id>",
     "100%\\off_%@banjarkota.go.id"),
    ("Bapak \u00d1o\u00f1o \u65e5\u672c <\u00f1o\u00f1o.\u65e5\u672c@banjarkota.go.id>",
     "<\u00fcn\u00efc\u00f8d\u00e9-\u65e5\u672c\u8a9e-\U0001F600-\x7f\u00ad@banjarkota.go.id>",
     "\u00f1o\u00f1o.\u65e5\u672c@banjarkota.go.id"),
]
want = []
for i, (frm, mid, addr) in enumerate(cases, 1):
    with open(f"{work}/sql{i}.eml", "wb") as f:
        f.write((f"From: {frm}\r\nTo: partner@example.org\r\n"
                 f"Subject: audit {i}\r\nMessage-ID: {mid}\r\n"
                 f"Date: Mon, 1 Jan 2024 00:00:00 +0700\r\n\r\n"
                 f"body {i}\r\n").encode("utf-8"))
    want.append({"qid": f"SQL{i}", "from_addr": addr, "message_id": mid})
json.dump(want, open(f"{work}/want.json", "w"))
EOF
me_start "$conf" "$work/milter1.log" "$port1" || bail "daemon"
pid1=$ME_PID
i=1
while [ $i -le 5 ]; do
	$PY "$CLI" --socket "inet:$port1@127.0.0.1" --rcpt partner@example.org \
		--qid "SQL$i" "$work/sql$i.eml" >"$work/cli$i.out" 2>&1 ||
		{ sed 's/^/#   /' "$work/cli$i.out"; bail "miltercli message $i"; }
	i=$((i + 1))
done
r=$(grep -h '\.result=' "$work"/cli*.out | tr '\n' ' ')
ok "five messages through the daemon ($r)"
me_stop "$pid1" # the queue is written at shutdown
pid1=
$PY - "$db" "$work/want.json" >"$work/out" 2>&1 <<'EOF'
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.text_factory = bytes
bad = 0
for w in json.load(open(sys.argv[2])):
    rows = db.execute("SELECT from_addr, message_id, typeof(from_addr),"
                      " typeof(message_id) FROM audit WHERE queue_id = ?",
                      (w["qid"],)).fetchall()
    if len(rows) != 1:
        print(f"{w['qid']}: {len(rows)} rows"); bad += 1; continue
    fa, mi, tf, tm = rows[0]
    if fa != w["from_addr"].encode() or tf != b"text":
        print(f"{w['qid']}: from_addr {fa!r} ({tf}), want {w['from_addr'].encode()!r}"); bad += 1
    if mi != w["message_id"].encode() or tm != b"text":
        print(f"{w['qid']}: message_id {mi!r} ({tm}), want {w['message_id'].encode()!r}"); bad += 1
sys.exit(1 if bad else 0)
EOF
tap $? "From and Message-ID are stored byte for byte as text (one row each)"
[ -s "$work/out" ] && sed 's/^/#   /' "$work/out"
q_is "audit,certificates,mailbox_history,mailboxes,recipient_certs" "every table is still there" \
	"SELECT group_concat(name) FROM (SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('audit', 'certificates', 'mailboxes', 'mailbox_history', 'recipient_certs') ORDER BY name)"
q_is "signed,unsigned,unsigned,unsigned,unsigned" "andi's message was signed, the others passed unsigned" \
	"SELECT group_concat(action) FROM (SELECT action FROM audit ORDER BY id)"
rows=$(q "SELECT count(*) FROM audit")
last=$(q "SELECT hash FROM audit ORDER BY id DESC LIMIT 1")
expect 0 "the chain verifies" "$CTL" -c "$conf" audit verify
has "audit log OK: $rows rows, last hash $last" "... $rows rows, the last row's hash"
expect 0 "--json" "$CTL" -c "$conf" audit verify --json
$PY -c '
import json, sys
j = json.load(open(sys.argv[1]))
sys.exit(0 if j["ok"] is True and j["rows"] == int(sys.argv[2]) and
         j["last_hash"] == sys.argv[3] and j["broken_id"] is None else 1)' \
	"$work/out" "$rows" "$last"
tap $? "... JSON: ok, rows, last_hash, broken_id null"
cp "$db" "$work/good.db"

# ---- tampering, each named at its row, exit 1
q "UPDATE audit SET from_addr = 'someone.else@banjarkota.go.id' WHERE id = 3"
expect 1 "from_addr of row 3 changed" "$CTL" -c "$conf" audit verify
has "audit log BROKEN at row 3: row content changed" "... row 3, content changed"
has "(2 rows before it verify; last good row 2" "... 2 rows before it"
expect 1 "--json too" "$CTL" -c "$conf" audit verify --json
$PY -c '
import json, sys
j = json.load(open(sys.argv[1]))
sys.exit(0 if j["ok"] is False and j["broken_id"] == 3 and
         j["problem"] == "content-changed" and j["rows"] == 2 else 1)' "$work/out"
tap $? "... JSON: broken_id 3, problem content-changed"

# tampered DESCRIPTION SQL TEXT TEXT-DESCRIPTION: on a fresh copy of the
# database, SQL makes `audit verify` exit 1 and say TEXT
tampered() {
	restore
	q "$2"
	expect 1 "$1" "$CTL" -c "$conf" audit verify
	has "$3" "$4"
}
tampered "one space added to row 5's Message-ID" "UPDATE audit SET message_id = message_id || ' ' WHERE id = 5" \
	"BROKEN at row 5: row content changed" "... row 5"
tampered "row 3 deleted" "DELETE FROM audit WHERE id = 3" \
	"BROKEN at row 4: prev_hash does not match the hash of row 2" "... the next row, 4, no longer links to row 2"
tampered "the first row deleted" "DELETE FROM audit WHERE id = 1" \
	"BROKEN at row 2: prev_hash of the first row is not 64 zeros" "... row 2"
tampered "a forged row appended without a hash" "INSERT INTO audit (at, queue_id, from_addr, action, result) VALUES (strftime('%s','now'), 'FORGED', 'andi@banjarkota.go.id', 'signed', 'ok')" \
	"BROKEN at row 6: hash missing" "... row 6, hash missing"
# a forged row that copies a real row's prev_hash and hash, in a free id
tampered "a forged row with copied hashes in place of row 4" "DELETE FROM audit WHERE id = 4; INSERT INTO audit (id, at, queue_id, from_addr, action, result, prev_hash, hash) SELECT 4, at, 'FORGED', 'andi@banjarkota.go.id', 'signed', 'ok', prev_hash, hash FROM audit WHERE id = 3" \
	"BROKEN at row 4: row content changed" "... row 4"
tampered "rows 2 and 3 swapped" "UPDATE audit SET id = -2 WHERE id = 2; UPDATE audit SET id = 2 WHERE id = 3; UPDATE audit SET id = 3 WHERE id = -2" \
	"BROKEN at row 2:" "... row 2"
tampered "row 2's hash removed" "UPDATE audit SET hash = NULL WHERE id = 2" \
	"BROKEN at row 2: hash missing" "... row 2, hash missing"

restore
expect 0 "the untouched copy verifies again" "$CTL" -c "$conf" audit verify
# anchors: the last row's id and hash, recorded elsewhere
lastid=$(q "SELECT max(id) FROM audit")
expect 0 "--anchor with the last row's hash" "$CTL" -c "$conf" audit verify --anchor "$lastid:$last"
q "DELETE FROM audit WHERE id = $lastid"
expect 0 "the last row deleted: the chain alone cannot tell" "$CTL" -c "$conf" audit verify
expect 1 "... the anchor can" "$CTL" -c "$conf" audit verify --anchor "$lastid:$last"
has "BROKEN at row $lastid: the anchor row is gone" "... the anchor row is gone"
restore
q "UPDATE audit SET from_addr = 'x@banjarkota.go.id' WHERE id = $lastid"
expect 1 "a changed row (with its hash recomputed or not): the anchor differs" \
	"$CTL" -c "$conf" audit verify --json --anchor "$lastid:0000000000000000000000000000000000000000000000000000000000000001"
$PY -c '
import json, sys
j = json.load(open(sys.argv[1]))
sys.exit(0 if j["ok"] is False and j["broken_id"] == int(sys.argv[2]) else 1)' "$work/out" "$lastid"
tap $? "... JSON names row $lastid"
restore
expect 1 "an anchor with another hash" "$CTL" -c "$conf" audit verify --anchor "2:$last"
has "BROKEN at row 2: its hash is not the anchor given" "... row 2"
expect 64 "a malformed anchor" "$CTL" -c "$conf" audit verify --anchor 2:abc
expect 64 "a usage error" "$CTL" -c "$conf" audit verify --bogus
expect 64 "audit without verify" "$CTL" -c "$conf" audit

# ---- two daemons append to one database at once: one chain
me_conf "$work/m2.conf" "$work" "inet:$port2@127.0.0.1"
sed -i "s|^pidfile.*|pidfile = \"$work/m2.conf.pid\";|" "$work/m2.conf"
me_start "$conf" "$work/milter1.log" "$port1" || bail "daemon 1"
pid1=$ME_PID
me_start "$work/m2.conf" "$work/milter2.log" "$port2" || bail "daemon 2"
pid2=$ME_PID
before=$(q "SELECT count(*) FROM audit")
$PY - "$work" "$CLI" "$port1" "$port2" <<'EOF' >"$work/conc.out" 2>&1
import subprocess, sys
work, cli, p1, p2 = sys.argv[1:5]
with open(f"{work}/c.eml", "wb") as f:
    f.write(b"From: Andi <andi@banjarkota.go.id>\r\nTo: x@example.org\r\n"
            b"Subject: c\r\n\r\nbody\r\n")
procs = []
for k, port in enumerate([p1, p2, p1, p2]):
    # 40 messages on one connection per client, two clients per daemon
    procs.append(subprocess.Popen(
        [sys.executable, cli, "--socket", f"inet:{port}@127.0.0.1",
         "--rcpt", "x@example.org", "--qid", f"C{k}"] + [f"{work}/c.eml"] * 40,
        stdout=subprocess.DEVNULL))
sys.exit(max(p.wait() for p in procs))
EOF
tap $? "four clients, two daemons, 160 messages"
me_stop "$pid1"
me_stop "$pid2"
pid1= pid2=
after=$(q "SELECT count(*) FROM audit")
[ $((after - before)) = 160 ]
tap $? "160 audit rows ($before -> $after)"
expect 0 "the chain written by two processes verifies" "$CTL" -c "$conf" audit verify
has "audit log OK: $after rows" "... all $after rows"
q_is 0 "no fork: no row is the predecessor of two" \
	"SELECT count(*) FROM audit a WHERE (SELECT count(*) FROM audit b WHERE b.prev_hash = a.hash) > 1"

# ---- two nodes (schema 9): a chain each, written at once; audit verify
# checks every chain, or the one --node names
host=$(hostname)
me_conf "$work/n2.conf" "$work" "inet:$port2@127.0.0.1" 'node_name = "gw2";'
sed -i "s|^pidfile.*|pidfile = \"$work/n2.conf.pid\";|" "$work/n2.conf"
me_start "$conf" "$work/milter1.log" "$port1" || bail "daemon 1"
pid1=$ME_PID
me_start "$work/n2.conf" "$work/milter2.log" "$port2" || bail "daemon gw2"
pid2=$ME_PID
$PY "$CLI" --socket "inet:$port1@127.0.0.1" --rcpt x@example.org --qid N1 \
	"$work/c.eml" "$work/c.eml" "$work/c.eml" >/dev/null 2>&1 &
c1=$!
$PY "$CLI" --socket "inet:$port2@127.0.0.1" --rcpt x@example.org --qid N2 \
	"$work/c.eml" "$work/c.eml" "$work/c.eml" "$work/c.eml" "$work/c.eml" >/dev/null 2>&1
wait $c1
me_stop "$pid1"
me_stop "$pid2"
pid1= pid2=
nh=$(q "SELECT count(*) FROM audit WHERE node = '$host'")
q_is 5 "node gw2 wrote its 5 rows" "SELECT count(*) FROM audit WHERE node = 'gw2'"
expect 0 "two nodes: audit verify" "$CTL" -c "$conf" audit verify
has "node \"gw2\": audit log OK: 5 rows" "... node gw2's chain: 5 rows"
has "node \"$host\": audit log OK: $nh rows" "... and this host's: $nh rows"
expect 0 "audit verify --node gw2" "$CTL" -c "$conf" audit verify --node gw2
has "node \"gw2\": audit log OK: 5 rows" "... checks gw2's chain"
! grep -q "node \"$host\"" "$work/out"
tap $? "... and only that one"
expect 0 "--json" "$CTL" -c "$conf" audit verify --json
$PY -c '
import json, sys
j = json.load(open(sys.argv[1]))
n = {x["node"]: x["rows"] for x in j["nodes"]}
sys.exit(0 if j["ok"] and n == {"gw2": 5, sys.argv[2]: int(sys.argv[3])} and
         j["rows"] == 5 + int(sys.argv[3]) else 1)' "$work/out" "$host" "$nh"
tap $? "... JSON: each node's rows, and all of them"
g3=$(q "SELECT id FROM audit WHERE node = 'gw2' ORDER BY id LIMIT 1 OFFSET 2")
gh=$(q "SELECT id || ':' || hash FROM audit WHERE node = 'gw2' ORDER BY id DESC LIMIT 1")
expect 0 "--anchor with gw2's head: the chain of its row" "$CTL" -c "$conf" audit verify --anchor "$gh"
q "UPDATE audit SET node = '$host' WHERE id = $g3"
expect 1 "gw2's row $g3 moved to this host's chain" "$CTL" -c "$conf" audit verify
has "audit log BROKEN at row $g3: row content changed" "... found in the chain it was moved to"
expect 1 "... --node gw2" "$CTL" -c "$conf" audit verify --node gw2
has "node \"gw2\": audit log BROKEN at row" "... and gw2's chain misses it"
q "UPDATE audit SET node = 'gw2' WHERE id = $g3"
expect 0 "put back: both verify" "$CTL" -c "$conf" audit verify
expect 1 "--node of no chain" "$CTL" -c "$conf" audit verify --node gw3
has 'no audit chain of node "gw3"' "... says so"

# ---- a schema 4 database with audit rows: init chains them
cp "$db" "$work/v4.db"
db=$work/v4.db
rm -f "$db-wal" "$db-shm"
q "DROP TABLE crl_sources; DROP TABLE ocsp_responses; DROP INDEX audit_node_id; ALTER TABLE audit DROP COLUMN node; ALTER TABLE audit_anchors DROP COLUMN node; ALTER TABLE audit DROP COLUMN cert_issuer; ALTER TABLE audit DROP COLUMN recipients;
	ALTER TABLE audit DROP COLUMN hash; ALTER TABLE audit DROP COLUMN prev_hash;
	INSERT INTO audit (at, queue_id, message_id, from_addr, action, result) VALUES (1600000000, 'OLD', '<old''; --@x>', 'a''b@banjarkota.go.id', 'signed', NULL);
	PRAGMA user_version = 4;" || bail "a schema 4 database"
n4=$(q "SELECT count(*) FROM audit")
sed "s|^database.*|database = \"$db\";|" "$conf" >"$work/v4.conf"
expect 66 "verify on a schema 4 database says to migrate" "$CTL" -c "$work/v4.conf" audit verify
has 'run "smimectl init" to migrate' "... run init"
expect 0 "init migrates 4 -> 7 (5 chains the rows, 6 adds recipients and cert_issuer, 7 audit_anchors)" "$CTL" -c "$work/v4.conf" init
has "schema version 9" "... to version 9"
expect 0 "the old rows verify after the migration" "$CTL" -c "$work/v4.conf" audit verify
has "audit log OK: $n4 rows" "... all $n4 of them"
q "UPDATE audit SET result = 'ok' WHERE queue_id = 'OLD'"
old=$(q "SELECT id FROM audit WHERE queue_id = 'OLD'")
expect 1 "a migrated row changed afterwards" "$CTL" -c "$work/v4.conf" audit verify
has "BROKEN at row $old: row content changed" "... is named (row $old)"
q "UPDATE audit SET result = NULL WHERE queue_id = 'OLD'"
expect 0 "put back, the migrated log verifies again" "$CTL" -c "$work/v4.conf" audit verify
q "UPDATE audit SET recipients = 'budi@banjarkota.go.id' WHERE queue_id = 'OLD'"
expect 1 "recipients added to an old (v1) row afterwards" "$CTL" -c "$work/v4.conf" audit verify
has "BROKEN at row $old: row content changed" "... is named (row $old)"

echo "1..$n"
