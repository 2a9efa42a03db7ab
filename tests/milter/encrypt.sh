#!/bin/sh
# Encryption (issue 5) in offline mode (smime-milter -t FILE [-r ADDR]...):
# sign, then encrypt to the recipients with known certificates.  The openssl
# CLI is the independent decrypter and verifier (the Postfix end-to-end test
# adds gpgsm).  The same through the daemon and the milter protocol, and
# harvesting, are tests/milter/encrypt-daemon.sh; what both share is
# tests/lib/encrypt.sh.
#
#   (1) one partner recipient: application/pkcs7-mime enveloped-data, the
#       other headers unchanged and in order, encrypted to exactly the
#       recipient and the sender, decrypts with both keys and not with a
#       stranger's, inner multipart/signed verifies, decoded content equal
#       (8bit text and a multipart with an 8bit attachment), AES-256-CBC +
#       rsaEncryption
#   (2) recipients from To/Cc/Bcc: RSA + EC (ECDH) recipients; a Bcc without
#       a certificate under an opportunistic rule gives signed only
#   (3) required: a recipient without a certificate is refused (550 5.7.1),
#       the others get the message encrypted; nobody left: exit 69
#   (4) whole-message refusal: sender without a (suitable) certificate,
#       a recipient without a certificate beside a required one, client
#       signed; client-encrypted mail passes untouched
#   (5) rule specificity; senders-limited rules; no rule: signed only
#   (6) AES-256-GCM / AES-128-GCM (authEnveloped-data), RSA-OAEP,
#       AES-128-CBC; bad settings refused by -n
#   (7) recipient certificates: revoked (CRL), expired, not yet valid,
#       sign-only, serverAuth-only, untrusted are never used; the newest of
#       two is used; after remove: signed only
#   (8) mapped certificates of internal mailboxes are recipient certificates
# Prints TAP.  KEEP=1 keeps the work directory.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
. "$TOP/tests/lib/encrypt.sh"
t0=$(date +%s)
enc_begin enc
enc_partners
tap $? "smimectl recipient import of mitra@ (RSA) and ecmitra@ (EC) partner certificates"

# ---------------------------------------------------------------- helpers
# signed_only_logged NAME LABEL DESCRIPTION TEXT TEXT-DESCRIPTION: the tm
# run NAME (checked with tm_ok LABEL) left signed only (check_signed_only
# DESCRIPTION), and its log has the fixed string TEXT (one more check)
signed_only_logged() {
	tm_ok "$2" "$1" || return 1
	check_signed_only "$3" "$out/$1.out"
	errhas "$1" "$4"
	tap $? "$5" || showerr "$1"
}

# tm NAME CONF MSG [ARGS...]: smime-milter -c CONF -t MSG ARGS; stdout in
# $out/NAME.out, stderr in $out/NAME.err, exit status in TRC
tm() {
	_n=$1 _c=$2 _m=$3
	shift 3
	"$ME_MILTER" -c "$_c" -t "$_m" "$@" >"$out/$_n.out" 2>"$out/$_n.err"
	TRC=$?
}
# tm_ok LABEL NAME: exit 0 with output
tm_ok() {
	if [ "$TRC" = 0 ] && [ -s "$out/$2.out" ]; then
		return 0
	fi
	nok "$1: smime-milter -t exits 0 with a message (exit $TRC)"
	sed 's/^/#   /' "$out/$2.err" | head -10
	return 1
}
# errhas NAME FIXED-STRING: the -t log contains it
errhas() { grep -qF "$2" "$out/$1.err"; }
showerr() { sed 's/^/#   stderr: /' "$out/$1.err" | head -10; }

# rules for the offline checks (blank and comment lines so that the line
# numbers in the messages are not all the same)
conf enc <<'EOF'
# encryption rules
encrypt = (
  { recipients = [ "jabarprov.go.id" ]; mode = "opportunistic"; },

  { recipients = [ "bpk.go.id" ]; mode = "required"; },
  { recipients = [ "banjarkota.go.id" ]; mode = "opportunistic"; }
);
EOF
BPKLINE=$(grep -n '"bpk.go.id"' "$work/enc.conf" | cut -d: -f1)
conf req <<'EOF'
encrypt = (
  { recipients = [ "jabarprov.go.id", "bpk.go.id" ]; mode = "required"; }
);
EOF
"$ME_MILTER" -c "$work/enc.conf" -n >"$work/n.out" 2>&1
tap $? "smime-milter -n accepts a configuration with encrypt rules"
grep -q "2 recipient certificates" "$work/n.out"
tap $? "smime-milter -n counts the recipient certificates ($(cat "$work/n.out"))"

