#!/bin/sh
# End-to-end: which message does a milter that runs AFTER smime-milter see
# in Postfix?  (issue 13, "Place in the MTA"; INSTALL, section 9)
#
#   sh tests/e2e/milter-order.sh          (KEEP=1 keeps the work directory)
#
# One private Postfix (tests/lib/postfix.sh), smime-milter, and a recording
# milter (tests/lib/recmilter.c) that writes the header fields and the body
# it is handed into a file per message and accepts.  Two smtpd services:
#   "after"   smtpd_milters = smime-milter, recmilter  (main.cf; the same
#             list is non_smtpd_milters, for sendmail(1) through pickup)
#   "before"  smtpd_milters = recmilter, smime-milter  (master.cf -o; the
#             control: recmilter sees the message as the client sent it)
# Sent to each:
#   outbound  plain text from andi, client 127.0.0.1 (internal): signed;
#   inbound   openssl cms -encrypt to andi's certificate, from a partner
#             (XCLIENT ADDR=192.0.2.1, not internal), envelope recipient
#             andi: decrypted, and stamped with Authentication-Results;
# and once outbound through sendmail(1)/pickup (non_smtpd_milters).
# For each message the checks say what recmilter saw: the signed multipart
# or the original, the decrypted entity and our Authentication-Results or
# the smime.p7m.  Prints TAP.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
. "$TOP/tests/lib/e2e.sh"
renice -n 10 $$ >/dev/null 2>&1 # everything this test starts runs niced
REC=$TOP/tests/lib/recmilter
AUTHSERV=gw.banjarkota.test
e2e_begin order
rec_pid=
fx_on_exit() {
	me_stop "$rec_pid"
	rec_pid=
	me_stop "$milter_pid" 30
	milter_pid=
	pf_stop
}
[ -x "$REC" ] || bail "tests/lib/recmilter is built (make test-bins)"

# ---------------------------------------------------------------- setup
e2e_pki
set -- $(pf_free_ports 5)
milter_port=$1 rec_port=$2 smtp_port=$3 before_port=$4 sink_port=$5
conf=$work/smime-milter.conf
me_conf "$conf" "$work" "inet:$milter_port@127.0.0.1" "authserv_id = \"$AUTHSERV\";"
me_import "$conf" "$pki" init andi || bail "smimectl init, andi imported"
ok "smimectl init, andi imported"
e2e_start_milter

mkdir -p "$work/rec" "$work/send" "$work/out" "$work/pf"
"$REC" "inet:$rec_port@127.0.0.1" "$work/rec" >"$work/rec.log" 2>&1 &
rec_pid=$!
me_wait_port "$rec_port" 15 && kill -0 "$rec_pid" 2>/dev/null ||
	bail "recmilter listens on inet:$rec_port@127.0.0.1"
ok "recmilter listens on inet:$rec_port@127.0.0.1"

M=inet:127.0.0.1:$milter_port R=inet:127.0.0.1:$rec_port
PF_EXTRA_MAIN='smtpd_authorized_xclient_hosts = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, check_client_access static:OK, reject'
pf_start "$work/pf" "$smtp_port" "$sink_port" "$M, $R" ||
	bail "private Postfix started"
printf '127.0.0.1:%s inet n - n - - smtpd\n  -o smtpd_milters=%s,%s\n' \
	"$before_port" "$R" "$M" >>"$PF_CONF/master.cf"
MAIL_CONFIG=$PF_CONF postfix -c "$PF_CONF" reload >"$work/reload.log" 2>&1 &&
	pf__wait_port "$before_port" 15 || bail "Postfix reloaded with the second smtpd"
grep -q "^smtpd_milters = $M, $R\$" "$PF_CONF/main.cf" &&
	grep -q "^non_smtpd_milters = $M, $R\$" "$PF_CONF/main.cf"
tap $? "Postfix: smtpd $smtp_port and pickup with [smime-milter, recmilter], smtpd $before_port with [recmilter, smime-milter]"

# ---------------------------------------------------------------- messages
# mo_msg ID [FROM TO SUBJECT]: headers of a message with Message-ID
# <ID@order.test>, on stdout (LF; the sender makes them CRLF)
mo_msg() {
	printf '%s\n' "From: ${2:-Andi <andi@banjarkota.go.id>}" "To: ${3:-Mitra <partner@mitra.example>}" \
		"Subject: ${4:-milter order $1}" "Date: Tue, 01 Dec 2026 09:00:00 +0700" \
		"Message-ID: <$1@order.test>"
}
for id in out-after out-before out-pickup; do
	{
		mo_msg "$id"
		printf '%s\n' "MIME-Version: 1.0" "Content-Type: text/plain; charset=us-ascii" \
			"" "Surat dinas ($id): the second milter must see what smime-milter wrote."
	} >"$work/$id.src"
	"$PY" "$SC" crlf "$work/$id.src" "$work/send/$id.eml"
done
# the partner's reply, encrypted to andi's certificate by openssl cms
printf 'Content-Type: text/plain; charset=us-ascii\r\n\r\nBalasan terenkripsi dari mitra.\r\n' \
	>"$work/inner.eml"
openssl cms -encrypt -aes256 -binary -in "$work/inner.eml" -outform SMIME \
	-out "$work/inner.p7m" "$pki/andi.crt.pem" 2>"$work/cms.err"
