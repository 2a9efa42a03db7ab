# tests/lib/postfix.sh -- a private, throw-away Postfix instance plus an
# smtp-sink that captures what Postfix relays.  Source it:  . tests/lib/postfix.sh
#
#   pf_start WORKDIR SMTP_PORT SINK_PORT MILTER_SOCKET
#       Writes WORKDIR/etc/{main,master}.cf, creates WORKDIR/spool (queue),
#       WORKDIR/data, WORKDIR/sink (dump files), WORKDIR/maillog, then starts
#       smtp-sink on 127.0.0.1:SINK_PORT and Postfix with an smtpd on
#       127.0.0.1:SMTP_PORT that relays everything to [127.0.0.1]:SINK_PORT.
#       MILTER_SOCKET (libmilter's "inet:PORT@127.0.0.1" or Postfix's
#       "inet:127.0.0.1:PORT", "unix:/path", or "" for none) goes into
#       smtpd_milters and non_smtpd_milters.  Extra main.cf lines
#       may be given in $PF_EXTRA_MAIN (one "name = value" per line); each
#       replaces the default setting of the same name.
#       Returns non-zero (and prints "# ..." diagnostics) on failure.
#       If $PF_BASELINE_PORT is set, a second smtpd listens there with no
#       milter at all (a baseline: what Postfix alone makes of a message).
#   pf_send FROM TO FILE [PORT]
#       Sends FILE byte for byte (only SMTP dot-stuffing is added) via SMTP to
#       127.0.0.1:SMTP_PORT (or PORT).  Prints the server's final reply code;
#       returns 0 when the message was accepted (2xx), 1 otherwise.  TO may
#       list several recipients separated by commas: each RCPT reply goes to
#       stderr as "# pf_send rcpt ADDR: CODE TEXT", and the message is sent
#       when at least one was accepted.
#       With $PF_XCLIENT set (e.g. "ADDR=192.0.2.1 NAME=mx.example.net" or
#       "... LOGIN=andi"), the client identity is overridden with XCLIENT
#       first; this needs PF_EXTRA_MAIN to authorize 127.0.0.1 for XCLIENT
#       (smtpd_authorized_xclient_hosts) and to relay for such clients.
#   pf_free_ports N
#       Prints N distinct currently free TCP ports on 127.0.0.1, one a line.
#   pf_wait_delivered N TIMEOUT
#       Waits up to TIMEOUT seconds until N messages are complete in the sink.
#   pf_sink_files
#       Lists the complete dump files in the sink, one path per line, oldest
#       first.
#   pf_strip_sink FILE
#       Writes the message of one dump file to stdout without the lines that
#       smtp-sink prepends (X-Client-Addr ... Received) and without the empty
#       line it appends.  Line ends are CRLF as on the wire.
#   pf_sendmail FROM TO FILE
#       Local submission with Postfix's sendmail (maildrop -> pickup ->
#       cleanup, which applies non_smtpd_milters); pickup scans every 2 s.
#   pf_flush        asks Postfix to retry deferred mail now.
#   pf_queue_count  prints the number of messages still queued.
#   pf_stop         stops Postfix and smtp-sink, leaves WORKDIR in place.
#   pf_save NAME / pf_use NAME
#                   more than one instance in a test: pf_save keeps the
#                   settings of the current one (the last pf_start's)
#                   under NAME, pf_use NAME makes them current again, for
#                   pf_send, pf_sink_files, pf_wait_delivered, pf_stop...
#   pf_kill PID [SECONDS]
#                   stops a child process: TERM, up to SECONDS (5) for it
#                   to exit, then KILL, and reaps it.
#
# Everything listens on 127.0.0.1 only; DNS is disabled.  Needs root (Postfix
# master) and the postfix user/postdrop group of the Debian package.

PF_PY=${PF_PY:-/usr/bin/python3}