# ---------------------------------------------------------------- messages
# 8bit text with non-ASCII, a folded header, an encoded Subject, X- header
{
	printf '%s\r\n' "From: Andi Pratama <andi@banjarkota.go.id>" \
		"To: Mitra Jabar <mitra@jabarprov.go.id>" \
		"Subject: =?UTF-8?B?U3VyYXQgZGluYXMg4oCTIGNhZsOp?=" \
		"Date: Tue, 24 Nov 2026 10:00:00 +0700" \
		"Message-ID: <enc-text@banjarkota.go.id>" \
		"References: <a1@banjarkota.go.id>" \
		"	<a2@banjarkota.go.id>" \
		"X-Nomor-Surat: 005/123/Diskominfo/2026" \
		"MIME-Version: 1.0" \
		"Content-Type: text/plain; charset=utf-8" \
		"Content-Transfer-Encoding: 8bit" \
		"" \
		"Dengan hormat – café ✓ naïve" \
		"From the start of a line" \
		".leading dot" \
		"trailing spaces   " \
		"" \
		"Salam"
} >"$in/text.eml"
# multipart/mixed: 8bit UTF-8 text and an 8bit ISO-8859-1 attachment
{
	printf '%s\r\n' "From: Andi Pratama <andi@banjarkota.go.id>" \
		"To: mitra@jabarprov.go.id" \
		"Subject: anggaran" \
		"Message-ID: <enc-multi@banjarkota.go.id>" \
		"MIME-Version: 1.0" \
		'Content-Type: multipart/mixed; boundary="b1"' \
		"" \
		"--b1" \
		"Content-Type: text/plain; charset=utf-8" \
		"Content-Transfer-Encoding: 8bit" \
		"" \
		"Terlampir rincian – Rp 1.000.000 ✓" \
		"--b1" \
		"Content-Type: text/csv; charset=iso-8859-1; name=\"anggaran.csv\"" \
		"Content-Transfer-Encoding: 8bit" \
		"Content-Disposition: attachment; filename=\"anggaran.csv\""
	printf '\r\npos;jumlah\r\ncaf\351;12\r\nna\357ve;\2607\r\n--b1--\r\n'
} >"$in/multi.eml"

# ================================================================ (1)
tm c1 "$work/enc.conf" "$in/text.eml" -r mitra@jabarprov.go.id
if tm_ok "(1) text" c1; then
	check_enc "(1) 8bit text to mitra@" "$in/text.eml" "$out/c1.out" enveloped \
		andi@banjarkota.go.id "andi mitra"
	errhas c1 "OFFLINE: signed for andi@banjarkota.go.id with certificate $ANDI and encrypted (aes-256-cbc, 2 certificates)"
	tap $? "(1) log: signed ... and encrypted (aes-256-cbc, 2 certificates)"
	grep -q '^Content-Disposition: attachment; filename="smime.p7m"' "$out/c1.out"
	tap $? "(1) Content-Disposition: attachment; filename=\"smime.p7m\""
fi
tm c1m "$work/enc.conf" "$in/multi.eml" -r mitra@jabarprov.go.id
if tm_ok "(1) multipart" c1m; then
	check_enc "(1) multipart with an 8bit attachment" "$in/multi.eml" "$out/c1m.out" \
		enveloped andi@banjarkota.go.id "andi mitra"
fi
tm c1u "$work/enc.conf" "$in/plain.eml" -r MITRA@JabarProv.GO.ID
tm_ok "(1) upper case" c1u && [ "$(rserials "$out/c1u.out")" = "$(wserials andi mitra)" ]
tap $? "(1) an upper-case recipient address finds the certificate"
tm c1d "$work/enc.conf" "$in/plain.eml" -r mitra@jabarprov.go.id -r '<mitra@jabarprov.go.id>'
tm_ok "(1) twice" c1d && [ "$(rserials "$out/c1d.out")" = "$(wserials andi mitra)" ]
tap $? "(1) the same recipient twice: one RecipientInfo each for mitra and andi"

# ================================================================ (2)
{
	printf '%s\r\n' "From: Andi Pratama <andi@banjarkota.go.id>" \
		'To: "Dinas, Mitra" <mitra@jabarprov.go.id>' \
		"Cc: ecmitra@jabarprov.go.id (EC, partner)" \
		"Subject: to and cc" "Message-ID: <enc-tocc@banjarkota.go.id>"
	printf '\r\nHalo.\r\n'
} >"$in/tocc.eml"
tm c2 "$work/enc.conf" "$in/tocc.eml"
if tm_ok "(2) To/Cc" c2; then
	check_enc "(2) To mitra (quoted comma in the name), Cc ecmitra" "$in/tocc.eml" \
		"$out/c2.out" enveloped andi@banjarkota.go.id "andi mitra ecmitra"
	openssl cms -cmsout -print -in "$out/c2.out" >"$out/c2.print" 2>&1
	[ "$(grep -c 'd.ktri:' "$out/c2.print")" = 2 ] &&
		[ "$(grep -c 'd.kari:' "$out/c2.print")" = 1 ] &&
		grep -q 'algorithm: dhSinglePass-stdDH-sha256kdf-scheme' "$out/c2.print" &&
		grep -q 'id-aes256-wrap' "$out/c2.print"
	tap $? "(2) two RSA key transport RecipientInfos and one EC key agreement (dhSinglePass-stdDH-sha256kdf-scheme, AES-256 wrap)"
