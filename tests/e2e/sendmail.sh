#!/bin/sh
# End-to-end with a second real MTA: Sendmail (Debian's sendmail-bin, not
# installed: fetched with apt-get download, unpacked with dpkg -x and run
# with its own m4-built .cf; tests/lib/sendmail.sh) -> smime-milter ->
# smtp-sink.  Every delivered message is checked by independent verifiers
# (openssl cms, gpgsm, python), as in tests/e2e/postfix.sh.
#
#   sh tests/e2e/sendmail.sh          (KEEP=1 keeps the work directory)
#
# The whole test runs in its own network, UTS and PID namespaces
# (sm_isolate): only loopback exists, so nothing leaves 127.0.0.1, DNS
# included, and the host name is mail.banjarkota.test, which the C library
# finds in a private /etc/hosts ("hosts: files").  When the .debs
# cannot be fetched (no network) or the namespaces cannot be made, it prints
# one "ok 1 - ... # SKIP reason" line and exits 0.
#
# Sends, over SMTP from 127.0.0.1 to the private sendmail whose .cf has
#   INPUT_MAIL_FILTER(`smime', `S=inet:PORT@127.0.0.1, F=T, T=S:30s;R:60s;E:5m'):
#   tests/data/corpus/*.eml + generated ones (tests/lib/mkcorpus.py): each must
#     arrive signed by its From address and pass tests/lib/verify.sh;
#   a message from other@example.org: must arrive untouched;
#   tests/data/bad/*.eml + generated bad ones: each must be delivered and be
#     either signed-and-verifying or exactly what Sendmail alone delivers
#     (a second daemon socket with InputMailFilters= empty is the baseline).
# The milter's log line for each signed message must start with the queue id
# sendmail gave in its 250 reply (macro i reaches the milter), and the
# milter must still be running at the end.  Last, with the milter stopped,
# F=T must turn a submission into a 4xx reply.  Prints TAP.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
. "$TOP/tests/lib/e2e.sh"
. "$TOP/tests/lib/sendmail.sh"
E2E_MTA=Sendmail

skip() {
	echo "ok 1 - Sendmail end-to-end # SKIP $*"
	echo "1..1"
	exit 0
}

if [ "${SM_ISOLATED:-0}" != 1 ]; then
	# outside the namespaces: the network is still there for apt-get
	[ "$(id -u)" = 0 ] || skip "needs root (sendmail daemon, namespaces)"
	sm_fetch || skip "$SM_WHY"
	sm_isolate "$0" "$@"
	skip "$SM_WHY"
fi
start_time=$(date +%s)
e2e_begin sm-e2e sm_stop

# ---------------------------------------------------------------- isolation
tap "$([ "$(hostname)" = "$SM_HOSTNAME" ]; echo $?)" \
	"private UTS namespace: host name is $SM_HOSTNAME"
ifs=$(ip -o link show | awk -F': ' '{print $2}' | tr '\n' ' ')
tap "$([ "$ifs" = "lo " ]; echo $?)" \
	"private network namespace: loopback is the only interface ($ifs)"

r=$(getent hosts "$SM_HOSTNAME" | awk '{print $1}')
grep -q '^hosts: files$' /etc/nsswitch.conf
tap "$([ $? = 0 ] && [ "$r" = 127.0.0.1 ]; echo $?)" \
	"C library: hosts from files only, $SM_HOSTNAME is ${r:-unknown} (private bind mounts)"

if sm_unpack "$work/root"; then
	ok "sendmail-bin, sendmail-cf, m4 unpacked with dpkg -x ($(basename "$(sm__deb sendmail-bin)"))"
else
	bail "sendmail unpacked: $SM_WHY"
fi

# ---------------------------------------------------------------- setup
e2e_pki
e2e_corpus
mkdir -p "$work/sm"

set -- $(pf_free_ports 4)
milter_port=$1 smtp_port=$2 sink_port=$3 base_port=$4
conf=$work/smime-milter.conf
me_conf "$conf" "$work" "inet:$milter_port@127.0.0.1" # pidfile $conf.pid
e2e_import

