# tests/lib/decrypt.sh -- independent decryption of an encrypted message.
# Source it:  . tests/lib/decrypt.sh   (needs tests/lib/smimecheck.py and
# tests/lib/verify.sh beside it, openssl, gpgsm, gpg-agent, gpgconf,
# /usr/bin/python3).  Nothing here uses the milter's code.
#
#   decrypt_message ENCRYPTED ORIGINAL SIGNER RECIPIENT_NAME PKI_DIR [CIPHER]
#       ENCRYPTED: the message as delivered (LF or CRLF); ORIGINAL: the
#       message as sent; SIGNER: mail address expected in the inner signer
#       certificate; RECIPIENT_NAME: tests/lib/pki.sh leaf whose key decrypts
#       (PKI_DIR/NAME.crt.pem, .key.pem, .legacy.p12, .pass); PKI_DIR also
#       holds root.crt.pem and inter.crt.pem; CIPHER: "aes-256-cbc"
#       (default: EnvelopedData, smime-type=enveloped-data) or "aes-256-gcm"
#       (AuthEnvelopedData, smime-type=authEnveloped-data).
#       Checks, each recorded in a variable set to "ok" or "fail":
#         DM_STRUCT   one Content-Type application/pkcs7-mime with the
#                     smime-type CIPHER implies and name=smime.p7m, one
#                     Content-Transfer-Encoding base64, MIME-Version, no
#                     other Content-* outside (a Content-Disposition naming
#                     smime.p7m and a Content-Description are allowed),
#                     base64 lines <= 76; every non-Content-* header of
#                     ORIGINAL outside, byte for byte after unfolding
#         DM_ALG      our DER reader and `openssl cms -cmsout -print` agree:
#                     EnvelopedData with aes-256-cbc (16-octet IV) or
#                     AuthEnvelopedData with aes-256-gcm (12-octet nonce, mac
#                     of the ICV length), content id-data and present, every
#                     RecipientInfo a ktri or kari
#         DM_OPENSSL  `openssl cms -decrypt -binary -recip NAME.crt.pem
#                     -inkey NAME.key.pem` of the DER python cut out AND of
#                     the whole message (-inform SMIME), same output
#         DM_GPGSM    gpgsm --decrypt in a fresh GNUPGHOME holding only
#                     NAME.legacy.p12 (loopback pinentry, batch, no dirmngr)
#                     reports DECRYPTION_OKAY and its output equals openssl's
#                     byte for byte.  "skip" when the recipient's
#                     RecipientInfo uses what gpgsm_can_decrypt says this
#                     gpgsm cannot decrypt (a "# " line says why); gpgsm
#                     still runs, and if it decrypts after all the result
#                     is "ok" with a note that the table is stale.
#         DM_INNER    the decrypted entity with the outer non-Content headers
#                     put back in front passes verify_message (verify.sh)
#                     against ORIGINAL, SIGNER and PKI_DIR
#       Also sets DM_KEYALGS (key transport/agreement algorithm of every
#       RecipientInfo, in order, e.g. "rsaEncryption rsaesOaep
#       dhSinglePass-stdDH-sha1kdf-scheme"), DM_KEYDETAILS (the same with OAEP
#       hash/MGF and key-wrap, e.g. "rsaesOaep(sha1,mgf1-sha1)"), DM_CIPHER
#       (content encryption algorithm found), DM_RECIP_KEYALG (the algorithm
#       of RECIPIENT_NAME's own RecipientInfo, empty if it has none),
#       DM_GPGSM_WHY (the skip reason), DM_FAILED (names of the failed
#       checks).  Prints "# ..." diagnostics; returns 0 only when every check
#       is "ok", DM_GPGSM being "skip" excepted.  DM_KEEP=1 keeps the work
#       directory (printed) for inspection.  It calls verify_message, so the
#       VM_* variables describe the inner entity afterwards.  Its own
#       variables start with _dm/_dg (sh has no locals).
#   decrypt_is_encrypted FILE     0 if the top-level Content-Type is
#                                 application/pkcs7-mime with smime-type
#                                 enveloped-data or authEnveloped-data
#   dm_recipients FILE            one line per recipient of the message (or
#                                 of a DER/PEM CMS file): "issuer=DN
#                                 serial=HEX" (or "ski=HEX")
#   dm_cert_id CERT               the line(s) dm_recipients would print for
#                                 CERT (issuer+serial, and ski=), so
#                                 `dm_recipients F | grep -qxF "$(dm_cert_id
#                                 C)"` asserts that C is a recipient
#   gpgsm_can_decrypt KEYALG CIPHER
#                                 0 when the installed gpgsm decrypts a
#                                 RecipientInfo using KEYALG (rsaEncryption,
#                                 rsaesOaep, dhSinglePass-...) with content
#                                 cipher CIPHER (aes-256-cbc, aes-256-gcm...)
#   gpgsm_why_not KEYALG CIPHER   prints why not (empty when it can)
#   decrypt_gpgsm P7M_DER PKI_DIR NAME OUT
#                                 the gpgsm step alone (0 = decrypted to OUT)
#
# What gpgsm 2.2.40 (Debian 12) does with each flavour, and why the table
# below says so: tests/lib/DECRYPT-NOTES.txt.

