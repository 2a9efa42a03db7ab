#!/bin/sh
# smimectl verify FILE... [--json] (issue 14): the OP's check of a
# disputed message.  Mail signed by the real daemon (so its audit row
# exists) and by `smime-milter -t`, a partner's mail signed with openssl
# (multipart/signed with LF line ends, and opaque signed-data), then:
# good (exit 0, SAH / VALID, the audit row and its chain), the body
# altered (exit 1, named), the outer Subject or Date changed (exit 1: the
# signed part carries the protected copies, RFC 9788), a Cc added; the
# same message signed with header_protection = false (valid: nothing to
# compare, and it says the header fields are not signed); unsigned and encrypted files and a
# missing one (exit 2), several files at once, --json, an audit row
# altered by hand (the broken chain named), the signer revoked after
# signing (a CRL imported later, and `smimectl revoke`: valid at signing
# time, revoked since DATE) and before it (invalid), no database (exit 2);
# the partner's mail received through the daemon, stamped, with its
# inbound audit row (verified); opaque signed-data unwrapped on arrival
# (inbound_unwrap_opaque): could not check, the stamp and the row shown.
# Prints TAP.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
fx_begin verify
pid=
fx_on_exit() { me_stop "$pid"; }
fx_setup "PKI built, certificates imported"
db=$work/smime.db
pki=$work/pki
# v WANT DESCRIPTION FILE...: smimectl verify FILE... exits WANT
v() {
	_w=$1 _d=$2
	shift 2
	expect "$_w" "$_d" "$CTL" -c "$conf" verify "$@"
}

# jcheck DESCRIPTION EXPRESSION [ARG...]: one check, the Python EXPRESSION
# is true of j, the first object of the --json output in $work/out (ARGs
# in sys.argv[2:])
jcheck() {
	_d=$1 _e=$2
	shift 2
	$PY -c "import json, sys
j = json.load(open(sys.argv[1]))[0]
sys.exit(0 if ($_e) else 1)" "$work/out" "$@"
	tap $? "$_d"
}

# ---- mail signed by the daemon: its audit row exists
msg() { # msg FILE FROM MESSAGE-ID SUBJECT
	printf 'From: %s\r\nTo: partner@example.org\r\nSubject: %s\r\nMessage-ID: %s\r\nDate: Tue, 1 Dec 2026 10:00:00 +0700\r\n\r\nSurat resmi nomor 1.\r\nBaris kedua.\r\n' \
		"$2" "$4" "$3" >"$1"
}
msg "$work/in1.eml" "Andi <andi@banjarkota.go.id>" "<v1@banjarkota.go.id>" "Undangan rapat"
msg "$work/in2.eml" "Andi <andi@banjarkota.go.id>" "<v2@banjarkota.go.id>" "Surat kedua"
# ---- a partner's mail, signed with openssl by a certificate of the test CA
printf 'Content-Type: text/plain; charset=us-ascii\n\nBalasan dari mitra.\n' >"$work/p.txt"
openssl cms -sign -in "$work/p.txt" -signer "$pki/mitra.crt.pem" -inkey "$pki/mitra.key.pem" \
	-certfile "$pki/inter.crt.pem" -from "mitra@jabarprov.go.id" -to andi@banjarkota.go.id \
	-subject "Balasan" -out "$work/p1.eml" 2>/dev/null || bail "openssl cms -sign"
sed -i '1i Message-ID: <p1@jabarprov.go.id>' "$work/p1.eml"
openssl cms -sign -nodetach -in "$work/p.txt" -signer "$pki/mitra.crt.pem" -inkey "$pki/mitra.key.pem" \
	-from "mitra@jabarprov.go.id" -to andi@banjarkota.go.id -subject "Opaque" -out "$work/p2.eml" 2>/dev/null ||
	bail "openssl cms -sign -nodetach"
sed -i '1i Message-ID: <p2@jabarprov.go.id>' "$work/p2.eml"
me_start "$conf" "$work/milter.log" "$port" || bail "daemon"
pid=$ME_PID
$PY "$CLI" --socket "inet:$port@127.0.0.1" --rcpt partner@example.org --qid VQ1 \
	"$work/in1.eml=$work/good.eml" "$work/in2.eml=$work/good2.eml" >"$work/cli.out" 2>&1 ||
	{ sed 's/^/#   /' "$work/cli.out"; bail "miltercli"; }
