#!/bin/sh
# smimectl stats (issue 15, Metrics): text, --json and --prometheus over a
# database the real daemon wrote: 3 messages signed for andi@ and 1 passed
# unsigned for budi@ (no certificate), an RFC 3161 anchor from a loopback
# TSA between them, a CRL imported, a certificate that expires in 10 days.
# The counts are those numbers (one signed row moved two days back: 2 in
# the last 24 h), the days to expiry and the CRL's age and nextUpdate come
# from the certificates' and the CRL's own dates (openssl), the anchor's
# genTime is the stored one; the milter is up (1, its pid) while it runs
# and down (0) without a pidfile or with a dead pid.  The Prometheus file
# passes `promtool check metrics` (when installed) and always
# tests/lib/promcheck.py, whose own failures are tried first; label values
# with quotes, backslashes and a newline survive the round trip; the file
# is replaced by a rename (new inode, mode 0644, no temp file left) and
# stays as it was when the directory cannot be written (exit 73) or the
# figures cannot be read (exit 66).  Prints TAP.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
. "$TOP/tests/lib/tsa.sh"
fx_begin stats
mpid= tpid=
fx_on_exit() {
	me_stop "$mpid"
	[ -n "$tpid" ] && kill "$tpid" 2>/dev/null
}
PC=$TOP/tests/lib/promcheck.py
db=$work/smime.db

# ---- the format checker: it fails where the format is broken
pc_bad() { # pc_bad WHAT TEXT: promcheck refuses TEXT (printf format)
	printf "$2" >"$work/bad.prom"
	if $PY "$PC" "$work/bad.prom" 2>"$work/pc.err"; then nok "promcheck refuses $1"; else
		ok "promcheck refuses $1 ($(head -1 "$work/pc.err"))"
	fi
}
H='# HELP a_total x\n# TYPE a_total counter\n'
pc_bad "a series twice" "${H}a_total{l=\"x\"} 1\na_total{l=\"x\"} 2\n"
pc_bad "an unknown escape" "${H}a_total{l=\"x\\\\q\"} 1\n"
pc_bad "an unterminated label value" "${H}a_total{l=\"x} 1\n"
pc_bad "a family split in two" "${H}a_total 1\n# HELP b x\n# TYPE b gauge\nb 1\na_total 2\n"
pc_bad "a counter without _total" '# HELP a x\n# TYPE a counter\na 1\n'
pc_bad "samples without HELP and TYPE" 'a 1\n'
pc_bad "TYPE after the samples" '# HELP a x\na 1\n# TYPE a gauge\n'
pc_bad "a reserved label name" "${H}a_total{__x=\"1\"} 1\n"
pc_bad "a bad value" "${H}a_total 1x\n"
pc_bad "no final newline" "${H}a_total 1"
pc_bad "bytes that are not UTF-8" "${H}a_total{l=\"\\377\"} 1\n"
pc_bad "a unit that is not a base unit" '# HELP a_days x\n# TYPE a_days gauge\na_days 1\n'
printf '%s\n' '# HELP a_total x' '# TYPE a_total counter' \
	'a_total{l="q\"b\\c\nd",m="2"} 3 1700000000' 'a_total{l="z"} NaN' >"$work/good.prom"
$PY "$PC" "$work/good.prom" --dump >"$work/good.json" &&
	$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d[0]["labels"] == {"l": "q\"b\\c\nd", "m": "2"} and d[0]["value"] == 3, d' "$work/good.json"
tap $? "promcheck accepts a good exposition and unescapes its labels"

# ---- the setting: PKI, TSA, configuration, a certificate expiring soon
set -- $(me_free_ports 1)
port=$1
tsa_start "$work/tsa" || bail "the loopback TSA"
tpid=$tsa_pid
conf=$work/m.conf
me_conf "$conf" "$work" "inet:$port@127.0.0.1" "timestamp_url = \"$tsa_url\";" \
	"timestamp_ca_file = \"$work/tsa/a-ca.crt\";"
me_setup "$work" "$conf" || bail "PKI, init and imports"
pki=$work/pki
fx_issue soon "$pki" 5E 10 "/CN=Surat Segera" soon@banjarkota.go.id || bail "a certificate valid 10 days"
"$CTL" -c "$conf" import --mailbox soon@banjarkota.go.id --kind role \
	--cert "$pki/soon.crt.pem" --key "$pki/soon.key.pem" >"$work/out" 2>&1 || bail "import soon"
"$CTL" -c "$conf" crl import "$pki/crl.pem" >"$work/out" 2>&1 || bail "crl import"
ok "the setting: a TSA, five certificates (one for 10 days), a CRL"

