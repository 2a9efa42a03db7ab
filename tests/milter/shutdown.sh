#!/bin/sh
# A prompt stop (SIGTERM) that loses no message:
#   - with idle MTA connections open, the daemon exits in under 5 s (it
#     used to wait ~35 s: 5 s for libmilter's listener, 30 s for the idle
#     connections), closes those connections, and removes its pidfile;
#   - a message in the middle of its body when SIGTERM comes is still
#     finished and signed, and a new message begun on another open
#     connection after SIGTERM is tempfailed (the MTA retries it), never
#     accepted unsigned;
#   - after that last message the daemon exits in under 5 s.
# Drives the daemon with tests/lib/miltercli.py's protocol class.  Prints
# TAP.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
fx_begin stop
pid=
fx_on_exit() { me_stop "$pid"; }

fx_setup "PKI built and certificates imported"

# The MTA side.  idle PORT N: N connections negotiated and connected, then
# "ready", then each one's fate ("closed" when the milter hung up) within
# 20 s.  inflight PORT MSG GO: connection A sends MSG up to half its body,
# connection B stays idle, "ready"; once the file GO exists B sends MSG
# whole and A the rest of its body and end of message; prints what each got.
cat >"$work/mta.py" <<'PY'
import os, socket, struct, sys, time
sys.path.insert(0, os.path.join(os.environ["TOP"], "tests", "lib"))
from miltercli import (Milter, nul, split_message, RESULTS, P_NR_MAIL,
                       P_NR_RCPT, P_NORCPT, P_NR_HDR, P_NR_BODY)

def connect(port):
    m = Milter("inet:%s@127.0.0.1" % port, 30)
    m.negotiate()
    m.send(b"C", nul(b"localhost")[:-1] + b"\0" + b"4" + struct.pack(">H", 0)
           + nul(b"127.0.0.1"))
    return m

def step(m, cmd, data, nr):
    m.send(cmd, data)
    if nr and m.has(nr):
        return "continue"
    code, _ = m.reply()
    return RESULTS.get(code, repr(code))

def head(m, hdrs, qid):
    m.send(b"D", b"M" + nul(b"i", qid))
    r = step(m, b"M", nul(b"<andi@banjarkota.go.id>"), P_NR_MAIL)
    if r == "continue" and not m.has(P_NORCPT):
        r = step(m, b"R", nul(b"<someone@example.org>"), P_NR_RCPT)
    for name, value in hdrs:
        if r != "continue":
            break
        r = step(m, b"L", nul(name, value.lstrip(b" \t")), P_NR_HDR)
    if r == "continue":
        r = step(m, b"N", b"", 0)
    return r

def eom(m):
    m.send(b"E")
    body = b""
    while True:
        code, data = m.reply()
        if code == b"b":
            body += data
        elif code in RESULTS:
            return RESULTS[code], data, body

def closed(m, until):
    m.sock.settimeout(max(0.1, until - time.time()))
    try:
        return "closed" if m.sock.recv(1) == b"" else "data"
    except socket.timeout:
        return "open"
    except OSError:
        return "closed"

mode, port = sys.argv[1], sys.argv[2]
if mode == "idle":
    conns = [connect(port) for _ in range(int(sys.argv[3]))]
    print("ready", flush=True)
    end = time.time() + 20
    print(" ".join(closed(m, end) for m in conns), flush=True)
else:
    hdrs, body = split_message(open(sys.argv[3], "rb").read())
    half = len(body) // 2
    a, b = connect(port), connect(port)
    r = head(a, hdrs, b"STOPA")
    if r == "continue":
        r = step(a, b"B", body[:half], P_NR_BODY)
    print("ready", r, flush=True)
    while not os.path.exists(sys.argv[4]):
        time.sleep(0.05)
    time.sleep(0.5)
    try:
        r = head(b, hdrs, b"STOPB")
        if r == "continue":
            r = step(b, b"B", body, P_NR_BODY)
        if r == "continue":
            r = eom(b)[0]
    except Exception as e:
        r = "dropped"
    print("late", r, flush=True)
    r = step(a, b"B", body[half:], P_NR_BODY)
    res, data, newbody = eom(a) if r == "continue" else (r, b"", b"")
    signed = b"application/pkcs7-signature" in newbody
    print("inflight", res, "signed" if signed else "unsigned", flush=True)