fi
{
	printf '%s\r\n' "From: Andi Pratama <andi@banjarkota.go.id>" \
		"To: mitra@jabarprov.go.id" "Bcc: tanpa@jabarprov.go.id" \
		"Subject: bcc" "Message-ID: <enc-bcc@banjarkota.go.id>"
	printf '\r\nHalo.\r\n'
} >"$in/bcc.eml"
tm c2b "$work/enc.conf" "$in/bcc.eml"
signed_only_logged c2b "(2) Bcc" "(2) Bcc tanpa@ without a certificate (opportunistic)" \
	"signed for andi@banjarkota.go.id with certificate $ANDI, not encrypted (opportunistic): no valid certificate for tanpa@jabarprov.go.id" "(2) log: not encrypted (opportunistic): no valid certificate for tanpa@jabarprov.go.id"
{
	printf '%s\r\n' "From: Andi Pratama <andi@banjarkota.go.id>" \
		"To: undisclosed-recipients:;" "Bcc: mitra@jabarprov.go.id" \
		"Subject: group" "Message-ID: <enc-group@banjarkota.go.id>"
	printf '\r\nHalo.\r\n'
} >"$in/group.eml"
tm c2g "$work/enc.conf" "$in/group.eml"
tm_ok "(2) group" c2g && [ "$(rserials "$out/c2g.out")" = "$(wserials andi mitra)" ]
tap $? "(2) To: undisclosed-recipients:; with Bcc mitra@: encrypted to mitra and andi"

# ================================================================ (3)
tm c3 "$work/enc.conf" "$in/plain.eml" -r auditor@bpk.go.id -r mitra@jabarprov.go.id
errhas c3 "smime-milter: recipient auditor@bpk.go.id refused: 550 5.7.1 encryption to auditor@bpk.go.id is required (policy rule at $work/enc.conf:$BPKLINE), but no valid certificate of auditor@bpk.go.id is known"
tap $? "(3) auditor@ (required, no certificate) refused: 550 5.7.1 ... rule at enc.conf:$BPKLINE" || showerr c3
if tm_ok "(3) the others" c3; then
	check_enc "(3) the message still goes to mitra@" "$in/plain.eml" "$out/c3.out" \
		enveloped andi@banjarkota.go.id "andi mitra"
fi
tm c3o "$work/enc.conf" "$in/plain.eml" -r auditor@bpk.go.id
[ "$TRC" = 69 ] && [ ! -s "$out/c3o.out" ] && errhas c3o "recipient auditor@bpk.go.id refused: 550 5.7.1"
tap $? "(3) only refused recipients: exit 69 (EX_UNAVAILABLE), nothing on stdout (exit $TRC)" || showerr c3o
tm c3h "$work/enc.conf" "$in/toaud.eml"
[ "$TRC" = 69 ] && [ ! -s "$out/c3h.out" ] && errhas c3h "recipient auditor@bpk.go.id refused: 550 5.7.1"
tap $? "(3) the same with the recipient from the To header (exit $TRC)" || showerr c3h

# ================================================================ (4)
tm c4 "$work/req.conf" "$in/tamu.eml" -r mitra@jabarprov.go.id
[ "$TRC" = 69 ] && [ ! -s "$out/c4.out" ] &&
	grep -q '^smime-milter: rejected: 550 5.7.1 .*encryption.*tamu@banjarkota.go.id' "$out/c4.err"
tap $? "(4) required recipient with a certificate, sender without one: whole message refused (550 5.7.1, encryption), nothing on stdout (exit $TRC)" || showerr c4
tm c4c "$work/enc.conf" "$in/tamu.eml" -r mitra@jabarprov.go.id
[ "$TRC" = 0 ] && "$PY" "$SC" same-body "$in/tamu.eml" "$out/c4c.out" >/dev/null
tap $? "(4) control: the same under an opportunistic rule passes unsigned (on_no_certificate = accept)"
simple ecs "EC <ec@banjarkota.go.id>" "mitra@jabarprov.go.id"
tm c4e "$work/enc.conf" "$in/ecs.eml" -r mitra@jabarprov.go.id
if tm_ok "(4) EC sender" c4e; then
	check_signed_only "(4) sender ec@ whose certificate cannot receive encryption (opportunistic)" "$out/c4e.out"
	errhas c4e "not encrypted (opportunistic): no valid certificate for the sender (certificate $(hserial "$pki/ec.crt.pem") does not allow encryption)"
	tap $? "(4) log names the sender's certificate as the reason" || showerr c4e
fi
tm c4f "$work/req.conf" "$in/ecs.eml" -r mitra@jabarprov.go.id
[ "$TRC" = 69 ] && [ ! -s "$out/c4f.out" ] && errhas c4f "does not allow encryption"
tap $? "(4) the same sender to a required recipient: refused, nothing on stdout (exit $TRC)" || showerr c4f
tm c4n "$work/req.conf" "$in/plain.eml" -r mitra@jabarprov.go.id -r someone@example.org
[ "$TRC" = 69 ] && [ ! -s "$out/c4n.out" ] &&
	grep -q '^smime-milter: rejected: 550 5.7.1 .*no valid certificate is known for someone@example.org' "$out/c4n.err"
