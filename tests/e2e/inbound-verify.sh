#!/bin/sh
# End-to-end inbound verification and bad input (issue 13): signed-only
# partner mail (tests/lib/partner.sh: openssl cms, gpgsm, NSS cmsutil) and
# broken S/MIME from an outside client through the real Postfix to the
# milter; checked with independent code (tests/lib/e2e_inbound.sh).
#
#   sh tests/e2e/inbound-verify.sh          (KEEP=1 keeps the work directory)
#
#   signed only, delivered byte for byte with one stamp added:
#     good (three encoders, openssl's own MIME labelled x-pkcs7-signature,
#     opaque signed-data by openssl and nss): pass
#     with identifier, serial and issuer; tampered body, unknown CA, signer
#     not the From address, revoked signer (imported CRL), expired signer:
#     fail, each with its reason
#   forged Authentication-Results: ours (any case, trailing dot) removed,
#     another authserv-id's kept byte for byte
#   bad input: truncated base64, garbage DER, absurd lengths, deep nesting,
#     an empty body, an encrypted part nested in a multipart, a garbage
#     signature part: each delivered unchanged with smime=permerror and a
#     reason; nothing lost, and a good message after them still verified
#   an audit row per message, `smimectl audit verify`
# Prints TAP.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
. "$TOP/tests/lib/e2e.sh"
. "$TOP/tests/lib/e2e_inbound.sh"
ie_begin e2e-inb-ver

# ---------------------------------------------------------------- setup
ie_conf
ctl "smimectl init" init
ctl "smimectl import andi (individual, PKCS#12)" import --mailbox andi@banjarkota.go.id \
	--kind individual --p12 "$pki/andi.p12" --passphrase-file "$pki/andi.pass"
ctl "smimectl crl import (revmitra is listed)" crl import "$pki/crl.pem"
partner_foreign "$work/desk" || bail "a CA outside the trust bundle, and its leaf for mitra"
ok "a CA outside the trust bundle, and its leaf for mitra"
ie_start
renice -n 5 -p $$ >/dev/null 2>&1

to=andi@banjarkota.go.id
serial_of() { openssl x509 -in "$1" -noout -serial | sed 's/.*=//'; }
mitra_serial=$(serial_of "$pki/mitra.crt.pem")

# signed TAG ENCODER [SIGNER [FROM]]: a signed-only message from FROM
signed() {
	partner_plain "$work/send/$1.eml" "$1" "$to" "${4:-mitra@jabarprov.go.id}" &&
		partner_sign "$2" "$work/send/$1.eml.content" "$work/send/$1.eml.entity" ${3:+"$3"} &&
		"$PY" "$PT_PY" mail "$work/send/$1.eml" "$1" "${4:-mitra@jabarprov.go.id}" "$to" \
			"$work/send/$1.eml.entity"
	tap $? "$1: $2 signed as ${3:-mitra}"
}

# p7m TAG DER SMIME-TYPE: a pkcs7-mime message whose CMS is DER
p7m() {
	partner_plain "$work/send/$1.eml" "$1" "$to" &&
		"$PY" "$PT_PY" p7m "$2" "$work/send/$1.p7m" "$3" application/pkcs7-mime &&
		"$PY" "$PT_PY" mail "$work/send/$1.eml" "$1" mitra@jabarprov.go.id "$to" "$work/send/$1.p7m"
	tap $? "$1: written"
}

# ---------------------------------------------------------------- signed only
for enc in openssl gpgsm nss; do
	signed "v-good-$enc" "$enc"
done
# openssl's own S/MIME output, labelled as older clients do:
# application/x-pkcs7-signature, micalg="sha-256"
partner_plain "$work/send/v-xsig.eml" v-xsig "$to" &&
	openssl cms -sign -in "$work/send/v-xsig.eml.content" -signer "$pki/mitra.crt.pem" \
		-inkey "$pki/mitra.key.pem" -certfile "$pki/inter.crt.pem" 2>>"$work/desk/log" |
	sed '1{/^MIME-Version:/d}; s#application/pkcs7-signature#application/x-pkcs7-signature#g' \
		>"$work/send/v-xsig.smime" &&
	"$PY" "$SC" crlf "$work/send/v-xsig.smime" "$work/send/v-xsig.entity" &&
	"$PY" "$PT_PY" mail "$work/send/v-xsig.eml" v-xsig mitra@jabarprov.go.id "$to" \
		"$work/send/v-xsig.entity"
