# tests/lib/e2e.sh -- what the end-to-end tests through a real MTA
# (tests/e2e/postfix.sh, sendmail.sh, postfix-encrypt.sh) share.  Source it
# after tests/lib/fixture.sh (fx_begin has made $work).  Each message goes to
# its own envelope recipient t-TAG@example.org, which is how its delivered
# copy is found again in the sink (X-Rcpt-Args).
#
#   e2e_begin NAME [MTA_STOP]
#                      fx_begin NAME, $work open to the MTA's daemons,
#                      $milter_pid empty; at exit the milter is stopped
#                      (given 30 s to end: under valgrind it writes its
#                      report first), then the MTA (MTA_STOP, default pf_stop)
#   e2e_pki            the test PKI in $pki (one check: "test PKI created")
#   e2e_corpus         tests/lib/mkcorpus.py's messages in $work/gen/good and
#                      $work/gen/bad, $work/other-domain.eml (from
#                      other@example.org, a domain the milter does not sign
#                      for), and $work/send, $work/out; the tags (file names
#                      without .eml) of the messages that must be signed in
#                      $good (tests/data/corpus, then gen/good), of the broken
#                      ones in $bad (tests/data/bad, then gen/bad)
#   e2e_src TAG        the file of the corpus message TAG
#   e2e_mode TAG       "raw" for a message to be sent byte for byte (bare
#                      LF), else nothing
#   e2e_import         `smimectl init` and the imports of andi, sekda,
#                      noreply, legacy and ec, one check each; with
#                      KEYSTORE=pkcs11 the keys are on the token of
#                      hsm_fixture ($HSM_TOKEN: andi and sekda with --cert,
#                      the others with the token's certificate object)
#   e2e_milter_env     four free ports ($milter_port, $smtp_port, $sink_port,
#                      $base_port for a filterless baseline), $conf written by
#                      me_conf on $milter_port, me_setup (test PKI,
#                      database, mailboxes), then e2e_start_milter (one
#                      check); bails on a failure
#   e2e_start_milter   the milter with $conf on $milter_port, log
#                      $work/milter.log, pid in $milter_pid (one check)
#   e2e_start_xclient  e2e_start_milter, then Postfix in $work/pf whose
#                      smtpd takes XCLIENT from 127.0.0.0/8 (one check)
#   e2e_send TAG FILE PORT [raw]
#                      FILE (CRLF line ends unless raw) as $work/send/TAG.eml
#                      from its From address (else andi's) to
#                      t-TAG@example.org through the smtpd on PORT; 0 when
#                      accepted, else 1 with pf_send's lines
#   e2e_wait_msgid MSGID SECONDS OUT
#                      waits for the sink copy with Message-ID <MSGID>,
#                      written without the sink's lines to OUT; 1 if none
#   e2e_delivered TAG  the sink copy for t-TAG@example.org, without the
#                      sink's lines, to $work/out/TAG.eml; 1 if not there
#   e2e_find_tag TAG   the complete sink files for t-TAG@example.org, oldest
#                      first, one a line
#   e2e_wait_tag TAG SECONDS
#                      waits until a copy for t-TAG@example.org is in the
#                      sink and Postfix logged it sent, then writes it to
#                      $work/out/TAG.eml as e2e_delivered; 1 if it never came
#   e2e_check_signed TAG SIGNER
#                      delivered (one check), then verify_message against
#                      $work/send/TAG.eml: structure, openssl, gpgsm, signer,
#                      CMS, headers and content (seven checks); 1 if not
#                      delivered
#   e2e_check_untouched TAG
#                      delivered, not signed, and the same as
#                      $work/send/TAG.eml (three checks)
#   e2e_check_bad TAG  delivered (one check); signed: the signature
#                      verifies, the content equals the baseline copy
#                      base-TAG, the headers are kept (three checks); not
#                      signed: the same as the baseline copy (one check)
#   e2e_health         the milter still runs and its pidfile is there, no
#                      sanitizer report in its log (two checks)
#   e2e_alive          the milter still runs, no sanitizer report in its
#                      log, no file left in $work/tmp (three checks)
# What differs between the MTAs: $E2E_MTA names the MTA in the texts
# (Postfix), and a test may redefine
#   e2e_refolded ORIG OUT       succeeds, printing a note, when the only
#                               change to the headers is the MTA's own
#                               refolding (default: never)
#   e2e_same_as_base BASE OUT   OUT is what the MTA alone delivers (default:
#                               smimecheck.py same-body)