tap $? "(4) required mitra@ beside someone@example.org without a certificate: whole message refused, naming it (exit $TRC)" || showerr c4n
tm c4x "$work/req.conf" "$in/foreign.eml" -r mitra@jabarprov.go.id
[ "$TRC" = 69 ] && [ ! -s "$out/c4x.out" ] && errhas c4x "encryption"
tap $? "(4) From a domain the milter does not sign for, to a required recipient: refused (exit $TRC)" || showerr c4x
# on_error = "accept" must not let mail to a required recipient out in clear
# (the milter failing on a message with more than 1000 Content-* fields).
{
	grep '^encrypt = \|^  \|^);' "$work/req.conf" | conf oerr 'on_error = "accept";'
	{
		printf 'From: andi@banjarkota.go.id\r\nTo: mitra@jabarprov.go.id\r\nSubject: many\r\n'
		i=0
		while [ $i -lt 1001 ]; do
			printf 'Content-X-%d: y\r\n' $i
			i=$((i + 1))
		done
		printf '\r\nRahasia negara.\r\n'
	} >"$in/many.eml"
	tm c4m "$work/oerr.conf" "$in/many.eml" -r mitra@jabarprov.go.id
	[ "$TRC" != 0 ] && ! grep -q 'Rahasia negara' "$out/c4m.out"
	tap $? "(4) on_error = accept, the filter fails on a message to a required recipient: not passed in clear (exit $TRC)" ||
		showerr c4m
	errhas c4m "on_error = accept does not apply"
	tap $? "(4) ... and the reason says why on_error = accept was not applied" || showerr c4m
}
# client-signed (detached and opaque), client-encrypted
printf 'Content-Type: text/plain; charset=us-ascii\r\n\r\nSudah ditandatangani.\r\n' >"$work/body.txt"
sign_as andi "andi@banjarkota.go.id" "mitra@jabarprov.go.id" "signed" "$work/body.txt" "$in/csig.eml"
tm c4s "$work/req.conf" "$in/csig.eml" -r mitra@jabarprov.go.id
[ "$TRC" = 69 ] && [ ! -s "$out/c4s.out" ] && grep -q 'rejected: 550 5.7.1 .*encryption.*already S/MIME signed' "$out/c4s.err"
tap $? "(4) a message the client signed (multipart/signed) to a required recipient: refused (exit $TRC)" || showerr c4s
sign_as andi "andi@banjarkota.go.id" "mitra@jabarprov.go.id" "opaque" "$work/body.txt" "$in/copq.eml" opaque
tm c4q "$work/req.conf" "$in/copq.eml" -r mitra@jabarprov.go.id
[ "$TRC" = 69 ] && [ ! -s "$out/c4q.out" ]
tap $? "(4) an opaque-signed one (pkcs7-mime; smime-type=signed-data): refused too (exit $TRC)" || showerr c4q
openssl cms -encrypt -aes256 -in "$work/body.txt" "$pki/mitra.crt.pem" >"$work/cenc.tmp"
{ printf 'From: andi@banjarkota.go.id\r\nTo: mitra@jabarprov.go.id\r\nSubject: enc\r\n'; cat "$work/cenc.tmp"; } >"$in/cenc.eml"
grep -q '^Content-Type: application/pkcs7-mime; smime-type=enveloped-data' "$in/cenc.eml" ||
	echo "# openssl made no enveloped-data message: $(grep -i ^content-type "$in/cenc.eml")"
tm c4v "$work/req.conf" "$in/cenc.eml" -r mitra@jabarprov.go.id
[ "$TRC" = 0 ] && cmp -s "$in/cenc.eml" "$out/c4v.out"
tap $? "(4) an already encrypted message (enveloped-data) to a required recipient passes byte for byte (exit $TRC)" || showerr c4v
sed 's#^Content-Type: application/pkcs7-mime#Content-Type: application/x-pkcs7-mime#' "$in/cenc.eml" >"$in/cencx.eml"
tm c4w "$work/req.conf" "$in/cencx.eml" -r mitra@jabarprov.go.id
[ "$TRC" = 0 ] && cmp -s "$in/cencx.eml" "$out/c4w.out"
tap $? "(4) the same as application/x-pkcs7-mime passes too (exit $TRC)" || showerr c4w
{
	printf '%s\r\n' "From: andi@banjarkota.go.id" "To: mitra@jabarprov.go.id" "Subject: pgp" \
		"MIME-Version: 1.0" \
		'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="p"' \
		"" "--p" "Content-Type: application/pgp-encrypted" "" "Version: 1" "--p" \
		"Content-Type: application/octet-stream" "" "-----BEGIN PGP MESSAGE-----" \
		"hQEMA1234" "-----END PGP MESSAGE-----" "--p--"
} >"$in/pgp.eml"
tm c4p "$work/req.conf" "$in/pgp.eml" -r mitra@jabarprov.go.id
[ "$TRC" = 0 ] && cmp -s "$in/pgp.eml" "$out/c4p.out"
tap $? "(4) PGP/MIME (multipart/encrypted) to a required recipient passes byte for byte (exit $TRC)" || showerr c4p

