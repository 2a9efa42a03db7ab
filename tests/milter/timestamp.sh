#!/bin/sh
# Signature time-stamps (RFC 3161, issue 14): with timestamp_url set, each
# outbound signature gets a token from the TSA as the unsigned attribute
# id-aa-signatureTimeStampToken, checked against timestamp_ca_file before
# it is attached.  A loopback TSA (tests/lib/tsa.sh) is started and
# stopped here.  Cases, through -t (the real callbacks) and the daemon:
#   - a good TSA: the attribute is there, `openssl ts -verify` accepts the
#     token over the signature value, the signature still verifies, the log
#     line and the audit row say time-stamped;
#   - a TSA timestamp_ca_file does not trust, a TSA that hangs (timeout),
#     one that is down: signed without a token, the log says why
#     (on_timestamp_failure = sign, the default);
#   - on_timestamp_failure = tempfail and the TSA down: tempfailed, nothing
#     signed;
#   - a bad on_timestamp_failure value is refused with file:line;
#   - smimectl verify judges the signature at the token's genTime (not
#     the signer's own signingTime claim) when the token verifies against
#     timestamp_ca_file, and after a later revocation says valid at
#     signing time; it names the nearest audit anchor after the row.
# Prints TAP.  KEEP=1 keeps the work directory.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
. "$TOP/tests/lib/tsa.sh"
fx_begin tstamp
pid=''
fx_on_exit() {
	me_stop "$pid"
	tsa_stop
}
fx_setup "PKI built, andi, sekda, noreply, legacy imported"
pki=$work/pki
closed=$(me_free_ports 1)
tsa_start "$work/tsa" || bail "the loopback TSA"
ok "a loopback TSA on port $tsa_port"
base=$work/m.conf
printf 'timestamp_url = "%s";\ntimestamp_ca_file = "%s";\n' "$tsa_url" "$work/tsa/a-ca.crt" >>"$conf"

printf '%s\r\n' 'From: Andi <andi@banjarkota.go.id>' 'To: mitra@jabarprov.go.id' \
	'Subject: surat bertanda waktu' 'Message-ID: <ts1@banjarkota.go.id>' \
	'Date: Wed, 2 Dec 2026 09:00:00 +0700' '' 'Isi surat resmi.' >"$work/in.eml"
# signed NAME CONF: -t signs in.eml into NAME.eml (stderr in NAME.err)
signed() {
	"$MILTER" -c "$2" -t "$work/in.eml" >"$work/$1.eml" 2>"$work/$1.err"
}
# p7s NAME: the signature's DER of NAME.eml into NAME.p7s
p7s() {
	"$PY" - "$work/$1.eml" "$work/$1.p7s" <<'EOF'
import email, sys
m = email.message_from_binary_file(open(sys.argv[1], "rb"))
for part in m.walk():
    if part.get_content_type() in ("application/pkcs7-signature", "application/x-pkcs7-signature"):
        open(sys.argv[2], "wb").write(part.get_payload(decode=True))
EOF
}
has_token() { openssl cms -cmsout -print -inform DER -in "$work/$1.p7s" 2>/dev/null | grep -q 'timeStampToken'; }

signed good "$conf"
r=$?
p7s good
[ $r = 0 ] && has_token good
tap $? "a good TSA: the signature carries id-aa-signatureTimeStampToken" || sed 's/^/#   /' "$work/good.err"
verify_message "$work/good.eml" "$work/in.eml" andi@banjarkota.go.id "$pki" >"$work/vm.log" 2>&1
tap $? "... and still verifies in openssl and gpgsm" || tail -5 "$work/vm.log" | sed 's/^/#   /'
# the token over the SHA-256 of the signature value, by openssl ts
"$PY" - "$work/good.p7s" "$work/good" <<'EOF'
import subprocess, sys
# the SignerInfo's signature value and the token, with openssl asn1parse
der, out = sys.argv[1], sys.argv[2]
txt = subprocess.run(["openssl", "asn1parse", "-inform", "DER", "-in", der],
                     capture_output=True, text=True).stdout.splitlines()
# the signature value: the last OCTET STRING before the token's OID
sig = tok = None
for i, l in enumerate(txt):
    if "OBJECT" in l and ":id-smime-aa-timeStampToken" in l:
        # the token: the SEQUENCE after "SET" that follows the OID
        for l2 in txt[i + 1:i + 4]:
            if "cons: SEQUENCE" in l2:
                tok = l2
                break
        break
    if "prim: OCTET STRING" in l and "[HEX DUMP]" in l:
        sig = l
