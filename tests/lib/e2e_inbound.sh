# tests/lib/e2e_inbound.sh -- what the inbound end-to-end tests
# (tests/e2e/inbound-*.sh) share: partner mail (tests/lib/partner.sh) comes
# from an outside client (XCLIENT ADDR=192.0.2.1) through the private
# Postfix to the milter, and what reaches the sink is checked with
# independent code.  Source it after tests/lib/fixture.sh and e2e.sh.
#
#   ie_begin NAME      e2e_begin NAME, the test PKI (one check), the
#                      partner's desk in $work/desk (one check); $work/send
#                      and $work/out; partner_stop at exit
#   ie_conf [LINE...]  $conf = $work/smime-milter.conf (me_conf on a free
#                      $milter_port, authserv_id $IE_AUTHSERV, the LINEs)
#   ie_start           the milter (one check) and Postfix on free ports (one
#                      check), smtpd allowing XCLIENT from loopback; bails
#                      on a failure
#   ie_send TAG RCPTS  sends $work/send/TAG.eml from mitra@jabarprov.go.id
#                      as client 192.0.2.1 to the comma-separated RCPTS; one
#                      check "TAG: accepted"; the tag goes to $IE_SENT
#   ie_wait_all        one check: every message of $IE_SENT is in the sink
#                      (waits up to 120 s)
#   ie_delivered TAG   waits (5 s) for the sink copy with Message-ID
#                      <TAG@jabarprov.go.id>, writes it to $work/out/TAG.eml;
#                      one check "TAG: delivered"; 1 if it never came
#   ie_stamp TAG RESULT [REGEX...]
#                      one check: the single Authentication-Results field
#                      of $IE_AUTHSERV says smime=RESULT and matches the
#                      REGEXes (partner.py stamp)
#   ie_decrypted TAG ADDR SIGNED [REGEX...]
#                      the checks of a message the partner encrypted to
#                      ADDR (made with partner_build as $work/send/TAG.eml):
#                      delivered, no smime.p7m left, Content-* and body are
#                      the encrypted entity byte for byte, every other
#                      header byte for byte, the stamp (pass when SIGNED is
#                      yes, else none; "decrypted for ADDR"), the REGEXes
#                      (one check of their own, when there are any),
#                      the decoded content equals what the partner wrote;
#                      SIGNED yes adds the inner signature in openssl and in
#                      gpgsm (verify.sh) as mitra@jabarprov.go.id; SIGNED
#                      opaque (signed-data inside, kept as it is): the
#                      stamp pass, ie_opaque
#   ie_opaque TAG CONTENT
#                      the opaque signed-data $work/out/TAG.eml verifies in
#                      openssl (its content is CONTENT byte for byte) and in
#                      gpgsm, each trusting only the root (two checks)
#   ie_unchanged TAG RESULT [REGEX...]
#                      delivered; byte for byte what was sent, but for
#                      Postfix's Received and our one stamp; the stamp
#   ie_audit TAG ACTION
#                      one check: the audit table holds one row for
#                      Message-ID <TAG@jabarprov.go.id>, with ACTION (an
#                      extended regex such as "a|b", whole value; the
#                      first call waits up to 10 s for $IE_AUDIT_N rows,
#                      default a row per message of $IE_SENT: the audit
#                      writer works in batches)
#   ie_health          milter running, no sanitizer report, no temp file
#                      left, `smimectl audit verify` passes (four checks)
IE_AUTHSERV=mx.banjarkota.go.id
IE_SENT=

. "$TOP/tests/lib/partner.sh"

ie_begin() {
	e2e_begin "$1"
	fx_on_exit() {
		partner_stop
		me_stop "$milter_pid" 30
		milter_pid=
		pf_stop
	}
	e2e_pki
	mkdir -p "$work/send" "$work/out" "$work/desk"
	partner_setup "$work/desk" "$pki" || bail "the partner's NSS database and GNUPGHOME"
	ok "the partner's NSS database and GNUPGHOME hold mitra's key"
}