# pf__usage4 NAME ARGS...: 0 when there are four ARGS, else the usage line
# of NAME (pf_start, sm_start) on stderr and 2
pf__usage4() {
	[ $# -eq 5 ] && return 0
	echo "# usage: $1 WORKDIR SMTP_PORT SINK_PORT MILTER_SOCKET" >&2
	return 2
}

pf_start() {
	pf__usage4 pf_start "$@" || return 2
	PF_WORKDIR=$(cd "$1" && pwd) || return 1
	PF_SMTP_PORT=$2
	PF_SINK_PORT=$3
	# libmilter spells inet sockets "inet:PORT@HOST", Postfix "inet:HOST:PORT"
	case $4 in
	inet:*@*)
		_p=${4#inet:}
		PF_MILTER="inet:${_p#*@}:${_p%%@*}"
		;;
	*) PF_MILTER=$4 ;;
	esac
	PF_CONF=$PF_WORKDIR/etc
	PF_SINK_DIR=$PF_WORKDIR/sink
	PF_SINK_PID=
	# Postfix daemons run as "postfix" and must reach the queue; the sink
	# writes as "postfix" too.
	chmod 0755 "$PF_WORKDIR"
	mkdir -p "$PF_CONF" "$PF_WORKDIR/spool" "$PF_WORKDIR/data" "$PF_SINK_DIR"
	chown postfix "$PF_WORKDIR/data" "$PF_SINK_DIR"
	chmod 0755 "$PF_CONF" "$PF_WORKDIR/spool"
	: >"$PF_WORKDIR/maillog"

	cat >"$PF_CONF/main.cf" <<EOF
# private test instance written by tests/lib/postfix.sh
compatibility_level = 3.6
config_directory = $PF_CONF
queue_directory = $PF_WORKDIR/spool
data_directory = $PF_WORKDIR/data
mail_owner = postfix
setgid_group = postdrop
syslog_name = postfix-smimetest
maillog_file = $PF_WORKDIR/maillog
maillog_file_prefixes = $PF_WORKDIR
myhostname = mail.banjarkota.go.id
mydomain = banjarkota.go.id
myorigin = \$myhostname
mydestination =
local_recipient_maps =
local_transport = error:local delivery disabled
relay_domains =
alias_maps =
alias_database =
relayhost = [127.0.0.1]:$PF_SINK_PORT
default_transport = smtp
smtp_dns_support_level = disabled
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mynetworks_style = host
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions =
smtpd_tls_security_level = none
smtp_tls_security_level = none
smtputf8_enable = no
biff = no
# keep header lines from local clients byte-exact (no address rewriting)
local_header_rewrite_clients =
message_size_limit = 52428800
smtpd_milters = $PF_MILTER
non_smtpd_milters = $PF_MILTER
milter_default_action = tempfail
milter_protocol = 6
milter_connect_timeout = 10s
milter_command_timeout = 30s
milter_content_timeout = 60s
# retry tempfailed mail fast (fault tests)
queue_run_delay = 2s
minimal_backoff_time = 2s
maximal_backoff_time = 4s
maximal_queue_lifetime = 1h
bounce_queue_lifetime = 1h
smtp_connect_timeout = 10s
in_flow_delay = 0
EOF
	if [ -n "${PF_EXTRA_MAIN:-}" ]; then
		# an extra line replaces the default line of the same parameter
		printf '%s\n' "$PF_EXTRA_MAIN" | while IFS= read -r _line; do
			_key=$(printf '%s' "$_line" | sed -n 's/^[[:space:]]*\([a-z0-9_]*\)[[:space:]]*=.*/\1/p')
			[ -n "$_key" ] || continue
			grep -v "^$_key[[:space:]]*=" "$PF_CONF/main.cf" >"$PF_CONF/main.cf.new"
			mv "$PF_CONF/main.cf.new" "$PF_CONF/main.cf"
		done
		printf '%s\n' "$PF_EXTRA_MAIN" >>"$PF_CONF/main.cf"
	fi

	# chroot is "n" everywhere: the private queue has no chroot jail.
	cat >"$PF_CONF/master.cf" <<EOF
# private test instance written by tests/lib/postfix.sh
# service  type  private unpriv chroot wakeup maxproc command
127.0.0.1:$PF_SMTP_PORT inet n - n - - smtpd
pickup    unix  n       -       n       2       1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
	if [ -n "${PF_BASELINE_PORT:-}" ]; then
		# a second smtpd without any milter: what Postfix alone delivers
		printf '127.0.0.1:%s inet n - n - - smtpd\n  -o smtpd_milters=\n' \
			"$PF_BASELINE_PORT" >>"$PF_CONF/master.cf"
	fi

	# The sink first, so Postfix never finds the relay host down.
	pf__sink "$PF_SINK_PORT" "$PF_WORKDIR/sink.log" || return 1

	# "postfix check" inside "start" creates the queue directories.  The
	# MAIL_CONFIG environment keeps postconf and postfix-script away from
	# /etc/postfix/main.cf (which does not exist on the test machines).
	if ! MAIL_CONFIG=$PF_CONF postfix -c "$PF_CONF" start \
		>"$PF_WORKDIR/postfix-start.log" 2>&1; then
		echo "# postfix start failed" >&2
		sed 's/^/# postfix: /' "$PF_WORKDIR/postfix-start.log" >&2
		return 1
	fi
	if ! pf__wait_port "$PF_SMTP_PORT" 15; then
		echo "# postfix smtpd did not come up on port $PF_SMTP_PORT" >&2
		sed 's/^/# postfix: /' "$PF_WORKDIR/postfix-start.log" "$PF_WORKDIR/maillog" >&2
		return 1
	fi
	return 0
}

