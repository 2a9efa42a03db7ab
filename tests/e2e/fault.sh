#!/bin/sh
# Fault handling through a real Postfix (milter_default_action = tempfail):
#   - milter down: SMTP submission gets a 4xx, nothing is delivered unsigned;
#     a local submission (sendmail -> pickup -> cleanup, non_smtpd_milters)
#     stays queued;
#   - milter started: the queued local message is retried, delivered signed
#     and verifies; SMTP submissions are signed again;
#   - milter killed with SIGKILL: 4xx again; restarted: signed again;
#   - SIGTERM: the milter exits promptly and removes its pidfile.
# Prints TAP.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
. "$TOP/tests/lib/e2e.sh"
fx_begin fault
chmod 0755 "$work"
pid=
fx_on_exit() {
	me_stop "$pid"
	pf_stop
}

set -- $(pf_free_ports 3)
mport=$1 sport=$2 kport=$3
conf=$work/m.conf
me_conf "$conf" "$work" "inet:$mport@127.0.0.1"
me_setup "$work" "$conf" || bail "PKI built and certificates imported"
ok "PKI built and certificates imported"
mkdir -p "$work/pf" "$work/in" "$work/out"
pf_start "$work/pf" "$sport" "$kport" "inet:$mport@127.0.0.1" || bail "private Postfix started"
ok "private Postfix started (milter socket configured, milter not running yet)"

# mk TAG: a small message from andi@
mk() {
	printf '%s\r\n' "From: andi@banjarkota.go.id" "To: someone@example.org" \
		"Subject: fault test $1" "Date: Tue, 24 Nov 2026 14:00:00 +0700" \
		"Message-ID: <fault-$1@banjarkota.go.id>" "MIME-Version: 1.0" \
		"Content-Type: text/plain; charset=utf-8" "Content-Transfer-Encoding: 8bit" \
		"" "Uji gangguan – $1" >"$work/in/$1.eml"
}
# signed_ok TAG DESCRIPTION
signed_ok() {
	if e2e_wait_tag "$1" 40; then
		verify_message "$work/out/$1.eml" "$work/in/$1.eml" andi@banjarkota.go.id "$work/pki" >"$work/v.log"
		_rc=$?
		[ $_rc = 0 ] || cat "$work/v.log"
		tap $_rc "$2: delivered signed and verifies${VM_FAILED:+ (failed:$VM_FAILED)}"
	else
		nok "$2: delivered signed and verifies (not delivered)"
		tail -5 "$work/pf/maillog" | sed 's/^/# maillog: /'
	fi
}

# ---- milter down
mk smtp-down
code=$(pf_send andi@banjarkota.go.id t-smtp-down@example.org "$work/in/smtp-down.eml" 2>/dev/null)
case $code in
4*) ok "milter down: SMTP submission tempfailed ($code)" ;;
*) nok "milter down: SMTP submission tempfailed (got $code)" ;;
esac

mk local
if pf_sendmail andi@banjarkota.go.id t-local@example.org "$work/in/local.eml" >"$work/sm.log" 2>&1; then
	ok "milter down: local submission with sendmail accepted into the queue"
else
	nok "milter down: local submission with sendmail accepted into the queue"
	sed 's/^/#   /' "$work/sm.log"
fi
sleep 6
if [ -z "$(e2e_find_tag local)" ] && [ -z "$(e2e_find_tag smtp-down)" ]; then
	ok "milter down: nothing delivered after 6 s"
else
	nok "milter down: nothing delivered after 6 s (a message went out without the milter)"
fi
[ "$(pf_queue_count)" -ge 1 ]
tap $? "milter down: the local message is still queued ($(pf_queue_count) queue file(s))"

# ---- milter up
if me_start "$conf" "$work/milter.log" "$mport"; then
	pid=$ME_PID
	ok "milter started"
else
	bail "milter started"
fi
signed_ok local "queued local submission retried after the milter came up"
mk smtp-up
code=$(pf_send andi@banjarkota.go.id t-smtp-up@example.org "$work/in/smtp-up.eml" 2>/dev/null)
tap "$([ "$code" = 250 ]; echo $?)" "milter up: SMTP submission accepted ($code)"
signed_ok smtp-up "milter up: SMTP submission"

# ---- SIGKILL
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
pid=
mk smtp-killed
code=$(pf_send andi@banjarkota.go.id t-smtp-killed@example.org "$work/in/smtp-killed.eml" 2>/dev/null)
case $code in
4*) ok "milter killed: SMTP submission tempfailed ($code)" ;;
*) nok "milter killed: SMTP submission tempfailed (got $code)" ;;
esac
if me_start "$conf" "$work/milter2.log" "$mport"; then
	pid=$ME_PID
	ok "milter restarted after SIGKILL (stale pidfile, same socket)"
else
	bail "milter restarted after SIGKILL (stale pidfile, same socket)"
fi
code=$(pf_send andi@banjarkota.go.id t-smtp-killed@example.org "$work/in/smtp-killed.eml" 2>/dev/null)
tap "$([ "$code" = 250 ]; echo $?)" "milter restarted: SMTP submission accepted ($code)"
signed_ok smtp-killed "milter restarted: SMTP submission"

# ---- SIGTERM
[ -s "$conf.pid" ]
tap $? "pidfile present while running"
kill -TERM "$pid"
i=0
while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
if kill -0 "$pid" 2>/dev/null; then
	nok "SIGTERM: milter exits within 5 s"
else
	ok "SIGTERM: milter exits within 5 s"
	pid=
fi
[ ! -e "$conf.pid" ]
tap $? "SIGTERM: pidfile removed"
fx_no_sanitizer "no sanitizer report in the milter logs" "$work"/milter*.log
echo "1..$n"
