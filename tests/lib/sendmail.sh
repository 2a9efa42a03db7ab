# tests/lib/sendmail.sh -- a private, throw-away Sendmail (Debian's
# sendmail-bin, never installed) plus an smtp-sink that captures what it
# relays.  Source it after setting TOP:  . "$TOP/tests/lib/sendmail.sh"
# (it sources tests/lib/postfix.sh for the sink helpers and pf_send).
#
# Debian's sendmail-bin conflicts with postfix, so nothing is installed:
#
#   sm_fetch
#       Makes sure the .debs of sendmail-bin, sendmail-cf, m4, liblockfile1
#       and libwrap0 are in $SM_CACHE (default /var/cache/smime-milter-tests),
#       fetching the missing ones with `apt-get download`.  A second run
#       downloads nothing.  On failure returns 1 with the reason in
#       $SM_WHY.
#   sm_unpack DIR
#       `dpkg -x` of those .debs into DIR; sets SM_ROOT, SM_BIN (sendmail,
#       its setgid bit removed so LD_LIBRARY_PATH is honoured), SM_M4 and
#       SM_CFDIR (sendmail-cf's m4 tree).  1 + $SM_WHY on failure.
#   sm_isolate SCRIPT [ARGS...]
#       Re-executes SCRIPT (the calling test) inside new network, UTS, PID and
#       mount namespaces: only a loopback interface exists, so nothing the
#       test starts can reach anything beyond 127.0.0.1, DNS included, and
#       every process left over dies with the namespace.  Inside, the host
#       name is $SM_HOSTNAME (mail.banjarkota.test), and /etc/hosts (that
#       name on 127.0.0.1) and /etc/nsswitch.conf ("hosts: files") are
#       private copies from $SM_CACHE/ns bind-mounted over the real ones,
#       which stay untouched.  Returns (1 + $SM_WHY)
#       only when the namespaces cannot be made; on success it does not
#       return.  Inside the namespaces SM_ISOLATED=1.
#       Why: sendmail resolves its own host name with the C library before
#       it reads its .cf (so before ServiceSwitchFile applies); with an
#       unqualified name it asks DNS for it and then sleeps 60 s.  A fixed,
#       dotted name that the files-only C library finds avoids both; the
#       empty network is the guarantee that nothing else gets out either.
#   sm_start WORKDIR SMTP_PORT SINK_PORT MILTER_SOCKET
#       Writes WORKDIR/sendmail.mc (the setup INSTALL documents: the milter
#       as INPUT_MAIL_FILTER, relaying everything to [127.0.0.1]:SINK_PORT,
#       a files-only service switch and its own hosts file, its own queue,
#       host status directory and pid file), builds WORKDIR/sendmail.cf with
#       m4, starts smtp-sink on 127.0.0.1:SINK_PORT and `sendmail -C
#       WORKDIR/sendmail.cf -bD` (foreground daemon, as root) listening on
#       127.0.0.1:SMTP_PORT.  MILTER_SOCKET is libmilter's
#       "inet:PORT@127.0.0.1" (or "" for no milter).  $SM_EXTRA_MC lines are
#       added before the MAILER lines.  WORKDIR/smtp.log is sendmail's -X
#       trace of every SMTP session.  1 on failure, with "# ..." lines.
#       WORKDIR and its parents must be searchable by the postfix user (the
#       sink writes WORKDIR/sink as postfix).  Sendmail's MIME header guard
#       (confMAX_MIME_HEADER_LENGTH) keeps its default, which walks every
#       multipart body at delivery.
#   sm_send FROM TO FILE [PORT]   pf_send to the sendmail daemon; prints
#       the reply code; the reply text (with sendmail's queue id) goes to
#       stderr.
#   sm_send_batch LIST OUTDIR
#       One python process for many messages (python starts slowly on a
#       loaded machine).  LIST has "TAG FILE [PORT|-] [raw]" lines.  Each
#       FILE is written to OUTDIR/TAG.eml with CRLF line ends (as it is, with
#       "raw") and sent in its own SMTP session to PORT (default SMTP_PORT)
#       from its From: address (andi@banjarkota.go.id if none) to
#       t-TAG@example.org.  Prints "TAG CODE QID FROM REPLY-TEXT" per message
#       (QID from sendmail's "250 2.0.0 QID Message accepted", "-" if none).
#   sm_wait_delivered N TIMEOUT   waits until N dumps are complete in the
#       sink and sendmail's queue is empty.
#   sm_queue_count                messages (qf files) in sendmail's queue.
#   sm_stop                       stops sendmail and smtp-sink.
#   sm_same_as_base BASE OUT      OUT is what Sendmail alone delivered as
#                                 BASE (per-copy fields aside); python3 as $PY.
#   pf_sink_files, pf_strip_sink  (from postfix.sh) read the sink.
#
# Needs root (sendmail binds, writes its queue as root; unshare), the postfix
# user (the sink drops to it) and python3.

