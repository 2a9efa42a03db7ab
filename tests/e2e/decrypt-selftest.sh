#!/bin/sh
# Self-test of the independent decryption checker (tests/lib/decrypt.sh):
# a message signed with `openssl cms -sign` (smimecheck.py refsign, the MIME
# shape the milter produces), then encrypted with the openssl CLI in every
# flavour issue 5 asks for, wrapped into a message with the original outer
# headers -- good ones, and deliberately broken ones that decrypt_message must
# reject.  Needs no milter and no Postfix; independent of the milter's code.
# What gpgsm 2.2.40 does with each flavour: tests/lib/DECRYPT-NOTES.txt.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
. "$TOP/tests/lib/decrypt.sh"
# check DESCRIPTION COMMAND... / refuse DESCRIPTION COMMAND...: one TAP line,
# ok when COMMAND succeeds / fails
check() { _cd=$1; shift; if "$@" >/dev/null 2>&1; then ok "$_cd"; else nok "$_cd"; fi; }
refuse() { _cd=$1; shift; if "$@" >/dev/null 2>&1; then nok "$_cd"; else ok "$_cd"; fi; }

fx_begin dself nobin
fx_pki || bail "pki.sh builds the test PKI"
ok "pki.sh builds the test PKI"
echo "# $(openssl version); gpgsm $(dm_gpgsm_version)"

# The message as sent: folded Subject, multipart with a base64 attachment.
orig=$work/orig.eml
printf '%s\r\n' "From: Andi Pratama <andi@banjarkota.go.id>" \
	"To: Mitra Jabar <mitra@jabarprov.go.id>" \
	"Cc: auditor@bpk.go.id" \
	"Subject: Undangan rapat koordinasi anggaran" \
	"	tahun 2027 (rahasia)" \
	"Date: Tue, 24 Nov 2026 12:00:00 +0700" \
	"Message-ID: <dself@banjarkota.go.id>" "MIME-Version: 1.0" \
	'Content-Type: multipart/mixed; boundary="outer-b"' "" \
	"--outer-b" "Content-Type: text/plain; charset=us-ascii" "" \
	"Yth. Bapak/Ibu," ".dot line" "trailing spaces   " "" "-- " "Andi" \
	"--outer-b" "Content-Type: application/octet-stream; name=\"lampiran.bin\"" \
	"Content-Transfer-Encoding: base64" \
	"Content-Disposition: attachment; filename=\"lampiran.bin\"" "" \
	"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4" \
	"OTo7PD0+P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5fYGFiY2RlZmdoaWprbG1ub3Bx" \
	"--outer-b--" >"$orig"
me=andi@banjarkota.go.id

# Signed first (andi's key, intermediate embedded) ...
"$PY" "$SC" refsign "$orig" "$pki/andi.crt.pem" "$pki/andi.key.pem" \
	"$pki/inter.crt.pem" "$work/signed.eml" || bail "refsign signs the original"
# ... the entity that gets encrypted: the multipart/signed Content-* + body.
"$PY" "$SC" entity "$work/signed.eml" "$work/inner.bin" || bail "entity cut out"

# enc NAME OPENSSL-CMS-ENCRYPT-ARGS...: encrypt inner.bin to NAME.der
enc() {
	_n=$1
	shift
	if ! openssl cms -encrypt -binary -in "${ENC_IN:-$work/inner.bin}" \
		-outform DER -out "$work/$_n.der" "$@" >"$work/$_n.enc.log" 2>&1; then
		sed 's/^/# /' "$work/$_n.enc.log"
		bail "openssl cms -encrypt ($_n)"
	fi
}
# wrap NAME SMIME-TYPE: NAME.der -> NAME.eml with the outer headers
wrap() {
	"$PY" "$SC" env-wrap "$work/signed.eml" "$work/$1.der" "$work/$1.eml" "$2" ||
		bail "env-wrap $1"
}

enc cbc -aes-256-cbc -recip "$pki/mitra.crt.pem"
wrap cbc enveloped-data
enc gcm -aes-256-gcm -recip "$pki/mitra.crt.pem"
wrap gcm authEnveloped-data
enc oaep -aes-256-cbc -recip "$pki/mitra.crt.pem" -keyopt rsa_padding_mode:oaep
wrap oaep enveloped-data
enc ec -aes-256-cbc -recip "$pki/ecmitra.crt.pem"
wrap ec enveloped-data
enc two -aes-256-cbc -recip "$pki/mitra.crt.pem" -recip "$pki/andi.crt.pem"
wrap two enveloped-data

