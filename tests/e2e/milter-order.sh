#!/bin/sh
# End-to-end: which message does a milter that runs AFTER smime-milter see?
# (issue 13, "Place in the MTA"; INSTALL, sections 9 and 10)
#
#   sh tests/e2e/milter-order.sh                  Postfix
#   MO_MTA=sendmail sh tests/e2e/milter-order.sh  Sendmail
#                             (tests/e2e/milter-order-sendmail.sh)
#   (KEEP=1 keeps the work directory)
#
# One private MTA (tests/lib/postfix.sh or sendmail.sh), smime-milter, and
# a recording milter (tests/lib/recmilter.c) that writes the header fields
# and the body it is handed into a file per message and accepts.  Two ports:
#   "after"   smime-milter, then recmilter.  Postfix: smtpd_milters in
#             main.cf (the same list is non_smtpd_milters, for sendmail(1)
#             through pickup).  Sendmail: two INPUT_MAIL_FILTER lines, in
#             that order (the global InputMailFilters).
#   "before"  recmilter, then smime-milter: the control, where recmilter
#             sees the message as the client sent it.  Postfix: a second
#             smtpd with -o smtpd_milters in master.cf.  Sendmail: a second
#             DAEMON_OPTIONS with InputMailFilters=rec;smime, the
#             per-daemon syntax INSTALL documents (its order differs from
#             the global one, so the checks also show that it is obeyed).
# Sent to each port:
#   outbound  plain text from andi, client 127.0.0.1 (internal): signed;
#   inbound   openssl cms -encrypt to andi's certificate from a partner,
#             client 127.0.0.2 (internal_hosts is 127.0.0.1/32 here),
#             envelope recipient andi: decrypted, and stamped with an
#             Authentication-Results field;
# and, with Postfix, once outbound through sendmail(1) and pickup.  For
# each message the checks say what recmilter saw: the signed multipart or
# the original; the decrypted entity and our Authentication-Results, or
# the smime.p7m.  Sendmail runs in private namespaces (as
# tests/e2e/sendmail.sh); the test SKIPs when they or its .debs cannot be
# had.  Prints TAP.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
. "$TOP/tests/lib/e2e.sh"
MO_MTA=${MO_MTA:-postfix}
if [ "$MO_MTA" = sendmail ]; then
	. "$TOP/tests/lib/sendmail.sh"
	E2E_MTA=Sendmail
	if [ "${SM_ISOLATED:-0}" != 1 ]; then
		# outside the namespaces (apt-get still has the network); sm_isolate
		# returns only when it cannot make them
		SM_WHY="needs root (sendmail daemon, namespaces)"
		[ "$(id -u)" != 0 ] || { sm_fetch && sm_isolate "$0" "$@"; }
		printf 'ok 1 - Sendmail milter order # SKIP %s\n1..1\n' "$SM_WHY"
		exit 0
	fi
fi
renice -n 10 $$ >/dev/null 2>&1 # everything this test starts runs niced
REC=$TOP/tests/lib/recmilter
AUTHSERV=gw.banjarkota.test
e2e_begin "order-$MO_MTA"
rec_pid=
fx_on_exit() {
	me_stop "$rec_pid"
	rec_pid=
	me_stop "$milter_pid" 30
	milter_pid=
	if [ "$MO_MTA" = sendmail ]; then sm_stop; else pf_stop; fi
}
[ -x "$REC" ] || bail "tests/lib/recmilter is built (make test-bins)"
if [ "$MO_MTA" = sendmail ]; then
	sm_unpack "$work/root" || bail "sendmail unpacked: $SM_WHY"
	ok "sendmail-bin, sendmail-cf, m4 unpacked ($(basename "$(sm__deb sendmail-bin)"))"
fi

