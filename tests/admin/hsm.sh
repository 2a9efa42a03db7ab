#!/bin/sh
# smimectl with keys on a PKCS#11 token (a private SoftHSM2 token,
# tests/lib/hsm.sh), checked with opensc's pkcs11-tool and openssl:
#   - `smimectl tokens`: token label, manufacturer, serial, key and
#     certificate objects with labels, hex ids and a pkcs11: URI per private
#     key; without a pin_file no private objects
#   - import --pkcs11-uri with --cert, and with the certificate object of the
#     token; refused: certificate of another key, wrong PIN, missing object
#     (nothing recorded)
#   - keygen rsa2048 and ec-p256 for new mailboxes: the private key is on the
#     token, sensitive and never extractable, the CSR verifies and carries the
#     token's public key; the CA issues from it; import --cert completes the
#     pending renewal; -n passes and -t signs with it (openssl + gpgsm verify)
#   - renew of a mailbox whose key is on the token: the new key is generated
#     on the same token, never extractable; import --cert completes it, mail
#     is signed with the new certificate; no key file appears in key_dir
#   - --usage: by default (sign,decrypt) keygen and renew make keys that
#     also decrypt (CKA_DECRYPT for RSA, CKA_DERIVE for EC) and CSRs that ask
#     for keyEncipherment / keyAgreement; --usage sign makes keys that only
#     sign and CSRs that ask for digitalSignature alone; a bad value is a
#     usage error that generates nothing
# Prints TAP.  KEEP=1 keeps the work directory.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
fx_begin admhsm