# good NAME RECIPIENT CIPHER KEYALGS DESCRIPTION: decrypt_message passes,
# DM_KEYALGS is as given, and gpgsm's verdict matches gpgsm_can_decrypt
good() {
	_g=$1 _r=$2 _c=$3 _k=$4 _d=$5
	if decrypt_message "$work/$_g.eml" "$orig" "$me" "$_r" "$pki" "$_c" \
		>"$work/$_g.$_r.log" 2>&1; then
		ok "decrypt_message accepts $_d"
	else
		sed 's/^/# /; s/^# #/#/' "$work/$_g.$_r.log"
		nok "decrypt_message accepts $_d (failed:$DM_FAILED)"
	fi
	check "$_d: RecipientInfo algorithms are \"$_k\" (got \"$DM_KEYALGS\", $DM_KEYDETAILS)" \
		[ "$DM_KEYALGS" = "$_k" ]
	if gpgsm_can_decrypt "$DM_RECIP_KEYALG" "$DM_CIPHER"; then
		check "$_d: gpgsm $(dm_gpgsm_version) decrypts it as $_r, same bytes as openssl (DM_GPGSM=$DM_GPGSM)" \
			[ "$DM_GPGSM" = ok ]
	else
		check "$_d: gpgsm $(dm_gpgsm_version) cannot, and decrypt_message says skip (DM_GPGSM=$DM_GPGSM: $(gpgsm_why_not "$DM_RECIP_KEYALG" "$DM_CIPHER"))" \
			[ "$DM_GPGSM" = skip ]
	fi
}

# 1. each flavour decrypts, with openssl and (where it can) gpgsm
good cbc mitra aes-256-cbc rsaEncryption "AES-256-CBC + RSA PKCS#1 v1.5"
good gcm mitra aes-256-gcm rsaEncryption "AES-256-GCM authEnveloped-data"
good oaep mitra aes-256-cbc rsaesOaep "AES-256-CBC + RSA-OAEP"
good ec ecmitra aes-256-cbc dhSinglePass-stdDH-sha1kdf-scheme "AES-256-CBC + ECDH (EC P-256 recipient)"
good two mitra aes-256-cbc "rsaEncryption rsaEncryption" "two recipients, read by the partner"
good two andi aes-256-cbc "rsaEncryption rsaEncryption" "two recipients, read by the sender's own key"
tr -d '\r' <"$work/cbc.eml" >"$work/cbc-lf.eml"
good cbc-lf mitra aes-256-cbc rsaEncryption "the CBC message with LF line ends"

# openssl's own S/MIME output (LF, 64-column base64, Content-Disposition)
# with the outer headers put in front
openssl cms -encrypt -binary -aes-256-cbc -in "$work/inner.bin" \
	-out "$work/ossl-smime.p7m" "$pki/mitra.crt.pem" 2>/dev/null ||
	bail "openssl cms -encrypt (SMIME output)"
"$PY" - "$SC" "$work/signed.eml" "$work/ossl-smime.p7m" "$work/ossl-smime.eml" <<'EOF' ||
import importlib.util, sys
spec = importlib.util.spec_from_file_location("sc", sys.argv[1])
sc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sc)
head, _ = sc.split_head_body(sc.read_canon(sys.argv[2]))
outer = b"".join(raw for n, raw in sc.raw_fields(head)
                 if not sc.is_content_header(n) and n != b"mime-version")
with open(sys.argv[4], "wb") as f:
    f.write(outer.replace(b"\r\n", b"\n") + open(sys.argv[3], "rb").read())
EOF
	bail "outer headers put around openssl's S/MIME output"
good ossl-smime mitra aes-256-cbc rsaEncryption "openssl's S/MIME output (LF, Content-Disposition smime.p7m)"

# 2. the helpers
check "decrypt_is_encrypted: enveloped-data message" decrypt_is_encrypted "$work/cbc.eml"
check "decrypt_is_encrypted: authEnveloped-data message" decrypt_is_encrypted "$work/gcm.eml"
refuse "decrypt_is_encrypted: not for a signed-only message" decrypt_is_encrypted "$work/signed.eml"
refuse "decrypt_is_encrypted: not for a plain message" decrypt_is_encrypted "$orig"
dm_recipients "$work/two.eml" >"$work/two.rcpts" 2>&1
sed 's/^/# recipient: /' "$work/two.rcpts"
check "dm_recipients: the sender's own certificate is among the recipients" \
	grep -qxF "$(dm_cert_id "$pki/andi.crt.pem")" "$work/two.rcpts"
check "dm_recipients: the partner's certificate is among the recipients" \
	grep -qxF "$(dm_cert_id "$pki/mitra.crt.pem")" "$work/two.rcpts"
refuse "dm_recipients: a certificate that is not a recipient is not listed" \
	grep -qxF "$(dm_cert_id "$pki/auditor.crt.pem")" "$work/two.rcpts"
check "dm_recipients: two lines for two recipients" [ "$(wc -l <"$work/two.rcpts")" -eq 2 ]
check "gpgsm_can_decrypt: RSA PKCS#1 v1.5 + AES-256-CBC (every gpgsm decrypts it)" \
	gpgsm_can_decrypt rsaEncryption aes-256-cbc