DM_PY=${DM_PY:-/usr/bin/python3}
DM_LIB=${DM_LIB:-${TOP:-.}/tests/lib}
VM_LIB=${VM_LIB:-$DM_LIB}
. "$DM_LIB/verify.sh"

decrypt_is_encrypted() {
	"$DM_PY" "$DM_LIB/smimecheck.py" is-encrypted "$1"
}

dm_recipients() {
	"$DM_PY" "$DM_LIB/smimecheck.py" env-recipients "$1"
}

dm_cert_id() {
	"$DM_PY" "$DM_LIB/smimecheck.py" cert-id "$1"
}

# The gpgsm version, e.g. "2.2.40" (empty when gpgsm is missing).
dm_gpgsm_version() {
	gpgsm --version 2>/dev/null | sed -n '1s/^gpgsm (GnuPG) //p'
}

# Why the installed gpgsm cannot decrypt KEYALG + CIPHER; prints nothing
# when it can.  Only the 2.2 series was measured (2.2.40, see
# DECRYPT-NOTES.txt); for any other version nothing is ruled out, so a test
# runs gpgsm and finds out instead of skipping.
gpgsm_why_not() {
	_gwka=$1 _gwc=$2 _gwv=$(dm_gpgsm_version)
	case $_gwv in
	'') echo "gpgsm is not installed" ;;
	2.2.*)
		case $_gwka in
		rsaEncryption) ;;
		rsaesOaep)
			echo "gpgsm $_gwv has no RSA-OAEP key transport (recp 0 - error getting encrypted session key)"
			return ;;
		dhSinglePass-*)
			echo "gpgsm $_gwv cannot decrypt ECDH (kari) RecipientInfos: its PKCS#12 import of an EC key crashes (SIGSEGV), and with the key put into the agent by hand it still fails (Invalid session key: no ECDH KDF/key-unwrap)"
			return ;;
		*)
			echo "gpgsm $_gwv: key algorithm ${_gwka:-unknown} not measured"
			return ;;
		esac
		case $_gwc in
		aes-128-cbc | aes-192-cbc | aes-256-cbc | des-ede3-cbc) ;;
		aes-*-gcm)
			echo "gpgsm $_gwv cannot decrypt AuthEnvelopedData/AES-GCM (error getting IV: Buffer too short <KSBA>)" ;;
		*) echo "gpgsm $_gwv: content cipher ${_gwc:-unknown} not measured" ;;
		esac
		;;
	esac
}

gpgsm_can_decrypt() {
	[ -z "$(gpgsm_why_not "$1" "$2")" ]
}