# expect CODE DESCRIPTION COMMAND...: the command exits with CODE ("!0": a
# refusal, any non-zero code but 64, EX_USAGE); output in $work/out
expect() {
	_want=$1 _what=$2
	shift 2
	"$@" >"$work/out" 2>"$work/err"
	_got=$?
	cat "$work/err" >>"$work/out"
	if [ "$_want" = "!0" ] && [ "$_got" != 0 ] && [ "$_got" != 64 ] || [ "$_got" = "$_want" ]; then
		ok "$_what (exit $_got)"
		return 0
	fi
	nok "$_what (exit $_got, want $_want)"
	sed 's/^/#   /' "$work/out" | head -8
	return 1
}
# listed ADDR: smimectl list shows ADDR
listed() { "$CTL" -c "$conf" list 2>/dev/null | grep -q "$1"; }
# privkeys: number of private key objects on the token
privkeys() { hsm_list "$HSM_TOKEN" "$HSM_PIN" | grep -c '^Private Key Object'; }
# keyfiles: key files in key_dir
keyfiles() { find "$work/keys" -type f \( -name '*.p12' -o -name '*.pass' -o -name '*key*' \) | wc -l; }
# spki_of_csr CSR OUT.der / spki_of_cert CERT OUT.der
spki_of_csr() { openssl req -in "$1" -noout -pubkey | openssl pkey -pubin -outform DER -out "$2"; }
spki_of_cert() { openssl x509 -in "$1" -noout -pubkey | openssl pkey -pubin -outform DER -out "$2"; }
# token_id_of_pub SPKI.der: the CKA_ID (hex) of the token's public key object
# equal to SPKI.der, empty if none
token_id_of_pub() {
	hsm_list "$HSM_TOKEN" "$HSM_PIN" | awk '
		/^[A-Za-z]/ { pub = ($0 ~ /^Public Key Object/) }
		pub && $1 == "ID:" { print $2 }' | sort -u | while read -r _id; do
		hsm_pubkey "$HSM_TOKEN" "$_id" "$work/tpub.der" >/dev/null 2>&1 || continue
		if cmp -s "$work/tpub.der" "$1"; then echo "$_id"; break; fi
	done
}
# usage_of LABEL: "Usage:" of the private key object labelled LABEL
usage_of() {
	hsm_list "$HSM_TOKEN" "$HSM_PIN" | awk -v want="$1" '
		/^[A-Za-z]/ { priv = ($0 ~ /^Private Key Object/); lab = "" }
		priv && $1 == "label:" { sub(/^[ \t]*label:[ \t]*/, ""); lab = $0 }
		priv && lab == want && $1 == "Usage:" { sub(/^[ \t]*Usage:[ \t]*/, ""); print; exit }'
}
# usage_by_id ID: "Usage:" of the private key object with CKA_ID ID
usage_by_id() {
	hsm_list "$HSM_TOKEN" "$HSM_PIN" | awk -v want="$1" '
		/^[A-Za-z]/ { priv = ($0 ~ /^Private Key Object/); id = "" }
		priv && $1 == "ID:" { id = $2 }
		priv && id == want && $1 == "Usage:" { sub(/^[ \t]*Usage:[ \t]*/, ""); print; exit }'
}
# csr_ku CSR: the keyUsage the request asks for, as openssl prints it
csr_ku() {
	openssl req -in "$1" -noout -text | awk '/X509v3 Key Usage/ { getline; sub(/^ */, ""); print; exit }'
}
# decrypts USAGE TYPE: USAGE (pkcs11-tool's) lets a TYPE key decrypt
decrypts() {
	case $2 in
	ec-*) echo "$1" | grep -qw derive ;;
	*) echo "$1" | grep -qw decrypt ;;
	esac
}
# private_access_by_id ID: "Access:" of the private key object with CKA_ID ID
private_access_by_id() {
	hsm_list "$HSM_TOKEN" "$HSM_PIN" | awk -v want="$1" '
		/^[A-Za-z]/ { priv = ($0 ~ /^Private Key Object/); id = "" }
		priv && $1 == "ID:" { id = $2 }
		priv && id == want && $1 == "Access:" { sub(/^[ \t]*Access:[ \t]*/, ""); print; exit }'
}
# nonextractable ACCESS: sensitive and never extractable
nonextractable() {
	printf '%s' "$1" | grep -q 'never extractable' &&
		printf '%s' "$1" | tr ',' '\n' | sed 's/^ *//' | grep -qx 'sensitive' &&
		! printf '%s' "$1" | tr ',' '\n' | sed 's/^ *//' | grep -qx 'extractable'
}
# issue CSR ADDR SERIAL OUT: the test issuing CA signs CSR for ADDR
issue() {
	# an EC key decrypts by key agreement (ECDH), an RSA key by key transport
	if openssl req -in "$1" -noout -text 2>/dev/null | grep -q 'ASN1 OID: prime256v1'; then
		is_ku=keyAgreement
	else
		is_ku=keyEncipherment
	fi
	cat >"$work/issue.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,$is_ku
extendedKeyUsage=emailProtection
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid:always
subjectAltName=email:$2
EXT
	openssl x509 -req -in "$1" -CA "$pki/inter.crt.pem" -CAkey "$pki/inter.key.pem" \
		-set_serial "0x$3" -days 365 -extfile "$work/issue.ext" -out "$4" 2>"$work/issue.err" || {
		sed 's/^/#   openssl: /' "$work/issue.err"
		return 1
	}
}
# decrypts_with ADDR CERT: mail a partner encrypted to CERT (openssl cms,
# AES-256-GCM: RSA key transport or ECDH by the key type) comes out of
# `smime-milter -t --inbound -r ADDR` decrypted by the key on the token
decrypts_with() {
	printf 'Content-Type: text/plain\r\n\r\nrahasia untuk %s\r\n' "$1" >"$work/dw.txt"
	{
		printf 'From: mitra@jabarprov.go.id\r\nTo: %s\r\nSubject: rahasia\r\n' "$1"
		openssl cms -encrypt -aes-256-gcm -in "$work/dw.txt" -recip "$2"
	} >"$work/dw.eml" 2>"$work/dw.err" &&
		"$ME_MILTER" -c "$conf" -t "$work/dw.eml" --inbound -r "$1" >"$work/dw.out" 2>>"$work/dw.err" &&
		tr -d '\r' <"$work/dw.out" | grep -qx "rahasia untuk $1" &&
		grep -q "decrypted for $1 certificate" "$work/dw.err" && return 0
	sed 's/^/#   /' "$work/dw.err" | tail -5
	return 1
}