tap $? "v-xsig: openssl cms -sign, S/MIME output (x-pkcs7-signature)"

# opaque signed-data, delivered as it is (inbound_unwrap_opaque is off)
for enc in openssl nss; do
	partner_plain "$work/send/v-opaque-$enc.eml" "v-opaque-$enc" "$to" &&
		partner_sign_opaque "$enc" "$work/send/v-opaque-$enc.eml.content" \
			"$work/send/v-opaque-$enc.p7m" &&
		"$PY" "$PT_PY" mail "$work/send/v-opaque-$enc.eml" "v-opaque-$enc" mitra@jabarprov.go.id \
			"$to" "$work/send/v-opaque-$enc.p7m"
	tap $? "v-opaque-$enc: $enc signed opaque (application/pkcs7-mime; smime-type=signed-data)"
done

signed v-tampered openssl
sed -i 's/^Terima kasih atas laporan/Terima kasih ATAS laporan/' "$work/send/v-tampered.eml"
grep -q 'ATAS laporan' "$work/send/v-tampered.eml"
tap $? "v-tampered: one word of the signed text changed after signing"
signed v-unknown-ca openssl "$work/desk/foreign"
signed v-not-from openssl "$pki/auditor"
signed v-revoked openssl "$pki/revmitra" revmitra@jabarprov.go.id
signed v-expired openssl "$pki/expmitra" expmitra@jabarprov.go.id

# ---------------------------------------------------------------- forged stamps
partner_plain "$work/send/v-forged.eml" v-forged "$to"
other_ar='Authentication-Results: mx.jabarprov.go.id; dkim=pass header.d=jabarprov.go.id'
awk -v o="$other_ar" '/^MIME-Version:/ && !d {
	print "Authentication-Results: mx.banjarkota.go.id; smime=pass (forged by the sender)\r"
	print "Authentication-Results: (comment first) MX.Banjarkota.GO.ID.;\r"
	print "\tsmime=pass (forged, folded) body.smime-identifier=mitra@jabarprov.go.id\r"
	print o "\r"; d = 1 } { print }' "$work/send/v-forged.eml" >"$work/send/v-forged.tmp" &&
	mv "$work/send/v-forged.tmp" "$work/send/v-forged.eml"
[ "$(grep -c '^Authentication-Results:' "$work/send/v-forged.eml")" = 3 ]
tap $? "v-forged: two forged stamps of our authserv-id and one of the partner's"

# ---------------------------------------------------------------- bad input
partner_build "$work/send/b-src.eml" b-src "$to" signenc openssl aes-256-cbc pkcs1 \
	"$pki/andi.crt.pem" || bail "a good encrypted message to break"
"$PY" "$PT_PY" bad truncate "$work/send/b-trunc.eml" "$work/send/b-src.eml" &&
	sed -i 's/<b-src@jabarprov.go.id>/<b-trunc@jabarprov.go.id>/' "$work/send/b-trunc.eml"
tap $? "b-trunc: base64 cut in the middle of a line"
for k in garbage absurd deep; do
	"$PY" "$PT_PY" bad "$k" "$work/send/b-$k.der"
	p7m "b-$k" "$work/send/b-$k.der" enveloped-data
done
partner_plain "$work/send/b-empty.eml" b-empty "$to" &&
	printf 'Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"\r\nContent-Transfer-Encoding: base64\r\n\r\n' \
		>"$work/send/b-empty.p7m" &&
	"$PY" "$PT_PY" mail "$work/send/b-empty.eml" b-empty mitra@jabarprov.go.id "$to" "$work/send/b-empty.p7m"
tap $? "b-empty: an enveloped-data part with an empty body"
"$PY" "$PT_PY" bad nest "$work/send/b-nest.entity" "$work/send/b-src.eml.p7m" &&
	"$PY" "$PT_PY" mail "$work/send/b-nest.eml" b-nest mitra@jabarprov.go.id "$to" "$work/send/b-nest.entity"
tap $? "b-nest: an encrypted part inside multipart/mixed"
signed b-badsig openssl
"$PY" "$PT_PY" bad garbage "$work/send/b-badsig.junk" && "$PY" - "$work/send/b-badsig.eml" \
	"$work/send/b-badsig.junk" <<'EOF'