# decrypt_gpgsm P7M_DER PKI_DIR NAME OUT: import PKI_DIR/NAME.legacy.p12 into
# a fresh GNUPGHOME and decrypt.  Returns 0 when gpgsm reported
# DECRYPTION_OKAY and exited 0 -- or exited 2 only because the message has
# other recipients whose certificate or key this GNUPGHOME does not hold
# (gpgsm 2.2 logs those as errors although it decrypted; see the notes).
decrypt_gpgsm() {
	_dgin=$1 _dgpki=$2 _dgname=$3 _dgout=$4
	_dgh=$(mktemp -d "${TMPDIR:-/tmp}/dmgpg.XXXXXX") || return 1
	chmod 0700 "$_dgh"
	cat >"$_dgh/gpgsm.conf" <<EOF
disable-crl-checks
disable-policy-checks
disable-ocsp
disable-dirmngr
EOF
	# a throw-away key store: a low s2k count makes the agent's key
	# protection at import and unprotection at decrypt ~15x faster
	printf 'allow-loopback-pinentry\ns2k-count 65536\n' >"$_dgh/gpg-agent.conf"
	_dgrc=1
	# gpgsm 2.2.40 dies with SIGSEGV importing EC keys: no core files, and
	# gpgsm not the subshell's last command (dash would exec it), so the
	# shell's "Segmentation fault" message lands in the log
	# gpgsm 2.2.40's PKCS#12 reader also fails on about 1 in 100 files
	# openssl writes ("data error at shrouded_key_bag"; the same key
	# exported again imports): such a file is made again, up to 5 times
	_dgp12=$_dgpki/$_dgname.legacy.p12
	for _dgtry in 1 2 3 4 5; do
		(
			ulimit -c 0 2>/dev/null
			LC_ALL=C gpgsm --homedir "$_dgh" --batch --no-tty \
				--pinentry-mode loopback --passphrase-fd 3 --status-fd 1 \
				--import "$_dgp12" 3<"$_dgpki/$_dgname.pass"
			exit $?
		) >"$_dgh/import.status" 2>"$_dgh/import.log"
		_dgirc=$?
		grep -q 'shrouded_key_bag' "$_dgh/import.log" || break
		_dgp12=$_dgh/again.$_dgtry.p12
		openssl pkcs12 -export -legacy -inkey "$_dgpki/$_dgname.key.pem" \
			-in "$_dgpki/$_dgname.crt.pem" -passout "file:$_dgpki/$_dgname.pass" \
			-out "$_dgp12" 2>/dev/null || break
	done
	_dgfpr=$(openssl x509 -in "$_dgpki/$_dgname.crt.pem" -noout -fingerprint -sha1 |
		sed 's/^[^=]*=//; s/://g')
	if ! LC_ALL=C gpgsm --homedir "$_dgh" --batch --no-tty --with-colons \
		--list-secret-keys 2>/dev/null | grep -q "^fpr:.*:$_dgfpr:"; then
		echo "# gpgsm could not import $_dgname.legacy.p12 with its secret key (exit $_dgirc)"
		grep -v 'dirmngr\|issuer certificate\|^$' "$_dgh/import.log" | sed 's/^/#   /' | head -8
	else
		(
			ulimit -c 0 2>/dev/null
			LC_ALL=C gpgsm --homedir "$_dgh" --batch --no-tty \
				--pinentry-mode loopback --passphrase-fd 3 --status-fd 4 \
				--output "$_dgout" --decrypt "$_dgin" \
				3<"$_dgpki/$_dgname.pass" 4>"$_dgh/status"
			exit $?
		) >/dev/null 2>"$_dgh/stderr"
		_dggrc=$?
		# stderr lines that are not about this recipient's own decryption
		_dgother=$(grep -v -e '^gpgsm: encrypted to ' \
			-e '^gpgsm: failed to find the certificate: ' \
			-e '^gpgsm: error decrypting session key: No secret key' \
			-e '^gpgsm: decrypting session key failed: No secret key' \
			"$_dgh/stderr")
		_dgothers=$(grep -c -e '^gpgsm: failed to find the certificate: ' \
			-e '^gpgsm: error decrypting session key: No secret key' "$_dgh/stderr")
		if ! grep -q '^\[GNUPG:\] DECRYPTION_OKAY' "$_dgh/status" ||
			grep -q '^\[GNUPG:\] DECRYPTION_FAILED' "$_dgh/status"; then
			echo "# gpgsm --decrypt exited $_dggrc without DECRYPTION_OKAY"
			sed 's/^/#   /' "$_dgh/status" "$_dgh/stderr" | head -12
		elif [ $_dggrc -eq 0 ]; then
			_dgrc=0
		elif [ $_dggrc -eq 2 ] && [ -z "$_dgother" ] && [ "$_dgothers" -gt 0 ]; then
			echo "# gpgsm decrypted (DECRYPTION_OKAY) but exited 2: it logs other recipients it holds no certificate or key for as errors"
			_dgrc=0
		else
			echo "# gpgsm reported DECRYPTION_OKAY but exited $_dggrc:"
			sed 's/^/#   /' "$_dgh/status" "$_dgh/stderr" | head -12
		fi
	fi
	gpgconf --homedir "$_dgh" --kill all >/dev/null 2>&1
	rm -rf "$_dgh"
	return $_dgrc
}