. "$TOP/tests/lib/postfix.sh"

SM_CACHE=${SM_CACHE:-/var/cache/smime-milter-tests}
SM_PKGS="sendmail-bin sendmail-cf m4 liblockfile1 libwrap0"
SM_HOSTNAME=mail.banjarkota.test
SM_WHY=

# sm__deb PKG: the newest cached .deb of PKG (empty if none)
sm__deb() {
	ls "$SM_CACHE/$1"_*.deb 2>/dev/null | sort -V | tail -1
}

sm_fetch() {
	_missing=
	for _p in $SM_PKGS; do
		[ -n "$(sm__deb "$_p")" ] || _missing="$_missing $_p"
	done
	[ -z "$_missing" ] && return 0
	if ! command -v apt-get >/dev/null 2>&1; then
		SM_WHY="no apt-get to fetch$_missing"
		return 1
	fi
	if ! mkdir -p "$SM_CACHE" 2>/dev/null; then
		SM_WHY="cannot create the cache directory $SM_CACHE"
		return 1
	fi
	# apt's download sandbox user _apt must be able to write where it
	# downloads: a private directory it owns, then into the cache.
	_dl=$(mktemp -d "${TMPDIR:-/tmp}/sm-fetch.XXXXXX") || {
		SM_WHY="mktemp failed"
		return 1
	}
	id _apt >/dev/null 2>&1 && chown _apt "$_dl"
	# shellcheck disable=SC2086
	if (cd "$_dl" && apt-get download $_missing) >"$_dl/apt.log" 2>&1; then
		mv "$_dl"/*.deb "$SM_CACHE/"
		rm -rf "$_dl"
		return 0
	fi
	SM_WHY="apt-get download$_missing failed: $(grep -E '^(E|W):' "$_dl/apt.log" | head -1 | cut -c1-200)"
	rm -rf "$_dl"
	return 1
}

sm_unpack() {
	SM_ROOT=$1
	mkdir -p "$SM_ROOT" || return 1
	for _p in $SM_PKGS; do
		_d=$(sm__deb "$_p")
		if [ -z "$_d" ] || ! dpkg -x "$_d" "$SM_ROOT" 2>"$SM_ROOT/dpkg.err"; then
			SM_WHY="dpkg -x of $_p (${_d:-not cached}) failed: $(head -1 "$SM_ROOT/dpkg.err" 2>/dev/null)"
			return 1
		fi
	done
	SM_BIN=$SM_ROOT/usr/libexec/sendmail/sendmail
	SM_M4=$SM_ROOT/usr/bin/m4
	SM_CFDIR=$SM_ROOT/usr/share/sendmail/cf
	# setgid "mail" would make the dynamic loader ignore LD_LIBRARY_PATH;
	# this copy runs as root only and needs no setgid.
	chmod g-s "$SM_BIN"
	for _f in "$SM_BIN" "$SM_M4" "$SM_CFDIR/m4/cf.m4"; do
		if [ ! -f "$_f" ]; then
			SM_WHY="$_f missing after dpkg -x"
			return 1
		fi
	done
	return 0
}

# sm__exec: run the private sendmail with its private libraries
sm__exec() {
	LD_LIBRARY_PATH=$SM_ROOT/usr/lib/x86_64-linux-gnu:$SM_ROOT/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
		"$SM_BIN" "$@"
}

sm_isolate() {
	_script=$1
	shift
	if ! command -v unshare >/dev/null 2>&1; then
		SM_WHY="no unshare(1) to make a loopback-only network namespace"
		return 1
	fi
	if ! _err=$(unshare --net --uts --pid --fork --mount-proc true 2>&1); then
		SM_WHY="cannot create private network/UTS/PID namespaces (unshare: $_err); without them sendmail would look up its host name in DNS"
		return 1
	fi
	# The C library's view inside the mount namespace: a hosts file that
	# names this host, and "hosts: files" (the real files stay untouched;
	# these are bind-mounted over them in the private mount namespace).
	_ns=$SM_CACHE/ns
	# (written under temporary names and renamed: another run may be
	# bind-mounting them right now)
	if ! mkdir -p "$_ns" ||
		! printf '127.0.0.1\t%s %s localhost\n' "$SM_HOSTNAME" "${SM_HOSTNAME%%.*}" >"$_ns/hosts.$$" ||
		! sed 's/^hosts:.*/hosts: files/' /etc/nsswitch.conf >"$_ns/nsswitch.conf.$$" ||
		! mv -f "$_ns/hosts.$$" "$_ns/hosts" ||
		! mv -f "$_ns/nsswitch.conf.$$" "$_ns/nsswitch.conf"; then
		rm -f "$_ns/hosts.$$" "$_ns/nsswitch.conf.$$"
		SM_WHY="cannot write $_ns/hosts and nsswitch.conf"
		return 1
	fi
	SM_ISOLATED=1 exec unshare --net --uts --pid --fork --mount-proc --kill-child \
		sh -c 'ip link set lo up && hostname "$0" &&
			mount --bind "$1/hosts" /etc/hosts &&
			mount --bind "$1/nsswitch.conf" /etc/nsswitch.conf &&
			shift && exec sh "$@"' \
		"$SM_HOSTNAME" "$_ns" "$_script" "$@"
}

