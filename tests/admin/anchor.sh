#!/bin/sh
# RFC 3161 anchors of the audit hash chain (issue 14): `smimectl audit
# anchor` asks a loopback TSA (tests/lib/tsa_server.py, `openssl ts -reply`
# behind HTTP, started and stopped here) for a token over the hash of the
# head row and stores it; `openssl ts -verify` accepts the stored token;
# `smimectl audit verify` (text and --json) checks every anchor.  Then: a
# row altered before an anchor (the chain left as it is, or recomputed
# after the change), an anchored row deleted from the end, an anchor's hash
# changed to fit, a token from a TSA that timestamp_ca_file does not trust,
# a TSA that is down or hangs (exit 1, nothing stored), and the
# configuration errors (78).  Audit rows come from the real daemon.
# Prints TAP.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
. "$TOP/tests/lib/tsa.sh"
fx_begin anchor
# loopback only: no proxy from the environment (libcurl reads these)
unset http_proxy https_proxy HTTPS_PROXY all_proxy ALL_PROXY
mpid= tpid=
fx_on_exit() {
	me_stop "$mpid"
	[ -n "$tpid" ] && kill "$tpid" 2>/dev/null
}
restore() { cp "$work/good.db" "$db" && rm -f "$db-wal" "$db-shm"; }

set -- $(me_free_ports 2)
port=$1 closed=$2
db=$work/smime.db
t=$work/tsa
mkdir -p "$t"

# ---- two TSAs: "good" under root A (trusted), "untrusted" under root B
tsa_start "$t" || bail "the loopback TSA"
tpid=$tsa_pid tport=$tsa_port
url=http://127.0.0.1:$tport/tsa/good
ok "a loopback TSA on port $tport"

conf=$work/m.conf
me_conf "$conf" "$work" "inet:$port@127.0.0.1" \
	"timestamp_url = \"$url\";" "timestamp_ca_file = \"$t/a-ca.crt\";"
me_setup "$work" "$conf" || bail "PKI, init and imports"

# ---- configuration errors: 78, nothing asked
me_conf "$work/none.conf" "$work" "inet:$port@127.0.0.1"
expect 78 "no timestamp_url: exit 78" "$CTL" -c "$work/none.conf" audit anchor
has "timestamp_url is not set" "... says timestamp_url is not set"
me_conf "$work/ftp.conf" "$work" "inet:$port@127.0.0.1" \
	"timestamp_url = \"ftp://127.0.0.1:$tport/tsa/good\";" "timestamp_ca_file = \"$t/a-ca.crt\";"
expect 78 "an ftp:// timestamp_url: exit 78" "$CTL" -c "$work/ftp.conf" audit anchor
has "timestamp_url: 'ftp://127.0.0.1:$tport/tsa/good' is not an http:// or https:// URL" "... names the URL"
me_conf "$work/noca.conf" "$work" "inet:$port@127.0.0.1" "timestamp_url = \"$url\";"
expect 78 "timestamp_url without timestamp_ca_file: exit 78" "$CTL" -c "$work/noca.conf" audit anchor
has "timestamp_url needs timestamp_ca_file" "... says it needs timestamp_ca_file"
me_conf "$work/t0.conf" "$work" "inet:$port@127.0.0.1" "timestamp_url = \"$url\";" \
	"timestamp_ca_file = \"$t/a-ca.crt\";" "timestamp_timeout = 0;"
expect 78 "timestamp_timeout = 0: exit 78" "$CTL" -c "$work/t0.conf" audit anchor
has "timestamp_timeout: 0 is out of range 1..300" "... out of range"

expect 0 "an empty log: exit 0" "$CTL" -c "$conf" audit anchor
has "the audit log is empty: nothing to anchor" "... nothing to anchor"
q_is 0 "... and nothing stored" "SELECT count(*) FROM audit_anchors"

# rows N: N messages through the daemon, the rows written at its shutdown
rows() {
	me_start "$conf" "$work/milter.log" "$port" || bail "daemon"
	mpid=$ME_PID
	printf 'From: Andi <andi@banjarkota.go.id>\r\nTo: x@example.org\r\nSubject: a\r\n\r\nbody\r\n' >"$work/m.eml"
	_i=0
	while [ $_i -lt "$1" ]; do
		$PY "$CLI" --socket "inet:$port@127.0.0.1" --rcpt x@example.org \
			--qid "A$_i" "$work/m.eml" >"$work/cli.out" 2>&1 ||
			{ sed 's/^/#   /' "$work/cli.out"; bail "miltercli"; }
		_i=$((_i + 1))
	done
	me_stop "$mpid"
	mpid=
}

# ---- an anchor over the head of the chain
rows 3
q_is 3 "three audit rows from the daemon" "SELECT count(*) FROM audit"
h3=$(q "SELECT hash FROM audit WHERE id = 3")
expect 0 "audit anchor" "$CTL" -c "$conf" audit anchor
grep -qE "^anchored audit row 3 at [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8} UTC by TSA $url\$" "$work/out"
tap $? "... \"anchored audit row 3 at GENTIME by TSA URL\" ($(head -1 "$work/out"))"
q_is "1|3|$h3|$url" "... stored: audit_id 3 and its hash, the TSA URL" \
	"SELECT count(*), audit_id, hash, tsa_url FROM audit_anchors"
