#!/bin/sh
# End-to-end inbound decryption (issue 13): a partner agency's encrypted
# replies, made by three independent encoders (tests/lib/partner.sh:
# openssl cms, gpgsm, NSS cmsutil), come from an outside client through the
# real Postfix to the milter; what reaches the sink is checked with
# independent code (tests/lib/e2e_inbound.sh).
#
#   sh tests/e2e/inbound-decrypt.sh          (KEEP=1 keeps the work directory)
#
# Mailboxes: andi (PKCS#12; renewed: a new certificate, the first one
# superseded), sekda (the key on a SoftHSM2 token), noreply (an EC P-256
# certificate: ECDH).  Each encoder makes, where it can (partner_can says
# what it cannot), encrypted-only and signed-then-encrypted mail in
# AES-256-CBC and AES-256-GCM, RSA PKCS#1 v1.5 and RSA-OAEP.  Each message
# must arrive decrypted: no smime.p7m, the encrypted entity as the new
# Content-* and body byte for byte, every other header byte for byte, the
# stamp pass (signed) or none (not signed) with "decrypted for ...", the
# inner signature verifying in openssl and gpgsm, the decoded content what
# the partner wrote.  Then: 3DES from an old sender, a recipient named by
# subjectKeyIdentifier, opaque signed-data inside, and a revoked
# certificate's key (the stamp says revoked) decrypt; mail to andi's superseded certificate decrypts;
# mail to andi and sekda, both recipients, decrypts; mail to andi and budi
# (internal, not a CMS recipient) stays encrypted and the stamp says why;
# an audit row for each; `smimectl audit verify`.  Prints TAP.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
. "$TOP/tests/lib/e2e.sh"
. "$TOP/tests/lib/e2e_inbound.sh"
ie_begin e2e-inb-dec

# ---------------------------------------------------------------- setup
# andi's renewed certificate, from the same CA
mkdir -p "$work/renew"
fx_issue andi2 "$work/renew" 5A01 365 "/C=ID/O=Pemerintah Kota Banjarkota/CN=Andi Pratama" \
	andi@banjarkota.go.id || bail "andi's renewed certificate issued"
# sekda's key on a SoftHSM2 token
if hsm_setup "$work/hsm" && hsm_init_token "$HSM_TOKEN" "$HSM_PIN" &&
	hsm_import_key "$HSM_TOKEN" "$HSM_PIN" "$pki/sekda.key.pem" sekda "$HSM_ID_sekda" &&
	hsm_write_cert "$HSM_TOKEN" "$HSM_PIN" "$pki/sekda.crt.pem" sekda "$HSM_ID_sekda"; then
	HSM_PIN_FILE=$work/hsm/$HSM_TOKEN.pin
	hsm_pin_file "$HSM_PIN_FILE" "$HSM_PIN"
	ok "SoftHSM2 token $HSM_TOKEN holds sekda's key and certificate"
else
	bail "SoftHSM2 token $HSM_TOKEN holds sekda's key and certificate"
fi
ie_conf
hsm_conf_lines >>"$conf"

ctl "smimectl init" init
ctl "smimectl import andi (individual, PKCS#12: the certificate partners know)" import \
	--mailbox andi@banjarkota.go.id --kind individual --p12 "$pki/andi.p12" \
	--passphrase-file "$pki/andi.pass"
ctl "smimectl import andi's renewed certificate (PEM cert and key)" import \
	--mailbox andi@banjarkota.go.id --kind individual --cert "$work/renew/andi2.crt.pem" \
	--key "$work/renew/andi2.key.pem"
ctl "smimectl import sekda (role, key on the token)" import --mailbox sekda@banjarkota.go.id \
	--kind role --pkcs11-uri "$(hsm_uri "$HSM_TOKEN" sekda)" --cert "$pki/sekda.crt.pem"
ctl "smimectl import revoked (a certificate revoked below)" import \
	--mailbox revoked@banjarkota.go.id --kind individual --p12 "$pki/revoked.p12" \
	--passphrase-file "$pki/revoked.pass"
ctl "smimectl revoke revoked's certificate (keyCompromise)" revoke \
	"$(openssl x509 -in "$pki/revoked.crt.pem" -noout -serial | sed 's/.*=//')" \
	--reason keyCompromise
ctl "smimectl import noreply (system, EC P-256 PKCS#12)" import --mailbox noreply@banjarkota.go.id \
	--kind system --p12 "$pki/noreplyec.p12" --passphrase-file "$pki/noreplyec.pass"