# signs_with ADDR SERIAL: `smime-milter -t` signs a message from ADDR with the
# certificate of serial SERIAL (hex) and it verifies with openssl and gpgsm
signs_with() {
	printf '%s\r\n' "From: $1" "To: someone@example.org" "Subject: hsm admin" \
		"Date: Tue, 24 Nov 2026 10:00:00 +0700" "Message-ID: <adm-$2@banjarkota.go.id>" \
		"MIME-Version: 1.0" "Content-Type: text/plain; charset=us-ascii" "" "halo" >"$work/t.eml"
	if ! "$ME_MILTER" -c "$conf" -t "$work/t.eml" >"$work/t.out" 2>"$work/t.err"; then
		echo "# smime-milter -t failed:"
		sed 's/^/#   /' "$work/t.err" | head -5
		return 1
	fi
	verify_message "$work/t.out" "$work/t.eml" "$1" "$pki" >"$work/vm.log" 2>&1 || {
		grep -v '^#   gpgsm' "$work/vm.log" | head -8
		return 1
	}
	openssl cms -verify -in "$work/t.out" -noverify -signer "$work/t.signer" -out /dev/null 2>/dev/null &&
		openssl x509 -in "$work/t.signer" -noout -serial | grep -qi "=0*$2\$" || {
		echo "# signer serial $(openssl x509 -in "$work/t.signer" -noout -serial 2>&1), want $2"
		return 1
	}
}