expect 0 "stats on a database without mail" "$CTL" -c "$conf" stats
has "milter: DOWN ($conf.pid: No such file or directory)" "... the milter is down: no pidfile"
grep -Eq '^  signed +0 +0$' "$work/out"
tap $? "... signed 0 in 24 h and in all"

# ---- mail through the daemon
send() { # send NAME FROM: one message from FROM with queue id NAME
	printf 'From: %s\r\nTo: partner@example.org\r\nSubject: %s\r\nMessage-ID: <%s@banjarkota.go.id>\r\n\r\nbody\r\n' \
		"$2" "$1" "$1" >"$work/$1.eml"
	$PY "$CLI" --socket "inet:$port@127.0.0.1" --rcpt partner@example.org \
		--qid "$1" "$work/$1.eml" >"$work/$1.out" 2>&1 ||
		{ sed 's/^/#   /' "$work/$1.out"; return 1; }
}
me_start "$conf" "$work/milter.log" "$port" || bail "the daemon"
mpid=$ME_PID
send S1 andi@banjarkota.go.id && send S2 andi@banjarkota.go.id &&
	send U1 budi@banjarkota.go.id || bail "three messages through the daemon"
ok "two messages from andi@ and one from budi@ through the daemon"
me_wait_log "$conf.pid" . 5
expect 0 "stats --prometheus while the daemon runs" "$CTL" -c "$conf" stats \
	--prometheus "$work/up.prom" --json
grep -qx 'smime_milter_up 1' "$work/up.prom"
tap $? "... smime_milter_up 1"
$PY -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["milter"]["up"] is True and j["milter"]["pid"] == int(sys.argv[2]), j["milter"]' \
	"$work/out" "$mpid"
tap $? "... and --json (also on stdout) says up with the daemon's pid $mpid"
me_stop "$mpid" # the audit queue is written at shutdown
mpid=
"$CTL" -c "$conf" audit anchor >"$work/out" 2>&1
tap $? "an anchor over the three rows from the loopback TSA"
me_start "$conf" "$work/milter2.log" "$port" || bail "the daemon again"
mpid=$ME_PID
send S3 andi@banjarkota.go.id || bail "a third signed message"
me_stop "$mpid"
mpid=
q_rows_is "signed,signed,unsigned,signed" "the audit log as the daemon wrote it" \
	"SELECT action FROM audit ORDER BY id"
# stats does not verify the chain: moving a row in time is enough here
q "UPDATE audit SET at = at - 2 * 86400 WHERE queue_id = 'S1'"

# ---- JSON: the numbers the fixture made
expect 0 "stats --json" "$CTL" -c "$conf" stats --json
cp "$work/out" "$work/s.json"
$PY -m json.tool "$work/s.json" >/dev/null
tap $? "... parses with python3 -m json.tool"
enddate() { date -u -d "$(openssl x509 -noout -enddate -in "$1" | sed 's/^notAfter=//')" +%s; }
crldate() { date -u -d "$(openssl crl -noout "$1" -in "$pki/crl.pem" | sed 's/^[a-zA-Z]*=//')" +%s; }
soon_na=$(enddate "$pki/soon.crt.pem") andi_na=$(enddate "$pki/andi.crt.pem")
crl_tu=$(crldate -lastupdate) crl_nu=$(crldate -nextupdate)
gen=$(q "SELECT gen_time FROM audit_anchors")
rows=$(q "SELECT count(*) FROM audit")
$PY - "$work/s.json" "$soon_na" "$andi_na" "$crl_tu" "$crl_nu" "$gen" "$rows" >"$work/py.out" 2>&1 <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
soon_na, andi_na, tu, nu, gen, rows = map(int, sys.argv[2:])
now = j["generated"]
m = j["messages"]
assert m["signed"] == {"total": 3, "last_24h": 2}, m["signed"]
assert m["unsigned"] == {"total": 1, "last_24h": 1}, m["unsigned"]
assert all(m[a] == {"total": 0, "last_24h": 0} for a in
           ("encrypted", "passed", "rejected", "tempfailed", "decrypted",
            "not-decrypted", "verified", "verify-failed")), m
assert j["errors"] == {"total": 0, "last_24h": 0}, j["errors"]
assert j["unsigned_reasons"] == [{"reason": "no usable certificate", "total": 1, "last_24h": 1}], j["unsigned_reasons"]
certs = {c["mailbox"]: c for c in j["certificates"]}
assert sorted(certs) == ["andi@banjarkota.go.id", "legacy@banjarkota.go.id", "noreply@banjarkota.go.id",
                         "sekda@banjarkota.go.id", "soon@banjarkota.go.id"], sorted(certs)