def cut(line):  # "  OFF:d=N  hl=H l=  LEN prim: ..."
    off = int(line.split(":")[0])
    hl = int(line.split("hl=")[1].split()[0])
    ln = int(line.split(" l=")[1].split()[0])
    return off, hl, ln
data = open(der, "rb").read()
o, hl, ln = cut(sig)
open(out + ".sigval", "wb").write(data[o + hl:o + hl + ln])
o, hl, ln = cut(tok)
open(out + ".tok", "wb").write(data[o:o + hl + ln])
EOF
openssl ts -verify -data "$work/good.sigval" -in "$work/good.tok" -token_in \
	-CAfile "$work/tsa/a-ca.crt" >"$work/tsv.out" 2>&1
tap $? "openssl ts -verify: the token is over the signature value, by the trusted TSA" || sed 's/^/#   /' "$work/tsv.out"
grep -q "OFFLINE: signed for andi@banjarkota.go.id with certificate .*, time-stamped 20[0-9-]* [0-9:]* UTC" "$work/good.err"
tap $? "the log line says time-stamped and when" || sed 's/^/#   /' "$work/good.err"

# ---- failures with on_timestamp_failure = sign (the default)
cp "$conf" "$work/u.conf"
sed -i "s|^timestamp_url.*|timestamp_url = \"http://127.0.0.1:$tsa_port/tsa/untrusted\";|" "$work/u.conf"
signed untrusted "$work/u.conf"
r=$?
p7s untrusted
[ $r = 0 ] && ! has_token untrusted && grep -q "no time-stamp: .*not trusted" "$work/untrusted.err"
tap $? "a TSA timestamp_ca_file does not trust: signed without a token, the log says why" ||
	sed 's/^/#   /' "$work/untrusted.err"
sed "s|^timestamp_url.*|timestamp_url = \"http://127.0.0.1:$tsa_port/hang\";|" "$conf" >"$work/h.conf"
echo 'timestamp_timeout = 1;' >>"$work/h.conf"
s0=$(date +%s)
signed hang "$work/h.conf"
r=$? s1=$(date +%s)
p7s hang
[ $r = 0 ] && ! has_token hang && grep -q "no time-stamp: TSA timed out after 1000 ms" "$work/hang.err" &&
	[ $((s1 - s0)) -le 5 ]
tap $? "a TSA that hangs, timestamp_timeout = 1: signed without a token after $((s1 - s0)) s" ||
	sed 's/^/#   /' "$work/hang.err"
sed "s|^timestamp_url.*|timestamp_url = \"http://127.0.0.1:$closed/tsa\";|" "$conf" >"$work/d.conf"
signed down "$work/d.conf"
r=$?
p7s down
[ $r = 0 ] && ! has_token down && grep -q "no time-stamp: " "$work/down.err"
tap $? "a TSA that is down: signed without a token" || sed 's/^/#   /' "$work/down.err"

# ---- on_timestamp_failure = tempfail
cp "$work/d.conf" "$work/t.conf"
echo 'on_timestamp_failure = "tempfail";' >>"$work/t.conf"
signed tempfail "$work/t.conf"
r=$?
[ $r = 75 ] && [ ! -s "$work/tempfail.eml" ] && grep -q "tempfailed" "$work/tempfail.err" &&
	grep -q "on_timestamp_failure = tempfail" "$work/tempfail.err"
tap $? "on_timestamp_failure = tempfail, the TSA down: tempfailed (exit $r), nothing written" ||
	sed 's/^/#   /' "$work/tempfail.err"
cp "$conf" "$work/t2.conf"
echo 'on_timestamp_failure = "tempfail";' >>"$work/t2.conf"
signed tempfail-good "$work/t2.conf"
r=$?
p7s tempfail-good
[ $r = 0 ] && has_token tempfail-good
tap $? "on_timestamp_failure = tempfail, the TSA answering: signed with its token"
cp "$conf" "$work/bad.conf"
echo 'on_timestamp_failure = "maybe";' >>"$work/bad.conf"
"$MILTER" -c "$work/bad.conf" -n >"$work/bad.out" 2>&1
r=$?
[ $r != 0 ] && grep -q "bad.conf:[0-9]*: on_timestamp_failure: unknown action 'maybe'" "$work/bad.out"
tap $? "on_timestamp_failure = \"maybe\" is refused with file:line (exit $r)" || sed 's/^/#   /' "$work/bad.out"

# ---- the daemon: the log line and the audit row
me_start "$conf" "$work/milter.log" "$port" || bail "the milter"
pid=$ME_PID
"$PY" "$CLI" --socket "inet:$port@127.0.0.1" --rcpt mitra@jabarprov.go.id --qid TSQ1 \
	"$work/in.eml=$work/d1.eml" >"$work/d1.res" 2>&1