# ---------------------------------------------------------------- start
e2e_start_milter

# a second daemon socket without any filter: what Sendmail alone delivers
SM_EXTRA_MC="DAEMON_OPTIONS(\`Port=$base_port, Addr=127.0.0.1, Name=Base, InputMailFilters=')dnl"
if sm_start "$work/sm" "$smtp_port" "$sink_port" "inet:$milter_port@127.0.0.1"; then
	ok "private sendmail started (-C sendmail.cf, 127.0.0.1:$smtp_port, baseline $base_port, sink $sink_port)"
else
	bail "private sendmail started"
fi
grep -q "^Xsmime, S=inet:$milter_port@127.0.0.1, F=T, T=S:30s;R:60s;E:5m\$" "$work/sm/sendmail.cf" &&
	grep -q '^O InputMailFilters=smime$' "$work/sm/sendmail.cf"
tap $? "sendmail.cf has the milter (X line, InputMailFilters) from INPUT_MAIL_FILTER"

# ---------------------------------------------------------------- send
: >"$work/send.list"
for tag in $good; do
	echo "$tag $(e2e_src "$tag")" >>"$work/send.list"
done
echo "other-domain $work/other-domain.eml" >>"$work/send.list"
for tag in $bad; do
	echo "$tag $(e2e_src "$tag") - $(e2e_mode "$tag")" >>"$work/send.list"
	echo "base-$tag $(e2e_src "$tag") $base_port $(e2e_mode "$tag")" >>"$work/send.list"
done
sm_send_batch "$work/send.list" "$work/send" >"$work/send.out"
sent=0
refused=
for tag in $bad; do
	# Sendmail itself refuses some bad messages (bare LF, a header block
	# over MaxHeadersLength); with or without the milter alike is fine.
	set -- $(grep "^$tag " "$work/send.out") - - - -
	c=$2
	set -- $(grep "^base-$tag " "$work/send.out") - - - -
	if [ "$c" != 250 ] && [ "$c" = "$2" ]; then
		refused="$refused $tag"
		ok "$tag: refused by Sendmail itself, with or without the milter ($(grep "^base-$tag " "$work/send.out" | cut -d' ' -f2,5-))"
	fi
done
for tag in $good other-domain $bad; do
	case " $refused " in *" $tag "*) continue ;; esac
	# TAG CODE QID FROM TEXT
	set -- $(grep "^$tag " "$work/send.out") - - - -
	echo "$3" >"$work/send/$tag.qid"
	echo "$4" >"$work/send/$tag.from"
	if [ "$2" = 250 ]; then
		sent=$((sent + 1))
		ok "$tag: accepted by sendmail with the milter (queue id $3)"
	else
		nok "$tag: accepted by sendmail with the milter"
		grep "^$tag " "$work/send.out" | sed 's/^/#   /'
	fi
done
for tag in $bad; do
	case " $refused " in *" $tag "*) continue ;; esac
	set -- $(grep "^base-$tag " "$work/send.out") - - - -
	if [ "$2" = 250 ]; then
		sent=$((sent + 1))
	else
		echo "# baseline copy of $tag not accepted: $(grep "^base-$tag " "$work/send.out")"
	fi
done

if sm_wait_delivered "$sent" 120; then
	ok "all $sent accepted messages delivered to the sink, sendmail's queue empty"
else
	nok "all $sent accepted messages delivered to the sink, sendmail's queue empty"
	tail -30 "$work/sm/smtp.log" | sed 's/^/# smtp.log: /'
fi