# ================================================================ (5)
conf spec <<'EOF'
encrypt = (
  { recipients = [ "bpk.go.id" ]; mode = "required"; },
  { recipients = [ "*" ]; mode = "opportunistic"; },
  { recipients = [ "auditor@bpk.go.id", "mitra@jabarprov.go.id" ]; mode = "never"; },
  { recipients = [ "*.go.id" ]; mode = "required"; },
  { recipients = [ "example.org" ]; senders = [ "sekda@banjarkota.go.id" ]; mode = "required"; },
  { recipients = [ "jabarprov.go.id" ]; mode = "opportunistic"; },
  { recipients = [ "example.org" ]; mode = "never"; }
);
EOF
tm c5a "$work/spec.conf" "$in/plain.eml" -r auditor@bpk.go.id
if tm_ok "(5) address never over domain required" c5a; then
	check_signed_only "(5) auditor@: address rule never beats domain rule required (no certificate, not refused)" "$out/c5a.out"
fi
tm c5b "$work/spec.conf" "$in/plain.eml" -r pemeriksa@bpk.go.id
[ "$TRC" = 69 ] && errhas c5b "recipient pemeriksa@bpk.go.id refused: 550 5.7.1"
tap $? "(5) control: pemeriksa@bpk.go.id (domain rule required) is refused (exit $TRC)" || showerr c5b
tm c5c "$work/spec.conf" "$in/plain.eml" -r mitra@jabarprov.go.id
if tm_ok "(5) never with a certificate" c5c; then
	check_signed_only "(5) mitra@ has a certificate, but its address rule never beats domain opportunistic" "$out/c5c.out"
	! errhas c5c "not encrypted"
	tap $? "(5) ... and no opportunistic note in the log" || showerr c5c
fi
tm c5d "$work/spec.conf" "$in/plain.eml" -r ecmitra@jabarprov.go.id
tm_ok "(5) ecmitra" c5d && [ "$(rserials "$out/c5d.out")" = "$(wserials andi ecmitra)" ]
tap $? "(5) control: ecmitra@ (domain opportunistic, certificate) is encrypted"
tm c5e "$work/spec.conf" "$in/plain.eml" -r tanpa@jabarprov.go.id
signed_only_logged c5e "(5) domain over wildcard" "(5) tanpa@jabarprov.go.id: domain opportunistic beats *.go.id required" \
	"not encrypted (opportunistic): no valid certificate for tanpa@jabarprov.go.id" "(5) ... logged as opportunistic without certificate"
tm c5f "$work/spec.conf" "$in/plain.eml" -r kepala@kemenkeu.go.id
[ "$TRC" = 69 ] && errhas c5f "recipient kepala@kemenkeu.go.id refused: 550 5.7.1"
tap $? "(5) kepala@kemenkeu.go.id: *.go.id required beats * opportunistic, refused (exit $TRC)" || showerr c5f
tm c5g "$work/spec.conf" "$in/plain.eml" -r x@example.net
signed_only_logged c5g "(5) wildcard *" "(5) x@example.net: only * (opportunistic) matches" \
	"no valid certificate for x@example.net" "(5) ... logged as opportunistic without certificate"
tm c5h "$work/spec.conf" "$in/sekda.eml" -s sekda@banjarkota.go.id -r x@example.org -r mitra@jabarprov.go.id
errhas c5h "recipient x@example.org refused: 550 5.7.1 encryption to x@example.org is required"
tap $? "(5) senders-limited rule: from sekda@ (MAIL FROM sekda@), x@example.org is refused" || showerr c5h
tm c5i "$work/spec.conf" "$in/plain.eml" -s andi@banjarkota.go.id -r x@example.org
if tm_ok "(5) senders-limited other sender" c5i; then
	check_signed_only "(5) ... from andi@ the rule does not apply: example.org never" "$out/c5i.out"
	! errhas c5i "not encrypted"
	tap $? "(5) ... never (the domain rule), not * opportunistic: no note in the log" || showerr c5i
fi
tm c5j "$work/spec.conf" "$in/sekda.eml" -r x@example.org
[ "$TRC" = 69 ] && [ ! -s "$out/c5j.out" ] && errhas c5j "encryption to x@example.org is required"
tap $? "(5) from sekda@ with an empty envelope sender: refused at end of headers from the From address (exit $TRC)" || showerr c5j
conf norule <<'EOF'
encrypt = ( { recipients = [ "bpk.go.id" ]; mode = "required"; } );
EOF
tm c5k "$work/norule.conf" "$in/plain.eml" -r mitra@jabarprov.go.id
if tm_ok "(5) no rule" c5k; then
	check_signed_only "(5) no rule for mitra@ (who has a certificate)" "$out/c5k.out"
	errhas c5k "signed for andi@banjarkota.go.id with certificate $ANDI (" && ! errhas c5k "encrypt"
	tap $? "(5) ... plain signing log line" || showerr c5k
