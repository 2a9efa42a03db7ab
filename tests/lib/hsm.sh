# tests/lib/hsm.sh -- a private SoftHSM2 token for a test.  Source it.
# Every function prints "# ..." diagnostics and returns non-zero on failure.
#
#   HSM_MODULE               PKCS#11 module (PKCS11_MODULE overrides;
#                            default /usr/lib/softhsm/libsofthsm2.so)
#   hsm_setup DIR            DIR/softhsm2.conf with tokendir DIR/tokens, file
#                            backend, log.level ERROR; exports SOFTHSM2_CONF
#                            and sets HSM_DIR=DIR
#   hsm_init_token LABEL PIN [SOPIN]
#                            initializes a token in a free slot; its object
#                            directory is then `hsm_token_dir LABEL`
#   hsm_token_dir LABEL      prints the token's directory (DIR/tokens/<uuid>)
#   hsm_pin_file FILE PIN    writes PIN (no newline) to FILE, mode 0600
#   hsm_import_key LABEL PIN KEY.pem OBJLABEL IDHEX
#                            imports a private key (any PEM openssl reads;
#                            converted to PKCS#8) as a private + public key
#                            object with CKA_LABEL OBJLABEL and CKA_ID IDHEX
#   hsm_write_cert LABEL PIN CERT.pem OBJLABEL IDHEX
#                            writes a certificate object
#   hsm_delete LABEL PIN TYPE IDHEX
#                            deletes the object of TYPE (privkey, pubkey,
#                            cert) with CKA_ID IDHEX
#   hsm_list LABEL PIN       pkcs11-tool --list-objects --login (stdout)
#   hsm_pubkey LABEL IDHEX OUT.der
#                            public key object as DER SubjectPublicKeyInfo
#   hsm_uri TOKEN OBJLABEL   prints pkcs11:token=TOKEN;object=OBJLABEL;type=private
#   hsm_access LABEL PIN OBJLABEL
#                            prints the "Access:" value of the private key
#                            object OBJLABEL (e.g. "sensitive, always
#                            sensitive, never extractable, local")