# ---------------------------------------------------------------- setup
e2e_pki
set -- $(pf_free_ports 5)
milter_port=$1 rec_port=$2 smtp_port=$3 before_port=$4 sink_port=$5
conf=$work/smime-milter.conf
me_conf "$conf" "$work" "inet:$milter_port@127.0.0.1" "authserv_id = \"$AUTHSERV\";" \
	'internal_hosts = [ "127.0.0.1/32" ];'
me_import "$conf" "$pki" init andi || bail "smimectl init, andi imported"
ok "smimectl init, andi imported"
e2e_start_milter

mkdir -p "$work/rec" "$work/send" "$work/out" "$work/mta"
"$REC" "inet:$rec_port@127.0.0.1" "$work/rec" >"$work/rec.log" 2>&1 &
rec_pid=$!
me_wait_port "$rec_port" 15 && kill -0 "$rec_pid" 2>/dev/null ||
	bail "recmilter listens on inet:$rec_port@127.0.0.1"
ok "recmilter listens on inet:$rec_port@127.0.0.1"

if [ "$MO_MTA" = sendmail ]; then
	# smime (sm_start's INPUT_MAIL_FILTER), then rec: the global list;
	# rec;smime on the control port.  The city's domain is relayed to.
	SM_EXTRA_MC="INPUT_MAIL_FILTER(\`rec', \`S=inet:$rec_port@127.0.0.1, F=T, T=S:30s;R:60s;E:5m')dnl