fi
tm c5l "$work/enc.conf" "$in/plain.eml" -r mitra@jabarprov.go.id -r someone@example.org
signed_only_logged c5l "(5) opportunistic + no-rule recipient" "(5) mitra@ (opportunistic) with someone@example.org (no rule, no certificate)" \
	"no valid certificate for someone@example.org" "(5) ... the log names someone@example.org"

# ================================================================ (6)
for v in "gcm256 aes-256-gcm authEnveloped aes-256-gcm rsaEncryption encrypt_cipher" \
	"gcm128 aes-128-gcm authEnveloped aes-128-gcm rsaEncryption encrypt_cipher" \
	"cbc128 aes-128-cbc enveloped aes-128-cbc rsaEncryption encrypt_cipher" \
	"oaep oaep enveloped aes-256-cbc rsaesOaep encrypt_rsa_padding"; do
	# shellcheck disable=SC2086
	set -- $v
	grep '^encrypt = \|^  \|^);' "$work/enc.conf" | conf "$1" "$6 = \"$2\";"
	tm "c6$1" "$work/$1.conf" "$in/text.eml" -r mitra@jabarprov.go.id
	if tm_ok "(6) $6 = $2" "c6$1"; then
		check_enc "(6) $6 = \"$2\"" "$in/text.eml" "$out/c6$1.out" "$3" \
			andi@banjarkota.go.id "andi mitra" "$4" "$5"
	fi
done
[ "$(grep -c 'OBJECT *:sha256$' "$out/c6oaep.out.print")" = 4 ] &&
	[ "$(grep -c 'OBJECT *:mgf1$' "$out/c6oaep.out.print")" = 2 ]
tap $? "(6) RSA-OAEP parameters of both recipients: SHA-256, MGF1 with SHA-256" ||
	sed -n '/rsaesOaep/,/encryptedKey/p' "$out/c6oaep.out.print" | sed 's/^/#   /' | head -14
tm c6o "$work/oaep.conf" "$in/tocc.eml"
tm_ok "(6) OAEP + EC" c6o && [ "$(rserials "$out/c6o.out")" = "$(wserials andi mitra ecmitra)" ] &&
	dec "$out/c6o.out" ecmitra && dec "$out/c6o.out" mitra
tap $? "(6) RSA-OAEP with an EC recipient beside: decrypts with ecmitra's and mitra's keys"
tm c6e "$work/gcm256.conf" "$in/tocc.eml"
tm_ok "(6) GCM + EC" c6e && dec "$out/c6e.out" ecmitra &&
	openssl cms -cmsout -print -in "$out/c6e.out" 2>/dev/null | grep -q 'd.kari:'
tap $? "(6) AES-256-GCM to an EC recipient decrypts with ecmitra's key"
for bad in 'encrypt_cipher = "des-ede3-cbc";' 'encrypt_rsa_padding = "pss";' \
	'encrypt = ( { recipients = [ "bpk.go.id" ]; mode = "sometimes"; } );' \
	'encrypt = ( { mode = "required"; } );'; do
	conf bad "$bad" </dev/null
	"$ME_MILTER" -c "$work/bad.conf" -n >"$work/bad.out" 2>&1
	rc=$?
	[ $rc -ne 0 ] && grep -q "bad.conf:[0-9]" "$work/bad.out"
	tap $? "(6) -n refuses $bad with file:line (exit $rc)" || sed 's/^/#   /' "$work/bad.out"
done

# ================================================================ (7)
# revoked: usable before the CRL is imported, never after
"$ME_CTL" -c "$work/enc.conf" recipient import "$pki/revmitra.crt.pem" >"$work/rev.log" 2>&1
tap $? "(7) revmitra@ imported (its CRL is not known yet)"
tm c7a "$work/enc.conf" "$in/plain.eml" -r revmitra@jabarprov.go.id
tm_ok "(7) revmitra before CRL" c7a && [ "$(rserials "$out/c7a.out")" = "$(wserials andi revmitra)" ]
tap $? "(7) control: before the CRL, revmitra@ gets encrypted mail"
"$ME_CTL" -c "$work/enc.conf" crl import "$pki/crl.pem" >"$work/crl.log" 2>&1
tap $? "(7) smimectl crl import crl.pem ($(head -1 "$work/crl.log"))"
"$ME_CTL" -c "$work/enc.conf" recipient list --address revmitra@jabarprov.go.id >"$work/rl.out" 2>&1
grep -q 'revmitra@jabarprov.go.id .* revoked ' "$work/rl.out"
tap $? "(7) recipient list shows revmitra@ revoked" || sed 's/^/#   /' "$work/rl.out"
tm c7b "$work/enc.conf" "$in/plain.eml" -r revmitra@jabarprov.go.id
signed_only_logged c7b "(7) revmitra after CRL" "(7) revoked revmitra@ (opportunistic) is never used" \
	"no valid certificate for revmitra@jabarprov.go.id" "(7) ... the log names revmitra@"