# no sekda key file anywhere for the milter to fall back to
rm -f "$pki/sekda.key.pem" "$pki/sekda.p12" "$pki/sekda.legacy.p12" "$pki/sekda.pass"
old_serial=$(openssl x509 -in "$pki/andi.crt.pem" -noout -serial | sed 's/.*=//')
"$CTL" -c "$conf" list --json >"$work/list.json" 2>&1
st=$("$PY" -c '
import json, sys
rows = [r for r in json.load(open(sys.argv[1])) if r["mailbox"] == "andi@banjarkota.go.id"]
print(" ".join(sorted(r["serial"].upper() + ":" + r["status"] for r in rows)))' "$work/list.json")
[ "$st" = "$old_serial:superseded 5A01:active" ]
tap $? "andi renewed: the first certificate superseded, the new one active ($st)"

ie_start
# the encoders and verifiers are the heavy part: below the milter and Postfix
renice -n 5 -p $$ >/dev/null 2>&1

# ---------------------------------------------------------------- the matrix
# certof NAME: the certificate file a partner encrypts to
certof() {
	case $1 in
	andi2) echo "$work/renew/andi2.crt.pem" ;;
	*) echo "$pki/$1.crt.pem" ;;
	esac
}

# TAG MAILBOX CERT KEYTYPE ENCODER KIND CIPHER PAD
# the same eight for andi (renewed certificate) and sekda (token)
cases=
for mc in a:andi:andi2 s:sekda:sekda; do
	p=${mc%%:*} m=${mc#*:}
	c=${m#*:} m=${m%%:*}
	cases="$cases$(printf '%s\n' "ossl-cbc openssl enc aes-256-cbc pkcs1" \
		"ossl-cbc-s openssl signenc aes-256-cbc oaep" "ossl-gcm openssl enc aes-256-gcm oaep256" \
		"ossl-gcm-s openssl signenc aes-256-gcm pkcs1" "gpgsm gpgsm enc aes-256-cbc pkcs1" \
		"gpgsm-s gpgsm signenc aes-256-cbc pkcs1" "nss nss enc aes-128-cbc pkcs1" \
		"nss-s nss signenc aes-128-cbc pkcs1" | sed "s/^\([^ ]*\) /$p-\1 $m $c rsa /")
"
done
cases="${cases}n-ossl-cbc noreply noreplyec ec openssl enc aes-256-cbc -
n-ossl-cbc-s noreply noreplyec ec openssl signenc aes-256-cbc -
n-ossl-gcm noreply noreplyec ec openssl enc aes-256-gcm -
n-ossl-gcm-s noreply noreplyec ec openssl signenc aes-256-gcm -
n-gpgsm-s noreply noreplyec ec gpgsm signenc aes-256-cbc pkcs1
n-nss-s noreply noreplyec ec nss signenc aes-128-cbc pkcs1"

# build and send every case first (Postfix and the milter work while the
# next ones are made), then check them
echo "$cases" >"$work/cases"
while read -r tag mb cert kt enc kind cipher pad; do
	if ! why=$(partner_can "$enc" "$cipher" "$pad" "$kt"); then
		echo "# $tag: not made: $why"
		continue
	fi
	if partner_build "$work/send/$tag.eml" "$tag" "$mb@banjarkota.go.id" "$kind" "$enc" \
		"$cipher" "$pad" "$(certof "$cert")" </dev/null; then
		ok "$tag: $enc made $kind mail to $mb ($cipher, $pad)"
		ie_send "$tag" "$mb@banjarkota.go.id" </dev/null
	else
		nok "$tag: $enc made $kind mail to $mb ($cipher, $pad)"
	fi
done <"$work/cases"

# superseded: partners keep last year's certificate
partner_build "$work/send/old-ossl-s.eml" old-ossl-s andi@banjarkota.go.id signenc openssl \
	aes-256-cbc pkcs1 "$pki/andi.crt.pem" &&
	partner_build "$work/send/old-gpgsm.eml" old-gpgsm andi@banjarkota.go.id enc gpgsm \
		aes-256-cbc pkcs1 "$pki/andi.crt.pem"
tap $? "old-*: openssl and gpgsm mail to andi's superseded certificate"
ie_send old-ossl-s andi@banjarkota.go.id
ie_send old-gpgsm andi@banjarkota.go.id

# old senders: 3DES; recipients named by subjectKeyIdentifier
partner_build "$work/send/x-3des.eml" x-3des andi@banjarkota.go.id enc openssl des-ede3-cbc \
	pkcs1 "$(certof andi2)"
tap $? "x-3des: openssl mail to andi in 3DES-CBC"
ie_send x-3des andi@banjarkota.go.id
PT_KEYID=yes
partner_build "$work/send/x-ski-s.eml" x-ski-s andi@banjarkota.go.id signenc openssl aes-256-cbc \
	pkcs1 "$(certof andi2)"
tap $? "x-ski-s: openssl mail to andi, recipient named by subjectKeyIdentifier"
PT_KEYID=
ie_send x-ski-s andi@banjarkota.go.id
# opaque signed-data inside: kept as it is (inbound_unwrap_opaque is off)
partner_build "$work/send/x-opaque.eml" x-opaque andi@banjarkota.go.id opaqueenc nss \
	aes-128-cbc pkcs1 "$(certof andi2)"
tap $? "x-opaque: nss mail to andi, opaque signed-data inside"
ie_send x-opaque andi@banjarkota.go.id
# a revoked certificate's key still decrypts, and the stamp says so
partner_build "$work/send/x-revoked.eml" x-revoked revoked@banjarkota.go.id signenc openssl \
	aes-256-gcm pkcs1 "$pki/revoked.crt.pem"
tap $? "x-revoked: openssl mail to revoked's revoked certificate"
ie_send x-revoked revoked@banjarkota.go.id

# two internal recipients, both named in the RecipientInfos
partner_build "$work/send/two-s.eml" two-s "andi@banjarkota.go.id, sekda@banjarkota.go.id" \
	signenc openssl aes-256-gcm oaep "$(certof andi2)" "$(certof sekda)"
tap $? "two-s: mail encrypted to andi and sekda"
ie_send two-s andi@banjarkota.go.id,sekda@banjarkota.go.id

# andi and budi: budi is internal but not a recipient of the CMS, and
# Postfix would hand the plaintext to both
partner_build "$work/send/budi-s.eml" budi-s "andi@banjarkota.go.id, budi@banjarkota.go.id" \
	signenc openssl aes-256-cbc pkcs1 "$(certof andi2)"
tap $? "budi-s: mail encrypted to andi only"
ie_send budi-s andi@banjarkota.go.id,budi@banjarkota.go.id

# ---------------------------------------------------------------- checks
ie_wait_all
while read -r tag mb cert kt enc kind cipher pad; do
	case " $IE_SENT " in *" $tag "*) ;; *) continue ;; esac
	echo "# --- $tag: $enc, $kind, $cipher, $pad, to $mb ($cert)"
	signed=no
	[ "$kind" = signenc ] && signed=yes
	ie_decrypted "$tag" "$mb@banjarkota\\.go\\.id" "$signed" \
		"(?i)\\(decrypted for [^)]*, $cipher\\)" </dev/null