DAEMON_OPTIONS(\`Port=$before_port, Addr=127.0.0.1, Name=Before, InputMailFilters=rec;smime')dnl
RELAY_DOMAIN(\`banjarkota.go.id')dnl"
	sm_start "$work/mta" "$smtp_port" "$sink_port" "inet:$milter_port@127.0.0.1" ||
		bail "private sendmail started"
	grep -q '^O InputMailFilters=smime, rec$' "$work/mta/sendmail.cf" &&
		grep -q "^O DaemonPortOptions=Port=$before_port, Addr=127.0.0.1, Name=Before, InputMailFilters=rec;smime\$" \
			"$work/mta/sendmail.cf"
	tap $? "Sendmail: port $smtp_port with INPUT_MAIL_FILTER smime, rec; port $before_port with InputMailFilters=rec;smime"
	# INSTALL's per-daemon lists, as written there, make a .cf that
	# declares the four filters, has no global list, and gives each daemon
	# its list (that such a list is obeyed, the control port shows)
	{
		echo "OSTYPE(\`linux')dnl"
		sed -n '/name them per daemon:/,/^(Replace the DAEMON_OPTIONS/s/^    //p' "$TOP/INSTALL"
		echo "MAILER(\`smtp')dnl"
	} >"$work/install.mc"
	"$SM_M4" -D_CF_DIR_="$SM_CFDIR/" "$SM_CFDIR/m4/cf.m4" "$work/install.mc" \
		>"$work/install.cf" 2>"$work/install.m4err" && [ ! -s "$work/install.m4err" ] &&
		[ "$(grep -cE '^X(smime-milter|opendkim|opendmarc|rspamd), S=inet:[0-9]+@127.0.0.1, F=T' "$work/install.cf")" = 4 ] &&
		! grep -q '^O InputMailFilters' "$work/install.cf" &&
		grep -q '^O DaemonPortOptions=Port=smtp, Name=MTA, InputMailFilters=opendkim;opendmarc;smime-milter;rspamd$' "$work/install.cf" &&
		grep -q '^O DaemonPortOptions=Port=submission, Name=MSA, M=Ea, InputMailFilters=smime-milter;opendkim$' "$work/install.cf"
	tap $? "INSTALL's MAIL_FILTER and per-daemon InputMailFilters lines build a sendmail.cf with those lists"
else
	M=inet:127.0.0.1:$milter_port R=inet:127.0.0.1:$rec_port
	pf_start "$work/mta" "$smtp_port" "$sink_port" "$M, $R" ||
		bail "private Postfix started"
	printf '127.0.0.1:%s inet n - n - - smtpd\n  -o smtpd_milters=%s,%s\n' \
		"$before_port" "$R" "$M" >>"$PF_CONF/master.cf"
	MAIL_CONFIG=$PF_CONF postfix -c "$PF_CONF" reload >"$work/reload.log" 2>&1 &&
		pf__wait_port "$before_port" 15 || bail "Postfix reloaded with the second smtpd"
	grep -q "^smtpd_milters = $M, $R\$" "$PF_CONF/main.cf" &&
		grep -q "^non_smtpd_milters = $M, $R\$" "$PF_CONF/main.cf"
	tap $? "Postfix: smtpd $smtp_port and pickup with [smime-milter, recmilter], smtpd $before_port with [recmilter, smime-milter]"
fi

# ---------------------------------------------------------------- messages
# mo_msg ID [FROM TO]: the header fields of a message with Message-ID
# <ID@order.test>, on stdout (LF; smimecheck.py crlf makes them CRLF)
mo_msg() {
	printf '%s\n' "From: ${2:-Andi <andi@banjarkota.go.id>}" "To: ${3:-Mitra <partner@mitra.example>}" \
		"Subject: milter order $1" "Date: Tue, 01 Dec 2026 09:00:00 +0700" \
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
# mo_send ID FROM TO PORT SOURCE: one SMTP session from address SOURCE to
# PORT, the message byte for byte (dot-stuffed); one check
mo_send() {
	if "$PY" - "$@" "$work/send/$1.eml" >"$work/send/$1.err" 2>&1 <<'EOF'; then
import smtplib, sys
sender, rcpt, port, src, path = sys.argv[2:]
data = open(path, "rb").read()
data = b"\n".join(b"." + l if l.startswith(b".") else l for l in data.split(b"\n"))
s = smtplib.SMTP("127.0.0.1", int(port), local_hostname="client.test",
                 timeout=120, source_address=(src, 0))
s.ehlo()
for code, what in (s.mail(sender), s.rcpt(rcpt), s.docmd("DATA")):
    if code not in (250, 354):
        sys.exit("refused: %d %s" % (code, what))
s.send(data + b".\r\n")
code, what = s.getreply()
print("%d %s" % (code, what.decode("ascii", "replace")))
sys.exit(0 if code == 250 else 1)
EOF
		sent=$((sent + 1))
		ok "$1: accepted on port $4 from $5"
	else
		nok "$1: accepted on port $4 from $5"
		sed 's/^/#   /' "$work/send/$1.err"
	fi
}
mo_send out-after andi@banjarkota.go.id t-out-after@example.org "$smtp_port" 127.0.0.1
mo_send out-before andi@banjarkota.go.id t-out-before@example.org "$before_port" 127.0.0.1
mo_send in-after partner@mitra.example andi@banjarkota.go.id "$smtp_port" 127.0.0.2
mo_send in-before partner@mitra.example andi@banjarkota.go.id "$before_port" 127.0.0.2
if [ "$MO_MTA" = postfix ]; then
	pf_sendmail andi@banjarkota.go.id t-out-pickup@example.org "$work/send/out-pickup.eml" &&
		sent=$((sent + 1))
	tap $? "out-pickup: submitted with Postfix's sendmail(1)"
	pf_wait_delivered "$sent" 120
else
	sm_wait_delivered "$sent" 120
fi
tap $? "all $sent messages delivered to the sink"
n_rec=$(find "$work/rec" -name '*.eml' | wc -l)
tap "$([ "$n_rec" -eq "$sent" ]; echo $?)" "recmilter recorded $n_rec messages, one for each"

# ---------------------------------------------------------------- what it saw
# mo_facts ID: compares what recmilter saw of message ID with what was sent
# and what was delivered; sets SAW_TYPE (its top-level Content-Type, no
# parameters), SAW_BODY (sent, else delivered, else other), SAW_AR (the
# number of Authentication-Results fields with our authserv-id), OUT_TYPE
# (the delivered copy's Content-Type), OUT_AR (its SAW_AR).  Bodies are
# compared with the line ends made CRLF; trailing empty lines are ignored
# (the sink appends one).
mo_facts() {
	SAW_TYPE=none SAW_BODY=none SAW_AR=0 OUT_TYPE=none OUT_AR=0
	_r=$(grep -l "^Message-ID: *<$1@order.test>" "$work"/rec/*.eml 2>/dev/null | head -1)
	_o=$(pf_sink_files | xargs -r grep -il "^Message-ID: *<$1@order.test>" | head -1)
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
body = "sent" if strip(rb) == strip(sb) else "delivered" if strip(rb) == strip(ob) else "other"
ar = lambda h: len([r for n, r in sc.header_fields(h) if n == b"authentication-results"
                    and r.split(b":", 1)[1].strip().split(b";")[0].strip() == sys.argv[5].encode()])
print("SAW_TYPE=%s SAW_BODY=%s SAW_AR=%d OUT_TYPE=%s OUT_AR=%d"
      % (ctype(rh), body, ar(rh), ctype(oh), ar(oh)))
EOF
	)"
	echo "# $1: recmilter saw $SAW_TYPE, body = the $SAW_BODY one, $SAW_AR A-R; delivered $OUT_TYPE, $OUT_AR A-R"
}

# Outbound.  Both MTAs hand a later milter the message as the earlier ones
# left it.  Postfix's cleanup applies each milter's edits (header edits,
# replacebody) to the queue file before it sends the message to the next
# milter in the list; Sendmail applies them to its envelope and data file
# before the next filter's turn.  So after smime-milter, recmilter sees
# the multipart/signed entity, byte for byte what is delivered (a DKIM
# signer there signs what goes out); before it, the original text/plain.
# With Postfix the same holds for non_smtpd_milters (pickup goes through
# the same cleanup code).
outs=out-after
[ "$MO_MTA" = postfix ] && outs="$outs out-pickup"
for id in $outs; do
	mo_facts "$id"
	tap "$([ "$OUT_TYPE" = multipart/signed ]; echo $?)" "$id: delivered signed ($OUT_TYPE)"
	tap "$([ "$SAW_TYPE" = multipart/signed ] && [ "$SAW_BODY" = delivered ]; echo $?)" \
		"$id: the milter after smime-milter sees the signed multipart, the body that is delivered"
done
mo_facts out-before
tap "$([ "$OUT_TYPE" = multipart/signed ]; echo $?)" "out-before: delivered signed ($OUT_TYPE)"
tap "$([ "$SAW_TYPE" = text/plain ] && [ "$SAW_BODY" = sent ]; echo $?)" \
	"out-before (control): the milter before smime-milter sees the original text/plain"

# Inbound, for the same reason: after smime-milter, recmilter sees the
# decrypted entity (its Content-* fields in place of the smime.p7m's) and
# the Authentication-Results field smime-milter added, as a virus or spam
# scanner there would; before it, the application/pkcs7-mime as sent and
# no stamp, as a DKIM, DMARC or ARC verifier there must.
for id in in-after in-before; do
	mo_facts "$id"
	tap "$([ "$OUT_TYPE" = text/plain ] && [ "$OUT_AR" = 1 ]; echo $?)" \
		"$id: delivered decrypted ($OUT_TYPE) with one Authentication-Results by $AUTHSERV"
	if [ $id = in-after ]; then
		tap "$([ "$SAW_TYPE" = text/plain ] && [ "$SAW_BODY" = delivered ] && [ "$SAW_AR" = 1 ]; echo $?)" \
			"$id: the milter after smime-milter sees the decrypted entity and our Authentication-Results"
	else
		tap "$([ "$SAW_TYPE" = application/pkcs7-mime ] && [ "$SAW_BODY" = sent ] && [ "$SAW_AR" = 0 ]; echo $?)" \
			"$id (control): the milter before smime-milter sees the smime.p7m as sent, no stamp"
	fi
done

echo "1..$n"