me_stop "$pid"
pid=''
grep -q "TSQ1: signed for andi@banjarkota.go.id .*time-stamped 20" "$work/milter.log"
tap $? "daemon: the log line says time-stamped" || tail -3 "$work/milter.log" | sed 's/^/#   /'
res=$(sqlite3 "$work/smime.db" "SELECT result FROM audit WHERE queue_id = 'TSQ1'")
case $res in "ok; time-stamped 20"*) true ;; *) false ;; esac
tap $? "daemon: the audit row says ok; time-stamped ($res)"

# ---- smimectl verify: the token is the time the signature is judged at
"$CTL" -c "$conf" verify "$work/d1.eml" >"$work/v1.out" 2>&1
r=$?
[ $r = 0 ] && grep -q "time-stamp: *RFC 3161 token, verified: 20.*, TSA CN=Test TSA Root TSA" "$work/v1.out" &&
	grep -q "signed at: .*(timestamp)" "$work/v1.out"
tap $? "smimectl verify: the token verified, it is the signing time (exit $r)" || sed 's/^/#   /' "$work/v1.out"
"$CTL" -c "$conf" verify --json "$work/d1.eml" >"$work/v1.json" 2>&1
"$PY" -c 'import json, sys
s = json.load(open(sys.argv[1]))[0]["signature"]
assert s["time_source"] == "timestamp" and s["timestamp"]["verified"] is True, s
assert s["timestamp"]["gen_time"] == s["signing_time"], s
assert s["timestamp"]["tsa"] == "CN=Test TSA Root TSA", s' "$work/v1.json"
tap $? "--json: signature.timestamp verified, its gen_time the signing_time" || sed 's/^/#   /' "$work/v1.json" | head -5
grep -q "trusted time: *no anchor after this row yet" "$work/v1.out"
tap $? "smimectl verify: no audit anchor yet, and it says so"
"$CTL" -c "$conf" audit anchor >"$work/anchor.out" 2>&1
"$CTL" -c "$conf" verify "$work/d1.eml" >"$work/v4.out" 2>&1
grep -q "^anchored audit row 1 at " "$work/anchor.out" &&
	grep -q "trusted time: *anchor 1 over row 1, 20[0-9-]* [0-9:]* UTC: holds" "$work/v4.out"
tap $? "after smimectl audit anchor: the row has trusted time, the anchor holds" ||
	sed 's/^/#   /' "$work/anchor.out" "$work/v4.out"
"$CTL" -c "$conf" verify --json "$work/d1.eml" >"$work/v4.json" 2>&1
"$PY" -c 'import json, sys
a = json.load(open(sys.argv[1]))[0]["audit"]["anchor"]
assert a["id"] == 1 and a["audit_id"] == 1 and a["ok"] is True and a["problem"] is None, a' "$work/v4.json"
tap $? "--json: audit.anchor with its row and ok" || sed 's/^/#   /' "$work/v4.json" | head -3
# the token checked against another TSA root: not verified, signingTime used
cp "$conf" "$work/o.conf"
sed -i "s|^timestamp_ca_file.*|timestamp_ca_file = \"$work/tsa/b-ca.crt\";|" "$work/o.conf"
"$CTL" -c "$work/o.conf" verify "$work/d1.eml" >"$work/v2.out" 2>&1
grep -q "time-stamp: *RFC 3161 token, NOT verified" "$work/v2.out" && grep -q "signed at: .*(signingTime)" "$work/v2.out"
tap $? "smimectl verify with another TSA root: the token is not verified, the signingTime claim is used" ||
	sed 's/^/#   /' "$work/v2.out"
# andi revoked after signing: still valid at the time-stamped signing time
sleep 1
serial=$(openssl x509 -in "$pki/andi.crt.pem" -noout -serial | sed 's/serial=//')
"$CTL" -c "$conf" revoke "$serial" --reason keyCompromise >"$work/rev.out" 2>&1
"$CTL" -c "$conf" verify "$work/d1.eml" >"$work/v3.out" 2>&1
r=$?
[ $r = 0 ] && grep -q "VALID AT SIGNING TIME" "$work/v3.out" && grep -q "revoked since" "$work/v3.out"
tap $? "andi revoked afterwards: valid at the time-stamped signing time, revoked since (exit $r)" ||
	sed 's/^/#   /' "$work/rev.out" "$work/v3.out"
fx_no_sanitizer "no sanitizer report in the milter log" "$work/milter.log"
echo "1..$n"