# 3. broken ones.  expect_fail NAME MESSAGE RECIPIENT CIPHER "MUST-FAIL" ["MUST-BE-OK"]
expect_fail() {
	_name=$1 _m=$2 _r=$3 _c=$4 _f=$5 _o=${6:-}
	if decrypt_message "$_m" "$orig" "${WHO:-$me}" "$_r" "$pki" "$_c" \
		>"$work/$_name.log" 2>&1; then
		sed 's/^/# /; s/^# #/#/' "$work/$_name.log"
		nok "decrypt_message rejects $_name"
		return
	fi
	_all=ok
	# shellcheck disable=SC2086
	fx_all_are "$_name" DM_ fail $_f || _all=no
	# shellcheck disable=SC2086
	fx_all_are "$_name" DM_ ok $_o || _all=no
	if [ $_all = ok ]; then
		ok "decrypt_message rejects $_name (fail: $_f${_o:+; ok: $_o})"
	else
		grep '^#' "$work/$_name.log"
		nok "decrypt_message rejects $_name (fail: $_f${_o:+; ok: $_o})"
	fi
}

expect_fail wrong-recipient-key "$work/cbc.eml" auditor aes-256-cbc \
	"OPENSSL GPGSM INNER" "STRUCT ALG"

"$PY" "$SC" env-tamper "$work/cbc.der" "$work/cbc-t.der" >/dev/null || bail "env-tamper cbc"
wrap cbc-t enveloped-data
expect_fail tampered-cbc-ciphertext "$work/cbc-t.eml" mitra aes-256-cbc "INNER" \
	"STRUCT ALG OPENSSL GPGSM"

"$PY" "$SC" env-tamper "$work/gcm.der" "$work/gcm-t.der" >/dev/null || bail "env-tamper gcm"
wrap gcm-t authEnveloped-data
expect_fail tampered-gcm-ciphertext "$work/gcm-t.eml" mitra aes-256-gcm "OPENSSL INNER" "STRUCT ALG"

# the signed entity changed before encryption: decryption works, the
# inner signature (and content comparison) must not
sed 's/^Yth\. Bapak/Yth. Saudara/' "$work/inner.bin" >"$work/inner-changed.bin"
cmp -s "$work/inner.bin" "$work/inner-changed.bin" && bail "inner content edit changed nothing"
ENC_IN=$work/inner-changed.bin enc changed -aes-256-cbc -recip "$pki/mitra.crt.pem"
wrap changed enveloped-data
expect_fail changed-inner-content "$work/changed.eml" mitra aes-256-cbc "INNER" \
	"STRUCT ALG OPENSSL GPGSM"

# encrypted, but never signed
ENC_IN=$orig enc unsigned -aes-256-cbc -recip "$pki/mitra.crt.pem"
wrap unsigned enveloped-data
expect_fail encrypted-but-unsigned "$work/unsigned.eml" mitra aes-256-cbc "INNER" "OPENSSL"

WHO=sekda@banjarkota.go.id expect_fail wrong-inner-signer "$work/cbc.eml" mitra aes-256-cbc \
	"INNER" "STRUCT ALG OPENSSL GPGSM"

grep -v '^Date: ' "$work/cbc.eml" >"$work/nodate.eml"
expect_fail missing-outer-header "$work/nodate.eml" mitra aes-256-cbc "STRUCT" "ALG OPENSSL"

sed 's/^\(Subject: .*\)anggaran/\1belanja/' "$work/cbc.eml" >"$work/subj.eml"
cmp -s "$work/cbc.eml" "$work/subj.eml" && bail "Subject edit changed nothing"
expect_fail changed-outer-header "$work/subj.eml" mitra aes-256-cbc "STRUCT"

sed 's/smime-type=enveloped-data/smime-type=signed-data/' "$work/cbc.eml" >"$work/stype.eml"
expect_fail wrong-smime-type "$work/stype.eml" mitra aes-256-cbc "STRUCT" "ALG"

sed 's/; name=smime\.p7m//' "$work/cbc.eml" >"$work/noname.eml"
expect_fail missing-name-smime.p7m "$work/noname.eml" mitra aes-256-cbc "STRUCT"

sed 's/^\(Content-Transfer-Encoding: base64\)/Content-Language: id\r\n\1/' \
	"$work/cbc.eml" >"$work/extra.eml"
expect_fail content-header-left-outside "$work/extra.eml" mitra aes-256-cbc "STRUCT"

expect_fail cbc-when-gcm-expected "$work/cbc.eml" mitra aes-256-gcm "STRUCT ALG"
expect_fail gcm-when-cbc-expected "$work/gcm.eml" mitra aes-256-cbc "STRUCT ALG"

# right label, weaker cipher inside
enc a128 -aes-128-cbc -recip "$pki/mitra.crt.pem"
wrap a128 enveloped-data
expect_fail aes-128-cbc-when-aes-256-expected "$work/a128.eml" mitra aes-256-cbc "ALG" "STRUCT"

# GCM content labelled enveloped-data
"$PY" "$SC" env-wrap "$work/signed.eml" "$work/gcm.der" "$work/gcm-mislabelled.eml" \
	enveloped-data || bail "env-wrap gcm-mislabelled"
expect_fail gcm-labelled-enveloped-data "$work/gcm-mislabelled.eml" mitra aes-256-gcm "STRUCT"

expect_fail signed-not-encrypted "$work/signed.eml" mitra aes-256-cbc \
	"STRUCT ALG OPENSSL GPGSM INNER"

echo "1..$n"
