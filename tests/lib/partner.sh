# tests/lib/partner.sh -- mail from a partner agency (Mitra Jabar,
# mitra@jabarprov.go.id) to the city, built by three independent S/MIME
# encoders: the openssl CLI, gpgsm (libksba, libgcrypt) and NSS cmsutil
# (the library of Thunderbird).  Nothing here uses the milter's code.
# Source it after tests/lib/fixture.sh ($PY); tests/lib/partner.py does the
# MIME around the CMS.
#
#   partner_setup DIR PKI
#                      the partner's desk in DIR: an NSS database (DIR/nss)
#                      and a GNUPGHOME (DIR/gnupg), each holding mitra's
#                      key from PKI (tests/lib/pki.sh) and trusting PKI's
#                      root only; PT_DIR=DIR, PT_PKI=PKI.  1 on failure
#                      (with "# " lines)
#   partner_stop       stops the gpg-agent of DIR/gnupg
#   partner_can ENC CIPHER PAD KEY
#                      0 when encoder ENC (openssl, gpgsm, nss) can make
#                      CIPHER (aes-256-cbc, aes-256-gcm, aes-128-cbc,
#                      des-ede3-cbc as old senders use) with
#                      key transport PAD (pkcs1, oaep: RSAES-OAEP with
#                      SHA-1, oaep256: with SHA-256) to a KEY (rsa, ec:
#                      ECDH, PAD ignored) recipient; else prints why not
#                      and returns 1.  What they cannot, measured on Debian
#                      12: gpgsm 2.2.40 writes neither AuthEnvelopedData,
#                      nor OAEP, nor ECDH ("ksba_cms_set_enc_val failed:
#                      Invalid S-expression"); cmsutil has no cipher option
#                      (NSS picks AES-128-CBC without an S/MIME profile of
#                      the recipient, which only Thunderbird records), no
#                      OAEP and no ECDH ("cannot create CMS recipientInfo
#                      object")
#   partner_sign ENC IN OUT [SIGNER]
#                      OUT: the multipart/signed entity of the MIME entity
#                      IN, its detached signature (sha256, signingTime,
#                      SMIMECapabilities, the chain without the root) made
#                      by ENC; SIGNER is a path prefix (SIGNER.crt.pem,
#                      SIGNER.key.pem, SIGNER.chain.pem or else PKI's
#                      intermediate for -certfile), default PKI/mitra;
#                      gpgsm and nss sign as mitra only
#   partner_sign_opaque ENC IN OUT
#                      OUT: the application/pkcs7-mime; smime-type=signed-data
#                      entity of IN (opaque signing, as Outlook can), by
#                      openssl or nss as mitra
#   partner_encrypt ENC CIPHER PAD IN OUT CERT...
#                      OUT: the application/pkcs7-mime entity of IN
#                      encrypted by ENC to the CERTs (PEM files).  openssl
#                      and gpgsm label it smime-type=enveloped-data or
#                      authEnveloped-data; nss writes what older Outlook
#                      does: application/x-pkcs7-mime, name=smime.p7m, no
#                      smime-type.  With PT_KEYID=yes openssl names the
#                      recipients by subjectKeyIdentifier (-keyid), not by
#                      issuer and serial
#   partner_build OUT TAG TO KIND ENC CIPHER PAD CERT...
#                      a whole message OUT (partner.py mail: Message-ID
#                      <TAG@jabarprov.go.id>, To: TO) whose body is the
#                      partner's content (partner.py entity), signed by ENC
#                      as mitra when KIND is signenc (opaqueenc: opaque
#                      signed-data; enc: encrypted only), then encrypted; also OUT.entity (what was encrypted:
#                      the delivered message's Content-* and body must be
#                      these bytes) and OUT.orig (the message with the
#                      plain content: what the partner wrote, for
#                      verify_message and smimecheck.py content)
#   partner_plain OUT TAG TO [FROM]
#                      the partner's content unsigned and unencrypted, From
#                      FROM (default mitra@jabarprov.go.id); OUT.orig
#                      alike, OUT.content the entity alone
#   partner_foreign DIR        a CA that is not in the trust bundle (DIR/
#                      foreign-root) and its leaf DIR/foreign for
#                      mitra@jabarprov.go.id (a SIGNER prefix)
# Encoders' own output goes to DIR/log; a failure prints its end as "# ".

PT_DIR=
PT_PKI=
PT_PY=$TOP/tests/lib/partner.py

