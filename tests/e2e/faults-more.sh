#!/bin/sh
# The milter killed with SIGKILL in the middle of a message, through a real
# Postfix (milter_default_action = tempfail); see fault.sh for a milter that
# is down or killed between messages.  max_memory_body = 4096, so a body
# being received shows as an open spool file: the killer waits for it and
# sends SIGKILL at once, before end of message.
#   - SMTP submission: the client gets a 4xx, nothing is delivered; after
#     the restart the client's retry is delivered signed and verifies;
#   - local submission (sendmail -> pickup -> cleanup, non_smtpd_milters):
#     Postfix keeps the message and retries it by itself; after the restart
#     it is delivered signed, exactly once, and verifies.
# Prints TAP.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
. "$TOP/tests/lib/e2e.sh"
fx_begin faults-e2e
chmod 0755 "$work"
pid=
killer=
fx_on_exit() {
	[ -n "$killer" ] && { kill "$killer" 2>/dev/null; wait "$killer" 2>/dev/null; }
	me_stop "$pid"
	pf_stop
}

set -- $(pf_free_ports 3)
mport=$1 sport=$2 kport=$3
conf=$work/m.conf
me_conf "$conf" "$work" "inet:$mport@127.0.0.1" 'max_memory_body = 4096;'
me_setup "$work" "$conf" || bail "PKI built and certificates imported"
mkdir -p "$work/pf" "$work/in" "$work/out"
pf_start "$work/pf" "$sport" "$kport" "inet:$mport@127.0.0.1" || bail "private Postfix started"
me_start "$conf" "$work/milter1.log" "$mport" || bail "milter started"
pid=$ME_PID
ok "private Postfix and milter started"

# mk TAG: a ~2 MB message from andi@ (base64 attachment)
mk() {
	"$PY" - "$work/in/$1.eml" "$1" <<'EOF'
import base64, os, sys
path, tag = sys.argv[1], sys.argv[2]
b = base64.encodebytes(os.urandom(1500000)).decode().splitlines()
h = ["From: andi@banjarkota.go.id", "To: someone@example.org",
     "Subject: SIGKILL mid-message %s" % tag, "Date: Tue, 24 Nov 2026 14:00:00 +0700",
     "Message-ID: <kill-%s@banjarkota.go.id>" % tag, "MIME-Version: 1.0",
     'Content-Type: multipart/mixed; boundary="b-%s"' % tag, "",
     "--b-%s" % tag, "Content-Type: text/plain; charset=us-ascii", "",
     "Lampiran terlampir (%s)." % tag, "--b-%s" % tag,
     "Content-Type: application/octet-stream", "Content-Transfer-Encoding: base64",
     'Content-Disposition: attachment; filename="%s.bin"' % tag, ""] + b + \
    ["--b-%s--" % tag, ""]
open(path, "wb").write("\r\n".join(h).encode())
EOF
}
# signed_ok TAG LABEL: delivered exactly once, signed, verifies
signed_ok() {
	if e2e_wait_tag "$1" 60; then
		verify_message "$work/out/$1.eml" "$work/in/$1.eml" andi@banjarkota.go.id "$work/pki" >"$work/v.log" 2>&1
		_rc=$?
		[ $_rc = 0 ] || tail -15 "$work/v.log" | sed 's/^/#   /'
		tap $_rc "$2: delivered signed and verifies${VM_FAILED:+ (failed:$VM_FAILED)}"
		sleep 1
		_c=$(e2e_find_tag "$1" | wc -l)
		[ "$_c" -eq 1 ]
		tap $? "$2: delivered exactly once ($_c)"
	else
		nok "$2: delivered signed and verifies (not delivered)"
		tail -8 "$work/pf/maillog" | sed 's/^/#   maillog: /'
	fi
}
# start_killer LOG: SIGKILL the milter as soon as it has a spool file open
# (a body is being received); writes $work/killer.out
start_killer() {
	signed_before=$(grep -c "signed for" "$1")
	"$PY" - "$pid" >"$work/killer.out" 2>&1 <<'EOF' &
import os, signal, sys, time
pid = sys.argv[1]
end = time.time() + 60
print("ready", flush=True)
while time.time() < end:
    try:
        fds = os.listdir("/proc/%s/fd" % pid)
    except OSError:
        break  # the milter is gone
    for f in fds:
        try:
            spool = "smime-spool" in os.readlink("/proc/%s/fd/%s" % (pid, f))
        except OSError:
            continue
        if spool:
            os.kill(int(pid), signal.SIGKILL)
            print("killed=1")
            sys.exit(0)
    time.sleep(0.001)
print("killed=0")
EOF
	killer=$!
	# a loaded machine may take seconds to start python: the message must
	# not reach the milter before the killer watches it
	_kw=0
	while ! grep -q '^ready' "$work/killer.out" 2>/dev/null && [ $_kw -lt 200 ]; do
		sleep 0.05
		_kw=$((_kw + 1))
	done
}
# killed_mid LABEL LOG: the killer fired, the milter is gone, and it had not
# signed the message (no new "signed for" line since start_killer)
killed_mid() {
	wait "$killer"
	killer=
	# a killer that missed its moment leaves the milter running: stop it,
	# or the wait below never returns (the check then fails on killed=0)
	grep -q '^killed=1' "$work/killer.out" || kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	if grep -q '^killed=1' "$work/killer.out" && ! kill -0 "$pid" 2>/dev/null &&
		[ "$(grep -c "signed for" "$2")" -eq "$signed_before" ]; then
		ok "$1: milter killed with SIGKILL while it spooled the body"
	else
		nok "$1: milter killed with SIGKILL while it spooled the body"
		sed 's/^/#   /' "$work/killer.out"
		tail -5 "$2" | sed 's/^/#   milter: /'
	fi
	pid=
}