s = certs["soon@banjarkota.go.id"]
assert (s["kind"], s["serial"]) == ("role", "5E"), s
assert s["expiry_seconds"] == soon_na - now and s["expiry_days"] == (soon_na - now) // 86400 == 9, (s, soon_na, now)
a = certs["andi@banjarkota.go.id"]
assert a["expiry_days"] == (andi_na - now) // 86400, (a, andi_na)
assert j["certificate_expiry_min_days"] == 9, j["certificate_expiry_min_days"]
assert len(j["crls"]) == 1, j["crls"]
c = j["crls"][0]
assert c["issuer"] == "CN=Test BSrE Issuing CA,O=Test BSrE,C=ID", c
assert c["age_seconds"] == now - tu and c["next_update_seconds"] == nu - now, (c, tu, nu, now)
au = j["audit"]
assert au["chain_length"] == rows == 4 and au["last_id"] == 4, au
assert au["last_anchor"]["audit_id"] == 3 and au["last_anchor"]["gen_time_seconds"] == gen, (au, gen)
assert abs(gen - now) < 600 and au["unanchored_rows"] == 1, au
assert j["milter"]["up"] is False and j["milter"]["pid"] is None, j["milter"]
EOF
tap $? "JSON: signed 3 (2 in 24 h), unsigned 1 by reason, expiry from notAfter (min 9 days), CRL dates, chain 4 and its anchor"
sed 's/^/#   /' "$work/py.out"

# ---- text
expect 0 "stats (text)" "$CTL" -c "$conf" stats
grep -Eq '^  signed +2 +3$' "$work/out" && grep -Eq '^  unsigned +1 +1$' "$work/out" &&
	grep -Eq '^  no usable certificate +1 +1$' "$work/out" &&
	grep -Eq '^  soon@banjarkota.go.id +role +5E .* 9$' "$work/out" &&
	grep -q 'the first expires in 9 days' "$work/out" &&
	grep -q '^audit log: 4 rows, head id 4$' "$work/out" &&
	grep -q 'last anchor: id 1 over row 3, .* 1 row(s) after it' "$work/out"
tap $? "... the table: counts, reasons, the certificate, the chain and its anchor"
[ "$(sed -n 2p "$work/out")" = "milter: DOWN ($conf.pid: No such file or directory)" ]
tap $? "... milter DOWN once the daemon stopped"

# ---- Prometheus: format, values, escaping
# an issuer name with a quote, a backslash and a newline (stored as is)
chr=char # the character of a code: char() in SQLite, chr() in PostgreSQL
me_db_pg && chr=chr
now=$(date +%s)
q "INSERT INTO crls (issuer, this_update, next_update, entries, imported_at) VALUES ('CN=Say \"hi\" \\ back' || $chr(10) || 'O=X', $((now - 60)), NULL, 0, $now)"
expect 0 "stats (text) with that issuer" "$CTL" -c "$conf" stats
has '  CN=Say "hi" \ back?O=X' "... its newline shown as ? on the terminal"
prom=$work/node/smime_milter.prom
mkdir -p "$work/node"
echo "old content" >"$prom"
ino0=$(stat -c %i "$prom")
expect 0 "stats --prometheus FILE" "$CTL" -c "$conf" stats --prometheus "$prom"
[ ! -s "$work/out" ]
tap $? "... prints nothing without --json"
[ "$(stat -c %i "$prom")" != "$ino0" ] && [ "$(stat -c %a "$prom")" = 644 ] &&
	[ "$(ls -A "$work/node")" = smime_milter.prom ]
tap $? "... the file was replaced by a rename (new inode), mode 644, no temp file left"
if [ -x /usr/bin/promtool ]; then
	/usr/bin/promtool check metrics <"$prom" >"$work/pt.out" 2>&1
	tap $? "promtool check metrics accepts it"
	sed 's/^/#   /' "$work/pt.out"
else
	ok "# SKIP promtool is not installed (Debian package prometheus)"
fi
$PY "$PC" "$prom" --dump >"$work/dump.json"
tap $? "tests/lib/promcheck.py accepts it"
$PY - "$work/dump.json" "$soon_na" "$crl_tu" "$crl_nu" "$gen" "$prom" >"$work/py.out" 2>&1 <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
soon_na, tu, nu, gen = map(int, sys.argv[2:6])
text = open(sys.argv[6]).read()
def v(name, **labels):
    got = [s["value"] for s in d if s["name"] == name and s["labels"] == labels]
    assert len(got) == 1, (name, labels, got)
    return got[0]