# pt__run WHAT COMMAND...: quiet unless it fails ("# " lines on stderr)
pt__run() {
	_pw=$1
	shift
	if ! "$@" >>"$PT_DIR/log" 2>&1; then
		{
			echo "# partner: $_pw failed: $*"
			tail -8 "$PT_DIR/log" | sed 's/^/#   /'
		} >&2
		return 1
	fi
}

pt__gpgsm() {
	gpgsm --homedir "$PT_DIR/gnupg" --batch --no-tty "$@"
}

# pt__gpgsm_key: mitra's key into gpgsm.  gpgsm 2.2.40's PKCS#12 reader
# fails on about 1 in 100 files openssl writes ("data error at
# shrouded_key_bag.decrypted-text"; 3 of 300 measured, and the same key
# exported again imports): such a file is made again, up to 5 times.
pt__gpgsm_key() {
	_gk_p12=$PT_PKI/mitra.legacy.p12
	for _gk_i in 1 2 3 4 5; do
		pt__gpgsm --pinentry-mode loopback --passphrase-fd 3 --import "$_gk_p12" \
			3<"$PT_PKI/mitra.pass" >"$PT_DIR/p12.log" 2>&1
		_gk_rc=$?
		cat "$PT_DIR/p12.log" >>"$PT_DIR/log"
		grep -q 'shrouded_key_bag' "$PT_DIR/p12.log" || break
		_gk_p12=$PT_DIR/mitra.$_gk_i.p12
		openssl pkcs12 -export -legacy -inkey "$PT_PKI/mitra.key.pem" \
			-in "$PT_PKI/mitra.crt.pem" -passout "file:$PT_PKI/mitra.pass" \
			-out "$_gk_p12" >>"$PT_DIR/log" 2>&1
	done
	[ "$_gk_rc" = 0 ] && return 0
	echo "# partner: gpgsm imports mitra's key failed" >&2
	tail -8 "$PT_DIR/p12.log" | sed 's/^/#   /' >&2
	return 1
}

partner_setup() {
	PT_DIR=$1 PT_PKI=$2
	mkdir -p "$PT_DIR/nss" "$PT_DIR/gnupg" || return 1
	chmod 0700 "$PT_DIR/gnupg"
	: >"$PT_DIR/log"
	printf 'disable-crl-checks\ndisable-policy-checks\ndisable-dirmngr\n' >"$PT_DIR/gnupg/gpgsm.conf"
	printf 'allow-loopback-pinentry\n' >"$PT_DIR/gnupg/gpg-agent.conf"
	pt__run "gpgsm imports the CA" pt__gpgsm --import "$PT_PKI/root.crt.pem" "$PT_PKI/inter.crt.pem" || return 1
	printf '%s S relax\n' "$(openssl x509 -in "$PT_PKI/root.crt.pem" -noout -fingerprint -sha1 |
		sed 's/^[^=]*=//')" >"$PT_DIR/gnupg/trustlist.txt"
	pt__gpgsm_key || return 1
	pt__run "certutil -N" certutil -N -d "sql:$PT_DIR/nss" --empty-password || return 1
	pt__run "certutil adds the root" certutil -A -d "sql:$PT_DIR/nss" -n pt-root -t C,C,C \
		-i "$PT_PKI/root.crt.pem" || return 1
	pt__run "certutil adds the intermediate" certutil -A -d "sql:$PT_DIR/nss" -n pt-inter \
		-t ,, -i "$PT_PKI/inter.crt.pem" || return 1
	pt__run "pk12util imports mitra's key" pk12util -d "sql:$PT_DIR/nss" \
		-i "$PT_PKI/mitra.p12" -w "$PT_PKI/mitra.pass"
}

partner_stop() {
	[ -n "$PT_DIR" ] && gpgconf --homedir "$PT_DIR/gnupg" --kill all >/dev/null 2>&1
	return 0
}

partner_can() {
	case $1:$2:$3:$4 in
	openssl:aes-256-cbc:* | openssl:aes-256-gcm:* | openssl:des-ede3-cbc:*) return 0 ;;
	gpgsm:aes-256-cbc:pkcs1:rsa) return 0 ;;
	nss:aes-128-cbc:pkcs1:rsa) return 0 ;;
	gpgsm:*:*:ec | nss:*:*:ec) echo "$1 cannot make ECDH recipients" ;;
	gpgsm:*:oaep*:* | nss:*:oaep*:*) echo "$1 cannot make RSAES-OAEP" ;;
	gpgsm:*) echo "gpgsm 2.2 makes EnvelopedData with CBC only" ;;
	nss:*) echo "cmsutil picks AES-128-CBC itself" ;;
	*) echo "unknown encoder $1 or cipher $2" ;;
	esac
	return 1
}