q "SELECT writefile('$work/tok.der', token) FROM audit_anchors WHERE id = 1" >/dev/null
openssl ts -verify -digest "$h3" -token_in -in "$work/tok.der" -CAfile "$t/a-ca.crt" \
	>"$work/out" 2>&1
tap $? "openssl ts -verify: the token stamps row 3's hash (as 32 bytes)"
gen=$(openssl ts -reply -token_in -in "$work/tok.der" -token_out -text 2>/dev/null |
	sed -n 's/^Time stamp: //p')
gen_s=$(date -u -d "$gen" +%s 2>/dev/null)
q_is "$gen_s" "... gen_time is the token's genTime ($gen)" "SELECT gen_time FROM audit_anchors"
expect 0 "audit verify with one anchor" "$CTL" -c "$conf" audit verify
has "audit log OK: 3 rows" "... the chain"
has "1 anchors ok" "... 1 anchors ok"

# ---- a second anchor later
rows 2
expect 0 "a second anchor after two more rows" "$CTL" -c "$conf" audit anchor
has "anchored audit row 5 at" "... row 5"
expect 0 "audit verify with two anchors" "$CTL" -c "$conf" audit verify
has "2 anchors ok" "... 2 anchors ok"
expect 0 "--json" "$CTL" -c "$conf" audit verify --json
$PY -c '
import json, re, sys
j = json.load(open(sys.argv[1]))
a = j["anchors"]
sys.exit(0 if j["ok"] is True and j["anchors_ok"] == 2 and
         [x["audit_id"] for x in a] == [3, 5] and
         all(x["ok"] is True and x["problem"] is None for x in a) and
         a[0]["tsa_url"] == sys.argv[2] and
         re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", a[0]["gen_time"])
         else 1)' "$work/out" "$url"
tap $? "... JSON: anchors (audit_id 3 and 5, ok, gen_time in UTC), anchors_ok 2"
cp "$db" "$work/good.db"

# ---- row 2 altered by hand, before both anchors
q "UPDATE audit SET from_addr = 'someone.else@banjarkota.go.id' WHERE id = 2"
expect 1 "row 2 altered: exit 1" "$CTL" -c "$conf" audit verify
has "audit log BROKEN at row 2: row content changed" "... names the broken link"
has "anchor 1 (audit row 3, " "... anchor 1 is named"
has "BROKEN: no longer matches the log: the chain breaks at row 2, at or before row 3" \
	"... it no longer matches the log"
has "0 anchors ok, 2 BROKEN" "... 0 ok, 2 broken"
expect 1 "--json" "$CTL" -c "$conf" audit verify --json
$PY -c '
import json, sys
j = json.load(open(sys.argv[1]))
sys.exit(0 if j["ok"] is False and j["broken_id"] == 2 and j["anchors_ok"] == 0
         and [x["problem"] for x in j["anchors"]] == ["chain-broken"] * 2
         else 1)' "$work/out"
tap $? "... JSON: broken_id 2, both anchors chain-broken"

# the same change with the chain recomputed after it (the hash of
# lib/db_audit.c written again here): the chain verifies, the anchors not
recompute() {
	$PY - "$db" <<'EOF'
import hashlib, sqlite3, struct, sys
db = sqlite3.connect(sys.argv[1])
cols = ("id, at, queue_id, message_id, from_addr, action, cert_serial,"
        " digest, result, recipients, cert_issuer, node")
def field(v):
    if v is None:
        return b"N"
    if isinstance(v, int):
        tag, b = b"I", str(v).encode()
    elif isinstance(v, bytes):
        tag, b = b"B", v
    else:
        tag, b = b"T", v.encode()
    return tag + struct.pack(">Q", len(b)) + b
prev = {}  # one chain per node (schema 9); a named node's rows are v3
for row in db.execute("SELECT " + cols + " FROM audit ORDER BY id").fetchall():
    v2 = row[9] is not None or row[10] is not None
    v = b"3" if row[11] else b"2" if v2 else b"1"
    m = hashlib.sha256(b"smime-milter-audit-v" + v + b"\n")
    p = prev.get(row[11], "0" * 64)
    m.update(field(p))
    for x in row[:{b"3": 12, b"2": 11, b"1": 9}[v]]:
        m.update(field(x))
    h = m.hexdigest()
    db.execute("UPDATE audit SET prev_hash = ?, hash = ? WHERE id = ?", (p, h, row[0]))
    prev[row[11]] = h
db.commit()
EOF
}
recompute || bail "recomputing the chain"
expect 1 "row 2 altered, the chain recomputed: exit 1" "$CTL" -c "$conf" audit verify
has "audit log OK: 5 rows" "... the chain alone verifies"
h3n=$(q "SELECT hash FROM audit WHERE id = 3")
has "BROKEN: no longer matches the log: row 3's hash is now $h3n, the token stamps $h3" \
	"... anchor 1: row 3's hash is not the stamped one"