HSM_MODULE=${PKCS11_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
HSM_DIR=

hsm__run() { # hsm__run WHAT COMMAND...: quiet unless it fails
	_hw=$1
	shift
	if ! _ho=$("$@" 2>&1); then
		echo "# hsm: $_hw failed: $*"
		printf '%s\n' "$_ho" | sed 's/^/#   /' | head -15
		return 1
	fi
	return 0
}

hsm_setup() {
	HSM_DIR=$1
	mkdir -p "$HSM_DIR/tokens" || return 1
	chmod 0700 "$HSM_DIR/tokens"
	cat >"$HSM_DIR/softhsm2.conf" <<EOF
# written by tests/lib/hsm.sh
directories.tokendir = $HSM_DIR/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
EOF
	SOFTHSM2_CONF=$HSM_DIR/softhsm2.conf
	export SOFTHSM2_CONF
	[ -r "$HSM_MODULE" ] || { echo "# hsm: no PKCS#11 module at $HSM_MODULE"; return 1; }
	command -v softhsm2-util >/dev/null || { echo "# hsm: softhsm2-util missing"; return 1; }
	command -v pkcs11-tool >/dev/null || { echo "# hsm: pkcs11-tool missing (opensc)"; return 1; }
	return 0
}

hsm_init_token() {
	_hl=$1 _hp=$2 _hs=${3:-so-$2}
	[ -n "$HSM_DIR" ] || { echo "# hsm: hsm_setup first"; return 1; }
	ls "$HSM_DIR/tokens" >"$HSM_DIR/.before" 2>/dev/null
	hsm__run "init token $_hl" softhsm2-util --init-token --free \
		--label "$_hl" --pin "$_hp" --so-pin "$_hs" || return 1
	_hd=$(ls "$HSM_DIR/tokens" | grep -vxF -f "$HSM_DIR/.before")
	if [ -z "$_hd" ] || [ ! -d "$HSM_DIR/tokens/$_hd" ]; then
		echo "# hsm: no new token directory after init of $_hl"
		return 1
	fi
	printf '%s\n' "$HSM_DIR/tokens/$_hd" >"$HSM_DIR/.dir.$_hl"
	rm -f "$HSM_DIR/.before"
}

hsm_token_dir() {
	cat "$HSM_DIR/.dir.$1" 2>/dev/null
}

hsm_pin_file() {
	(umask 077 && printf '%s' "$2" >"$1") && chmod 0600 "$1"
}

hsm_import_key() {
	_hl=$1 _hp=$2 _hk=$3 _ho2=$4 _hi=$5
	_ht=$HSM_DIR/.import.$$.pem
	(umask 077 && openssl pkey -in "$_hk" -out "$_ht" 2>/dev/null) ||
		{ echo "# hsm: openssl pkey could not read $_hk"; rm -f "$_ht"; return 1; }
	hsm__run "import key $_ho2 (id $_hi) to $_hl" softhsm2-util --import "$_ht" \
		--token "$_hl" --label "$_ho2" --id "$_hi" --pin "$_hp"
	_hr=$?
	rm -f "$_ht"
	return $_hr
}

hsm_write_cert() {
	_hl=$1 _hp=$2 _hc=$3 _ho2=$4 _hi=$5
	_ht=$HSM_DIR/.cert.$$.der
	openssl x509 -in "$_hc" -outform DER -out "$_ht" 2>/dev/null ||
		{ echo "# hsm: openssl x509 could not read $_hc"; return 1; }
	hsm__run "write certificate $_ho2 (id $_hi) to $_hl" pkcs11-tool \
		--module "$HSM_MODULE" --token-label "$_hl" --login --pin "$_hp" \
		--write-object "$_ht" --type cert --id "$_hi" --label "$_ho2"
	_hr=$?
	rm -f "$_ht"
	return $_hr
}

hsm_delete() {
	hsm__run "delete $3 id $4 on $1" pkcs11-tool --module "$HSM_MODULE" \
		--token-label "$1" --login --pin "$2" --delete-object --type "$3" --id "$4"
}

hsm_list() {
	pkcs11-tool --module "$HSM_MODULE" --token-label "$1" --login --pin "$2" \
		--list-objects 2>&1
}

hsm_pubkey() {
	hsm__run "read public key id $2 on $1" pkcs11-tool --module "$HSM_MODULE" \
		--token-label "$1" --read-object --type pubkey --id "$2" -o "$3"
}

hsm_uri() {
	printf 'pkcs11:token=%s;object=%s;type=private\n' "$1" "$2"
}

hsm_access() {
	hsm_list "$1" "$2" | awk -v want="$3" '
		/^[A-Za-z]/ { priv = ($0 ~ /^Private Key Object/); lab = "" }
		priv && $1 == "label:" { sub(/^[ \t]*label:[ \t]*/, ""); lab = $0 }
		priv && lab == want && $1 == "Access:" { sub(/^[ \t]*Access:[ \t]*/, ""); print; exit }'
}

# The shared fixture of the PKCS#11 tests.
#   hsm_fixture DIR PKI      hsm_setup DIR; token "banjar" (user PIN in
#                            HSM_PIN, SO PIN so-HSM_PIN) holding the keys of
#                            PKI/NAME.key.pem for andi, sekda, noreply, legacy,
#                            ec with ids 01..05 (HSM_ID_NAME) and labels NAME,
#                            each with its certificate object (same id and
#                            label); PIN file DIR/banjar.pin (0600) in
#                            HSM_PIN_FILE.
#   hsm_conf_lines [RETRY] [SESSIONS]
#                            prints the pkcs11_* lines of a milter config for
#                            that token, one per line
HSM_TOKEN=banjar
HSM_PIN=banjar-1234
HSM_PIN_FILE=
HSM_ID_andi=01 HSM_ID_sekda=02 HSM_ID_noreply=03 HSM_ID_legacy=04 HSM_ID_ec=05

hsm_fixture() {
	_hfd=$1 _hfp=$2
	hsm_setup "$_hfd" || return 1
	hsm_init_token "$HSM_TOKEN" "$HSM_PIN" || return 1
	for _hfn in andi sekda noreply legacy ec; do
		eval "_hfi=\$HSM_ID_$_hfn"
		hsm_import_key "$HSM_TOKEN" "$HSM_PIN" "$_hfp/$_hfn.key.pem" "$_hfn" "$_hfi" || return 1
		hsm_write_cert "$HSM_TOKEN" "$HSM_PIN" "$_hfp/$_hfn.crt.pem" "$_hfn" "$_hfi" || return 1
	done
	HSM_PIN_FILE=$_hfd/$HSM_TOKEN.pin
	hsm_pin_file "$HSM_PIN_FILE" "$HSM_PIN"
}

hsm_conf_lines() {
	echo "pkcs11_module = \"$HSM_MODULE\";"
	echo "pkcs11_tokens = ( { token = \"$HSM_TOKEN\"; pin_file = \"$HSM_PIN_FILE\"; } );"
	echo "pkcs11_sessions = ${2:-4};"
	echo "pkcs11_retry = ${1:-2};"
}