# e2e_refolded ORIGINAL DELIVERED (e2e.sh's hook): Sendmail rebuilds address headers (From,
# To, Cc, ...) and folds them its own way (",\r\n        " between
# addresses), with or without a milter; those headers are outside the
# signature.  Succeeds, printing the names, when every original non-Content
# header is present unchanged except address headers that differ only in
# folding white space.
e2e_refolded() {
	"$PY" - "$TOP/tests/lib" "$1" "$2" <<'EOF'
import re, sys
sys.path.insert(0, sys.argv[1])
import smimecheck as sc
ADDR = {b"from", b"to", b"cc", b"bcc", b"reply-to", b"sender", b"resent-from",
        b"resent-to", b"resent-cc", b"resent-bcc", b"resent-sender"}
norm = lambda raw: re.sub(rb"[ \t]+", b" ", raw)
oh, _ = sc.split_head_body(sc.read_canon(sys.argv[2]))
dh, _ = sc.split_head_body(sc.read_canon(sys.argv[3]))
have = [raw for _, raw in sc.header_fields(dh)]
names, ok = [], True
for name, raw in sc.header_fields(oh):
    if sc.is_content_header(name):
        continue
    if raw in have:
        have.remove(raw)
        continue
    alike = [r for r in have if norm(r) == norm(raw)]
    if name in ADDR and alike:
        have.remove(alike[0])
        names.append(name.decode())
    else:
        ok = False
if ok and names:
    print(" (sendmail refolded the address header%s)"
          % (("s " if len(names) > 1 else " ") + ", ".join(names)))
sys.exit(0 if ok and names else 1)
EOF
}

# e2e.sh's hook: what Sendmail alone delivers (tests/lib/sendmail.sh)
e2e_same_as_base() { sm_same_as_base "$@"; }

# ---------------------------------------------------------------- verify
for tag in $good; do
	who=$(cat "$work/send/$tag.from")
	e2e_check_signed "$tag" "$who" || continue
	# macro i: the milter logs sendmail's queue id, not NOQUEUE
	qid=$(cat "$work/send/$tag.qid")
	if [ "$qid" != - ] && grep -q "$qid: signed for $who " "$work/milter.log"; then
		ok "$tag: milter log says \"$qid: signed for $who\" (sendmail's queue id)"
	else
		nok "$tag: milter log names sendmail's queue id '${qid:-none in the 250 reply}'"
		grep -i "$who" "$work/milter.log" | tail -3 | sed 's/^/# milter: /'
	fi
done
e2e_check_untouched other-domain
for tag in $bad; do
	case " $refused " in *" $tag "*) continue ;; esac
	e2e_check_bad "$tag"
done

# ---------------------------------------------------------------- health
if grep -q 'NOQUEUE' "$work/milter.log"; then
	nok "no milter log line without a queue id (macro i missing)"
	grep 'NOQUEUE' "$work/milter.log" | head -5 | sed 's/^/# milter: /'
else
	ok "no milter log line without a queue id"
fi
if kill -0 "$SM_PID" 2>/dev/null; then
	ok "sendmail daemon still running (pid $SM_PID in the test's PID namespace)"
else
	nok "sendmail daemon still running"
	sed 's/^/# sendmail: /' "$work/sm/sendmail.out" | tail -20
fi
e2e_health

# F=T: with the milter gone, Sendmail answers 4xx instead of relaying
# the message unsigned
me_stop "$milter_pid"
milter_pid=
echo "down $work/send/01-plain-ascii.eml" >"$work/down.list"
sm_send_batch "$work/down.list" "$work/send" >"$work/down.out"
set -- $(cat "$work/down.out") - - - -
case $2 in
4??) ok "milter stopped: sendmail answers $2 (F=T), nothing relayed unsigned" ;;
*) nok "milter stopped: sendmail answers 4xx (F=T), got: $(cat "$work/down.out")" ;;
esac
sleep 1
tap "$([ -z "$(pf_sink_files | xargs -r grep -l '^X-Rcpt-Args: <t-down@example.org>')" ] &&
	[ "$(sm_queue_count)" -eq 0 ]; echo $?)" "milter stopped: the message is neither delivered nor queued"
echo "# run time $(($(date +%s) - start_time)) s inside the namespaces"

echo "1..$n"
