#!/bin/sh
# Soak test: many messages of mixed sizes through a real Postfix with the
# milter, from many parallel SMTP clients.  Not part of `make check`; run it
# with `make soak` (or sh tests/soak/soak.sh).
#
#   SOAK_MESSAGES  messages to send (default 20000)
#   SOAK_CLIENTS   parallel SMTP clients (default 16)
#   SOAK_PER_CONN  messages per SMTP connection before a client reconnects
#                  (default 250)
#   SOAK_SAMPLE    seconds between RSS/fd samples of the milter (default 2)
#   SOAK_SEED      seed of the message generator (default 1)
#   SOAK_DRAIN     seconds to wait for the queue to drain after the last
#                  message was sent (default 600)
#   KEEP=1         keep the work directory
#
# Builds the test PKI, a milter config and database with andi, sekda and
# noreply imported (tests/lib/milterenv.sh), starts the milter and a private
# Postfix relaying to smtp-sink (tests/lib/postfix.sh), then runs at once:
#   tests/soak/soak.py send     the SMTP clients (sizes 1 KB .. 10 MiB, see
#                               soak.py for the mix and the message shapes)
#   tests/soak/soak.py verify   2 processes that verify each dump file as it
#                               completes (openssl cms -verify, signer, decoded
#                               content) and delete it
#   tests/soak/soak.py sample   VmRSS, threads and open fds of the milter
# and checks: every message accepted, at the sink exactly once, signed and
# verifying; Postfix neither deferred nor bounced anything and its queue is
# empty; the milter still runs, logged no error, left no temp file; its RSS
# in the last quarter of the run is within max(10%, 4 MB) of the second
# quarter's (judged from SOAK_MESSAGES=2000 up: shorter runs are all
# warm-up); its open fds after the queue drained equal those before the
# first message.  Prints TAP and a summary; exits non-zero on any failure.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
failed=0
nok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
SOAK="$TOP/tests/soak/soak.py"
MESSAGES=${SOAK_MESSAGES:-20000}
CLIENTS=${SOAK_CLIENTS:-16}
PER_CONN=${SOAK_PER_CONN:-250}
SAMPLE=${SOAK_SAMPLE:-2}
SEED=${SOAK_SEED:-1}
DRAIN=${SOAK_DRAIN:-600}

fx_begin soak
chmod 0755 "$work"
out=$work/out
mkdir -p "$out" "$work/pf"
milter_pid= verify_pid= sample_pid= send_pid=
fx_on_exit() {
	: >"$out/stop.verify"
	: >"$out/stop.sample"
	# me_stop: TERM, then KILL after 5 s
	for _p in "$send_pid" "$sample_pid" "$verify_pid" "$milter_pid"; do
		me_stop "$_p"
	done
	pf_stop
}

case $MESSAGES$CLIENTS in *[!0-9]*)
	bail "SOAK_MESSAGES and SOAK_CLIENTS are numbers" ;;
esac
echo "# soak: $MESSAGES messages, $CLIENTS clients, work directory $work"

# ---------------------------------------------------------------- setup
set -- $(pf_free_ports 3)
milter_port=$1 smtp_port=$2 sink_port=$3
conf=$work/smime-milter.conf
me_conf "$conf" "$work" "inet:$milter_port@127.0.0.1"
me_setup "$work" "$conf" || bail "PKI, database and imported mailboxes"
ok "PKI, database, andi, sekda and noreply imported"
me_start "$conf" "$work/milter.log" "$milter_port" || bail "milter started"
milter_pid=$ME_PID
ok "milter listens on inet:$milter_port@127.0.0.1 (pid $milter_pid)"
# The clients reuse connections for hundreds of messages, and the 10 MiB
# ones may wait behind others on 2 busy cores: give every step room.
PF_EXTRA_MAIN='milter_content_timeout = 300s
smtpd_timeout = 600s'
pf_start "$work/pf" "$smtp_port" "$sink_port" "inet:$milter_port@127.0.0.1" ||
	bail "private Postfix started"
ok "private Postfix started (smtpd $smtp_port, sink $sink_port)"
[ "$(cat "/proc/$PF_SINK_PID/comm" 2>/dev/null)" = smtp-sink ] ||
	bail "smtp-sink runs as pid $PF_SINK_PID (the verifier watches its fds)"

# ---------------------------------------------------------------- run
echo "$MESSAGES" >"$out/count"
"$PY" "$SOAK" fds "$milter_pid" >"$out/fd.start"
"$PY" "$SOAK" sample "$milter_pid" "$SAMPLE" "$out/stop.sample" \
	"$work/pf/spool" "$out/samples.csv" &