fx_pki || bail "test PKI"
hsm_fixture "$work/hsm" "$pki" || bail "SoftHSM2 token with keys and certificates"
ok "SoftHSM2 token $HSM_TOKEN with the keys and certificates of andi, sekda, noreply, legacy, ec"
serial=$(pkcs11-tool --module "$HSM_MODULE" -L 2>/dev/null | awk -v l="$HSM_TOKEN" '
	$1 == "token" && $2 == "label" { cur = $4 } $1 == "serial" && cur == l { print $4; exit }')

conf=$work/m.conf
me_conf "$conf" "$work" "inet:1@127.0.0.1"
hsm_conf_lines >>"$conf"
expect 0 "init with the pkcs11_* keys in the config" "$CTL" -c "$conf" init || bail "database created"

# ---- tokens
if expect 0 "smimectl tokens" "$CTL" -c "$conf" tokens; then
	cp "$work/out" "$work/tokens.out"
	miss=
	for w in "$HSM_TOKEN" "SoftHSM" "$serial"; do
		grep -q "$w" "$work/tokens.out" || miss="$miss '$w'"
	done
	tap "$([ -z "$miss" ]; echo $?)" "tokens shows label, manufacturer and serial $serial${miss:+ (missing:$miss)}"
	miss=
	for a in andi sekda noreply legacy ec; do
		eval "id=\$HSM_ID_$a"
		grep -q "$a" "$work/tokens.out" && grep -qi "$id" "$work/tokens.out" || miss="$miss $a/$id"
		grep 'pkcs11:' "$work/tokens.out" | grep "token=$HSM_TOKEN" | grep -qE "object=$a(;|\$| )" ||
			miss="$miss $a-uri"
	done
	tap "$([ -z "$miss" ]; echo $?)" "tokens lists each key with label, hex id and a pkcs11: URI${miss:+ (missing:$miss)}"
	[ -z "$miss" ] || sed 's/^/#   /' "$work/tokens.out" | head -30
	c=$(grep -ci 'cert' "$work/tokens.out")
	tap "$([ "$c" -gt 0 ]; echo $?)" "tokens lists certificate objects ($c lines mention cert)"
	# the first URI it prints must name the andi key in a form import takes
	uri=$(grep -o "pkcs11:[^ ]*object=andi[^ ]*" "$work/tokens.out" | head -1)
	echo "# andi's URI from smimectl tokens: $uri"
fi
sed '/^pkcs11_tokens/d' "$conf" >"$work/nopin.conf"
if expect 0 "smimectl tokens without a pin_file" "$CTL" -c "$work/nopin.conf" tokens; then
	grep -q "$HSM_TOKEN" "$work/out" && ! grep -q 'type=private' "$work/out"
	tap $? "... shows the token but no private key"
	[ $? = 0 ] || sed 's/^/#   /' "$work/out" | head -20
fi

# ---- import: refusals first, nothing may be recorded
expect "!0" "import refuses the certificate of another key (noreply's key, sekda's cert)" \
	"$CTL" -c "$conf" import --mailbox sekda@banjarkota.go.id --kind role \
	--pkcs11-uri "$(hsm_uri "$HSM_TOKEN" noreply)" --cert "$pki/sekda.crt.pem"
[ -s "$work/err" ]
tap $? "... with a message on stderr: $(head -1 "$work/err")"
expect "!0" "import refuses a key object that is not on the token" \
	"$CTL" -c "$conf" import --mailbox noreply@banjarkota.go.id --kind system \
	--pkcs11-uri "$(hsm_uri "$HSM_TOKEN" nobody)" --cert "$pki/noreply.crt.pem"
grep -q 'not found' "$work/err"
tap $? "... and says 'not found': $(head -1 "$work/err")"
hsm_pin_file "$work/wrong.pin" "wrong-pin-0000"
sed "s|pin_file = \"$HSM_PIN_FILE\"|pin_file = \"$work/wrong.pin\"|" "$conf" >"$work/wrong.conf"
expect "!0" "import refuses with a wrong PIN" \
	"$CTL" -c "$work/wrong.conf" import --mailbox noreply@banjarkota.go.id --kind system \
	--pkcs11-uri "$(hsm_uri "$HSM_TOKEN" noreply)"
grep -q 'PIN' "$work/err"
tap $? "... and says PIN: $(head -1 "$work/err")"
listed sekda@ || listed noreply@
tap "$([ $? != 0 ]; echo $?)" "none of the refused imports was recorded"

# ---- import: with --cert, and through the token's certificate object
expect 0 "import andi with --cert" "$CTL" -c "$conf" import \
	--mailbox andi@banjarkota.go.id --kind individual \
	--pkcs11-uri "$(hsm_uri "$HSM_TOKEN" andi)" --cert "$pki/andi.crt.pem"
expect 0 "import sekda without --cert (certificate object with the same id)" \
	"$CTL" -c "$conf" import --mailbox sekda@banjarkota.go.id --kind role \
	--pkcs11-uri "$(hsm_uri "$HSM_TOKEN" sekda)"
expect 0 "import noreply by id=%03 with a ?pin-source= query" \
	"$CTL" -c "$conf" import --mailbox noreply@banjarkota.go.id --kind system \
	--pkcs11-uri "pkcs11:token=$HSM_TOKEN;id=%03;type=private?pin-source=file:$HSM_PIN_FILE"
listed andi@ && listed sekda@ && listed noreply@
tap $? "list shows andi, sekda, noreply"
k=$(keyfiles)
tap "$([ "$k" = 0 ]; echo $?)" "no key file in key_dir after importing from the token ($k)"
expect 0 "smime-milter -n passes with the token keys" "$ME_MILTER" -c "$conf" -n
signs_with andi@banjarkota.go.id 2000
tap $? "smime-milter -t signs andi@ through the token; openssl and gpgsm verify"
signs_with sekda@banjarkota.go.id 2001
tap $? "smime-milter -t signs sekda@ (certificate from the token object); verifies"

# ---- keygen: rsa2048 and ec-p256
mkdir -p "$work/csr"
# keygen_case ADDR LABEL TYPE SERIAL ALGO-REGEX
keygen_case() {
	kc_a=$1 kc_l=$2 kc_t=$3 kc_s=$4 kc_algo=$5
	kc_p0=$(privkeys)
	expect 0 "keygen $kc_t for $kc_a on the token" "$CTL" -c "$conf" keygen --mailbox "$kc_a" \
		--pkcs11-uri "$(hsm_uri "$HSM_TOKEN" "$kc_l")" --key-type "$kc_t" --out "$work/csr" || return 1
	kc_csr=$work/csr/$kc_a.csr.pem
	[ -s "$kc_csr" ]
	tap $? "$kc_t: CSR written to --out DIR/$kc_a.csr.pem" || return 1
	kc_p1=$(privkeys)
	tap "$([ "$kc_p1" = $((kc_p0 + 1)) ]; echo $?)" "$kc_t: one new private key object on the token ($kc_p0 -> $kc_p1)"
	kc_acc=$(hsm_access "$HSM_TOKEN" "$HSM_PIN" "$kc_l")
	nonextractable "$kc_acc"
	tap $? "$kc_t: pkcs11-tool says the key '$kc_l' is sensitive and never extractable (Access: $kc_acc)"
	kc_use=$(usage_of "$kc_l")
	decrypts "$kc_use" "$kc_t"
	tap $? "$kc_t: by default (--usage sign,decrypt) the token key also decrypts (Usage: $kc_use)"
	kc_ku=$(csr_ku "$kc_csr")
	case $kc_t in
	ec-*) [ "$kc_ku" = "Digital Signature, Key Agreement" ] ;;
	*) [ "$kc_ku" = "Digital Signature, Key Encipherment" ] ;;
	esac
	tap $? "$kc_t: the CSR asks for signing and ${kc_t%%-*} decryption key usage ($kc_ku)"
	openssl req -in "$kc_csr" -verify -noout >/dev/null 2>&1
	tap $? "$kc_t: openssl req -verify accepts the CSR"
	openssl req -in "$kc_csr" -noout -text | grep -qE "$kc_algo"
	tap $? "$kc_t: the CSR key is $(openssl req -in "$kc_csr" -noout -text | grep -m1 -E 'Public-Key|ASN1 OID' | sed 's/^ *//')"
	spki_of_csr "$kc_csr" "$work/csr.der"
	kc_id=$(token_id_of_pub "$work/csr.der")
	tap "$([ -n "$kc_id" ]; echo $?)" "$kc_t: the CSR's public key is the token's public key object${kc_id:+ (id $kc_id)}"
	[ -n "$kc_id" ] && [ -n "$(private_access_by_id "$kc_id")" ]
	tap $? "$kc_t: ... and a private key object with that id is on the token"
	issue "$kc_csr" "$kc_a" "$kc_s" "$work/$kc_l.crt.pem"
	tap $? "$kc_t: the test CA issues a certificate from the CSR" || return 1
	expect 0 "$kc_t: import --cert completes the pending key" "$CTL" -c "$conf" import \
		--mailbox "$kc_a" --kind individual --cert "$work/$kc_l.crt.pem"
	listed "$kc_a"
	tap $? "$kc_t: list shows $kc_a"
	expect 0 "$kc_t: smime-milter -n passes" "$ME_MILTER" -c "$conf" -n
	signs_with "$kc_a" "$kc_s"
	tap $? "$kc_t: smime-milter -t signs mail from $kc_a with the key on the token; verifies"
	decrypts_with "$kc_a" "$work/$kc_l.crt.pem"
	tap $? "$kc_t: smime-milter -t --inbound decrypts mail to $kc_a with the key on the token (${kc_t%%-*}: $( [ "${kc_t%%-*}" = ec ] && echo C_DeriveKey || echo C_Decrypt))"
}
keygen_case budi@banjarkota.go.id budi rsa2048 7001 'Public-Key: \(2048 bit\)'
keygen_case dewi@banjarkota.go.id dewi ec-p256 7002 'prime256v1|P-256'
k=$(keyfiles)
tap "$([ "$k" = 0 ]; echo $?)" "no key file in key_dir after keygen ($k)"