# the partner's mail received from outside: verified and stamped inbound
$PY "$CLI" --socket "inet:$port@127.0.0.1" --client-ip 192.0.2.7 --rcpt andi@banjarkota.go.id \
	--qid VIN1 "$work/p1.eml=$work/stamped.eml" >"$work/cli-in.out" 2>&1 ||
	{ sed 's/^/#   /' "$work/cli-in.out"; bail "miltercli inbound"; }
me_stop "$pid" # the audit queue is written at shutdown
pid=
# opaque signed-data received with inbound_unwrap_opaque: the signature is
# taken off on arrival, the stamp and the audit row are what is left
me_conf "$work/unwrap.conf" "$work" "inet:$port@127.0.0.1" 'inbound_unwrap_opaque = true;'
me_start "$work/unwrap.conf" "$work/milter2.log" "$port" || bail "daemon (inbound_unwrap_opaque)"
pid=$ME_PID
$PY "$CLI" --socket "inet:$port@127.0.0.1" --client-ip 192.0.2.7 --rcpt andi@banjarkota.go.id \
	--qid VIN2 "$work/p2.eml=$work/unwrapped.eml" >"$work/cli-in2.out" 2>&1 ||
	{ sed 's/^/#   /' "$work/cli-in2.out"; bail "miltercli inbound, unwrapped"; }
me_stop "$pid"
pid=
grep -q 'multipart/signed' "$work/good.eml" || bail "the daemon signed the message"
row=$(q "SELECT id FROM audit WHERE message_id = '<v1@banjarkota.go.id>'")
[ -n "$row" ] || bail "the daemon wrote an audit row"
serial=$(openssl x509 -in "$pki/andi.crt.pem" -noout -serial | sed 's/serial=//')

v 0 "a message signed by the daemon" "$work/good.eml"
has "SAH / VALID: pesan <v1@banjarkota.go.id> ditandatangani oleh" "... SAH / VALID, in Indonesian"
has "/ message <v1@banjarkota.go.id> was signed by" "... and English"
has "signature:    verified" "... signature verified"
has "serial:       $serial" "... the signer's serial"
has "chain:        " "... its chain"
has "CN=Test BSrE Root" "... to the test root"
has "audit:        row $row (signed, queue id VQ1" "... the audit row $row, action signed"
has "audit chain:  intact up to this row" "... the chain verifies up to it"
has "recorded in the audit log at row $row, hash chain intact up to it" "... the verdict names the row"
has "revoked:      no" "... not revoked"
has "protected:    hp=\"clear\", " "... the protected header fields: hp=clear"
has "fields: as signed" "... each as signed"

# ---- the body altered after signing
sed 's/^Baris kedua\./Baris ketiga./' "$work/good.eml" >"$work/body.eml"
cmp -s "$work/good.eml" "$work/body.eml" && bail "the body was altered"
v 1 "the body altered after signing" "$work/body.eml"
has "TIDAK SAH / INVALID: pesan <v1@banjarkota.go.id>: isi pesan diubah setelah ditandatangani. / message <v1@banjarkota.go.id>: body altered after signing." \
	"... TIDAK SAH / INVALID, body altered after signing"

# ---- the outer Subject changed: the signed part's protected copy
# (header_protection, RFC 9788) says what was signed
# (only the outer header block: up to its first empty line)
sed '1,/^\r*$/s/^Subject: Undangan rapat/Subject: Undangan dibatalkan/' "$work/good.eml" >"$work/subj.eml"
v 1 "the outer Subject changed after signing" "$work/subj.eml"
has "Subject:      Undangan dibatalkan" "... shows the Subject as it is now"
has "Subject changed after signing: signed 'Undangan rapat" "... names the field and what was signed"
has "TIDAK SAH / INVALID" "... TIDAK SAH / INVALID"
has "kepala surat Subject diubah setelah ditandatangani" "... in Indonesian too"
sed '1,/^\r*$/s/^Date: \(.*\)2026/Date: \12025/' "$work/good.eml" >"$work/date.eml"
v 1 "the outer Date changed after signing" "$work/date.eml"
has "Date changed after signing" "... names the Date"
awk '{ print } /^Subject: / && !d { print "Cc: orang.lain@example.org\r"; d = 1 }' "$work/good.eml" >"$work/cc.eml"
v 1 "a Cc added after signing" "$work/cc.eml"
has "Cc added after signing" "... names the Cc"
"$CTL" -c "$conf" verify --json "$work/subj.eml" >"$work/subj.json" 2>&1
"$PY" -c 'import json, sys
o = json.load(open(sys.argv[1]))[0]["protected_headers"]
assert o["hp"] == "clear" and o["fields"] >= 4 and o["changed"] == "Subject", o
assert "signed" in o["detail"], o' "$work/subj.json"
tap $? "--json: protected_headers names hp, the fields and the changed one" || sed 's/^/#   /' "$work/subj.json" | head -5