import base64, re, sys
m = open(sys.argv[1], "rb").read()
junk = base64.encodebytes(open(sys.argv[2], "rb").read()).replace(b"\n", b"\r\n")
i = m.index(b'filename="smime.p7s"\r\n\r\n') + len(b'filename="smime.p7s"\r\n\r\n')
j = m.index(b"\r\n\r\n--", i)
open(sys.argv[1], "wb").write(m[:i] + junk.rstrip(b"\r\n") + m[j:])
EOF
tap $? "b-badsig: multipart/signed whose signature part is not DER"

# ---------------------------------------------------------------- send
for t in v-good-openssl v-good-gpgsm v-good-nss v-xsig v-opaque-openssl v-opaque-nss v-tampered v-unknown-ca v-not-from \
	v-revoked v-expired v-forged b-trunc b-garbage b-absurd b-deep b-empty b-nest b-badsig; do
	ie_send "$t" "$to" </dev/null
done
# after all that, the milter still answers: a good message is verified
signed v-after openssl
ie_send v-after "$to"
ie_wait_all

# ---------------------------------------------------------------- checks
ident='body\.smime-identifier=mitra@jabarprov\.go\.id'
for t in v-good-openssl v-good-gpgsm v-good-nss v-xsig v-opaque-openssl v-opaque-nss v-after; do
	echo "# --- $t"
	ie_unchanged "$t" pass '\(signature verified' "$ident" \
		"(?i)body\\.smime-serial=0*$mitra_serial\\b" 'body\.smime-issuer=.*Test BSrE Issuing CA' </dev/null
done
for enc in openssl nss; do
	ie_opaque "v-opaque-$enc" "$work/send/v-opaque-$enc.eml.content"
done
echo "# --- bad signatures"
ie_unchanged v-tampered fail '(?i)\((body altered|signature does not verify)'
ie_unchanged v-unknown-ca fail '(?i)\([^)]*(not trusted|unable to get|chain)'
ie_unchanged v-not-from fail '(?i)\([^)]*auditor@bpk\.go\.id[^)]*not the From address'
ie_unchanged v-revoked fail '(?i)\([^)]*revoked'
ie_unchanged v-expired fail '(?i)\([^)]*(expired|outside the certificate.s validity)'
# the signature itself verified: the stamp names who signed, as it names
# the serial and the issuer
for t in v-unknown-ca:mitra v-revoked:revmitra v-expired:expmitra; do
	"$PY" "$PT_PY" stamp "$work/out/${t%%:*}.eml" "$IE_AUTHSERV" fail \
		"body\\.smime-identifier=${t#*:}@jabarprov\\.go\\.id" >/dev/null
	tap $? "${t%%:*}: the stamp names the signer, body.smime-identifier=${t#*:}@jabarprov.go.id"
done

echo "# --- forged stamps"
if ie_delivered v-forged; then
	ie_stamp v-forged none '\(not signed\)'
	grep -q 'smime=pass (forged' "$work/out/v-forged.eml"
	tap "$([ $? -ne 0 ]; echo $?)" "v-forged: both forged stamps of our authserv-id removed"
	"$PY" "$PT_PY" ar-kept "$work/out/v-forged.eml" "$other_ar"
	tap $? "v-forged: the partner's own Authentication-Results kept byte for byte"
	"$PY" "$SC" content "$work/send/v-forged.eml.orig" "$work/out/v-forged.eml"
	tap $? "v-forged: the body is what the partner wrote"
fi

echo "# --- bad input: delivered unchanged, permerror"
for t in b-trunc b-garbage b-absurd b-deep b-empty b-nest b-badsig; do
	ie_unchanged "$t" permerror '\([^)]+\)' </dev/null
done

# ---------------------------------------------------------------- records
# every message but the unsigned v-forged was verified or tried to be
IE_AUDIT_N=$(($(echo $IE_SENT | wc -w) - 1))
for t in v-good-openssl v-good-gpgsm v-good-nss v-xsig v-opaque-openssl v-opaque-nss v-after; do
	ie_audit "$t" verified
done
for t in v-tampered v-unknown-ca v-not-from v-revoked v-expired b-empty b-nest b-badsig; do
	ie_audit "$t" verify-failed
done
for t in b-trunc b-garbage b-absurd b-deep; do
	ie_audit "$t" 'not-decrypted|verify-failed'
done
ie_health
echo "1..$n"