now = v("smime_milter_stats_generated_timestamp_seconds")
assert v("smime_milter_messages_total", action="signed") == 3
assert v("smime_milter_messages_24h", action="signed") == 2
assert v("smime_milter_messages_total", action="unsigned") == 1
assert v("smime_milter_messages_total", action="verify-failed") == 0
assert v("smime_milter_unsigned_messages_total", reason="no usable certificate") == 1
assert v("smime_milter_unsigned_messages_24h", reason="no usable certificate") == 1
assert v("smime_milter_certificates") == 5
assert v("smime_milter_certificate_expiry_seconds", mailbox="soon@banjarkota.go.id", kind="role", serial="5E") == soon_na - now
assert v("smime_milter_certificate_expiry_min_seconds") == soon_na - now
i = "CN=Test BSrE Issuing CA,O=Test BSrE,C=ID"
assert v("smime_milter_crl_age_seconds", issuer=i) == now - tu
assert v("smime_milter_crl_next_update_seconds", issuer=i) == nu - now
odd = 'CN=Say "hi" \\ back\nO=X'
assert 59 <= v("smime_milter_crl_age_seconds", issuer=odd) <= 120
assert not [s for s in d if s["name"] == "smime_milter_crl_next_update_seconds" and s["labels"]["issuer"] == odd]
assert 'issuer="CN=Say \\"hi\\" \\\\ back\\nO=X"' in text, "escaped on the wire"
# one sample per node (schema 9): the rows here are the milter's, this host's
import socket
assert v("smime_milter_audit_chain_length", node=socket.gethostname()) == 4
assert v("smime_milter_audit_unanchored_rows") == 1
assert v("smime_milter_audit_last_anchor_timestamp_seconds") == gen
assert v("smime_milter_up") == 0
for fam, t in (("smime_milter_messages_total", "counter"), ("smime_milter_messages_24h", "gauge"),
               ("smime_milter_up", "gauge")):
    assert f"# TYPE {fam} {t}\n" in text and f"# HELP {fam} " in text, fam
EOF
tap $? "the samples: counts, expiry from notAfter, CRL age and nextUpdate, chain, anchor, up 0; an odd issuer escaped and read back"
sed 's/^/#   /' "$work/py.out"

# ---- the file stays as it was when it cannot be replaced
cp "$prom" "$work/before.prom"
mkdir -p "$work/ro"
echo "old content" >"$work/ro/smime_milter.prom"
if [ "$(id -u)" = 0 ]; then
	chmod 0755 "$work" "$work/ro"
	chmod 0644 "$conf"
	run_ro() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$CTL" -c "$conf" stats --prometheus "$work/ro/smime_milter.prom"; }
else
	chmod 0555 "$work/ro"
	run_ro() { "$CTL" -c "$conf" stats --prometheus "$work/ro/smime_milter.prom"; }
fi
expect 73 "a directory it cannot write to: exit 73" run_ro
has "cannot create a file in $work/ro: Permission denied" "... says so plainly"
[ "$(cat "$work/ro/smime_milter.prom")" = "old content" ] && [ "$(ls -A "$work/ro")" = smime_milter.prom ]
tap $? "... the old file is intact, nothing else there"
chmod 0755 "$work/ro"
expect 73 "a directory that does not exist: exit 73" "$CTL" -c "$conf" stats --prometheus "$work/none/x.prom"
me_conf "$work/nodb.conf" "$work" "inet:$port@127.0.0.1" "database = \"$work/nodb.db\";"
expect 66 "figures that cannot be read (no database): exit 66" "$CTL" -c "$work/nodb.conf" stats --prometheus "$prom"
has "$prom left as it was" "... says the file was left as it was"
cmp -s "$prom" "$work/before.prom" && [ "$(ls -A "$work/node")" = smime_milter.prom ]
tap $? "... the old file is intact, the temp file removed"

# ---- up: a dead pid, no pidfile setting, a usage error
sh -c 'echo $$' >"$conf.pid"
expect 0 "a pidfile with a dead pid" "$CTL" -c "$conf" stats --prometheus "$prom" --json
grep -qx 'smime_milter_up 0' "$prom" && grep -q '"why_down": "pid [0-9]* from .*: No such process"' "$work/out"
tap $? "... up 0, and why"
rm -f "$conf.pid"
grep -v '^pidfile' "$conf" >"$work/nopid.conf"
expect 0 "no pidfile configured" "$CTL" -c "$work/nopid.conf" stats
has "milter: DOWN (no pidfile configured)" "... down, no pidfile configured"
expect 64 "an unknown option: exit 64" "$CTL" -c "$conf" stats --bogus
has "usage: stats [--prometheus FILE] [--json]" "... with the usage"
echo "1..$n"