# ---- signed offline by smime-milter -t: no audit row
# (a Message-ID the daemon never saw; the message signed as it is, since
# the signed part carries a copy of the Message-ID)
msg "$work/in3.eml" "Andi <andi@banjarkota.go.id>" "<v3@banjarkota.go.id>" "Surat kedua"
"$MILTER" -c "$conf" -t "$work/in3.eml" -s andi@banjarkota.go.id >"$work/noaudit.eml" 2>"$work/t.err" ||
	bail "smime-milter -t"
v 0 "signed by smime-milter -t, no audit row" "$work/noaudit.eml"
has "audit:        no row for this Message-ID" "... no audit row"
# the same signer with header_protection = false: nothing to compare, so
# a changed Subject goes unseen, and the report says the header is unsigned
cp "$conf" "$work/nohp.conf"
echo 'header_protection = false;' >>"$work/nohp.conf"
msg "$work/in4.eml" "Andi <andi@banjarkota.go.id>" "<v4@banjarkota.go.id>" "Tanpa salinan"
"$MILTER" -c "$work/nohp.conf" -t "$work/in4.eml" -s andi@banjarkota.go.id 2>/dev/null |
	sed '1,/^\r*$/s/^Subject: Tanpa salinan/Subject: Diubah/' >"$work/nohp.eml"
v 0 "header_protection = false, the outer Subject changed: valid (only the body is signed)" "$work/nohp.eml"
has "protected:    none (the header fields are not signed)" "... and it says the header fields are not signed"
has "no audit log row for this Message-ID" "... the verdict says so"

v 0 "a partner's multipart/signed mail (LF line ends)" "$work/p1.eml"
has "signer:       CN=Mitra Jabar" "... the partner's certificate"
has "SAH / VALID" "... SAH / VALID"
v 0 "the partner's mail as delivered inbound, stamped by the milter" "$work/stamped.eml"
grep -q "^Authentication-Results: .*smime=pass" "$work/stamped.eml"
tap $? "... it was stamped smime=pass"
has "audit:        row " "... its audit row"
has "(verified, queue id VIN1" "... the inbound row: verified, VIN1"
has "audit chain:  intact up to this row" "... the chain up to it"
has "stamp:        " "... the gateway's stamp shown"
v 2 "opaque signed-data unwrapped on arrival: could not check" "$work/unwrapped.eml"
has "no signature left to check (taken off on arrival); the gateway's stamp: " "... says why, with the stamp"
has "smime=pass" "... the stamp said pass"
has "(verified, queue id VIN2" "... and its audit row"
v 0 "a partner's opaque signed-data" "$work/p2.eml"
has "shape:        signed-data" "... as signed-data"
sed 's/^From: .*/From: mallory@jabarprov.go.id/' "$work/p1.eml" >"$work/p3.eml"
v 1 "a From the certificate does not carry" "$work/p3.eml"
has "alamat pengirim (From) tidak sesuai dengan sertifikat" "... named in Indonesian"

# ---- files that cannot be checked
cp "$work/in1.eml" "$work/unsigned.eml"
v 2 "an unsigned file" "$work/unsigned.eml"
has "TIDAK DAPAT DIPERIKSA / COULD NOT CHECK" "... COULD NOT CHECK"
has "not signed" "... not signed"
v 2 "a missing file" "$work/nosuch.eml"
has "No such file" "... says why"
openssl cms -encrypt -in "$work/p.txt" -aes256 -from mitra@jabarprov.go.id -to andi@banjarkota.go.id \
	-subject "Rahasia" -out "$work/enc.eml" "$pki/andi.crt.pem" 2>/dev/null || bail "openssl cms -encrypt"