PY

# running PID: the process exists and is no zombie (our child stays one
# until `wait`, and kill -0 still finds it)
running() {
	case $(ps -o stat= -p "$1" 2>/dev/null) in
	"" | Z*) return 1 ;;
	esac
	return 0
}

# wait_gone PID SECONDS: 0 when the process ended in time; prints the
# tenths of a second it took
wait_gone() {
	_i=0
	while running "$1" && [ $_i -lt $(($2 * 10)) ]; do
		sleep 0.1
		_i=$((_i + 1))
	done
	echo $_i
	! running "$1"
}

# wait_line FILE PATTERN SECONDS
wait_line() {
	_i=0
	while ! grep -q "$2" "$1" 2>/dev/null && [ $_i -lt $(($3 * 10)) ]; do
		sleep 0.1
		_i=$((_i + 1))
	done
	grep -q "$2" "$1" 2>/dev/null
}

# ---- idle connections
me_start "$conf" "$work/m1.log" "$port" || bail "smime-milter started"
pid=$ME_PID
[ -s "$conf.pid" ] && ok "pidfile written" || nok "pidfile written"
"$ME_PY" "$work/mta.py" idle "$port" 3 >"$work/idle.out" 2>&1 &
mta=$!
if wait_line "$work/idle.out" ready 10; then
	ok "three MTA connections open and idle"
else
	nok "three MTA connections open and idle"
	sed 's/^/#   /' "$work/idle.out"
fi
kill -TERM "$pid"
if t=$(wait_gone "$pid" 5); then
	ok "SIGTERM with idle connections: exited in $t/10 s (under 5 s)"
else
	nok "SIGTERM with idle connections: still running after 5 s"
fi
wait "$pid" 2>/dev/null
rc=$?
tap "$rc" "exit status 0 after SIGTERM ($rc)"
pid=
wait "$mta" 2>/dev/null
if grep -qx "closed closed closed" "$work/idle.out"; then
	ok "the idle connections were closed"
else
	nok "the idle connections were closed"
	sed 's/^/#   /' "$work/idle.out"
fi
[ -e "$conf.pid" ] && nok "pidfile removed" || ok "pidfile removed"
if grep -q "stopped (0 messages unfinished, 3 connections closed)" \
	"$work/m1.log"; then
	ok "the log says how it stopped"
else
	nok "the log says how it stopped"
	tail -5 "$work/m1.log" | sed 's/^/#   /'
fi

# ---- a message in flight
me_start "$conf" "$work/m2.log" "$port" || bail "smime-milter started again"
pid=$ME_PID
rm -f "$work/go"
"$ME_PY" "$work/mta.py" inflight "$port" "$TOP/tests/data/corpus/01-plain-ascii.eml" \
	"$work/go" >"$work/fl.out" 2>&1 &
mta=$!
if wait_line "$work/fl.out" "ready continue" 10; then
	ok "a message is in the middle of its body"
else
	nok "a message is in the middle of its body"
	sed 's/^/#   /' "$work/fl.out"
fi
kill -TERM "$pid"
touch "$work/go"
wait_line "$work/fl.out" "^inflight" 15
if grep -qx "late tempfail\|late replycode" "$work/fl.out"; then
	ok "a message begun after SIGTERM is tempfailed"
else
	nok "a message begun after SIGTERM is tempfailed"
	sed 's/^/#   /' "$work/fl.out"
fi
if grep -qx "inflight continue signed" "$work/fl.out"; then
	ok "the message in flight at SIGTERM was finished and signed"
else
	nok "the message in flight at SIGTERM was finished and signed"
	sed 's/^/#   /' "$work/fl.out"
fi
if t=$(wait_gone "$pid" 5); then
	ok "then the daemon exited in $t/10 s"
else
	nok "then the daemon exited within 5 s"
fi
wait "$pid" 2>/dev/null
pid=
wait "$mta" 2>/dev/null
if grep -q "signed for andi@banjarkota.go.id" "$work/m2.log" &&
	grep -q "shutting down; tempfailed" "$work/m2.log"; then
	ok "the log has the signed message and the tempfailed one"
else
	nok "the log has the signed message and the tempfailed one"
	tail -8 "$work/m2.log" | sed 's/^/#   /'
fi
echo "1..$n"