# pf__sink PORT LOG: smtp-sink on 127.0.0.1:PORT, writing as postfix into
# $PF_SINK_DIR, pid in $PF_SINK_PID; 1 (with LOG shown) if it does not come up
pf__sink() {
	smtp-sink -u postfix -h sink.test -d "$PF_SINK_DIR/%Y%m%d%H/" \
		"127.0.0.1:$1" 64 >"$2" 2>&1 &
	PF_SINK_PID=$!
	pf__wait_port "$1" 10 && return 0
	echo "# smtp-sink did not come up on port $1" >&2
	sed 's/^/# sink: /' "$2" >&2
	return 1
}

# pf__wait_port PORT SECONDS: wait until something accepts on 127.0.0.1:PORT
pf__wait_port() {
	"$PF_PY" - "$1" "$2" <<'EOF'
import socket, sys, time
port, limit = int(sys.argv[1]), float(sys.argv[2])
end = time.time() + limit
while time.time() < end:
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect(("127.0.0.1", port))
        s.close()
        sys.exit(0)
    except OSError:
        s.close()
        time.sleep(0.1)
sys.exit(1)
EOF
}

pf_kill() {
	kill "$1" 2>/dev/null || return 0
	_k=0
	while kill -0 "$1" 2>/dev/null && [ $_k -lt $((${2:-5} * 10)) ]; do
		sleep 0.1
		_k=$((_k + 1))
	done
	kill -9 "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	return 0
}

pf_free_ports() {
	"$PF_PY" - "$1" <<'EOF'
import socket, sys
socks, ports = [], []
while len(ports) < int(sys.argv[1]):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    socks.append(s)
    if p not in ports:
        ports.append(p)
for s in socks:
    s.close()
print("\n".join(map(str, ports)))
EOF
}

pf_send() {
	if [ $# -lt 3 ] || [ $# -gt 4 ]; then
		echo "# usage: pf_send FROM TO FILE [PORT]" >&2
		return 2
	fi
	"$PF_PY" - "${4:-$PF_SMTP_PORT}" "$1" "$2" "$3" <<'EOF'
import os, smtplib, sys
port, sender, rcpt, path = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
with open(path, "rb") as f:
    data = f.read()
# Dot-stuffing is the only change to the bytes: do it here, explicitly, and
# send the raw DATA so smtplib does not touch line ends.
lines = data.split(b"\n")
stuffed = b"\n".join(b"." + l if l.startswith(b".") else l for l in lines)
if not stuffed.endswith(b"\n"):
    stuffed += b"\r\n"
opts = ["BODY=8BITMIME"] if any(b > 127 for b in data) else []
try:
    s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=60)
    s.ehlo()
    xclient = os.environ.get("PF_XCLIENT", "")
    if xclient:
        code, msg = s.docmd("XCLIENT", xclient)
        if code != 220:
            sys.stderr.write("# pf_send: XCLIENT %s: %d %s\n" % (xclient, code, msg.decode("ascii", "replace")))
            print(code); sys.exit(1)
        s.ehlo_resp = None
        s.ehlo()
    code, msg = s.mail(sender, opts)
    if code != 250:
        print(code); sys.exit(1)
    taken = 0
    first = None
    for r in rcpt.split(","):
        code, msg = s.rcpt(r)
        sys.stderr.write("# pf_send rcpt %s: %d %s\n" % (r, code, msg.decode("ascii", "replace").replace("\n", " ")))
        if code in (250, 251):
            taken += 1
        elif first is None:
            first = code
    if taken == 0:
        print(first); sys.exit(1)
    code, msg = s.docmd("DATA")
    if code != 354:
        print(code); sys.exit(1)
    s.send(stuffed + b".\r\n")
    code, msg = s.getreply()
    print(code)
    sys.stderr.write("# pf_send %s: %d %s\n" % (path, code, msg.decode("ascii", "replace")))
    try:
        s.quit()
    except smtplib.SMTPException:
        pass
    sys.exit(0 if 200 <= code < 300 else 1)
except (OSError, smtplib.SMTPException) as e:
    print("000")
    sys.stderr.write("# pf_send %s: %s\n" % (path, e))
    sys.exit(1)
EOF
}

