# tests/lib/verify.sh -- independent verification of a signed message.
# Source it:  . tests/lib/verify.sh   (needs tests/lib/smimecheck.py beside it,
# openssl, gpgsm, gpgconf, /usr/bin/python3).
#
#   verify_message SIGNED ORIGINAL EXPECTED_SIGNER CA_DIR
#       SIGNED: the message as delivered (LF or CRLF line ends); ORIGINAL:
#       the message as sent ("-" skips the header and content comparison);
#       EXPECTED_SIGNER: mail address that must be in the signer certificate
#       (SAN rfc822Name or subject emailAddress; "-" skips); CA_DIR: holds
#       root.crt.pem and inter.crt.pem (tests/lib/pki.sh output).
#       Checks, each recorded in a variable set to "ok" or "fail":
#         VM_STRUCT   multipart/signed; protocol="application/pkcs7-signature";
#                     micalg=sha-256, two parts, base64 p7s, MIME-Version,
#                     no leftover Content-* outside, entity 7-bit, lines <= 998
#         VM_OPENSSL  `openssl cms -verify` of the entity bytes cut out by
#                     python (-binary, DER p7s) AND of the whole message
#                     (-inform SMIME), both with only the ROOT as -CAfile and
#                     no -untrusted (proves the intermediate is embedded)
#         VM_GPGSM    gpgsm --verify in a fresh GNUPGHOME trusting only the
#                     root (trustlist "S relax", no CRL/policy checks):
#                     exit 0 with GOODSIG and VALIDSIG
#         VM_SIGNER   signer certificate carries EXPECTED_SIGNER
#         VM_CMS      detached, sha256, signingTime + SMIMECapabilities
#                     signed attributes, signer + intermediate embedded, root
#                     not embedded
#         VM_HEADERS  every non-Content-* header of ORIGINAL is outside,
#                     byte for byte after unfolding; MIME-Version present
#         VM_CONTENT  same MIME tree and decoded leaf contents as ORIGINAL
#       Prints "# ..." diagnostics; returns 0 only when every check is "ok".
#       VM_FAILED lists the names of the failed checks.  VM_KEEP=1 keeps the
#       work directory (printed) for inspection.
#   verify_gpgsm P7S_DER CONTENT ROOT_PEM   gpgsm step alone (0 = good)
#   vm_is_signed FILE                       0 if top-level multipart/signed

VM_PY=${VM_PY:-/usr/bin/python3}
VM_LIB=${VM_LIB:-${TOP:-.}/tests/lib}

vm_is_signed() {
	"$VM_PY" "$VM_LIB/smimecheck.py" is-signed "$1"
}

verify_gpgsm() {
	_p7s=$1 _content=$2 _root=$3
	_gh=$(mktemp -d "${TMPDIR:-/tmp}/vmgpg.XXXXXX") || return 1
	chmod 0700 "$_gh"
	cat >"$_gh/gpgsm.conf" <<EOF
disable-crl-checks
disable-policy-checks
disable-ocsp
disable-dirmngr
EOF
	_rc=1
	if gpgsm --homedir "$_gh" --batch --no-tty --import "$_root" \
		>"$_gh/import.log" 2>&1; then
		_fpr=$(openssl x509 -in "$_root" -noout -fingerprint -sha1 | sed 's/^[^=]*=//')
		printf '%s S relax\n' "$_fpr" >"$_gh/trustlist.txt"
		gpgsm --homedir "$_gh" --batch --no-tty --status-fd 1 \
			--verify "$_p7s" "$_content" >"$_gh/status" 2>"$_gh/stderr"
		_grc=$?
		if [ $_grc -eq 0 ] && grep -q '^\[GNUPG:\] GOODSIG ' "$_gh/status" &&
			grep -q '^\[GNUPG:\] VALIDSIG ' "$_gh/status"; then
			_rc=0
		else
			echo "# gpgsm --verify exited $_grc"
			sed 's/^/#   gpgsm: /' "$_gh/status" "$_gh/stderr" | head -30
		fi
	else
		echo "# gpgsm could not import the root"
		sed 's/^/#   gpgsm: /' "$_gh/import.log" | head -10
	fi
	gpgconf --homedir "$_gh" --kill all >/dev/null 2>&1
	rm -rf "$_gh"
	return $_rc
}