# ---- SMTP submission
mk smtp
start_killer "$work/milter1.log"
code=$(pf_send andi@banjarkota.go.id t-smtp@example.org "$work/in/smtp.eml" 2>"$work/send1.err")
killed_mid "SMTP" "$work/milter1.log"
case $code in
4*) ok "SMTP: the client got a tempfail ($code)" ;;
*) nok "SMTP: the client got a tempfail (got $code)"; sed 's/^/#   /' "$work/send1.err" ;;
esac
sleep 3
[ -z "$(e2e_find_tag smtp)" ]
tap $? "SMTP: nothing delivered while the milter is down"
me_start "$conf" "$work/milter2.log" "$mport" || bail "milter restarted after SIGKILL"
pid=$ME_PID
ok "SMTP: milter restarted"
code=$(pf_send andi@banjarkota.go.id t-smtp@example.org "$work/in/smtp.eml" 2>"$work/send2.err")
tap "$([ "$code" = 250 ]; echo $?)" "SMTP: the client's retry is accepted ($code)"
signed_ok smtp "SMTP retry"

# ---- local submission: Postfix retries by itself
mk local
start_killer "$work/milter2.log"
pf_sendmail andi@banjarkota.go.id t-local@example.org "$work/in/local.eml" >"$work/sm.log" 2>&1
tap $? "local: sendmail accepted the message into the queue"
# pickup runs every 2 s: give it time to reach the milter
i=0
while kill -0 "$killer" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
killed_mid "local" "$work/milter2.log"
sleep 4
if [ -z "$(e2e_find_tag local)" ] && [ "$(pf_queue_count)" -ge 1 ]; then
	ok "local: not delivered, still queued ($(pf_queue_count) queue file(s))"
else
	nok "local: not delivered, still queued ($(pf_queue_count) queue file(s))"
fi
me_start "$conf" "$work/milter3.log" "$mport" || bail "milter restarted after the second SIGKILL"
pid=$ME_PID
ok "local: milter restarted"
signed_ok local "local: Postfix's own retry"
[ "$(pf_queue_count)" -eq 0 ]
tap $? "queue empty at the end ($(pf_queue_count))"
if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$work"/milter*.log; then
	nok "no sanitizer report in the milter logs"
else
	ok "no sanitizer report in the milter logs"
fi
echo "1..$n"