v 2 "an encrypted message" "$work/enc.eml"
has "could not check: encrypted" "... encrypted"

# ---- several files at once
v 0 "two good files" "$work/good.eml" "$work/p1.eml"
v 1 "one bad among good ones" "$work/good.eml" "$work/body.eml" "$work/p1.eml"
v 2 "a good one and an unsigned one" "$work/good.eml" "$work/unsigned.eml"
v 1 "invalid wins over could-not-check" "$work/unsigned.eml" "$work/body.eml"
v 64 "no file" 
v 64 "an unknown option" --bogus "$work/good.eml"

# ---- --json: one object per file
v 1 "--json, three files" --json "$work/good.eml" "$work/body.eml" "$work/unsigned.eml"
$PY -m json.tool "$work/out" >/dev/null
tap $? "... python3 -m json.tool parses it"
$PY - "$work/out" "$row" "$serial" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
row, serial = int(sys.argv[2]), sys.argv[3]
g, b, u = j
bad = []
def want(c, what):
    if not c: bad.append(what)
want(len(j) == 3, "three objects")
want(g["status"] == "valid" and g["exit"] == 0, "good: valid")
want(g["verdict"].startswith("SAH / VALID:"), "good: verdict")
want(g["signature"]["verified"] is True and g["signature"]["result"] == "pass", "good: verified")
want(g["signature"]["time_source"] == "signingTime" and g["signature"]["signing_time"], "good: signing time")
want(g["signature"]["timestamp"] is None, "good: no timestamp yet")
want(g["signer"]["serial"] == serial and g["signer"]["expired"] is False, "good: signer")
want(isinstance(g["chain"], list) and len(g["chain"]) == 3, "good: chain of 3")
want(g["revocation"]["revoked"] is False and g["revocation"]["revoked_at"] is None, "good: not revoked")
want(g["audit"]["id"] == row and g["audit"]["chain_ok"] is True and g["audit"]["action"] == "signed", "good: audit")
want(g["audit"]["queue_id"] == "VQ1" and len(g["audit"]["hash"]) == 64, "good: audit qid, hash")
want(g["message_id"] == "<v1@banjarkota.go.id>" and g["shape"] == "multipart/signed", "good: headers")
want(g["protected_headers"]["hp"] == "clear" and g["protected_headers"]["changed"] is None, "good: protected headers as signed")
want(b["status"] == "invalid" and b["exit"] == 1 and b["reason_en"] == "body altered after signing", "body: invalid")
want(b["signature"]["verified"] is False, "body: not verified")
want(u["status"] == "unchecked" and u["exit"] == 2 and u["signer"] is None, "unsigned: unchecked")
# the unsigned copy keeps the Message-ID of the signed one: its row is shown
want(u["audit"]["chain_ok"] is True and u["audit"]["rows"] == 1 and u["audit"]["id"] == row, "unsigned: the audit row")
want(u["signature"]["result"] is None and u["revocation"]["revoked"] is False, "unsigned: no signature")
print("\n".join("# " + x for x in bad))
sys.exit(1 if bad else 0)
EOF
tap $? "... the fields of each object"

# ---- the audit log altered by hand
cp "$db" "$work/good.db"
restore() { cp "$work/good.db" "$db" && rm -f "$db-wal" "$db-shm"; }
q "UPDATE audit SET result = 'rejected' WHERE id = $row"
v 1 "its audit row altered with sqlite3" "$work/good.eml"
has "audit chain:  BROKEN at row $row: row content changed" "... names the broken row"
has "TIDAK SAH / INVALID: tanda tangan pesan <v1@banjarkota.go.id>" "... TIDAK SAH / INVALID"
has "audit log broken at row $row" "... the verdict names it"
v 1 "--json says so" --json "$work/good.eml"
jcheck "... chain_ok false, broken_id $row, content-changed" \
	'j["audit"]["chain_ok"] is False and j["audit"]["broken_id"] == int(sys.argv[2]) and
	 j["audit"]["problem"] == "content-changed" and j["signature"]["verified"] is True' "$row"