tap $? "openssl cms -encrypt to andi's certificate"
for id in in-after in-before; do
	{
		mo_msg "$id" "Mitra <partner@mitra.example>" "Andi <andi@banjarkota.go.id>"
		cat "$work/inner.p7m"
	} >"$work/$id.src"
	"$PY" "$SC" crlf "$work/$id.src" "$work/send/$id.eml"
done

# ---------------------------------------------------------------- send
sent=0
mo_send() { # mo_send ID FROM TO PORT
	_c=$(pf_send "$2" "$3" "$work/send/$1.eml" "$4" 2>"$work/send/$1.err")
	if [ "$_c" = 250 ]; then
		sent=$((sent + 1))
		ok "$1: accepted on port $4"
	else
		nok "$1: accepted on port $4 (reply $_c)"
		sed 's/^/#   /' "$work/send/$1.err"
	fi
}
mo_send out-after andi@banjarkota.go.id t-out-after@example.org "$smtp_port"
mo_send out-before andi@banjarkota.go.id t-out-before@example.org "$before_port"
export PF_XCLIENT="ADDR=192.0.2.1 NAME=mx.mitra.example"
mo_send in-after partner@mitra.example andi@banjarkota.go.id "$smtp_port"
mo_send in-before partner@mitra.example andi@banjarkota.go.id "$before_port"
unset PF_XCLIENT
pf_sendmail andi@banjarkota.go.id t-out-pickup@example.org "$work/send/out-pickup.eml" &&
	sent=$((sent + 1))
tap $? "out-pickup: submitted with Postfix's sendmail(1)"

if pf_wait_delivered "$sent" 120; then
	ok "all $sent messages delivered to the sink"
else
	nok "all $sent messages delivered to the sink"
	tail -20 "$work/pf/maillog" | sed 's/^/# maillog: /'
fi
n_rec=$(find "$work/rec" -name '*.eml' | wc -l)
tap "$([ "$n_rec" -eq "$sent" ]; echo $?)" "recmilter recorded $n_rec messages, one for each"

# ---------------------------------------------------------------- what it saw
# mo_facts ID: compares what recmilter saw of message ID with what was sent
# and what was delivered; sets SAW_TYPE (its top-level Content-Type, no
# parameters), SAW_BODY (delivered, sent or other), SAW_AR (the number of
# Authentication-Results fields with our authserv-id), OUT_TYPE (the
# delivered copy's Content-Type).  Bodies are compared with the line ends
# made CRLF; trailing empty lines are ignored (the sink appends one).
mo_facts() {
	SAW_TYPE=none SAW_BODY=none SAW_AR=0 OUT_TYPE=none
	_r=$(grep -l "^Message-ID: *<$1@order.test>" "$work"/rec/*.eml 2>/dev/null | head -1)
	_o=$(pf_sink_files | xargs -r grep -l "^Message-ID: *<$1@order.test>" | head -1)
	[ -n "$_r" ] && [ -n "$_o" ] || {
		echo "# $1: recorded '${_r:-none}', delivered '${_o:-none}'"
		return 1
	}
	pf_strip_sink "$_o" >"$work/out/$1.eml"
	cp "$_r" "$work/out/$1.rec"
	eval "$("$PY" - "$TOP/tests/lib" "$work/out/$1.rec" "$work/send/$1.eml" \
		"$work/out/$1.eml" "$AUTHSERV" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
import smimecheck as sc
rh, rb = sc.split_head_body(sc.read_canon(sys.argv[2]))
sh, sb = sc.split_head_body(sc.read_canon(sys.argv[3]))
oh, ob = sc.split_head_body(sc.read_canon(sys.argv[4]))
strip = lambda b: b.rstrip(b"\r\n")
ctype = lambda h: (sc.parse_headers(h).get_content_type() if h else "none")
body = "delivered" if strip(rb) == strip(ob) else "sent" if strip(rb) == strip(sb) else "other"
ar = [r for n, r in sc.header_fields(rh) if n == b"authentication-results"
      and r.split(b":", 1)[1].strip().split(b";")[0].strip() == sys.argv[5].encode()]
print("SAW_TYPE=%s SAW_BODY=%s SAW_AR=%d OUT_TYPE=%s" % (ctype(rh), body, len(ar), ctype(oh)))
EOF
	)"
	echo "# $1: recmilter saw $SAW_TYPE, body = the $SAW_BODY one, $SAW_AR A-R; delivered $OUT_TYPE"
}

# Outbound.  Postfix hands a later milter the message as the earlier ones
# left it: cleanup applies each milter's edits to the queue file (header
# edits, replacebody) before it sends the message to the next milter in the
# list.  So after smime-milter, recmilter sees the multipart/signed entity,
# byte for byte what is delivered (a DKIM signer there signs what goes
# out); before it, the original text/plain.  The same holds for
# non_smtpd_milters (pickup goes through the same cleanup code).
for id in out-after out-pickup; do
	mo_facts "$id"
	tap "$([ "$OUT_TYPE" = multipart/signed ]; echo $?)" "$id: delivered signed ($OUT_TYPE)"
	tap "$([ "$SAW_TYPE" = multipart/signed ] && [ "$SAW_BODY" = delivered ]; echo $?)" \
		"$id: the milter after smime-milter sees the signed multipart, the body that is delivered"
done
mo_facts out-before
tap "$([ "$OUT_TYPE" = multipart/signed ]; echo $?)" "out-before: delivered signed ($OUT_TYPE)"
tap "$([ "$SAW_TYPE" = text/plain ] && [ "$SAW_BODY" = sent ]; echo $?)" \
	"out-before (control): the milter before smime-milter sees the original text/plain"

echo "1..$n"