has "0 anchors ok, 2 BROKEN" "... both anchors broken"
q "UPDATE audit_anchors SET hash = (SELECT hash FROM audit WHERE id = audit_id)"
expect 1 "... and the anchors' hash columns changed to fit" "$CTL" -c "$conf" audit verify --json
$PY -c '
import json, sys
j = json.load(open(sys.argv[1]))
sys.exit(0 if j["ok"] is True and j["anchors_ok"] == 0 and
         [x["problem"] for x in j["anchors"]] == ["token-invalid"] * 2 and
         "its token does not verify" in j["anchors"][0]["message"] else 1)' "$work/out"
tap $? "... the tokens no longer verify (JSON: token-invalid)"

# a row altered after the last anchor: the anchors still hold
restore
rows 1
q "UPDATE audit SET result = 'forged' WHERE id = 6"
expect 1 "row 6, after both anchors, altered: exit 1" "$CTL" -c "$conf" audit verify
has "BROKEN at row 6" "... row 6 is named"
has "2 anchors ok" "... the anchors before it hold"

# the anchored head row deleted: the chain alone cannot tell, the anchor can
restore
q "DELETE FROM audit WHERE id = 5"
expect 1 "anchored row 5 deleted from the end: exit 1" "$CTL" -c "$conf" audit verify
has "audit log OK: 4 rows" "... the chain alone verifies"
has "BROKEN: audit row 5, which it stamps, is gone" "... anchor 2 says row 5 is gone"
restore
q "UPDATE audit_anchors SET gen_time = gen_time - 86400 WHERE id = 2"
expect 1 "an anchor's gen_time moved a day back: exit 1" "$CTL" -c "$conf" audit verify
has "BROKEN: its gen_time column says" "... gen_time differs from the token's"

# ---- a token from a TSA that timestamp_ca_file does not trust
restore
cp "$conf" "$work/u.conf"
sed -i "s|^timestamp_url.*|timestamp_url = \"http://127.0.0.1:$tport/tsa/untrusted\";|" "$work/u.conf"
expect 1 "... (the untrusted TSA) exit 1" "$CTL" -c "$work/u.conf" audit anchor
has "nothing stored" "... nothing stored"
q_is 2 "... still 2 anchors" "SELECT count(*) FROM audit_anchors"
sed -i "s|^timestamp_ca_file.*|timestamp_ca_file = \"$t/b-ca.crt\";|" "$work/u.conf"
expect 0 "with its own root as timestamp_ca_file the untrusted TSA anchors" \
	"$CTL" -c "$work/u.conf" audit anchor
expect 1 "audit verify against root A: exit 1" "$CTL" -c "$conf" audit verify
has "anchor 3 (audit row 5, " "... anchor 3 is named"
has "BROKEN: its token does not verify against $t/a-ca.crt" "... its token does not verify"
has "2 anchors ok, 1 BROKEN" "... the two others hold"

# ---- the TSA down or hanging: exit 1, a clear message, nothing stored
restore
cp "$conf" "$work/d.conf"
sed -i "s|^timestamp_url.*|timestamp_url = \"http://127.0.0.1:$closed/tsa/good\";|" "$work/d.conf"
expect 1 "the TSA down: exit 1" "$CTL" -c "$work/d.conf" audit anchor
has "audit anchor: TSA http://127.0.0.1:$closed/tsa/good: " "... names the TSA"
has ": nothing stored" "... says nothing was stored"
sed -i "s|^timestamp_url.*|timestamp_url = \"http://127.0.0.1:$tport/hang\";|" "$work/d.conf"
echo "timestamp_timeout = 1;" >>"$work/d.conf"
s0=$(date +%s)
expect 1 "a TSA that hangs, timestamp_timeout = 1: exit 1" "$CTL" -c "$work/d.conf" audit anchor
s1=$(date +%s)
[ $((s1 - s0)) -le 5 ]
tap $? "... within the timeout ($((s1 - s0)) s)"
q_is 2 "... still 2 anchors" "SELECT count(*) FROM audit_anchors"
kill "$tpid" 2>/dev/null
wait "$tpid" 2>/dev/null
tpid=
expect 1 "the loopback TSA stopped: exit 1" "$CTL" -c "$conf" audit anchor
has "audit anchor: TSA $url: " "... names the TSA"
q_is 2 "... still 2 anchors" "SELECT count(*) FROM audit_anchors"
expect 0 "the stored anchors still verify without the TSA" "$CTL" -c "$conf" audit verify
has "2 anchors ok" "... 2 anchors ok"

# ---- a broken chain is not anchored
q "UPDATE audit SET result = 'x' WHERE id = 4"
expect 1 "a broken chain: anchor refuses" "$CTL" -c "$conf" audit anchor
has "the audit log is BROKEN at row 4" "... names the row"
expect 64 "audit anchor with an operand: usage" "$CTL" -c "$conf" audit anchor now

echo "1..$n"