sample_pid=$!
"$PY" "$SOAK" verify "$PF_SINK_DIR" "$PF_SINK_PID" "$work/pki" 2 \
	"$out/stop.verify" "$out" >"$out/verify.log" 2>&1 &
verify_pid=$!
runid=$(date +%s)-$$
"$PY" "$SOAK" send "$smtp_port" "$MESSAGES" "$CLIENTS" "$SEED" "$PER_CONN" \
	"$runid" "$out" >"$out/send.log" 2>&1 &
send_pid=$!
wait "$send_pid"
send_rc=$?
send_pid=
cat "$out/send.log"
tap "$send_rc" "sender finished: $MESSAGES messages from $CLIENTS clients"

# the queue must drain; nothing may stay deferred
end=$(($(date +%s) + DRAIN))
while [ "$(pf_queue_count)" -gt 0 ] && [ "$(date +%s)" -lt "$end" ]; do
	sleep 1
done
left=$(pf_queue_count)
$PY -c 'import time; print("%.3f" % time.time())' >"$out/drained"
tap "$([ "$left" -eq 0 ]; echo $?)" "Postfix queue drained within ${DRAIN}s of the last send ($left left)"

# every smtpd has closed its milter connection once the clients said QUIT;
# allow a few seconds for that to reach the milter
i=0
while :; do
	"$PY" "$SOAK" fds "$milter_pid" >"$out/fd.end" 2>/dev/null
	if [ "$(cat "$out/fd.end")" = "$(cat "$out/fd.start")" ] || [ $i -ge 30 ]; then
		break
	fi
	sleep 1
	i=$((i + 1))
done
: >"$out/stop.sample"
wait "$sample_pid"
sample_pid=
: >"$out/stop.verify"
wait "$verify_pid"
verify_rc=$?
verify_pid=
sed 's/^/# verify: /' "$out/verify.log"
tap "$verify_rc" "verifier finished"

# ---------------------------------------------------------------- checks
"$PY" "$SOAK" report "$out" "$n"
report_rc=$?
n=$(cat "$out/tapn" 2>/dev/null || echo "$n")
[ $report_rc -eq 0 ] || failed=$((failed + 1))

ml=$work/pf/maillog
bad=$(grep -cE 'status=(deferred|bounced|expired)' "$ml")
tap "$([ "$bad" -eq 0 ]; echo $?)" "Postfix deferred or bounced nothing ($bad)"
grep -E 'status=(deferred|bounced|expired)' "$ml" | head -5 | sed 's/^/#   /'
sent=$(grep -c ' status=sent ' "$ml")
acc=$(wc -l <"$out/accepted")
tap "$([ "$sent" -eq "$acc" ]; echo $?)" "maillog: $sent deliveries for $acc accepted messages"
warn=$(grep -E ' (warning|error|fatal|panic):' "$ml" | grep -c .)
tap "$([ "$warn" -eq 0 ]; echo $?)" "maillog: no warning, error or fatal line ($warn)"
grep -E ' (warning|error|fatal|panic):' "$ml" | head -5 | sed 's/^/#   /'
q=$(postqueue -c "$PF_CONF" -p 2>&1)
case $q in
*"Mail queue is empty"*) ok "postqueue -p: Mail queue is empty" ;;
*)
	nok "postqueue -p: Mail queue is empty"
	printf '%s\n' "$q" | head -10 | sed 's/^/#   /'
	;;
esac

if kill -0 "$milter_pid" 2>/dev/null; then
	ok "the milter still runs"
else
	nok "the milter still runs"
fi
signed=$(grep -c ': signed for ' "$work/milter.log")
tap "$([ "$signed" -eq "$acc" ]; echo $?)" "milter log: $signed signed for $acc accepted"
merr=$(grep -viE ': signed for |^[^ ]+ smime-milter: (starting|listening|ready)' \
	"$work/milter.log" | grep -ciE 'error|fail|warn|tempfail|abort|cannot|out of memory')
tap "$([ "$merr" -eq 0 ]; echo $?)" "milter log: no error line ($merr)"
grep -viE ': signed for ' "$work/milter.log" |
	grep -iE 'error|fail|warn|tempfail|abort|cannot|out of memory' | head -10 | sed 's/^/#   /'
tmpl=$(find "$work/tmp" -type f | wc -l)
tap "$([ "$tmpl" -eq 0 ]; echo $?)" "milter temp_dir is empty ($tmpl files)"

echo "1..$n"
[ "$failed" -eq 0 ]