# A dump file is complete once Postfix logged its delivery; as a second guard
# the file must end with the empty line smtp-sink appends.
pf_sink_files() {
	[ -d "$PF_SINK_DIR" ] || return 0
	find "$PF_SINK_DIR" -type f -printf '%T@ %p\n' 2>/dev/null | sort -n |
		while read -r _t f; do
			if [ "$(tail -c 2 "$f" | od -An -c | tr -d ' ')" = '\n\n' ]; then
				echo "$f"
			fi
		done
}

pf_wait_delivered() {
	want=$1
	limit=${2:-60}
	end=$(($(date +%s) + limit))
	while :; do
		sent=$(grep -c ' status=sent ' "$PF_WORKDIR/maillog" 2>/dev/null)
		have=$(pf_sink_files | wc -l)
		if [ "${sent:-0}" -ge "$want" ] && [ "$have" -ge "$want" ]; then
			return 0
		fi
		if [ "$(date +%s)" -ge "$end" ]; then
			echo "# pf_wait_delivered: wanted $want, sink has $have, maillog has ${sent:-0} sent" >&2
			return 1
		fi
		sleep 0.3
	done
}

pf_strip_sink() {
	"$PF_PY" - "$1" <<'EOF'
import sys
data = open(sys.argv[1], "rb").read()
lines = data.split(b"\n")
i = 0
prefixes = (b"X-Client-Addr:", b"X-Client-Proto:", b"X-Helo-Args:",
            b"X-Mail-Args:", b"X-Rcpt-Args:")
while i < len(lines) and lines[i].startswith(prefixes):
    i += 1
# The three-line Received: header of smtp-sink ends its block.
if i < len(lines) and lines[i].startswith(b"Received: ") and b"(smtp-sink)" in b"".join(lines[i:i + 3]):
    i += 1
    while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
        i += 1
else:
    sys.stderr.write("pf_strip_sink: %s: no smtp-sink Received header\n" % sys.argv[1])
    sys.exit(1)
body = lines[i:]
# The dump ends with "\n" after the last line, then an empty line + "\n".
if len(body) >= 2 and body[-1] == b"" and body[-2] == b"":
    body = body[:-2]
elif body and body[-1] == b"":
    body = body[:-1]
out = b"".join(l + b"\r\n" for l in body)
sys.stdout.buffer.write(out)
EOF
}

pf_sendmail() {
	MAIL_CONFIG=$PF_CONF sendmail -C "$PF_CONF" -i -f "$1" -- "$2" <"$3"
}

pf_flush() {
	postqueue -c "$PF_CONF" -f >/dev/null 2>&1
}

pf_queue_count() {
	find "$PF_WORKDIR/spool/incoming" "$PF_WORKDIR/spool/active" \
		"$PF_WORKDIR/spool/deferred" "$PF_WORKDIR/spool/hold" \
		"$PF_WORKDIR/spool/maildrop" -type f 2>/dev/null | wc -l
}

PF__VARS="PF_WORKDIR PF_SMTP_PORT PF_SINK_PORT PF_MILTER PF_CONF PF_SINK_DIR PF_SINK_PID"
pf_save() {
	for _pv in $PF__VARS; do eval "PF__$1_$_pv=\${$_pv:-}"; done
}
pf_use() {
	for _pv in $PF__VARS; do eval "$_pv=\${PF__$1_$_pv:-}"; done
}

pf_stop() {
	if [ -n "${PF_CONF:-}" ] && [ -f "$PF_CONF/main.cf" ]; then
		mpid=$(cat "$PF_WORKDIR/spool/pid/master.pid" 2>/dev/null | tr -d ' ')
		MAIL_CONFIG=$PF_CONF postfix -c "$PF_CONF" stop >/dev/null 2>&1
		if [ -n "$mpid" ]; then
			n=0
			while kill -0 "$mpid" 2>/dev/null && [ $n -lt 50 ]; do
				sleep 0.1
				n=$((n + 1))
			done
			kill -0 "$mpid" 2>/dev/null && kill -9 "$mpid" 2>/dev/null
		fi
	fi
	if [ -n "${PF_SINK_PID:-}" ]; then
		kill "$PF_SINK_PID" 2>/dev/null
		wait "$PF_SINK_PID" 2>/dev/null
		PF_SINK_PID=
	fi
	return 0
}