decrypt_message() {
	if [ $# -lt 5 ] || [ $# -gt 6 ]; then
		echo "# usage: decrypt_message ENCRYPTED ORIGINAL SIGNER RECIPIENT_NAME PKI_DIR [CIPHER]"
		return 2
	fi
	_dmenc=$1 _dmorig=$2 _dmwho=$3 _dmname=$4 _dmpki=$5 _dmcipher=${6:-aes-256-cbc}
	case $_dmcipher in
	aes-256-cbc | aes-256-gcm) ;;
	*)
		echo "# decrypt_message: CIPHER must be aes-256-cbc or aes-256-gcm, not $_dmcipher"
		return 2 ;;
	esac
	DM_STRUCT=fail DM_ALG=fail DM_OPENSSL=fail DM_GPGSM=fail DM_INNER=fail
	DM_KEYALGS='' DM_KEYDETAILS='' DM_CIPHER='' DM_RECIP_KEYALG='' DM_GPGSM_WHY='' DM_FAILED=''
	_dmt=$(mktemp -d "${TMPDIR:-/tmp}/dm.XXXXXX") || return 1
	_dmsc="$DM_LIB/smimecheck.py"
	_dmcrt=$_dmpki/$_dmname.crt.pem
	_dmkey=$_dmpki/$_dmname.key.pem

	# 1. the outside
	"$DM_PY" "$_dmsc" env-split "$_dmenc" "$_dmt" "$_dmcipher" "$_dmorig" &&
		DM_STRUCT=ok

	if [ ! -s "$_dmt/p7m.der" ]; then
		echo "# no CMS could be extracted from $_dmenc"
	else
		# 2. the CMS: our reader, cross-checked against openssl's
		if openssl cms -cmsout -print -inform DER -in "$_dmt/p7m.der" \
			>"$_dmt/cms.txt" 2>"$_dmt/print.log"; then
			"$DM_PY" "$_dmsc" env-check "$_dmt/p7m.der" "$_dmcipher" "$_dmt" \
				"$_dmt/cms.txt" "$_dmcrt" && DM_ALG=ok
		else
			echo "# openssl cms -cmsout -print cannot read the CMS:"
			sed 's/^/#   /' "$_dmt/print.log" | head -5
			"$DM_PY" "$_dmsc" env-check "$_dmt/p7m.der" "$_dmcipher" "$_dmt" \
				- "$_dmcrt" >/dev/null
		fi
		[ -f "$_dmt/keyalgs" ] && DM_KEYALGS=$(cat "$_dmt/keyalgs")
		[ -f "$_dmt/keydetails" ] && DM_KEYDETAILS=$(cat "$_dmt/keydetails")
		[ -f "$_dmt/cipher" ] && DM_CIPHER=$(cat "$_dmt/cipher")
		# the algorithm of the RecipientInfo meant for NAME
		[ -f "$_dmt/recip_keyalg" ] && DM_RECIP_KEYALG=$(cat "$_dmt/recip_keyalg")

		# 3. openssl, on python's DER and through its own MIME parser
		_dmo1=fail _dmo2=fail
		if openssl cms -decrypt -binary -inform DER -in "$_dmt/p7m.der" \
			-recip "$_dmcrt" -inkey "$_dmkey" -out "$_dmt/dec.ossl" \
			>"$_dmt/ossl1.log" 2>&1; then
			_dmo1=ok
		else
			echo "# openssl cms -decrypt (DER) failed:"
			sed 's/^/#   /' "$_dmt/ossl1.log" | head -6
			rm -f "$_dmt/dec.ossl"
		fi
		if openssl cms -decrypt -binary -inform SMIME -in "$_dmt/enc.eml" \
			-recip "$_dmcrt" -inkey "$_dmkey" -out "$_dmt/dec.smime" \
			>"$_dmt/ossl2.log" 2>&1; then
			if [ $_dmo1 = ok ] && cmp -s "$_dmt/dec.ossl" "$_dmt/dec.smime"; then
				_dmo2=ok
			elif [ $_dmo1 = ok ]; then
				echo "# openssl -inform SMIME decrypted to other bytes than -inform DER"
			fi
		else
			echo "# openssl cms -decrypt -inform SMIME failed:"
			sed 's/^/#   /' "$_dmt/ossl2.log" | head -6
		fi
		[ $_dmo1 = ok ] && [ $_dmo2 = ok ] && DM_OPENSSL=ok

		# 4. gpgsm, compared with openssl byte for byte
		_dmcan=yes
		if [ -n "$DM_RECIP_KEYALG" ]; then
			DM_GPGSM_WHY=$(gpgsm_why_not "$DM_RECIP_KEYALG" "$DM_CIPHER")
			[ -n "$DM_GPGSM_WHY" ] && _dmcan=no
		fi
		if decrypt_gpgsm "$_dmt/p7m.der" "$_dmpki" "$_dmname" "$_dmt/dec.gpgsm" \
			>"$_dmt/gpgsm.log" 2>&1; then
			cat "$_dmt/gpgsm.log"
			if [ ! -f "$_dmt/dec.ossl" ]; then
				echo "# gpgsm decrypted, but openssl did not: nothing to compare with"
			elif cmp -s "$_dmt/dec.ossl" "$_dmt/dec.gpgsm"; then
				DM_GPGSM=ok
				if [ $_dmcan = no ]; then
					echo "# note: gpgsm decrypted $DM_RECIP_KEYALG + $DM_CIPHER although gpgsm_why_not says: $DM_GPGSM_WHY -- the table in decrypt.sh is stale"
					DM_GPGSM_WHY=
				fi
			else
				echo "# gpgsm output differs from openssl's:"
				cmp "$_dmt/dec.ossl" "$_dmt/dec.gpgsm" 2>&1 | sed 's/^/#   /'
			fi
		elif [ $_dmcan = no ]; then
			DM_GPGSM=skip
			echo "# gpgsm skipped: $DM_GPGSM_WHY"
			sed 's/^#/#   (it said)/' "$_dmt/gpgsm.log" | head -4
		else
			cat "$_dmt/gpgsm.log"
		fi

		# 5. the inner entity, outer headers put back, through verify.sh
		if [ -f "$_dmt/dec.ossl" ]; then
			"$DM_PY" "$_dmsc" env-join "$_dmt/enc.eml" "$_dmt/dec.ossl" "$_dmt/inner.eml"
			if verify_message "$_dmt/inner.eml" "$_dmorig" "$_dmwho" "$_dmpki" \
				>"$_dmt/verify.log" 2>&1; then
				DM_INNER=ok
			else
				echo "# inner entity fails verify_message (failed:$VM_FAILED):"
				sed 's/^/#   /' "$_dmt/verify.log" | grep -v '^#   # note:' | head -20
			fi
		else
			echo "# nothing decrypted: inner signature not checked"
		fi
	fi

	for _dmc in STRUCT ALG OPENSSL GPGSM INNER; do
		eval "_dmv=\$DM_$_dmc"
		[ "$_dmv" = ok ] || [ "$_dmv" = skip ] || DM_FAILED="$DM_FAILED $_dmc"
	done
	if [ "${DM_KEEP:-0}" = 1 ]; then
		echo "# decrypt_message work directory kept: $_dmt"
	else
		rm -rf "$_dmt"
	fi
	[ -z "$DM_FAILED" ]
}
