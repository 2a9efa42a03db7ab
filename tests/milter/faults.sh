#!/bin/sh
# Faults at the milter protocol level (issue 6), the daemon running as
# "nobody" (root ignores file modes) with max_memory_body = 4096 so that
# bodies spill to temp_dir.  Each case asserts that no message is lost (the
# MTA is told to try again: tempfail, never accept-unsigned) and that what is
# signed verifies:
#   - abort after the body, and a client that drops the connection mid-body:
#     the spool file existed and is gone (no fd left open, temp_dir empty);
#   - temp_dir full (a 256 KiB tmpfs): tempfail with a log line naming the
#     directory and "No space left"; signed once the space is back;
#   - temp_dir unwritable (0500): tempfail naming the directory;
#   - a key file unreadable after SIGUSR1: that mailbox tempfails with the
#     file named, the others keep signing;
#   - a broken configuration at SIGUSR1 (syntax and validation): "reload
#     failed, keeping the previous configuration" with file:line, old
#     settings still in force;
#   - the database missing or corrupt at SIGUSR1: old snapshot kept, the
#     database named; at start (-n and the daemon): a clear error, non-zero;
#   - the database locked by a long write transaction (BEGIN EXCLUSIVE held
#     by sqlite3) while messages are signed and `smimectl reload` runs:
#     "go on" means every message is signed at once (no wait for the lock),
#     reload succeeds (WAL readers are not blocked), the audit rows wait in
#     memory and are all written once the lock is released.
# Needs root (mount, chown).  Prints TAP.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
fx_begin faults
pid=
lockpid=
mounted=
fx_on_exit() {
	[ -n "$lockpid" ] && { exec 9>&-; kill "$lockpid" 2>/dev/null; wait "$lockpid" 2>/dev/null; }
	me_stop "$pid"
	[ -n "$mounted" ] && umount "$mounted" 2>/dev/null
}
fx_need_root "mount, chown, a daemon that drops to nobody"
command -v sqlite3 >/dev/null || bail "sqlite3 is installed"

set -- $(me_free_ports 2)
port=$1 port2=$2
SOCK="inet:$port@127.0.0.1"
fx_nobody "$SOCK" "pidfile = \"$work/run/m.pid\";" 'max_memory_body = 4096;'
tmpd=$state/tmp
mkdir -p "$work/in" "$work/out"
cp "$conf" "$work/m.conf.good"
me_import "$conf" "$pki" init andi sekda
tap $? "smimectl init and import (andi PKCS#12, sekda PEM key)"
DB=$state/smime.db
sekda_key=$(sqlite3 "$DB" "SELECT key_location FROM certificates WHERE mailbox = 'sekda@banjarkota.go.id'")
[ -f "$sekda_key" ] || bail "sekda's key file is known ($sekda_key)"

log=$work/milter.log
me_start "$conf" "$log" "$port" || bail "milter started as root, running as nobody"
pid=$ME_PID
ok "milter started as root, running as nobody"