# ---- keygen --usage sign: keys that only sign
# sign_only ADDR LABEL TYPE
sign_only() {
	so_p0=$(privkeys)
	expect 0 "keygen --usage sign $3 for $1" "$CTL" -c "$conf" keygen --mailbox "$1" \
		--pkcs11-uri "$(hsm_uri "$HSM_TOKEN" "$2")" --key-type "$3" --usage sign \
		--out "$work/csr" || return 1
	so_p1=$(privkeys)
	so_use=$(usage_of "$2")
	[ "$so_p1" = $((so_p0 + 1)) ] && echo "$so_use" | grep -qw sign &&
		! echo "$so_use" | grep -qwE 'decrypt|derive|unwrap'
	tap $? "--usage sign $3: the token key signs and may neither decrypt nor derive (Usage: $so_use)"
	so_ku=$(csr_ku "$work/csr/$1.csr.pem")
	[ "$so_ku" = "Digital Signature" ]
	tap $? "--usage sign $3: the CSR asks for digitalSignature only ($so_ku)"
}
sign_only eka@banjarkota.go.id eka rsa2048
sign_only fajar@banjarkota.go.id fajar ec-p256
p0=$(privkeys)
expect 64 "keygen --usage encrypt is a usage error" "$CTL" -c "$conf" keygen \
	--mailbox gita@banjarkota.go.id --pkcs11-uri "$(hsm_uri "$HSM_TOKEN" gita)" --usage encrypt \
	--out "$work/csr" && grep -q -- "--usage must be sign or sign,decrypt" "$work/out"