# pt__nick CERT: the NSS nickname of CERT (added once)
pt__nick() {
	_pn=pt-$(openssl x509 -in "$1" -noout -serial | sed 's/.*=//')
	certutil -L -d "sql:$PT_DIR/nss" -n "$_pn" >/dev/null 2>&1 ||
		pt__run "certutil adds $1" certutil -A -d "sql:$PT_DIR/nss" -n "$_pn" -t ,, -i "$1" ||
		return 1
	echo "$_pn"
}

# pt__fpr CERT: the SHA-1 fingerprint of CERT, imported into gpgsm
pt__fpr() {
	pt__run "gpgsm imports $1" pt__gpgsm --import "$1" || return 1
	openssl x509 -in "$1" -noout -fingerprint -sha1 | sed 's/^[^=]*=//; s/://g'
}

# pt__ids HOW SEP CERT...: the CERTs' names for an encoder (HOW: pt__fpr,
# pt__nick), joined by SEP
pt__ids() {
	_pi_h=$1 _pi_s=$2 _pi_a=
	shift 2
	for _pi_r in "$@"; do
		_pi_x=$($_pi_h "$_pi_r") || return 1
		_pi_a="$_pi_a${_pi_a:+$_pi_s}$_pi_x"
	done
	echo "$_pi_a"
}

partner_sign() {
	_ps_e=$1 _ps_in=$2 _ps_out=$3 _ps_s=${4:-$PT_PKI/mitra}
	_ps_c=$_ps_s.chain.pem
	[ -f "$_ps_c" ] || _ps_c=$PT_PKI/inter.crt.pem
	rm -f "$_ps_out.p7s"
	case $_ps_e in
	openssl) pt__run "openssl cms -sign" openssl cms -sign -binary -md sha256 \
		-outform DER -in "$_ps_in" -signer "$_ps_s.crt.pem" -inkey "$_ps_s.key.pem" \
		-certfile "$_ps_c" -out "$_ps_out.p7s" ;;
	gpgsm) pt__run "gpgsm --detach-sign" pt__gpgsm --pinentry-mode loopback \
		--passphrase-fd 3 -u mitra@jabarprov.go.id --detach-sign \
		-o "$_ps_out.p7s" "$_ps_in" 3<"$PT_PKI/mitra.pass" ;;
	nss) pt__run "cmsutil -S" cmsutil -S -T -G -P -H SHA256 -N mitra \
		-d "sql:$PT_DIR/nss" -i "$_ps_in" -o "$_ps_out.p7s" ;;
	*) echo "# partner_sign: unknown encoder $_ps_e" && false ;;
	esac || return 1
	"$PY" "$PT_PY" signed "$_ps_in" "$_ps_out.p7s" "$_ps_out"
}

partner_sign_opaque() {
	rm -f "$3.der"
	case $1 in
	openssl) pt__run "openssl cms -sign -nodetach" openssl cms -sign -nodetach -binary \
		-md sha256 -outform DER -in "$2" -signer "$PT_PKI/mitra.crt.pem" \
		-inkey "$PT_PKI/mitra.key.pem" -certfile "$PT_PKI/inter.crt.pem" -out "$3.der" ;;
	nss) pt__run "cmsutil -S" cmsutil -S -G -P -H SHA256 -N mitra -d "sql:$PT_DIR/nss" \
		-i "$2" -o "$3.der" ;;
	*) echo "# partner_sign_opaque: $1 does not sign opaque here" >&2 && false ;;
	esac || return 1
	"$PY" "$PT_PY" p7m "$3.der" "$3" signed-data application/pkcs7-mime
}

