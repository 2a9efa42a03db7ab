#!/bin/sh
# The inbound path offline (smime-milter -t FILE --inbound -r ADDR), no MTA:
# the same callbacks as the daemon; then a few of the same messages through
# the daemon over the milter protocol (tests/lib/miltercli.py).  openssl cms builds the partner's mail
# and checks what comes out.  The end-to-end cases through Postfix with
# three encoders are tests/e2e/postfix-inbound*.sh.
#   - encrypted to andi (AES-256-CBC, AES-256-GCM, RSA-OAEP) and to the EC
#     mailbox ec@ (ECDH): decrypted, the inner signature verifies, stamped
#     pass, the outer headers other than Content-* byte for byte;
#   - andi and budi as recipients, only andi in the RecipientInfos: not
#     decrypted, the stamp says why;
#   - signed only: pass; tampered: fail; on_bad_signature = reject: exit 69
#     with the reason;
#   - a forged Authentication-Results of our authserv-id is removed, a
#     foreign one stays; the Subject tag; inbound_unwrap_opaque;
#   - a message with nothing to do comes out unchanged;
#   - -n names a decryption key that cannot be loaded, and still passes;
#   - the daemon: decrypted body and stamp over the protocol, 550 5.7.1 for
#     a bad signature with on_bad_signature = reject, one audit row per
#     message (decrypted, verified, verify-failed, not-decrypted) and the
#     chain still verifies; temp_dir full while a large inbound message is
#     spooled: tempfail, nothing changed, the retry decrypts.
# Prints TAP.  KEEP=1 keeps the work directory.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
fx_begin inbound
pid=''
fx_on_exit() {
	me_stop "$pid"
	umount "$work/tmp" 2>/dev/null
}
fx_setup "PKI built, andi, sekda, noreply, legacy imported"
pki=$work/pki
"$CTL" -c "$conf" import --mailbox ec@banjarkota.go.id --kind individual \
	--p12 "$pki/ec.p12" --passphrase-file "$pki/ec.pass" >"$work/ec.log" 2>&1
tap $? "ec@ (EC P-256 key) imported" || sed 's/^/#   /' "$work/ec.log"
ID=mx.banjarkota.test
echo "authserv_id = \"$ID\";" >>"$conf"
t=$work/t
mkdir -p "$t"

# hdrs FILE SUBJECT: the partner's outer header block (no Content-*)
hdrs() {
	printf 'From: Mitra <mitra@jabarprov.go.id>\r\n'
	printf 'To: andi@banjarkota.go.id\r\n'
	printf 'Subject: %s\r\nMessage-ID: <%s@jabarprov.go.id>\r\n' "$2" "$2"
	printf 'Authentication-Results: %s; smime=pass (forged)\r\n' "$ID"
	printf 'Authentication-Results: mx.jabarprov.go.id; spf=pass\r\n'
}
printf 'Content-Type: text/plain; charset=utf-8\r\n\r\nBalasan untuk Pak Andi: rapat Senin.\r\n' >"$t/content"
openssl cms -sign -in "$t/content" -signer "$pki/mitra.crt.pem" -inkey "$pki/mitra.key.pem" \
	-certfile "$pki/inter.crt.pem" -out "$t/signed" 2>"$t/sign.err" || sed 's/^/#   /' "$t/sign.err"