# sm__define NAME VALUE...: one m4 define(`NAME', `VALUE')dnl line a pair
sm__define() {
	while [ $# -ge 2 ]; do
		printf "define(\`%s', \`%s')dnl\n" "$1" "$2"
		shift 2
	done
}

sm_start() {
	pf__usage4 sm_start "$@" || return 2
	SM_WORKDIR=$(cd "$1" && pwd) || return 1
	SM_SMTP_PORT=$2
	SM_SINK_PORT=$3
	SM_MILTER=$4
	SM_PID=
	# the sink helpers of postfix.sh look here
	PF_WORKDIR=$SM_WORKDIR
	PF_SINK_DIR=$SM_WORKDIR/sink
	PF_SINK_PID=
	chmod 0755 "$SM_WORKDIR"
	mkdir -p "$SM_WORKDIR/mqueue" "$SM_WORKDIR/hoststat" "$PF_SINK_DIR"
	chmod 0700 "$SM_WORKDIR/mqueue" "$SM_WORKDIR/hoststat"
	chown postfix "$PF_SINK_DIR"
	: >"$SM_WORKDIR/statistics"
	cp "$SM_ROOT/etc/mail/helpfile" "$SM_WORKDIR/helpfile" 2>/dev/null ||
		: >"$SM_WORKDIR/helpfile"
	# Host names come from this file only (service switch "hosts files"):
	# no DNS lookup once the .cf is read.
	printf 'hosts\tfiles\naliases\tfiles\n' >"$SM_WORKDIR/service.switch"
	printf '127.0.0.1\t%s %s localhost\n' "$SM_HOSTNAME" "${SM_HOSTNAME%%.*}" \
		>"$SM_WORKDIR/hosts"
	_w=$SM_WORKDIR
	{
		cat <<EOF
divert(-1)
dnl private test instance written by tests/lib/sendmail.sh
divert(0)dnl
VERSIONID(\`smime-milter test instance')dnl
OSTYPE(\`linux')dnl
dnl --- identity and lookups: a fixed name, files only, nothing from DNS
EOF
		sm__define confDOMAIN_NAME "$SM_HOSTNAME" confSERVICE_SWITCH_FILE "$_w/service.switch" \
			confHOSTS_FILE "$_w/hosts" confDONT_PROBE_INTERFACES True \
			confBIND_OPTS "-DNSRCH -DEFNAMES" confTO_IDENT 0s
		cat <<EOF
FEATURE(\`nocanonify')dnl
FEATURE(\`no_default_msa')dnl
dnl the sender domains exist only in the test: do not ask for them
FEATURE(\`accept_unresolvable_domains')dnl
dnl --- private files
EOF
		sm__define QUEUE_DIR "$_w/mqueue" confHOST_STATUS_DIRECTORY "$_w/hoststat" \
			confPID_FILE "$_w/sendmail.pid" STATUS_FILE "$_w/statistics" \
			HELP_FILE "$_w/helpfile" ALIAS_FILE "" confDEF_USER_ID daemon:daemon
		cat <<EOF
dnl --- other engineers' tests load the machine: never queue-only or refuse
define(\`confQUEUE_LA', \`999')dnl
define(\`confREFUSE_LA', \`999')dnl
dnl --- Sendmail's MIME header length guard stays at its compiled-in
dnl default (confMAX_MIME_HEADER_LENGTH 2048/1024): it walks every multipart
dnl body at delivery and rewrites broken nesting; smime-milter writes the
dnl close delimiter Sendmail would add before signing (lib/mime_int.h).
dnl --- listen on loopback only, relay everything to the sink
DAEMON_OPTIONS(\`Port=$SM_SMTP_PORT, Addr=127.0.0.1, Name=MTA')dnl
define(\`SMART_HOST', \`relay:[127.0.0.1]')dnl
define(\`RELAY_MAILER_ARGS', \`TCP \$h $SM_SINK_PORT')dnl
EOF
		if [ -n "$SM_MILTER" ]; then
			echo "dnl --- the milter (INSTALL, section Sendmail)"
			echo "INPUT_MAIL_FILTER(\`smime', \`S=$SM_MILTER, F=T, T=S:30s;R:60s;E:5m')dnl"
		fi
		[ -n "${SM_EXTRA_MC:-}" ] && printf '%s\n' "$SM_EXTRA_MC"
		echo "MAILER(\`smtp')dnl"
	} >"$_w/sendmail.mc"
	if ! "$SM_M4" -D_CF_DIR_="$SM_CFDIR/" "$SM_CFDIR/m4/cf.m4" "$_w/sendmail.mc" \
		>"$_w/sendmail.cf" 2>"$_w/m4.err" || [ -s "$_w/m4.err" ]; then
		echo "# m4 could not build sendmail.cf:" >&2
		sed 's/^/#   m4: /' "$_w/m4.err" >&2
		return 1
	fi

	# The sink first, so sendmail never finds the relay host down.
	pf__sink "$SM_SINK_PORT" "$_w/sink.log" || return 1

	# -bD: daemon in the foreground (its pid is ours to stop); -q30s retries
	# whatever was deferred; -X traces every SMTP session for diagnostics.
	sm__exec -C "$_w/sendmail.cf" -bD -q30s -X "$_w/smtp.log" \
		>"$_w/sendmail.out" 2>&1 &
	SM_PID=$!
	if ! pf__wait_port "$SM_SMTP_PORT" 30 || ! kill -0 "$SM_PID" 2>/dev/null; then
		echo "# sendmail did not come up on port $SM_SMTP_PORT" >&2
		sed 's/^/# sendmail: /' "$_w/sendmail.out" >&2
		return 1
	fi
	return 0
}

sm_send() {
	pf_send "$1" "$2" "$3" "${4:-$SM_SMTP_PORT}"
}

sm_send_batch() {
	"$PF_PY" - "$SM_SMTP_PORT" "$1" "$2" "$TOP/tests/lib" <<'EOF'
import email.utils, smtplib, sys
port, listfile, outdir = int(sys.argv[1]), sys.argv[2], sys.argv[3]
sys.path.insert(0, sys.argv[4])
import smimecheck as sc
for line in open(listfile):
    if not line.strip():
        continue
    f = line.split()
    tag, path = f[0], f[1]
    to_port = int(f[2]) if len(f) > 2 and f[2] != "-" else port
    if "raw" in f[3:]:
        data = open(path, "rb").read()
    else:
        data = sc.read_canon(path)
    with open("%s/%s.eml" % (outdir, tag), "wb") as f:
        f.write(data)
    head, _ = sc.split_head_body(data)
    sender = email.utils.parseaddr(str(sc.parse_headers(head).get("From", "")))[1]
    sender = sender or "andi@banjarkota.go.id"
    rcpt = "t-%s@example.org" % tag
    # dot-stuffing is the only change to the bytes (as pf_send)
    stuffed = b"\n".join(b"." + l if l.startswith(b".") else l for l in data.split(b"\n"))
    if not stuffed.endswith(b"\n"):
        stuffed += b"\r\n"
    opts = ["BODY=8BITMIME"] if any(b > 127 for b in data) else []
    code, text = 0, ""
    try:
        s = smtplib.SMTP("127.0.0.1", to_port, local_hostname="client.test", timeout=120)
        s.ehlo()
        code, msg = s.mail(sender, opts)
        if code == 250:
            code, msg = s.rcpt(rcpt)
        if code in (250, 251):
            code, msg = s.docmd("DATA")
            if code == 354:
                s.send(stuffed + b".\r\n")
                code, msg = s.getreply()
        text = msg.decode("ascii", "replace").replace("\n", " ")
        try:
            s.quit()
        except smtplib.SMTPException:
            pass
    except (OSError, smtplib.SMTPException) as e:
        text = str(e)
    qid = "-"
    words = text.split()
    if code == 250 and len(words) > 1 and words[0] == "2.0.0":
        qid = words[1]
    print("%s %d %s %s %s" % (tag, code, qid, sender, text))
    sys.stdout.flush()
EOF
}

sm_queue_count() {
	find "$SM_WORKDIR/mqueue" -type f -name 'qf*' 2>/dev/null | wc -l
}

sm_wait_delivered() {
	_want=$1
	_end=$(($(date +%s) + ${2:-60}))
	while :; do
		_have=$(pf_sink_files | wc -l)
		_q=$(sm_queue_count)
		if [ "$_have" -ge "$_want" ] && [ "$_q" -eq 0 ]; then
			return 0
		fi
		if [ "$(date +%s)" -ge "$_end" ]; then
			echo "# sm_wait_delivered: wanted $_want, sink has $_have, queue has $_q" >&2
			return 1
		fi
		sleep 0.3
	done
}

sm_stop() {
	if [ -n "${SM_PID:-}" ]; then
		# the daemon passes SIGTERM on to its children
		pf_kill "$SM_PID"
		SM_PID=
	fi
	if [ -n "${PF_SINK_PID:-}" ]; then
		kill "$PF_SINK_PID" 2>/dev/null
		wait "$PF_SINK_PID" 2>/dev/null
		PF_SINK_PID=
	fi
	return 0
}

# sm_same_as_base BASE DELIVERED: the same body bytes and the same header
# fields, except the ones Sendmail writes per copy (Received; Message-Id and
# Date when the message had none carry the queue id and time); a "# " line
# says what differs.
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