partner_encrypt() {
	_pe_e=$1 _pe_c=$2 _pe_p=$3 _pe_in=$4 _pe_out=$5
	shift 5
	_pe_st=enveloped-data _pe_ct=application/pkcs7-mime
	[ "$_pe_c" = aes-256-gcm ] && _pe_st=authEnveloped-data
	rm -f "$_pe_out.der"
	case $_pe_e in
	openssl)
		_pe_a=
		for _pe_r in "$@"; do
			_pe_a="$_pe_a -recip $_pe_r"
			openssl x509 -in "$_pe_r" -noout -text | grep -q rsaEncryption || continue
			case $_pe_p in
			oaep) _pe_a="$_pe_a -keyopt rsa_padding_mode:oaep" ;;
			oaep256) _pe_a="$_pe_a -keyopt rsa_padding_mode:oaep -keyopt rsa_oaep_md:sha256 -keyopt rsa_mgf1_md:sha256" ;;
			esac
		done
		# shellcheck disable=SC2086 # the recipients and their options
		[ "${PT_KEYID:-}" = yes ] && _pe_a="-keyid$_pe_a"
		pt__run "openssl cms -encrypt" openssl cms -encrypt -binary -outform DER \
			"-$_pe_c" -in "$_pe_in" -out "$_pe_out.der" $_pe_a
		;;
	gpgsm)
		_pe_a=$(pt__ids pt__fpr ' -r ' "$@") || return 1
		# shellcheck disable=SC2086
		pt__run "gpgsm --encrypt" pt__gpgsm --cipher-algo AES256 -r $_pe_a \
			--encrypt -o "$_pe_out.der" "$_pe_in"
		;;
	nss)
		_pe_a=$(pt__ids pt__nick , "$@") || return 1
		pt__run "cmsutil -E" cmsutil -E -r "$_pe_a" -d "sql:$PT_DIR/nss" \
			-i "$_pe_in" -o "$_pe_out.der"
		_pe_st=- _pe_ct=application/x-pkcs7-mime
		;;
	*) echo "# partner_encrypt: unknown encoder $_pe_e" && false ;;
	esac || return 1
	"$PY" "$PT_PY" p7m "$_pe_out.der" "$_pe_out" "$_pe_st" "$_pe_ct"
}

partner_build() {
	_pb_o=$1 _pb_t=$2 _pb_to=$3 _pb_k=$4 _pb_e=$5 _pb_c=$6 _pb_p=$7
	shift 7
	"$PY" "$PT_PY" entity "$_pb_o.content" "$_pb_t" || return 1
	"$PY" "$PT_PY" mail "$_pb_o.orig" "$_pb_t" mitra@jabarprov.go.id "$_pb_to" \
		"$_pb_o.content" || return 1
	if [ "$_pb_k" = signenc ]; then
		partner_sign "$_pb_e" "$_pb_o.content" "$_pb_o.entity" || return 1
	elif [ "$_pb_k" = opaqueenc ]; then
		partner_sign_opaque "$_pb_e" "$_pb_o.content" "$_pb_o.entity" || return 1
	else
		cp "$_pb_o.content" "$_pb_o.entity"
	fi
	partner_encrypt "$_pb_e" "$_pb_c" "$_pb_p" "$_pb_o.entity" "$_pb_o.p7m" "$@" || return 1
	"$PY" "$PT_PY" mail "$_pb_o" "$_pb_t" mitra@jabarprov.go.id "$_pb_to" "$_pb_o.p7m"
}

partner_plain() {
	"$PY" "$PT_PY" entity "$1.content" "$2" &&
		"$PY" "$PT_PY" mail "$1" "$2" "${4:-mitra@jabarprov.go.id}" "$3" "$1.content" &&
		cp "$1" "$1.orig"
}

partner_foreign() {
	_pf=$1
	pt__run "foreign root" openssl req -x509 -newkey rsa:2048 -nodes -days 3650 \
		-subj "/C=ID/O=Unknown Partner CA/CN=Unknown Partner Root" \
		-addext basicConstraints=critical,CA:true -addext keyUsage=critical,keyCertSign,cRLSign \
		-keyout "$_pf/foreign-root.key.pem" -out "$_pf/foreign-root.crt.pem" || return 1
	printf '%s\n' basicConstraints=CA:FALSE keyUsage=critical,digitalSignature,keyEncipherment \
		extendedKeyUsage=emailProtection subjectAltName=email:mitra@jabarprov.go.id >"$_pf/foreign.ext"
	pt__run "foreign leaf request" openssl req -newkey rsa:2048 -nodes \
		-subj "/C=ID/O=Partner Agency/CN=Mitra Jabar" -keyout "$_pf/foreign.key.pem" \
		-out "$_pf/foreign.csr" || return 1
	pt__run "foreign leaf" openssl x509 -req -in "$_pf/foreign.csr" -days 365 \
		-CA "$_pf/foreign-root.crt.pem" -CAkey "$_pf/foreign-root.key.pem" -set_serial 0x7001 \
		-extfile "$_pf/foreign.ext" -out "$_pf/foreign.crt.pem" || return 1
	cp "$_pf/foreign-root.crt.pem" "$_pf/foreign.chain.pem"
}