restore
last=$(q "SELECT max(id) FROM audit")
q "UPDATE audit SET result = 'x' WHERE id = $last"
if [ "$last" -gt "$row" ]; then
	v 0 "a later row altered: the chain still verifies up to this one" "$work/good.eml"
	has "audit chain:  intact up to this row" "... intact up to it"
else
	nok "a later row than $row exists (last $last)"
fi
restore

# ---- revoked after signing: a CRL imported later
fx_issue late "$work" 7a7a 365 "/CN=Late Mitra" late@jabarprov.go.id || bail "a partner certificate"
sign_late() { # sign_late OUT MESSAGE-ID
	openssl cms -sign -in "$work/p.txt" -signer "$work/late.crt.pem" -inkey "$work/late.key.pem" \
		-certfile "$pki/inter.crt.pem" -from late@jabarprov.go.id -subject "Late" -out "$1" 2>/dev/null &&
		sed -i "1i Message-ID: $2" "$1"
}
sign_late "$work/late1.eml" "<late1@jabarprov.go.id>" || bail "signed by the partner"
v 0 "a partner message before its certificate is revoked" "$work/late1.eml"
sleep 2
LEAF_EMAIL=x OPENSSL_CONF=$pki/ca/openssl.cnf openssl ca -config "$pki/ca/openssl.cnf" -name inter_ca \
	-revoke "$work/late.crt.pem" -crl_reason keyCompromise >"$work/ca.log" 2>&1 &&
	LEAF_EMAIL=x OPENSSL_CONF=$pki/ca/openssl.cnf openssl ca -config "$pki/ca/openssl.cnf" -name inter_ca \
		-gencrl -out "$work/crl2.pem" >>"$work/ca.log" 2>&1 || { sed 's/^/#   /' "$work/ca.log"; bail "revoked by the CA"; }
ctl "the new CRL imported" crl import "$work/crl2.pem"
today=$(date -u +%Y-%m-%d)
v 0 "revoked after it signed: valid at signing time" "$work/late1.eml"
has "SAH PADA SAAT PENANDATANGANAN / VALID AT SIGNING TIME" "... VALID AT SIGNING TIME"
has "valid at signing time $today " "... valid at signing time DATE"
has "UTC, revoked since $today " "... revoked since DATE"
has "sah pada saat penandatanganan $today " "... in Indonesian too"
has "UTC, sertifikat dicabut sejak $today " "... dicabut sejak DATE"
has "revoked:      since $today" "... revoked since, from the CRL"
sign_late "$work/late2.eml" "<late2@jabarprov.go.id>" || bail "signed again"
v 1 "signed after the revocation" "$work/late2.eml"
has "before the signature" "... revoked before the signature"
sign_rev() {
	openssl cms -sign -in "$work/p.txt" -signer "$pki/revmitra.crt.pem" -inkey "$pki/revmitra.key.pem" \
		-from revmitra@jabarprov.go.id -subject "Rev" -out "$work/rev.eml" 2>/dev/null
}
sign_rev || bail "signed by revmitra"
ctl "the test CA's CRL imported" crl import "$pki/crl.pem"
v 1 "a certificate revoked in the CRL before it signed" "$work/rev.eml"
has "TIDAK SAH / INVALID" "... TIDAK SAH / INVALID"

# ---- the city's own certificate revoked afterwards (smimectl revoke)
sleep 1
ctl "andi's certificate revoked" revoke "$serial" --reason keyCompromise
v 0 "signed before smimectl revoke: valid at signing time" "$work/good.eml"
has "revoked since $today" "... revoked since DATE"
has "(certificates: CN=" "... from the certificates table"
has "today:        certificate revoked $today" "... and today it is revoked"
v 0 "--json" --json "$work/good.eml"
jcheck "... revocation source certificates, revoked_at" \
	'j["status"] == "valid" and j["revocation"]["revoked"] is True and
	 j["revocation"]["source"] == "certificates" and j["revocation"]["revoked_at"] and
	 "revoked since" in j["reason_en"]'

# ---- no database
sed "s|^database.*|database = \"$work/none.db\";|" "$conf" >"$work/nodb.conf"
expect 2 "no database: could not check" "$CTL" -c "$work/nodb.conf" verify "$work/p1.eml"
has "revocation not checked" "... revocation not checked"

echo "1..$n"