tap $? "... saying which values it takes"
p1=$(privkeys)
tap "$([ "$p1" = "$p0" ]; echo $?)" "... and no key is generated ($p0 -> $p1)"

# ---- renew a mailbox whose key is on the token
p0=$(privkeys)
spki_of_cert "$pki/andi.crt.pem" "$work/andi-old.der"
if expect 0 "renew andi@ (key on the token)" "$CTL" -c "$conf" renew andi@banjarkota.go.id \
	--key-type rsa3072 --out "$work/csr"; then
	csr=$work/csr/andi@banjarkota.go.id.csr.pem
	openssl req -in "$csr" -verify -noout >/dev/null 2>&1
	tap $? "renew: openssl req -verify accepts the CSR"
	p1=$(privkeys)
	tap "$([ "$p1" = $((p0 + 1)) ]; echo $?)" "renew: the new private key is on the token ($p0 -> $p1 private key objects)"
	spki_of_csr "$csr" "$work/renew.der"
	! cmp -s "$work/renew.der" "$work/andi-old.der"
	tap $? "renew: the CSR carries a new key"
	openssl req -in "$csr" -noout -text | grep -q 'Public-Key: (3072 bit)'
	tap $? "renew: --key-type rsa3072 honoured"
	id=$(token_id_of_pub "$work/renew.der")
	acc=$( [ -n "$id" ] && private_access_by_id "$id")
	[ -n "$id" ] && nonextractable "$acc"
	tap $? "renew: the token holds the new key pair (id ${id:-none}), never extractable (Access: $acc)"
	use=$( [ -n "$id" ] && usage_by_id "$id")
	decrypts "$use" rsa3072
	tap $? "renew: by default the new token key also decrypts (Usage: $use)"
	ku=$(csr_ku "$csr")
	[ "$ku" = "Digital Signature, Key Encipherment" ]
	tap $? "renew: the CSR asks for keyEncipherment too ($ku)"
	k=$(keyfiles)
	tap "$([ "$k" = 0 ]; echo $?)" "renew: no key file in key_dir ($k)"
	if issue "$csr" andi@banjarkota.go.id 7003 "$work/andi-new.crt.pem"; then
		expect 0 "renew: import --cert completes the renewal" "$CTL" -c "$conf" import \
			--mailbox andi@banjarkota.go.id --kind individual --cert "$work/andi-new.crt.pem"
		st=$("$CTL" -c "$conf" list --json | "$PY" -c '
import json, sys
rows = [r for r in json.load(sys.stdin) if r["mailbox"] == "andi@banjarkota.go.id"]
print(" ".join(sorted(r["serial"] + ":" + r["status"] for r in rows)))')
		[ "$st" = "2000:superseded 7003:active" ]
		tap $? "renew: old certificate superseded, new one active ($st)"
		expect 0 "renew: smime-milter -n passes" "$ME_MILTER" -c "$conf" -n
		signs_with andi@banjarkota.go.id 7003
		tap $? "renew: mail from andi@ is signed with the new certificate and token key; verifies"
		signs_with sekda@banjarkota.go.id 2001
		tap $? "renew: sekda@ is unaffected"
	else
		nok "renew: the test CA issues a certificate from the CSR"
	fi
fi
# ---- renew --usage sign: a new key that only signs
if expect 0 "renew sekda@ --usage sign" "$CTL" -c "$conf" renew sekda@banjarkota.go.id \
	--usage sign --out "$work/csr"; then
	csr=$work/csr/sekda@banjarkota.go.id.csr.pem
	ku=$(csr_ku "$csr")
	[ "$ku" = "Digital Signature" ]
	tap $? "renew --usage sign: the CSR asks for digitalSignature only ($ku)"
	spki_of_csr "$csr" "$work/renew-sekda.der"
	id=$(token_id_of_pub "$work/renew-sekda.der")
	use=$( [ -n "$id" ] && usage_by_id "$id")
	[ -n "$id" ] && echo "$use" | grep -qw sign && ! decrypts "$use" rsa2048
	tap $? "renew --usage sign: the new token key (id ${id:-none}) only signs (Usage: $use)"
fi
# ---- renew of a key in key_dir: the same rule for the CSR
if expect 0 "import legacy@ with a PEM key" "$CTL" -c "$conf" import \
	--mailbox legacy@banjarkota.go.id --kind individual \
	--cert "$pki/legacy.crt.pem" --key "$pki/legacy.key.pem"; then
	csr=$work/csr/legacy@banjarkota.go.id.csr.pem
	expect 0 "renew legacy@ (key_dir)" "$CTL" -c "$conf" renew legacy@banjarkota.go.id \
		--out "$work/csr" && ku=$(csr_ku "$csr") &&
		[ "$ku" = "Digital Signature, Key Encipherment" ]
	tap $? "renew in key_dir: by default the CSR asks for keyEncipherment too (${ku:-})"
	expect 0 "renew legacy@ --usage sign --key-type ec-p256 (key_dir)" "$CTL" -c "$conf" renew \
		legacy@banjarkota.go.id --usage sign --key-type ec-p256 --out "$work/csr" &&
		ku=$(csr_ku "$csr") && [ "$ku" = "Digital Signature" ]
	tap $? "renew in key_dir --usage sign: the CSR asks for digitalSignature only (${ku:-})"
fi
expect 64 "renew --usage bogus is a usage error" "$CTL" -c "$conf" renew sekda@banjarkota.go.id \
	--usage bogus --out "$work/csr"
if grep -qaE "$HSM_PIN|wrong-pin-0000" "$work"/*.out "$work/out" "$work/err" "$work/smime.db" 2>/dev/null; then
	nok "the PIN never appears in smimectl output or in the database"
else
	ok "the PIN never appears in smimectl output or in the database"
fi
echo "1..$n"