done <"$work/cases"

echo "# --- superseded certificate"
ie_decrypted old-ossl-s 'andi@banjarkota\.go\.id' yes "(?i)certificate 0*$old_serial\\b"
ie_decrypted old-gpgsm 'andi@banjarkota\.go\.id' no "(?i)certificate 0*$old_serial\\b"

echo "# --- 3DES, subjectKeyIdentifier, a revoked certificate's key"
ie_decrypted x-3des 'andi@banjarkota\.go\.id' no '(?i)\(decrypted for [^)]*, des-ede3-cbc\)'
"$PY" "$SC" env-recipients "$work/send/x-ski-s.eml" | grep -q '^ski='
tap $? "x-ski-s: the partner's RecipientInfo names andi by subjectKeyIdentifier"
ie_decrypted x-ski-s 'andi@banjarkota\.go\.id' yes
ie_decrypted x-opaque 'andi@banjarkota\.go\.id' opaque
ie_decrypted x-revoked 'revoked@banjarkota\.go\.id' yes '(?i)\(decrypted for [^)]*revoked certificate'

echo "# --- two internal recipients, both in the CMS"
ie_decrypted two-s '(andi|sekda)@banjarkota\.go\.id' yes '(?i)\(decrypted for [^)]*, aes-256-gcm\)'

echo "# --- andi and budi, budi not in the CMS"
ie_unchanged budi-s none '(?i)not decrypted\b[^)]*budi@banjarkota\.go\.id'
"$PY" "$SC" is-encrypted "$work/out/budi-s.eml"
tap $? "budi-s: still encrypted (application/pkcs7-mime)"

# ---------------------------------------------------------------- records
for tag in $IE_SENT; do
	case $tag in
	budi-s) ie_audit "$tag" not-decrypted ;;
	*) ie_audit "$tag" decrypted ;;
	esac
done
grep -E 'sekda@banjarkota.go.id' "$work/milter.log" | grep -qi 'decrypt'
tap $? "the milter log names a decryption for sekda (the token key)"
ie_health
echo "1..$n"