E2E_MTA=Postfix
KEYSTORE=${KEYSTORE:-files}

e2e_refolded() { return 1; }
e2e_same_as_base() { "$PY" "$SC" same-body "$1" "$2"; }

e2e_begin() {
	fx_begin "$1"
	E2E_STOP=${2:-pf_stop}
	chmod 0755 "$work"
	milter_pid=
	fx_on_exit() {
		me_stop "$milter_pid" 30
		milter_pid=
		$E2E_STOP
	}
}

e2e_pki() {
	fx_pki || bail "test PKI created"
	ok "test PKI created"
}

e2e_corpus() {
	mkdir -p "$work/gen/good" "$work/gen/bad" "$work/send" "$work/out"
	"$PY" "$TOP/tests/lib/mkcorpus.py" "$work/gen/good" "$work/gen/bad" ||
		bail "generated corpus written"
	printf '%s\r\n' "From: Other Org <other@example.org>" "To: someone@example.org" \
		"Subject: message from a domain the milter does not sign for" \
		"Date: Tue, 24 Nov 2026 13:00:00 +0700" "Message-ID: <other-1@example.org>" \
		"MIME-Version: 1.0" "Content-Type: text/plain; charset=utf-8" \
		"Content-Transfer-Encoding: 8bit" "" "Salam dari luar – must stay untouched." \
		>"$work/other-domain.eml"
	good=
	for _x in "$TOP"/tests/data/corpus/*.eml "$work"/gen/good/*.eml; do
		good="$good $(basename "$_x" .eml)"
	done
	bad=
	for _x in "$TOP"/tests/data/bad/*.eml "$work"/gen/bad/*.eml; do
		bad="$bad $(basename "$_x" .eml)"
	done
}

e2e_src() {
	for _x in "$TOP/tests/data/corpus" "$work/gen/good" "$TOP/tests/data/bad" "$work/gen/bad"; do
		[ -f "$_x/$1.eml" ] && echo "$_x/$1.eml" && return 0
	done
	return 1
}

e2e_mode() {
	case $1 in *bare-lf*) echo raw ;; esac
}

# e2e__imp NAME KIND DESCRIPTION: one mailbox, from the files or the token
e2e__imp() {
	_en=$1 _ek=$2 _ed=$3
	if [ "$KEYSTORE" = pkcs11 ]; then
		case $_en in
		andi | sekda) set -- --cert "$pki/$_en.crt.pem" ;;
		*) set -- ;;
		esac
		_ed="$_en ($_ek, key on the token${1:+, --cert})"
		ctl "smimectl import $_ed" import --mailbox "$_en@banjarkota.go.id" --kind "$_ek" \
			--pkcs11-uri "$(hsm_uri "$HSM_TOKEN" "$_en")" "$@"
	else
		me_import_cmd "$_en" "$pki" ctl "smimectl import $_en ($_ed)"
	fi
}

e2e_import() {
	ctl "smimectl init" init
	e2e__imp andi individual "individual, PKCS#12"
	e2e__imp sekda role "role, PEM cert + key"
	e2e__imp noreply system "system, PKCS#12"
	e2e__imp legacy individual "address only in subject DN, PKCS#12"
	e2e__imp ec individual "EC P-256, PKCS#12"
}

e2e_milter_env() {
	set -- $(pf_free_ports 4)
	milter_port=$1 smtp_port=$2 sink_port=$3 base_port=$4
	conf=$work/m.conf
	me_conf "$conf" "$work" "inet:$milter_port@127.0.0.1" || bail "milter configuration written"
	me_setup "$work" "$conf" || bail "test PKI, database and mailboxes"
	e2e_start_milter
}

e2e_start_milter() {
	me_start "$conf" "$work/milter.log" "$milter_port" ||
		bail "milter listens on inet:$milter_port@127.0.0.1"
	milter_pid=$ME_PID
	ok "milter listens on inet:$milter_port@127.0.0.1"
}

# e2e_start_xclient: e2e_start_milter, then a private Postfix in
# $work/pf (one check) whose smtpd lets 127.0.0.0/8 set the client with
# XCLIENT and relays for anyone (the tests play partners from outside)
e2e_start_xclient() {
	e2e_start_milter
	mkdir -p "$work/pf"
	PF_EXTRA_MAIN='smtpd_authorized_xclient_hosts = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, check_client_access static:OK, reject'
	if pf_start "$work/pf" "$smtp_port" "$sink_port" "inet:$milter_port@127.0.0.1"; then
		ok "private Postfix started (smtpd $smtp_port, sink $sink_port)"
	else
		bail "private Postfix started"
	fi
}

e2e_send() {
	if [ "${4:-}" = raw ]; then
		cp "$2" "$work/send/$1.eml"
	else
		"$PY" "$SC" crlf "$2" "$work/send/$1.eml"
	fi
	_sf=$("$PY" "$SC" from-addr "$work/send/$1.eml" 2>/dev/null)
	_sc=$(pf_send "${_sf:-andi@banjarkota.go.id}" "t-$1@example.org" \
		"$work/send/$1.eml" "$3" 2>"$work/send/$1.err")
	[ "$_sc" = 250 ] && return 0
	sed 's/^/#   /' "$work/send/$1.err"
	return 1
}

# e2e_wait_msgid MSGID SECONDS OUT: waits until the sink has a copy whose
# Message-ID is <MSGID> and writes it, without the sink's lines, to OUT;
# 1 if none came in SECONDS
e2e_wait_msgid() {
	_wm_end=$(($(date +%s) + $2))
	while :; do
		_wm_f=$(pf_sink_files | while read -r _x; do
			if grep -qi "^Message-ID: <$1>" "$_x"; then echo "$_x"; break; fi
		done)
		[ -n "$_wm_f" ] && break
		[ "$(date +%s)" -ge "$_wm_end" ] && return 1
		sleep 0.3
	done
	pf_strip_sink "$_wm_f" >"$3"
}

e2e_delivered() {
	_f=$(pf_sink_files | while read -r _x; do
		if grep -q "^X-Rcpt-Args: <t-$1@example.org>" "$_x"; then echo "$_x"; break; fi
	done)
	[ -n "$_f" ] || return 1
	pf_strip_sink "$_f" >"$work/out/$1.eml"
}

e2e_find_tag() {
	pf_sink_files | while read -r _x; do
		if grep -q "^X-Rcpt-Args: <t-$1@example.org>" "$_x"; then echo "$_x"; fi
	done
}

e2e_wait_tag() {
	_end=$(($(date +%s) + $2))
	while [ "$(date +%s)" -lt $_end ]; do
		_f=$(e2e_find_tag "$1" | head -1)
		if [ -n "$_f" ] && grep -q " to=<t-$1@example.org>.* status=sent " "$PF_WORKDIR/maillog"; then
			pf_strip_sink "$_f" >"$work/out/$1.eml"
			return 0
		fi
		sleep 0.3
	done
	return 1
}

e2e_check_signed() {
	_et=$1 _ew=$2
	if ! e2e_delivered "$_et"; then
		nok "$_et: delivered"
		return 1
	fi
	ok "$_et: delivered"
	echo "# --- $_et (signer $_ew)"
	verify_message "$work/out/$_et.eml" "$work/send/$_et.eml" "$_ew" "$pki"
	tap "$([ $VM_STRUCT = ok ]; echo $?)" "$_et: multipart/signed structure, 7-bit entity"
	tap "$([ $VM_OPENSSL = ok ]; echo $?)" "$_et: openssl cms verifies (root-only trust)"
	tap "$([ $VM_GPGSM = ok ]; echo $?)" "$_et: gpgsm verifies (root-only trust)"
	tap "$([ $VM_SIGNER = ok ]; echo $?)" "$_et: signer certificate is $_ew"
	tap "$([ $VM_CMS = ok ]; echo $?)" "$_et: CMS attributes and embedded chain"
	if [ $VM_HEADERS = ok ]; then
		ok "$_et: original headers preserved outside"
	elif _er=$(e2e_refolded "$work/send/$_et.eml" "$work/out/$_et.eml"); then
		ok "$_et: original headers preserved outside$_er"
	else
		nok "$_et: original headers preserved outside"
	fi
	tap "$([ $VM_CONTENT = ok ]; echo $?)" "$_et: content ok (decoded parts equal)"
	return 0
}

e2e_check_untouched() {
	if ! e2e_delivered "$1"; then
		nok "$1: delivered"
		return 1
	fi
	ok "$1: delivered"
	if vm_is_signed "$work/out/$1.eml"; then
		nok "$1: not signed"
	else
		ok "$1: not signed"
	fi
	"$PY" "$SC" same-body "$work/send/$1.eml" "$work/out/$1.eml"
	tap $? "$1: arrived untouched"
}

e2e_check_bad() {
	_et=$1
	if ! e2e_delivered "$_et"; then
		nok "$_et: delivered"
		return 1
	fi
	ok "$_et: delivered"
	echo "# --- $_et"
	_eb=no
	e2e_delivered "base-$_et" && _eb=yes
	if vm_is_signed "$work/out/$_et.eml"; then
		verify_message "$work/out/$_et.eml" - - "$pki"
		tap $? "$_et: signed, and the signature verifies (openssl and gpgsm)"
		# what was signed must be what the MTA alone would have delivered
		if [ $_eb = yes ]; then
			"$PY" "$SC" content "$work/out/base-$_et.eml" "$work/out/$_et.eml"
			tap $? "$_et: signed content equals what $E2E_MTA alone delivers"
		else
			nok "$_et: signed content equals what $E2E_MTA alone delivers (no baseline copy)"
		fi
		if "$PY" "$SC" headers "$work/send/$_et.eml" "$work/out/$_et.eml" >"$work/hdr.log"; then
			ok "$_et: original headers preserved outside"
		elif _er=$(e2e_refolded "$work/send/$_et.eml" "$work/out/$_et.eml"); then
			ok "$_et: original headers preserved outside$_er"
		else
			nok "$_et: original headers preserved outside"
			grep -v 'present unchanged' "$work/hdr.log" | head -5
		fi
	elif [ $_eb = yes ]; then
		e2e_same_as_base "$work/out/base-$_et.eml" "$work/out/$_et.eml"
		tap $? "$_et: not signed, and identical to what $E2E_MTA alone delivers"
	else
		nok "$_et: not signed, and no baseline copy to compare with"
	fi
}

e2e_health() {
	if kill -0 "$milter_pid" 2>/dev/null && [ -s "$conf.pid" ]; then
		ok "milter still running after all messages (pid $milter_pid)"
	else
		nok "milter still running after all messages"
		tail -30 "$work/milter.log" | sed 's/^/# milter: /'
	fi
	fx_no_sanitizer "no sanitizer report in the milter log" "$work/milter.log"
	grep -c ' signed for ' "$work/milter.log" | sed 's/^/# milter log lines "signed for": /'
}

e2e_alive() {
	if kill -0 "$milter_pid" 2>/dev/null; then
		ok "milter still running"
	else
		nok "milter still running"
		tail -30 "$work/milter.log" | sed 's/^/# milter: /'
	fi
	fx_no_sanitizer "no sanitizer report in the milter log" "$work/milter.log"
	_al=$(find "$work/tmp" -type f | wc -l)
	tap "$([ "$_al" = 0 ]; echo $?)" "no temp file left in temp_dir ($_al)"
}
