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
set -u
TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
export TOP
. "$TOP/tests/lib/sendmail.sh"
. "$TOP/tests/lib/verify.sh"
. "$TOP/tests/lib/milterenv.sh" # me_conf, me_stop
PY=/usr/bin/python3
SC="$TOP/tests/lib/smimecheck.py"
MILTER=${SMIME_MILTER:-$TOP/milter/smime-milter}
CTL=${SMIMECTL:-$TOP/admin/smimectl}

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

work=$(mktemp -d /tmp/smime-sm-e2e.XXXXXX)
chmod 0755 "$work"
milter_pid=
n=0

cleanup() {
	me_stop "$milter_pid"
	milter_pid=
	sm_stop
	if [ "${KEEP:-0}" = 1 ]; then
		echo "# work directory kept: $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

ok() { n=$((n + 1)); echo "ok $n - $*"; }
nok() { n=$((n + 1)); echo "not ok $n - $*"; }
tap() { # tap CONDITION-RESULT(0/1) DESCRIPTION
	if [ "$1" = 0 ]; then ok "$2"; else nok "$2"; fi
}
bail() {
	nok "$*"
	[ -f "$work/milter.log" ] && tail -20 "$work/milter.log" | sed 's/^/# milter: /'
	echo "1..$n"
	exit 1
}
for p in "$MILTER" "$CTL"; do
	[ -x "$p" ] || bail "$p is built (run make first)"
done

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
if sh "$TOP/tests/lib/pki.sh" "$work/pki" >"$work/pki.log" 2>&1; then
	ok "test PKI created"
else
	sed 's/^/# /' "$work/pki.log"
	bail "test PKI created"
fi
pki=$work/pki

mkdir -p "$work/gen/good" "$work/gen/bad" "$work/send" "$work/out" "$work/sm"
"$PY" "$TOP/tests/lib/mkcorpus.py" "$work/gen/good" "$work/gen/bad" ||
	bail "generated corpus written"

set -- $(pf_free_ports 4)
milter_port=$1 smtp_port=$2 sink_port=$3 base_port=$4
conf=$work/smime-milter.conf
me_conf "$conf" "$work" "inet:$milter_port@127.0.0.1" # pidfile $conf.pid

. "$TOP/tests/lib/expect.sh" # ctl
ctl "smimectl init" init
ctl "smimectl import andi (individual, PKCS#12)" import \
	--mailbox andi@banjarkota.go.id --kind individual \
	--p12 "$pki/andi.p12" --passphrase-file "$pki/andi.pass"
ctl "smimectl import sekda (role, PEM cert + key)" import \
	--mailbox sekda@banjarkota.go.id --kind role \
	--cert "$pki/sekda.crt.pem" --key "$pki/sekda.key.pem"
ctl "smimectl import noreply (system, PKCS#12)" import \
	--mailbox noreply@banjarkota.go.id --kind system \
	--p12 "$pki/noreply.p12" --passphrase-file "$pki/noreply.pass"
ctl "smimectl import legacy (address only in subject DN, PKCS#12)" import \
	--mailbox legacy@banjarkota.go.id --kind individual \
	--p12 "$pki/legacy.p12" --passphrase-file "$pki/legacy.pass"
ctl "smimectl import ec (EC P-256, PKCS#12)" import \
	--mailbox ec@banjarkota.go.id --kind individual \
	--p12 "$pki/ec.p12" --passphrase-file "$pki/ec.pass"

# ---------------------------------------------------------------- start
"$MILTER" -c "$conf" -f >"$work/milter.log" 2>&1 &
milter_pid=$!
if pf__wait_port "$milter_port" 15 && kill -0 "$milter_pid" 2>/dev/null; then
	ok "milter listens on inet:$milter_port@127.0.0.1"
else
	bail "milter listens on inet:$milter_port@127.0.0.1"
fi

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
# Each message gets its own envelope recipient t-TAG@example.org, which is how
# the delivered copy is found again (X-Rcpt-Args in the sink dump).
# not a signing domain
other=$work/other-domain.eml
printf '%s\r\n' "From: Other Org <other@example.org>" "To: someone@example.org" \
	"Subject: message from a domain the milter does not sign for" \
	"Date: Tue, 24 Nov 2026 13:00:00 +0700" "Message-ID: <other-1@example.org>" \
	"MIME-Version: 1.0" "Content-Type: text/plain; charset=utf-8" \
	"Content-Transfer-Encoding: 8bit" "" "Salam dari luar – must stay untouched." \
	>"$other"
good=
: >"$work/send.list"
for f in "$TOP"/tests/data/corpus/*.eml "$work"/gen/good/*.eml; do
	tag=$(basename "$f" .eml)
	good="$good $tag"
	echo "$tag $f" >>"$work/send.list"
done
echo "other-domain $other" >>"$work/send.list"
bad=
for f in "$TOP"/tests/data/bad/*.eml "$work"/gen/bad/*.eml; do
	tag=$(basename "$f" .eml)
	mode=
	case $tag in *bare-lf*) mode=raw ;; esac
	bad="$bad $tag"
	echo "$tag $f - $mode" >>"$work/send.list"
	echo "base-$tag $f $base_port $mode" >>"$work/send.list"
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

# delivered TAG -> writes $work/out/TAG.eml, returns 1 if not delivered
delivered() {
	_f=$(pf_sink_files | while read -r _x; do
		if grep -q "^X-Rcpt-Args: <t-$1@example.org>" "$_x"; then echo "$_x"; break; fi
	done)
	[ -n "$_f" ] || return 1
	pf_strip_sink "$_f" >"$work/out/$1.eml"
}

# sm_refolded ORIGINAL DELIVERED: Sendmail rebuilds address headers (From,
# To, Cc, ...) and folds them its own way (",\r\n        " between
# addresses), with or without a milter; those headers are outside the
# signature.  Succeeds, printing the names, when every original non-Content
# header is present unchanged except address headers that differ only in
# folding white space.
sm_refolded() {
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
    print(("s " if len(names) > 1 else " ") + ", ".join(names))
sys.exit(0 if ok and names else 1)
EOF
}

# sm_same_as_base BASE DELIVERED: same body bytes and same header fields,
# except the ones Sendmail writes per copy (Received; Message-Id and Date
# when the message had none carry the queue id and time).
sm_same_as_base() {
	"$PY" - "$TOP/tests/lib" "$1" "$2" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
import smimecheck as sc
PER_COPY = {b"received", b"message-id", b"date"}
bh, bb = sc.split_head_body(sc.read_canon(sys.argv[2]))
dh, db = sc.split_head_body(sc.read_canon(sys.argv[3]))
ok = bb == db
if not ok:
    sc.diag("body differs from the baseline copy (%d vs %d bytes)" % (len(db), len(bb)))
b = sorted(r for n, r in sc.header_fields(bh) if n not in PER_COPY)
d = sorted(r for n, r in sc.header_fields(dh) if n not in PER_COPY)
if b != d:
    sc.diag("header fields differ from the baseline copy: %s" % sc.show(b"|".join(set(b) ^ set(d))))
    ok = False
sys.exit(0 if ok else 1)
EOF
}

# ---------------------------------------------------------------- verify
for tag in $good; do
	if ! delivered "$tag"; then
		nok "$tag: delivered"
		continue
	fi
	ok "$tag: delivered"
	who=$(cat "$work/send/$tag.from")
	echo "# --- $tag (signer $who)"
	verify_message "$work/out/$tag.eml" "$work/send/$tag.eml" "$who" "$pki"
	tap "$([ $VM_STRUCT = ok ]; echo $?)" "$tag: multipart/signed structure, 7-bit entity"
	tap "$([ $VM_OPENSSL = ok ]; echo $?)" "$tag: openssl cms verifies (root-only trust)"
	tap "$([ $VM_GPGSM = ok ]; echo $?)" "$tag: gpgsm verifies (root-only trust)"
	tap "$([ $VM_SIGNER = ok ]; echo $?)" "$tag: signer certificate is $who"
	tap "$([ $VM_CMS = ok ]; echo $?)" "$tag: CMS attributes and embedded chain"
	if [ $VM_HEADERS = ok ]; then
		ok "$tag: original headers preserved outside"
	elif refolded=$(sm_refolded "$work/send/$tag.eml" "$work/out/$tag.eml"); then
		ok "$tag: original headers preserved outside (sendmail refolded the address header$refolded)"
	else
		nok "$tag: original headers preserved outside"
	fi
	tap "$([ $VM_CONTENT = ok ]; echo $?)" "$tag: content ok (decoded parts equal)"
	# macro i: the milter logs sendmail's queue id, not NOQUEUE
	qid=$(cat "$work/send/$tag.qid")
	if [ "$qid" != - ] && grep -q "$qid: signed for $who " "$work/milter.log"; then
		ok "$tag: milter log says \"$qid: signed for $who\" (sendmail's queue id)"
	else
		nok "$tag: milter log names sendmail's queue id '${qid:-none in the 250 reply}'"
		grep -i "$who" "$work/milter.log" | tail -3 | sed 's/^/# milter: /'
	fi
done

if delivered other-domain; then
	ok "other-domain: delivered"
	if vm_is_signed "$work/out/other-domain.eml"; then
		nok "other-domain: not signed"
	else
		ok "other-domain: not signed"
	fi
	"$PY" "$SC" same-body "$work/send/other-domain.eml" "$work/out/other-domain.eml"
	tap $? "other-domain: arrived untouched"
else
	nok "other-domain: delivered"
fi

for tag in $bad; do
	case " $refused " in *" $tag "*) continue ;; esac
	if ! delivered "$tag"; then
		nok "$tag: delivered"
		continue
	fi
	ok "$tag: delivered"
	echo "# --- $tag"
	have_base=no
	delivered "base-$tag" && have_base=yes
	if vm_is_signed "$work/out/$tag.eml"; then
		verify_message "$work/out/$tag.eml" - - "$pki"
		tap $? "$tag: signed, and the signature verifies (openssl and gpgsm)"
		# what was signed must be what Sendmail alone would have delivered
		if [ $have_base = yes ]; then
			"$PY" "$SC" content "$work/out/base-$tag.eml" "$work/out/$tag.eml"
			tap $? "$tag: signed content equals what Sendmail alone delivers"
		else
			nok "$tag: signed content equals what Sendmail alone delivers (no baseline copy)"
		fi
		if "$PY" "$SC" headers "$work/send/$tag.eml" "$work/out/$tag.eml" >"$work/hdr.log"; then
			ok "$tag: original headers preserved outside"
		elif refolded=$(sm_refolded "$work/send/$tag.eml" "$work/out/$tag.eml"); then
			ok "$tag: original headers preserved outside (sendmail refolded the address header$refolded)"
		else
			nok "$tag: original headers preserved outside"
			grep -v 'present unchanged' "$work/hdr.log" | head -5
		fi
	elif [ $have_base = yes ]; then
		sm_same_as_base "$work/out/base-$tag.eml" "$work/out/$tag.eml"
		tap $? "$tag: not signed, and identical to what Sendmail alone delivers"
	else
		nok "$tag: not signed, and no baseline copy to compare with"
	fi
done

# ---------------------------------------------------------------- health
if grep -q 'NOQUEUE' "$work/milter.log"; then
	nok "no milter log line without a queue id (macro i missing)"
	grep 'NOQUEUE' "$work/milter.log" | head -5 | sed 's/^/# milter: /'
else
	ok "no milter log line without a queue id"
fi
if kill -0 "$milter_pid" 2>/dev/null && [ -s "$conf.pid" ]; then
	ok "milter still running after all messages (pid $milter_pid)"
else
	nok "milter still running after all messages"
	tail -30 "$work/milter.log" | sed 's/^/# milter: /'
fi
if kill -0 "$SM_PID" 2>/dev/null; then
	ok "sendmail daemon still running (pid $SM_PID in the test's PID namespace)"
else
	nok "sendmail daemon still running"
	sed 's/^/# sendmail: /' "$work/sm/sendmail.out" | tail -20
fi
if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$work/milter.log"; then
	nok "no sanitizer report in the milter log"
	grep -E -A10 'AddressSanitizer|LeakSanitizer|runtime error:' "$work/milter.log" | head -40 | sed 's/^/# /'
else
	ok "no sanitizer report in the milter log"
fi
grep -c ' signed for ' "$work/milter.log" | sed 's/^/# milter log lines "signed for": /'

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