# ---- helpers
# mk NAME FROM BODY-BYTES: a message with a base64 attachment of about
# BODY-BYTES bytes (0: one text line)
mk() {
	"$PY" - "$work/in/$1.eml" "$2" "$3" <<'EOF'
import base64, os, sys
path, frm, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
name = os.path.basename(path)[:-4]
h = ["From: %s" % frm, "To: someone@example.org", "Subject: faults %s" % name,
     "Date: Tue, 24 Nov 2026 10:00:00 +0700", "Message-ID: <faults-%s@banjarkota.go.id>" % name,
     "MIME-Version: 1.0"]
if size == 0:
    h += ["Content-Type: text/plain; charset=us-ascii", "", "Pesan uji %s." % name, ""]
else:
    b = base64.encodebytes(os.urandom(size * 3 // 4)).decode().splitlines()
    h += ["Content-Type: application/octet-stream", "Content-Transfer-Encoding: base64",
          "Content-Disposition: attachment; filename=\"%s.bin\"" % name, ""] + b + [""]
open(path, "wb").write("\r\n".join(h).encode())
EOF
}
# cli RESULT ARGS...: miltercli.py against the milter
cli() {
	_r=$1
	shift
	"$PY" "$CLI" --socket "$SOCK" --client-ip 127.0.0.1 --chunk 65535 "$@" >"$_r" 2>&1
}
has() { grep -qxF "$2" "$1"; }
# signed NAME SIGNER LABEL: NAME was signed and verifies
signed() {
	if cli "$work/$1.res" "$work/in/$1.eml=$work/out/$1.eml" &&
		has "$work/$1.res" "m1.result=continue" && has "$work/$1.res" "m1.bodychange=1"; then
		verify_message "$work/out/$1.eml" "$work/in/$1.eml" "$2" "$work/pki" >"$work/v.log" 2>&1
		_rc=$?
		[ $_rc = 0 ] || sed 's/^/#   /' "$work/v.log" | tail -15
		tap $_rc "$3: signed and verifies${VM_FAILED:+ (failed:$VM_FAILED)}"
	else
		nok "$3: signed and verifies (not signed)"
		sed 's/^/#   /' "$work/$1.res"
	fi
}
# tempfailed NAME LABEL PATTERN: NAME got 4xx at end of message with no
# modification, and the reply matches the grep -E PATTERN
tempfailed() {
	cli "$work/$1.res" "$work/in/$1.eml"
	if has "$work/$1.res" "m1.bodychange=0" && ! grep -q '^m1\.hdr' "$work/$1.res" &&
		{ has "$work/$1.res" "m1.result=tempfail" || grep -q '^m1\.reply=4' "$work/$1.res"; } &&
		grep '^m1\.reply=' "$work/$1.res" | grep -qE "$3"; then
		ok "$2: tempfailed, nothing changed ($(grep '^m1\.reply=' "$work/$1.res" | cut -d= -f2-))"
	else
		nok "$2: tempfailed, nothing changed, reply matches /$3/"
		sed 's/^/#   /' "$work/$1.res"
	fi
}
# spool_fds: number of the milter's open spool files
spool_fds() {
	ls -l "/proc/$pid/fd" 2>/dev/null | grep -c 'smime-spool'
}
# no_spool_left LABEL: no spool fd open (waits up to 5 s) and temp_dir empty
no_spool_left() {
	_i=0
	while [ "$(spool_fds)" -gt 0 ] && [ $_i -lt 50 ]; do sleep 0.1; _i=$((_i + 1)); done
	_fds=$(spool_fds)
	_files=$(find "$tmpd" -mindepth 1 | wc -l)
	[ "$_fds" -eq 0 ] && [ "$_files" -eq 0 ]
	tap $? "$1: no spool file left (open: $_fds, in temp_dir: $_files)"
}
# logwait PATTERN SECONDS: wait for an extended regex in the log after mark
mark() { logmark=$(wc -l <"$log"); }
logwait() {
	_end=$(($(date +%s) + $2))
	while [ "$(date +%s)" -le $_end ]; do
		tail -n +"$((logmark + 1))" "$log" | grep -qE "$1" && return 0
		sleep 0.2
	done
	return 1
}
logshow() { tail -n +"$((logmark + 1))" "$log" | sed 's/^/#   log: /' | tail -${1:-8}; }
reload() {
	mark
	kill -USR1 "$pid"
	logwait 'reloaded: generation|reload failed' 15
}
alive() {
	kill -0 "$pid" 2>/dev/null
	tap $? "$1: milter still running"
}

mk small andi@banjarkota.go.id 0
mk big andi@banjarkota.go.id 400000
mk budi budi@banjarkota.go.id 0
cp "$work/in/small.eml" "$work/in/sekda.eml"
sed -i 's/^From: andi@/From: sekda@/' "$work/in/sekda.eml"

signed big andi@banjarkota.go.id "baseline: 400 KB message (spilled to temp_dir)"
no_spool_left "baseline"

# ---- abort after the body, then the next transaction on the connection
cli "$work/abort.res" "abort:$work/in/big.eml" "$work/in/small.eml=$work/out/abort2.eml"
has "$work/abort.res" "m1.stage=abort" && has "$work/abort.res" "m2.bodychange=1"
tap $? "abort after a spilled body; the next message on the connection is signed"
no_spool_left "abort"

# ---- client drops the connection mid-body
"$PY" - "$port" "$work/in/big.eml" "$pid" >"$work/drop.res" 2>&1 <<EOF
import os, sys, time
sys.path.insert(0, "$TOP/tests/lib")
import miltercli as mc
port, path, pid = int(sys.argv[1]), sys.argv[2], sys.argv[3]
m = mc.Milter("inet:%d@127.0.0.1" % port, 30)
m.negotiate()
m.send(b"D", b"C" + mc.nul(b"j", b"mail.banjarkota.go.id", b"{client_addr}", b"127.0.0.1"))
m.send(b"C", b"client.test\x004" + b"\x61\xc1" + b"127.0.0.1\x00")
if not m.has(mc.P_NR_CONN): m.reply()
m.send(b"D", b"M" + mc.nul(b"i", b"DROP1"))
m.send(b"M", mc.nul(b"<andi@banjarkota.go.id>"))
if not m.has(mc.P_NR_MAIL): m.reply()
if not m.has(mc.P_NORCPT):
    m.send(b"R", mc.nul(b"<someone@example.org>"))
    if not m.has(mc.P_NR_RCPT): m.reply()
hdrs, body = mc.split_message(open(path, "rb").read())
for n, v in hdrs:
    m.send(b"L", mc.nul(n, v.lstrip(b" ")))
    if not m.has(mc.P_NR_HDR): m.reply()
m.send(b"N")
code, _ = m.reply()
print("eoh=%r" % code)
half = len(body) // 2
for pos in range(0, half, 65535):
    m.send(b"B", body[pos:min(pos + 65535, half)])
    if not m.has(mc.P_NR_BODY): m.reply()
# the spool file must exist now: the body is half through
seen = 0
for _ in range(100):
    if any("smime-spool" in os.readlink("/proc/%s/fd/%s" % (pid, f))
           for f in os.listdir("/proc/%s/fd" % pid)):
        seen = 1
        break
    time.sleep(0.05)
print("spooled=%d" % seen)
m.sock.close()
EOF
if grep -q "^eoh=b'c'" "$work/drop.res" && grep -q '^spooled=1' "$work/drop.res"; then
	ok "dropped connection: the body was being spooled to temp_dir when the client closed"
else
	nok "dropped connection: the body was being spooled to temp_dir when the client closed"
	sed 's/^/#   /' "$work/drop.res"
fi
no_spool_left "dropped connection"
alive "dropped connection"
signed small andi@banjarkota.go.id "after the dropped connection"

# ---- temp_dir full (ENOSPC)
if mount -t tmpfs -o size=256k,mode=0700,uid="$(id -u nobody)" tmpfs "$tmpd"; then
	mounted=$tmpd
	ok "256 KiB tmpfs mounted as temp_dir"
	mark
	tempfailed big "temp_dir full" "No space left"
	logwait "MCLIQ0001: .*$tmpd.*No space left.*tempfailed" 5
	tap $? "temp_dir full: log line names $tmpd and \"No space left\"" || logshow
	no_spool_left "temp_dir full"
	used=$(df --output=used "$tmpd" | tail -1 | tr -d ' ')
	[ "$used" -eq 0 ]
	tap $? "temp_dir full: the space is given back (tmpfs used: ${used} KiB)"
	signed small andi@banjarkota.go.id "temp_dir full: a message that fits in memory"
	mount -o remount,size=16m "$tmpd"
	tap $? "space is back (tmpfs grown to 16 MiB)"
	signed big andi@banjarkota.go.id "temp_dir full: the retry after the space is back"
	no_spool_left "after ENOSPC retry"
	umount "$tmpd" && mounted=
else
	nok "256 KiB tmpfs mounted as temp_dir (mount failed)"
fi

# ---- temp_dir unwritable
chmod 0500 "$tmpd"
mark
tempfailed big "temp_dir mode 0500" "$tmpd.*Permission denied"
logwait "$tmpd.*Permission denied.*tempfailed" 5
tap $? "temp_dir mode 0500: log line names $tmpd and \"Permission denied\"" || logshow
signed small andi@banjarkota.go.id "temp_dir mode 0500: a message that fits in memory"
chmod 0700 "$tmpd"
signed big andi@banjarkota.go.id "temp_dir writable again: the retry"

# ---- a key file unreadable after reload
chmod 000 "$sekda_key"
reload
tail -n +"$((logmark + 1))" "$log" | grep -q 'reloaded: generation' &&
	tail -n +"$((logmark + 1))" "$log" | grep -q "sekda@banjarkota.go.id.*$sekda_key"
tap $? "key unreadable: reload done, warning names sekda and $sekda_key" || logshow
mark
tempfailed sekda "key unreadable: sekda@" "$sekda_key"
logwait "sekda@banjarkota.go.id.*$sekda_key.*tempfailed" 5
tap $? "key unreadable: log line names the key file" || logshow
signed small andi@banjarkota.go.id "key unreadable: andi@ (other key) still signs"
chmod 0600 "$sekda_key"
reload
signed sekda sekda@banjarkota.go.id "key readable again after reload: sekda@"

# ---- broken configuration at SIGUSR1
# old settings: on_no_certificate = accept.  The broken files would say
# reject; budi@ (no certificate) must still pass.
cp "$work/m.conf.good" "$conf"
sed -i 's/^on_no_certificate.*/on_no_certificate = "reject";/' "$conf"
echo 'log_verbose = ;' >>"$conf" # a syntax error
bad_line=$(wc -l <"$conf")
reload
logwait "reload failed, keeping the previous configuration: .*$conf:$bad_line" 1
tap $? "syntax error: \"reload failed, keeping the previous configuration\" with $conf:$bad_line" || logshow
cli "$work/budi1.res" "$work/in/budi.eml"
has "$work/budi1.res" "m1.bodychange=0" && ! grep -q '^m1\.result=\(reject\|tempfail\)' "$work/budi1.res"
tap $? "syntax error: old settings in force (budi@ without certificate still accepted)"
signed small andi@banjarkota.go.id "syntax error: andi@ still signs"

cp "$work/m.conf.good" "$conf"
sed -i 's/^on_no_certificate.*/on_no_certificate = "reject";/; s/^on_error.*/on_error = "explode";/' "$conf"
err_line=$(grep -n '^on_error' "$conf" | cut -d: -f1)
reload
logwait "reload failed, keeping the previous configuration: .*$conf:$err_line" 1
tap $? "invalid value: reload failed with $conf:$err_line (on_error)" || logshow
cli "$work/budi2.res" "$work/in/budi.eml"
has "$work/budi2.res" "m1.bodychange=0" && ! grep -q '^m1\.result=\(reject\|tempfail\)' "$work/budi2.res"
tap $? "invalid value: old settings in force (budi@ still accepted)"
cp "$work/m.conf.good" "$conf"
reload
tail -n +"$((logmark + 1))" "$log" | grep -q 'reloaded: generation'
tap $? "configuration repaired: reload succeeds"

# ---- database missing or corrupt at SIGUSR1
signed_rows() { sqlite3 "$1" "SELECT count(*) FROM audit WHERE action = 'signed'" 2>/dev/null; }
mkdir -p "$work/aside"
mv "$DB" "$DB-wal" "$DB-shm" "$work/aside/" 2>/dev/null
reload
logwait "reload failed, keeping the previous configuration: .*$DB.*(No such file|smimectl init)" 1
tap $? "database missing: reload failed, names $DB" || logshow
signed small andi@banjarkota.go.id "database missing: old snapshot still signs"
head -c 16384 /dev/urandom >"$DB"
chown nobody "$DB"
reload
logwait "reload failed, keeping the previous configuration: .*$DB" 1
tap $? "database corrupt: reload failed, names $DB" || logshow
signed small andi@banjarkota.go.id "database corrupt: old snapshot still signs"
rm -f "$DB" "$DB-wal" "$DB-shm"
mv "$work/aside/"* "$state/"
reload
tail -n +"$((logmark + 1))" "$log" | grep -q 'reloaded: generation'
tap $? "database back: reload succeeds" || logshow

# ---- database missing or corrupt at start
sed "s|^database.*|database = \"$work/none.db\";|; s|^socket.*|socket = \"inet:$port2@127.0.0.1\";|; /^user/d; /^pidfile/d" \
	"$work/m.conf.good" >"$work/nodb.conf"
# nodb_refused WHAT N: with the database $work/none.db WHAT, -n and the
# daemon both fail and name it (output in $work/nN.out and sN.out)
nodb_refused() {
	"$ME_MILTER" -c "$work/nodb.conf" -n >"$work/n$2.out" 2>&1
	rc=$?
	[ $rc -ne 0 ] && grep -q "$work/none.db" "$work/n$2.out"
	tap $? "database $1: -n fails (exit $rc) naming the file: $(head -1 "$work/n$2.out")"
	timeout 20 "$ME_MILTER" -c "$work/nodb.conf" -f >"$work/s$2.out" 2>&1
	rc=$?
	[ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "$work/none.db" "$work/s$2.out"
	tap $? "database $1: the daemon does not start (exit $rc) and says why" || sed 's/^/#   /' "$work/s$2.out"
}
nodb_refused missing 1
head -c 16384 /dev/urandom >"$work/none.db"
nodb_refused corrupt 2

# ---- database locked by a long write transaction
before=$(signed_rows "$DB")
mkfifo "$work/lock.fifo"
# the locker waits for the lock (the milter's audit writer may be in the
# middle of a batch: with the CLI's default timeout of 0 its BEGIN EXCLUSIVE
# would fail at once and the INSERT run without a lock held)
sqlite3 -cmd '.timeout 10000' "$DB" <"$work/lock.fifo" >"$work/lock.out" 2>&1 &
lockpid=$!
exec 9>"$work/lock.fifo"
echo 'BEGIN EXCLUSIVE; INSERT INTO audit (at, action, result) SELECT at, action, result FROM audit LIMIT 0;' >&9
i=0
while sqlite3 -cmd '.timeout 0' "$DB" 'BEGIN IMMEDIATE; ROLLBACK;' >/dev/null 2>&1 && [ $i -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
! sqlite3 -cmd '.timeout 0' "$DB" 'BEGIN IMMEDIATE; ROLLBACK;' >/dev/null 2>&1
tap $? "database locked: sqlite3 holds BEGIN EXCLUSIVE" || sed 's/^/#   sqlite3: /' "$work/lock.out"
mark
t0=$(date +%s)
cli "$work/lock1.res" "$work/in/small.eml=$work/out/lock1.eml" "$work/in/big.eml=$work/out/lock2.eml" \
	"$work/in/small.eml=$work/out/lock3.eml"
t1=$(date +%s)
[ "$(grep -c '^m[123]\.bodychange=1' "$work/lock1.res")" = 3 ] && [ $((t1 - t0)) -le 3 ]
tap $? "database locked: 3 messages signed at once ($((t1 - t0)) s)" || sed 's/^/#   /' "$work/lock1.res"
verify_message "$work/out/lock2.eml" "$work/in/big.eml" andi@banjarkota.go.id "$work/pki" >"$work/v.log" 2>&1
tap $? "database locked: the signature verifies"
logwait "audit rows kept in memory.*locked" 15
tap $? "database locked: log says the audit rows wait in memory" || logshow
"$ME_CTL" -c "$conf" reload >"$work/reload.out" 2>&1
rc=$?
logwait 'reloaded: generation|reload failed' 30
tail -n +"$((logmark + 1))" "$log" | grep -q 'reloaded: generation'
tap $? "database locked: smimectl reload (exit $rc) is done by the milter" || logshow
t0=$(date +%s)
cli "$work/lock4.res" "$work/in/small.eml=$work/out/lock4.eml" "$work/in/sekda.eml=$work/out/lock5.eml"
t1=$(date +%s)
[ "$(grep -c '^m[12]\.bodychange=1' "$work/lock4.res")" = 2 ] && [ $((t1 - t0)) -le 3 ]
tap $? "database locked: 2 more messages signed at once after the reload ($((t1 - t0)) s)"
echo 'COMMIT;' >&9
exec 9>&-
wait "$lockpid"
lockpid=
want=$((before + 5))
i=0
while [ "$(signed_rows "$DB")" -lt $want ] && [ $i -lt 100 ]; do sleep 0.2; i=$((i + 1)); done
got=$(signed_rows "$DB")
[ "$got" -eq $want ]
tap $? "lock released: every audit row written ($((got - before)) of 5)" || logshow 12
alive "end"
fx_no_sanitizer "no sanitizer report in the milter log" "$log"
echo "1..$n"