# import refuses what cannot be used
enc_fremd
for c in "expired:expired" "signonly:no keyEncipherment" "serveronly:EKU serverAuth only" \
	"future:not yet valid" "fremd:self-signed, not under ca_file"; do
	nm=${c%%:*}
	"$ME_CTL" -c "$work/enc.conf" recipient import "$pki/$nm.crt.pem" >"$work/imp.$nm" 2>&1
	rc=$?
	addr=$(openssl x509 -in "$pki/$nm.crt.pem" -noout -email | head -1)
	"$ME_CTL" -c "$work/enc.conf" recipient list --address "$addr" --json >"$work/rl.$nm" 2>&1
	[ $rc -ne 0 ] && grep -q refused "$work/imp.$nm" && ! grep -q '"address"' "$work/rl.$nm"
	tap $? "(7) recipient import refuses $nm ($addr: ${c#*:}; exit $rc), nothing stored" ||
		sed 's/^/#   /' "$work/imp.$nm" "$work/rl.$nm"
done
tm c7c "$work/enc.conf" "$in/plain.eml" -r signonly@jabarprov.go.id
tm_ok "(7) signonly" c7c; check_signed_only "(7) signonly@ (import refused) gets signed only" "$out/c7c.out"
# expired / not yet valid rows in the database (as if imported while
# valid) are not used; a valid row written the same way is (control)
dbrow() { # dbrow ADDRESS CERTNAME
	"$PY" - "$work/smime.db" "$1" "$pki/$2.crt.pem" <<'EOF'
import calendar, sqlite3, subprocess, sys, time
db, addr, pem = sys.argv[1:]
def x(*a):
    return subprocess.run(["openssl", "x509", "-in", pem, "-noout"] + list(a),
                          capture_output=True, text=True).stdout.strip()
ser = x("-serial").split("=", 1)[1]
fpr = x("-fingerprint", "-sha256").split("=", 1)[1].replace(":", "")
def t(opt):
    s = x(opt).split("=", 1)[1]
    return calendar.timegm(time.strptime(s.replace(" GMT", ""), "%b %d %H:%M:%S %Y"))
c = sqlite3.connect(db)
c.execute("INSERT INTO recipient_certs (address, subject, issuer, serial, fingerprint,"
          " not_before, not_after, status, source, cert_pem, created_at)"
          " VALUES (?, ?, ?, ?, ?, ?, ?, 'active', 'import', ?, ?)",
          (addr, x("-subject"), x("-issuer"), ser, fpr, t("-startdate"), t("-enddate"),
           open(pem).read(), int(time.time())))
c.commit()
EOF
}
dbrow kontrol@jabarprov.go.id sekda && dbrow lama@jabarprov.go.id expired &&
	dbrow baru@jabarprov.go.id future
tap $? "(7) rows written straight into recipient_certs: kontrol@ (valid), lama@ (expired), baru@ (not yet valid)"
tm c7d "$work/enc.conf" "$in/plain.eml" -r kontrol@jabarprov.go.id
tm_ok "(7) kontrol" c7d && dec "$out/c7d.out" sekda
tap $? "(7) control: the valid row is used (decrypts with its key)"
tm c7e "$work/enc.conf" "$in/plain.eml" -r lama@jabarprov.go.id
tm_ok "(7) lama" c7e; check_signed_only "(7) an expired certificate in the database is never used" "$out/c7e.out"
tm c7f "$work/enc.conf" "$in/plain.eml" -r baru@jabarprov.go.id
tm_ok "(7) baru" c7f; check_signed_only "(7) a not yet valid certificate in the database is not used" "$out/c7f.out"
# two valid certificates for mitra@: the newer one
enc_mitra2 &&
	"$ME_CTL" -c "$work/enc.conf" recipient import "$pki/mitra2.crt.pem" >"$work/m2.log" 2>&1
tap $? "(7) a second, newer certificate for mitra@ (new key, serial 3A01) imported"
tm c7g "$work/enc.conf" "$in/text.eml" -r mitra@jabarprov.go.id
if tm_ok "(7) newest" c7g; then
	check_enc "(7) two certificates for mitra@" "$in/text.eml" "$out/c7g.out" enveloped \
		andi@banjarkota.go.id "andi mitra2"
	! dec "$out/c7g.out" mitra
	tap $? "(7) the older mitra@ key does not decrypt it"
fi
"$ME_CTL" -c "$work/enc.conf" recipient remove mitra@jabarprov.go.id >"$work/rm.log" 2>&1 &&
	"$ME_CTL" -c "$work/enc.conf" recipient list --address mitra@jabarprov.go.id --json >"$work/rm.list" 2>&1 &&
	! grep -q '"address"' "$work/rm.list"