verify_message() {
	if [ $# -ne 4 ]; then
		echo "# usage: verify_message SIGNED ORIGINAL EXPECTED_SIGNER CA_DIR"
		return 2
	fi
	_signed=$1 _orig=$2 _who=$3 _ca=$4
	VM_STRUCT=fail VM_OPENSSL=fail VM_GPGSM=fail VM_SIGNER=fail VM_CMS=fail
	VM_HEADERS=fail VM_CONTENT=fail VM_FAILED=
	_t=$(mktemp -d "${TMPDIR:-/tmp}/vm.XXXXXX") || return 1
	_root=$_ca/root.crt.pem
	_inter=$_ca/inter.crt.pem

	if "$VM_PY" "$VM_LIB/smimecheck.py" split "$_signed" "$_t"; then
		VM_STRUCT=ok
	fi
	if [ ! -s "$_t/p7s.der" ] || [ ! -f "$_t/entity.bin" ]; then
		echo "# no signature could be extracted from $_signed"
	else
		# 1. openssl on the bytes python cut out
		_o1=fail _o2=fail
		if openssl cms -verify -binary -inform DER -in "$_t/p7s.der" \
			-content "$_t/entity.bin" -CAfile "$_root" -purpose smimesign \
			-signer "$_t/signer.pem" -certsout "$_t/certs.pem" \
			-out /dev/null >"$_t/ossl1.log" 2>&1; then
			_o1=ok
		else
			echo "# openssl cms -verify (detached, python-extracted entity) failed:"
			sed 's/^/#   /' "$_t/ossl1.log" | head -10
		fi
		# 2. openssl's own MIME parser on the whole message
		if openssl cms -verify -inform SMIME -in "$_t/signed.eml" \
			-CAfile "$_root" -purpose smimesign -out /dev/null \
			>"$_t/ossl2.log" 2>&1; then
			_o2=ok
		else
			echo "# openssl cms -verify -inform SMIME failed:"
			sed 's/^/#   /' "$_t/ossl2.log" | head -10
		fi
		[ $_o1 = ok ] && [ $_o2 = ok ] && VM_OPENSSL=ok

		# 3. gpgsm (libksba), trusting only the root
		if verify_gpgsm "$_t/p7s.der" "$_t/entity.bin" "$_root"; then
			VM_GPGSM=ok
		fi

		# signer certificate from the signature itself (even if openssl
		# verification failed, to help diagnostics)
		if [ ! -s "$_t/signer.pem" ]; then
			openssl cms -verify -noverify -binary -inform DER -in "$_t/p7s.der" \
				-content "$_t/entity.bin" -signer "$_t/signer.pem" \
				-certsout "$_t/certs.pem" -out /dev/null >/dev/null 2>&1
		fi
		if [ "$_who" = - ]; then
			VM_SIGNER=ok
		elif [ -s "$_t/signer.pem" ]; then
			_emails=$(openssl x509 -in "$_t/signer.pem" -noout -email 2>/dev/null |
				tr 'A-Z' 'a-z')
			_want=$(printf '%s' "$_who" | tr 'A-Z' 'a-z')
			if printf '%s\n' "$_emails" | grep -qxF "$_want"; then
				VM_SIGNER=ok
			else
				echo "# signer certificate addresses: $(echo $_emails), want $_who"
				openssl x509 -in "$_t/signer.pem" -noout -subject | sed 's/^/#   /'
			fi
		else
			echo "# no signer certificate found in the signature"
		fi

		# CMS attributes and embedded chain
		if openssl cms -cmsout -print -inform DER -in "$_t/p7s.der" \
			>"$_t/cms.txt" 2>&1 &&
			"$VM_PY" "$VM_LIB/smimecheck.py" cms "$_t/p7s.der" "$_t/cms.txt" \
				"$_t/certs.pem" "$_t/signer.pem" "$_root" "$_inter"; then
			VM_CMS=ok
		fi
	fi

	if [ "$_orig" = - ]; then
		VM_HEADERS=ok VM_CONTENT=ok
	else
		"$VM_PY" "$VM_LIB/smimecheck.py" headers "$_orig" "$_signed" && VM_HEADERS=ok
		"$VM_PY" "$VM_LIB/smimecheck.py" content "$_orig" "$_signed" && VM_CONTENT=ok
	fi

	for _c in STRUCT OPENSSL GPGSM SIGNER CMS HEADERS CONTENT; do
		eval "_v=\$VM_$_c"
		[ "$_v" = ok ] || VM_FAILED="$VM_FAILED $_c"
	done
	if [ "${VM_KEEP:-0}" = 1 ]; then
		echo "# verify_message work directory kept: $_t"
	else
		rm -rf "$_t"
	fi
	[ -z "$VM_FAILED" ]
}