# enc NAME SUBJECT CERT OPTS...: signed-then-encrypted to CERT
enc() {
	_n=$1 _s=$2 _c=$3
	shift 3
	{ hdrs x "$_s"; openssl cms -encrypt -in "$t/signed" -recip "$_c" "$@"; } >"$t/$_n.eml" 2>"$t/$_n.err"
}
# run NAME ARGS...: the offline inbound run; out, err, rc
run() {
	_n=$1
	shift
	"$MILTER" -c "$conf" -t "$t/$_n.eml" --inbound "$@" >"$t/$_n.out" 2>"$t/$_n.err2"
	echo $? >"$t/$_n.rc"
}
rc() { cat "$t/$1.rc"; }
ar() { tr -d '\r' <"$t/$1.out" | awk '/^$/ { exit } { print }' |
	awk '/^Authentication-Results:/ { a = 1; printf "%s", $0; next }
	     a && /^[ \t]/ { printf "%s", $0; next } a { a = 0; print "" }
	     END { if (a) print "" }'; }
ours() { ar "$1" | grep "^Authentication-Results: $ID;"; }
# inner NAME: the signed entity inside the output verifies, content equal
inner() {
	openssl cms -verify -in "$t/$1.out" -CAfile "$pki/ca-bundle.pem" -out "$t/$1.content" \
		>/dev/null 2>"$t/$1.verr" && tr -d '\r' <"$t/$1.content" | grep -q "^Balasan untuk Pak Andi: rapat Senin.$"
}

for c in "cbc:-aes-256-cbc" "gcm:-aes-256-gcm" "oaep:-aes-256-cbc -keyopt rsa_padding_mode:oaep"; do
	nm=${c%%:*}
	# shellcheck disable=SC2086 # the options are words
	enc "$nm" "rahasia $nm" "$pki/andi.crt.pem" ${c#*:}
	run "$nm" -r andi@banjarkota.go.id
	[ "$(rc "$nm")" = 0 ] && inner "$nm" && ! grep -q "smime.p7m" "$t/$nm.out"
	tap $? "to andi ($nm): decrypted, the inner signature verifies, the content is what mitra wrote" ||
		sed 's/^/#   /' "$t/$nm.err" "$t/$nm.err2" "$t/$nm.verr" 2>/dev/null | head -8
	ours "$nm" | grep -q "smime=pass .*decrypted for andi@banjarkota.go.id" &&
		[ "$(ours "$nm" | wc -l)" = 1 ] && ar "$nm" | grep -q "^Authentication-Results: mx.jabarprov.go.id; spf=pass"
	tap $? "to andi ($nm): one stamp of ours, smime=pass and decrypted; the forged one gone, the foreign one kept" ||
		ar "$nm" | sed 's/^/#   /'
done
# the outer headers other than Content-* stay byte for byte
tr -d '\r' <"$t/cbc.eml" | awk '/^$/ { exit } { print }' | grep -v "^Authentication-Results: $ID" |
	grep -iv '^content-\|^mime-version\|^[[:blank:]]' >"$t/cbc.inh"
tr -d '\r' <"$t/cbc.out" | awk '/^$/ { exit } { print }' | grep -v "^Authentication-Results: $ID\|^[[:blank:]]" |
	grep -iv '^content-\|^mime-version' >"$t/cbc.outh"
cmp -s "$t/cbc.inh" "$t/cbc.outh"
tap $? "the other outer header fields are kept byte for byte, in order" || diff "$t/cbc.inh" "$t/cbc.outh" | sed 's/^/#   /'

enc ec "rahasia ec" "$pki/ec.crt.pem" -aes-256-gcm
sed -i 's/^To: andi@/To: ec@/' "$t/ec.eml"
run ec -r ec@banjarkota.go.id
[ "$(rc ec)" = 0 ] && inner ec && ours ec | grep -q "smime=pass .*decrypted for ec@banjarkota.go.id"
tap $? "to ec@ (EC key, ECDH, AES-256-GCM): decrypted and verified" || sed 's/^/#   /' "$t/ec.err2"

cp "$t/cbc.eml" "$t/two.eml"
run two -r andi@banjarkota.go.id -r budi@banjarkota.go.id
[ "$(rc two)" = 0 ] && grep -q "smime.p7m" "$t/two.out" &&
	ours two | grep -q "not decrypted: budi@banjarkota.go.id is not a recipient of the encrypted message"
tap $? "to andi and budi, only andi a CMS recipient: not decrypted, the stamp says why" || ours two | sed 's/^/#   /'

{ hdrs x "ditandatangani"; cat "$t/signed"; } >"$t/sig.eml"
run sig -r andi@banjarkota.go.id
[ "$(rc sig)" = 0 ] && ours sig | grep -q "smime=pass (signature verified" &&
	ours sig | grep -q "body.smime-identifier=mitra@jabarprov.go.id" &&
	tr -d '\r' <"$t/sig.out" | sed '1,/^$/d' >"$t/sig.body" && tr -d '\r' <"$t/signed" | sed '1,/^$/d' >"$t/sig.orig" &&
	cmp -s "$t/sig.body" "$t/sig.orig"
tap $? "signed only: stamped pass with the signer's address, the body as it came" || ours sig | sed 's/^/#   /'
sed 's/rapat Senin/rapat Selasa/' "$t/sig.eml" >"$t/bad.eml"
run bad -r andi@banjarkota.go.id
[ "$(rc bad)" = 0 ] && ours bad | grep -q "smime=fail (body altered after signing)"
tap $? "signed, body altered: delivered with smime=fail (body altered after signing)" || ours bad | sed 's/^/#   /'

cp "$conf" "$work/rej.conf"
echo 'on_bad_signature = "reject";' >>"$work/rej.conf"
"$MILTER" -c "$work/rej.conf" -t "$t/bad.eml" --inbound -r andi@banjarkota.go.id >"$t/rej.out" 2>"$t/rej.err"
r=$?
[ $r = 69 ] && [ ! -s "$t/rej.out" ] && grep -q "smime-milter: rejected: 550 5.7.1 bad signature: body altered after signing" "$t/rej.err"
tap $? "on_bad_signature = reject: exit 69, nothing written, the reason on stderr (exit $r)" || sed 's/^/#   /' "$t/rej.err"
"$MILTER" -c "$work/rej.conf" -t "$t/sig.eml" --inbound -r andi@banjarkota.go.id >"$t/rej2.out" 2>"$t/rej2.err"
tap $? "on_bad_signature = reject: a good signature still goes through"

cp "$conf" "$work/tag.conf"
printf 'inbound_subject_tag = true;\ninbound_unwrap_opaque = true;\n' >>"$work/tag.conf"
"$MILTER" -c "$work/tag.conf" -t "$t/sig.eml" --inbound -r andi@banjarkota.go.id >"$t/tag.out" 2>"$t/tag.err"
[ "$(tr -d '\r' <"$t/tag.out" | grep -c '^Subject: ')" = 1 ] &&
	tr -d '\r' <"$t/tag.out" | grep -q '^Subject: \[[^]]*\] ditandatangani$'
tap $? "inbound_subject_tag: one Subject, tagged" || grep -a '^Subject' "$t/tag.out" | sed 's/^/#   /'
openssl cms -sign -nodetach -in "$t/content" -signer "$pki/mitra.crt.pem" -inkey "$pki/mitra.key.pem" \
	-certfile "$pki/inter.crt.pem" -out "$t/opq" 2>/dev/null
{ hdrs x "opaque"; cat "$t/opq"; } >"$t/opq.eml"
"$MILTER" -c "$work/tag.conf" -t "$t/opq.eml" --inbound -r andi@banjarkota.go.id >"$t/opq.out" 2>"$t/opq.err"
tr -d '\r' <"$t/opq.out" | grep -q "^Balasan untuk Pak Andi: rapat Senin.$" && ! grep -q "pkcs7-mime" "$t/opq.out" &&
	ar opq | grep -q "smime=pass"
tap $? "inbound_unwrap_opaque: opaque signed-data replaced by its content, the stamp keeps pass" || sed 's/^/#   /' "$t/opq.err"

printf 'From: x@jabarprov.go.id\r\nTo: andi@banjarkota.go.id\r\nSubject: biasa\r\n\r\nHalo.\r\n' >"$t/plain.eml"
"$MILTER" -c "$conf" -t "$t/plain.eml" --inbound -r x@example.org >"$t/plain.out" 2>"$t/plain.err"
cmp -s "$t/plain.eml" "$t/plain.out" && grep -q "message passed unchanged" "$t/plain.err"
tap $? "no internal recipient: written unchanged, 'message passed unchanged'" || sed 's/^/#   /' "$t/plain.err"
run plain -r andi@banjarkota.go.id
ours plain | grep -q "smime=none (not signed)" && tr -d '\r' <"$t/plain.out" | grep -q '^Halo\.$'
tap $? "plain mail to andi: stamped smime=none, body kept" || ours plain | sed 's/^/#   /'

# -n: a decryption-only key that cannot be loaded is named, -n still passes.
# andi gets a new certificate (andi2); the old one is superseded, its key
# only decrypts; its key file is taken away for the check.
fx_issue andi2 "$work" 7201 365 "/CN=Andi Baru/O=Pemerintah Kota Banjar" andi@banjarkota.go.id >/dev/null 2>&1 &&
	"$CTL" -c "$conf" import --mailbox andi@banjarkota.go.id --kind individual \
		--cert "$work/andi2.crt.pem" --key "$work/andi2.key.pem" >"$t/andi2.log" 2>&1
tap $? "andi renewed: a new certificate (serial 7201) supersedes the old one" || sed 's/^/#   /' "$t/andi2.log"
run cbc -r andi@banjarkota.go.id
[ "$(rc cbc)" = 0 ] && inner cbc && ours cbc | grep -q "smime=pass .*decrypted for andi@banjarkota.go.id" &&
	grep -q "decrypted for andi@banjarkota.go.id certificate [0-9A-F]* (superseded)" "$t/cbc.err2"
tap $? "mail encrypted to andi's superseded certificate still decrypts; the log says superseded" ||
	sed 's/^/#   /' "$t/cbc.err2"
old=$(sqlite3 "$work/smime.db" "select key_location from certificates where mailbox = 'andi@banjarkota.go.id' and status = 'superseded' limit 1" 2>/dev/null)
if [ -n "$old" ] && [ -f "$old" ]; then
	mv "$old" "$old.gone"
	"$MILTER" -c "$conf" -n >"$t/n.out" 2>"$t/n.err"
	r=$?
	[ $r = 0 ] && grep -q "mailbox andi@banjarkota.go.id: superseded certificate .* cannot decrypt: " "$t/n.err"
	tap $? "-n names andi's old decryption key that cannot be loaded, and passes (exit $r)" ||
		sed 's/^/#   /' "$t/n.out" "$t/n.err"
	run cbc -r andi@banjarkota.go.id
	[ "$(rc cbc)" = 0 ] && grep -q "smime.p7m" "$t/cbc.out" && ours cbc | grep -q "not decrypted"
	tap $? "... and mail to that certificate is then delivered as it came, stamped not decrypted" || ours cbc | sed 's/^/#   /'
	mv "$old.gone" "$old"
else
	nok "-n: the superseded key file of andi to hide (found: '$old')"
fi

# ---- the daemon, over the milter protocol
sed -i "s/^socket = .*/socket = \"inet:$port@127.0.0.1\";/" "$work/rej.conf"
me_start "$work/rej.conf" "$work/milter.log" "$port" || bail "the milter (on_bad_signature = reject) started"
pid=$ME_PID
# cli NAME FILE ARGS...: one message from outside; result lines in NAME.res
cli() {
	_n=$1 _f=$2
	shift 2
	"$PY" "$CLI" --socket "inet:$port@127.0.0.1" --client-ip 192.0.2.7 --qid "IN$_n" "$@" \
		"$_f=$t/$_n.dout" >"$t/$_n.res" 2>&1
}
has() { grep -qxF "$2" "$t/$1.res"; }
cli d1 "$t/gcm.eml" --rcpt andi@banjarkota.go.id
cp "$t/d1.dout" "$t/d1.out" 2>/dev/null
has d1 "m1.bodychange=1" && has d1 "m1.result=continue" && inner d1
tap $? "daemon: GCM mail to andi comes back decrypted, the inner signature verifies" || sed 's/^/#   /' "$t/d1.res"
grep -q "^m1.hdradd=Authentication-Results: $ID; smime=pass" "$t/d1.res" && grep -q "^m1.hdrdel=Authentication-Results" "$t/d1.res"
tap $? "daemon: the forged stamp deleted, ours added (smime=pass)" || grep '^m1.hdr' "$t/d1.res" | sed 's/^/#   /'
cli d2 "$t/bad.eml" --rcpt andi@banjarkota.go.id
has d2 "m1.result=replycode" && grep -q "^m1.reply=550 5.7.1 bad signature: body altered after signing" "$t/d2.res"
tap $? "daemon, on_bad_signature = reject: 550 5.7.1 with the reason" || sed 's/^/#   /' "$t/d2.res"
cli d3 "$t/sig.eml" --rcpt andi@banjarkota.go.id
cli d4 "$t/two.eml" --rcpt andi@banjarkota.go.id --rcpt budi@banjarkota.go.id
has d3 "m1.result=continue" && has d4 "m1.bodychange=0"
tap $? "daemon: signed-only and not-decrypted messages go on" || sed 's/^/#   /' "$t/d3.res" "$t/d4.res"
# temp_dir full while a large inbound message is spooled: tempfail, the
# message untouched (the MTA keeps it), nothing left behind; the retry
# after the space is back is decrypted
"$PY" -c 'import sys
line = "Lampiran laporan keuangan, baris %07d.\r\n"
sys.stdout.write("Content-Type: text/plain\r\n\r\n" + "".join(line % i for i in range(70000)))' >"$t/big.txt"
{ hdrs x besar; openssl cms -encrypt -aes-256-gcm -in "$t/big.txt" -recip "$pki/andi.crt.pem"; } >"$t/big.eml"
if mount -t tmpfs -o size=256k,mode=0700 tmpfs "$work/tmp"; then
	cli d5 "$t/big.eml" --rcpt andi@banjarkota.go.id
	{ has d5 "m1.result=tempfail" || grep -q '^m1\.reply=4' "$t/d5.res"; } && has d5 "m1.bodychange=0" &&
		! grep -q '^m1\.hdr' "$t/d5.res"
	tap $? "daemon: temp_dir full during a $(($(wc -c <"$t/big.eml") / 1024)) KiB inbound message: tempfailed, nothing changed" ||
		sed 's/^/#   /' "$t/d5.res"
	grep -q "INd5: cannot check inbound mail: .*No space left.*; tempfailed" "$work/milter.log"
	tap $? "daemon: the log line says No space left and tempfailed" || tail -3 "$work/milter.log" | sed 's/^/#   /'
	[ -z "$(ls -A "$work/tmp")" ]
	tap $? "daemon: no spool file left in temp_dir"
	umount "$work/tmp"
	cli d6 "$t/big.eml" --rcpt andi@banjarkota.go.id
	cp "$t/d6.dout" "$t/d6.out" 2>/dev/null
	has d6 "m1.bodychange=1" && tr -d '\r' <"$t/d6.out" | grep -q "^Lampiran laporan keuangan, baris 0069999.$"
	tap $? "daemon: the retry with space again is decrypted, to its last line" || sed 's/^/#   /' "$t/d6.res"
else
	nok "a 256 KiB tmpfs as temp_dir (mount failed: not root?)"
fi
me_stop "$pid"
pid=''
rows=$(sqlite3 "$work/smime.db" "select queue_id || ' ' || action || ' ' || coalesce(recipients, '-') || ' ' || coalesce(cert_serial, '-')
	from audit where queue_id like 'IN%' order by id")
printf '%s\n' "$rows" | sed 's/^/# audit: /'
M=$(openssl x509 -in "$pki/mitra.crt.pem" -noout -serial | sed 's/.*=//')
[ "$(printf '%s\n' "$rows" | sed -n 1p)" = "INd1 decrypted andi@banjarkota.go.id $M" ] &&
	[ "$(printf '%s\n' "$rows" | sed -n 2p)" = "INd2 verify-failed andi@banjarkota.go.id $M" ] &&
	[ "$(printf '%s\n' "$rows" | sed -n 3p)" = "INd3 verified andi@banjarkota.go.id $M" ] &&
	[ "$(printf '%s\n' "$rows" | sed -n 4p)" = "INd4 not-decrypted andi@banjarkota.go.id, budi@banjarkota.go.id -" ]
tap $? "one audit row per inbound message: decrypted, verify-failed, verified, not-decrypted, with recipients and signer"
expect 0 "smimectl audit verify: the chain holds with the inbound rows" "$CTL" -c "$conf" audit verify
fx_no_sanitizer "no sanitizer report in the milter log" "$work/milter.log"
echo "1..$n"