tap $? "(7) smimectl recipient remove mitra@jabarprov.go.id ($(head -1 "$work/rm.log"))"
tm c7h "$work/enc.conf" "$in/plain.eml" -r mitra@jabarprov.go.id
signed_only_logged c7h "(7) removed" "(7) after remove, mitra@ falls back to signed only" \
	"no valid certificate for mitra@jabarprov.go.id" "(7) ... the log names mitra@"

# ================================================================ (8)
# Outbound encryption never encrypts to a recipient in `domains` (issue 13):
# the city's keys are on the gateway, so an internal mailbox could not read
# it, whatever the rules say (enc.conf has banjarkota.go.id opportunistic).
tm c8 "$work/enc.conf" "$in/text.eml" -r sekda@banjarkota.go.id
if tm_ok "(8) sekda" c8; then
	check_signed_only "(8) internal mailbox sekda@ (mapped certificate, rule banjarkota.go.id): signed only" "$out/c8.out"
	errhas c8 "OFFLINE: signed for andi@banjarkota.go.id with certificate $ANDI" && ! errhas c8 "encrypted"
	tap $? "(8) ... the log says signed, and nothing about encryption" || showerr c8
fi
tm c8l "$work/enc.conf" "$in/plain.eml" -r legacy@banjarkota.go.id
tm_ok "(8) legacy" c8l && check_signed_only "(8) legacy@ (address only in the subject emailAddress) is internal: signed only" "$out/c8l.out"
tm c8a "$work/enc.conf" "$in/plain.eml" -r andi@banjarkota.go.id
tm_ok "(8) self" c8a && check_signed_only "(8) to the sender itself: signed only, not encrypted" "$out/c8a.out"
tm c8e "$work/enc.conf" "$in/plain.eml" -r ec@banjarkota.go.id
if tm_ok "(8) ec" c8e; then
	check_signed_only "(8) ec@'s mapped certificate does not allow encryption: signed only" "$out/c8e.out"
fi
conf all <<'EOF'
encrypt = ( { recipients = [ "*" ]; mode = "required"; } );
EOF
tm c8s "$work/all.conf" "$in/plain.eml" -r sekda@banjarkota.go.id -r legacy@banjarkota.go.id
if tm_ok "(8) all required" c8s; then
	check_signed_only "(8) rule \"*\" required, only internal recipients: signed only, not refused" "$out/c8s.out"
fi
tm c8m "$work/enc.conf" "$in/plain.eml" -r ecmitra@jabarprov.go.id -r sekda@banjarkota.go.id
signed_only_logged c8m "(8) mixed" "(8) ecmitra@ (opportunistic, certificate known) beside internal sekda@: signed only" \
	"not encrypted (opportunistic): sekda@banjarkota.go.id is an internal mailbox that could not read an encrypted copy" \
	"(8) ... the log names the internal mailbox as the reason"
tm c8q "$work/req.conf" "$in/plain.eml" -r ecmitra@jabarprov.go.id -r sekda@banjarkota.go.id
[ "$TRC" = 69 ] && [ ! -s "$out/c8q.out" ] &&
	grep -q '^smime-milter: rejected: 550 5.7.1 .*encryption to ecmitra@jabarprov.go.id is required.*sekda@banjarkota.go.id is an internal mailbox that could not read an encrypted copy: send to it in a separate message' "$out/c8q.err"
tap $? "(8) required ecmitra@ beside internal sekda@: refused, neither clear to ecmitra@ nor unreadable to sekda@ (exit $TRC)" || showerr c8q
tm c8o "$work/req.conf" "$in/plain.eml" -r ecmitra@jabarprov.go.id
tm_ok "(8) control" c8o && [ "$(rserials "$out/c8o.out")" = "$(wserials andi ecmitra)" ]
tap $? "(8) control: the same to ecmitra@ alone is encrypted to ecmitra and andi"
"$ME_CTL" -c "$work/enc.conf" revoke "$(hserial "$pki/sekda.crt.pem")" --reason keyCompromise \
	>"$work/revoke.log" 2>&1
tap $? "(8) smimectl revoke of sekda@'s certificate" || sed 's/^/#   /' "$work/revoke.log"
tm c8r "$work/enc.conf" "$in/plain.eml" -r sekda@banjarkota.go.id
tm_ok "(8) sekda revoked" c8r; check_signed_only "(8) sekda@'s revoked mapped certificate is not used" "$out/c8r.out"
ls -A "$work/tmp-enc" "$work/tmp-req" "$work/tmp-spec" "$work/tmp-all" >"$work/tmpls" 2>&1
[ -z "$(grep -v ':$' "$work/tmpls" | grep -v '^$')" ]
tap $? "(8) no temp file left by the offline runs" || sed 's/^/#   /' "$work/tmpls"
echo "# offline part: $(($(date +%s) - t0)) s"
echo "1..$n"