ie_conf() {
	_ip=$(pf_free_ports 3 | tr '\n' ' ')
	milter_port=${_ip%% *} _ip=${_ip#* }
	smtp_port=${_ip%% *} _ip=${_ip#* }
	sink_port=${_ip%% *}
	conf=$work/smime-milter.conf
	me_conf "$conf" "$work" "inet:$milter_port@127.0.0.1" \
		"authserv_id = \"$IE_AUTHSERV\";" "$@"
}

ie_start() { e2e_start_xclient; }

ie_send() {
	_code=$(PF_XCLIENT="ADDR=192.0.2.1 NAME=mx.jabarprov.go.id" pf_send \
		mitra@jabarprov.go.id "$2" "$work/send/$1.eml" 2>"$work/send/$1.err")
	if [ "$_code" = 250 ]; then
		ok "$1: accepted from an outside client"
		IE_SENT="$IE_SENT $1"
		return 0
	fi
	nok "$1: accepted from an outside client (reply $_code)"
	sed 's/^/#   /' "$work/send/$1.err"
	return 1
}

ie_delivered() {
	if ! e2e_wait_msgid "$1@jabarprov.go.id" 5 "$work/out/$1.eml"; then
		nok "$1: delivered"
		grep -i "$1\|milter" "$work/pf/maillog" | tail -5 | sed 's/^/#   maillog: /'
		return 1
	fi
	ok "$1: delivered"
}

ie_stamp() {
	_st=$1 _sr=$2
	shift 2
	"$PY" "$PT_PY" stamp "$work/out/$_st.eml" "$IE_AUTHSERV" "$_sr" "$@"
	tap $? "$_st: stamp says smime=$_sr${1:+ ($*)}"
}

ie_decrypted() {
	_dt=$1 _da=$2 _ds=$3
	shift 3
	ie_delivered "$_dt" || return 1
	_do=$work/out/$_dt.eml _dx=$work/send/$_dt.eml
	if [ "$_ds" = opaque ]; then # the signed-data is an smime.p7m of its own
		"$PY" "$SC" is-encrypted "$_do"
		tap "$([ $? -ne 0 ]; echo $?)" "$_dt: decrypted, no enveloped-data left"
	else
		"$PY" "$PT_PY" no-p7m "$_do"
		tap $? "$_dt: decrypted, no smime.p7m left"
	fi
	"$PY" "$PT_PY" inner "$_dx.entity" "$_do"
	tap $? "$_dt: Content-* and body are the entity the partner encrypted, byte for byte"
	"$PY" "$PT_PY" outer "$_dx" "$_do"
	tap $? "$_dt: every other header byte for byte"
	_dr=none
	[ "$_ds" != no ] && _dr=pass
	if [ "$_ds" = opaque ]; then
		ie_stamp "$_dt" pass "\\(decrypted for $_da\\b" \
			'body\.smime-identifier=mitra@jabarprov\.go\.id'
		ie_opaque "$_dt" "$_dx.content"
	elif [ "$_ds" = yes ]; then
		ie_stamp "$_dt" pass "\\(decrypted for $_da\\b" \
			'body\.smime-identifier=mitra@jabarprov\.go\.id' 'body\.smime-serial=' \
			'body\.smime-issuer='
		verify_message "$_do" "$_dx.orig" mitra@jabarprov.go.id "$pki"
		tap "$([ "$VM_OPENSSL" = ok ]; echo $?)" "$_dt: inner signature verifies in openssl (root-only trust)"
		tap "$([ "$VM_GPGSM" = ok ]; echo $?)" "$_dt: inner signature verifies in gpgsm (root-only trust)"
		tap "$([ "$VM_CONTENT" = ok ]; echo $?)" "$_dt: decoded content equals what the partner wrote"
	else
		ie_stamp "$_dt" none '\(not signed\)' "\\(decrypted for $_da\\b"
		"$PY" "$SC" content "$_dx.orig" "$_do"
		tap $? "$_dt: decoded content equals what the partner wrote"
	fi
	[ $# -gt 0 ] || return 0
	"$PY" "$PT_PY" stamp "$_do" "$IE_AUTHSERV" "$_dr" "$@" >/dev/null
	tap $? "$_dt: the stamp's decryption note names $*"
}

ie_opaque() {
	_ot=$1 _oc=$2 _oo=$work/out/$1
	openssl cms -verify -binary -inform SMIME -in "$_oo.eml" -CAfile "$pki/root.crt.pem" \
		-purpose smimesign -out "$_oo.content" >"$_oo.ossl" 2>&1 && cmp -s "$_oo.content" "$_oc"
	tap $? "$_ot: opaque signature verifies in openssl, its content is what the partner wrote"
	_og=$(mktemp -d "$work/gpgsm.XXXXXX")
	printf 'disable-crl-checks\ndisable-policy-checks\ndisable-dirmngr\n' >"$_og/gpgsm.conf"
	printf '%s S relax\n' "$(openssl x509 -in "$pki/root.crt.pem" -noout -fingerprint -sha1 |
		sed 's/^[^=]*=//')" >"$_og/trustlist.txt"
	"$PY" "$PT_PY" p7m-der "$_oo.eml" "$_oo.der" &&
		gpgsm --homedir "$_og" --batch --no-tty --import "$pki/root.crt.pem" >/dev/null 2>&1 &&
		gpgsm --homedir "$_og" --batch --no-tty --status-fd 1 --verify "$_oo.der" \
			>"$_og/status" 2>"$_og/err" &&
		grep -q '^\[GNUPG:\] GOODSIG ' "$_og/status" && grep -q '^\[GNUPG:\] VALIDSIG ' "$_og/status"
	tap $? "$_ot: opaque signature verifies in gpgsm (root-only trust)"
	gpgconf --homedir "$_og" --kill all >/dev/null 2>&1
}

ie_unchanged() {
	_ut=$1
	shift
	ie_delivered "$_ut" || return 1
	"$PY" "$PT_PY" unchanged "$work/send/$_ut.eml" "$work/out/$_ut.eml" "$IE_AUTHSERV"
	tap $? "$_ut: delivered unchanged but for our stamp"
	ie_stamp "$_ut" "$@"
}

ie_audit() {
	if [ -z "${IE_AUDIT_WAITED:-}" ]; then
		# the background writer is batched: wait once for all the rows
		_ai=0 _aw=${IE_AUDIT_N:-$(echo $IE_SENT | wc -w)}
		while [ $_ai -lt 100 ]; do
			_an=$(sqlite3 "$work/smime.db" "SELECT count(*) FROM audit
				WHERE message_id LIKE '%@jabarprov.go.id%'" 2>/dev/null)
			[ "${_an:-0}" -ge "$_aw" ] && break
			_ai=$((_ai + 1))
			sleep 0.1
		done
		IE_AUDIT_WAITED=yes
	fi
	_ar=$(sqlite3 "$work/smime.db" "SELECT group_concat(action, ' ') FROM audit
		WHERE message_id LIKE '%$1@jabarprov.go.id%'" 2>/dev/null)
	printf '%s\n' "$_ar" | grep -qxE "$2"
	tap $? "$1: one audit row, action $2 (got '${_ar}')"
}

ie_wait_all() {
	_wn=$(echo $IE_SENT | wc -w)
	if pf_wait_delivered "$_wn" 120; then
		ok "all $_wn accepted messages delivered to the sink"
	else
		nok "all $_wn accepted messages delivered to the sink"
		grep -v 'status=sent' "$work/pf/maillog" | tail -10 | sed 's/^/# maillog: /'
	fi
}

ie_health() {
	e2e_alive
	# the audit writer is batched: let it write what it holds
	sleep 1
	ctl "smimectl audit verify: the hash chain holds" audit verify
}
