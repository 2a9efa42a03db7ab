#!/bin/sh
# Keys and the socket as a postmaster would audit them (issue 6, Security):
#   - a unix socket is created mode 0660 (socket_mode) and group socket_group,
#     owned by the milter's user; a bad mode or an unknown group stops the
#     start with a clear error;
#   - a key, PKCS#12 or passphrase file readable by group or others, or in a
#     directory others can write, makes the milter refuse to start (the
#     error names the path) and a reload refuse to take it (the old
#     configuration keeps signing); -n says the same;
#   - the running daemon cannot dump core (RLIMIT_CORE 0, not dumpable).
# Runs as root with user = nobody.  Prints TAP.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
fx_begin sec
pid=
fx_on_exit() { me_stop "$pid"; }
fx_need_root "it tests file ownership and modes"
getent group postfix >/dev/null || bail "group postfix exists (the MTA's group)"
[ -x "$MILTC" ] || bail "tests/bench/miltc is built (make test-bins)"

sock=$work/run/milter.sock
fx_nobody "unix:$sock" 'socket_group = "postfix";'
me_import "$conf" "$pki" init andi sekda || bail "smimectl init and two imports"
p12=$(ls "$state"/keys/*.p12 | head -1)
pass=$(ls "$state"/keys/*.pass | head -1)
key=$(ls "$state"/keys/*.pem | grep -v '\.pass$' | head -1)
[ -f "$p12" ] && [ -f "$pass" ] && [ -f "$key" ] ||
	bail "key_dir holds the copied PKCS#12, passphrase and PEM key"

# start CONF: the daemon in the foreground; waits for "starting on" or exit
start() {
	# emptied here, not by the redirection: that one happens in the child,
	# and a grep that runs first would find the last daemon's "starting on"
	: >"$work/milter.log"
	"$ME_MILTER" -c "$1" -f >>"$work/milter.log" 2>&1 &
	pid=$!
	_i=0
	while [ $_i -lt 100 ]; do
		grep -q "starting on" "$work/milter.log" && return 0
		kill -0 "$pid" 2>/dev/null || { wait "$pid"; rc=$?; pid=; return 1; }
		sleep 0.1
		_i=$((_i + 1))
	done
	return 1
}
msg=$work/m.eml
printf 'From: Andi <andi@banjarkota.go.id>\r\nTo: x@example.org\r\nSubject: sec\r\n\r\nHalo.\r\n' >"$msg"
signs() { # signs: one message over the unix socket comes back signed
	rm -f "$work/out"
	"$ME_PY" "$TOP/tests/lib/miltercli.py" --socket "unix:$sock" "$msg=$work/out" \
		>"$work/cli.out" 2>&1 && grep -q 'multipart/signed' "$work/out"
}

# ---- socket
start "$conf"
tap $? "milter starts as root with user nobody on a unix socket"
st=$(stat -c '%a %U %G' "$sock" 2>/dev/null)
[ "$st" = "660 nobody postfix" ]
tap $? "the socket is mode 0660, owned by nobody, group postfix ($st)"
signs
tap $? "a message over the socket is signed"
core=$(awk '/^Max core file size/ { print $5 " " $6 }' "/proc/$pid/limits")
[ "$core" = "0 0" ]
tap $? "RLIMIT_CORE is 0 in the daemon (soft, hard: $core)"
# a process that is not dumpable has its /proc files owned by root
o=$(stat -c %U "/proc/$pid/environ")
[ "$o" = root ]
tap $? "the daemon (uid nobody) is not dumpable: /proc/PID/environ owned by $o"

# ---- reload with an exposed key: refused, the old keys keep signing
chmod 0640 "$p12"
kill -USR1 "$pid"
i=0
while ! grep -q "reload failed" "$work/milter.log" && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
grep -q "reload failed, keeping the previous configuration" "$work/milter.log" &&
	grep -q "$p12: mode 0640 is readable by group or others" "$work/milter.log"
tap $? "reload with a group-readable PKCS#12 is refused, naming the file and its mode"
signs
tap $? "... and the previous configuration still signs"
me_stop "$pid"
pid=

# ---- start refused: each exposed file, named
rc=0
start "$conf"
[ $? -ne 0 ] && [ "$rc" = 78 ] && grep -q "$p12: mode 0640" "$work/milter.log"
tap $? "start refused with a group-readable PKCS#12 (exit $rc), naming it"
"$ME_MILTER" -c "$conf" -n >"$work/n.out" 2>&1
rc=$?
[ $rc -ne 0 ] && grep -q "$p12: mode 0640" "$work/n.out"
tap $? "-n says the same (exit $rc)"
chmod 0600 "$p12"

# refused MODE PATH TEXT DESCRIPTION: with PATH at MODE the start fails
# and the log has TEXT
refused() {
	chmod "$1" "$2"
	rc=0
	start "$conf"
	[ $? -ne 0 ] && grep -q "$3" "$work/milter.log"
	tap $? "$4 (exit $rc)"
}
refused 0604 "$pass" "$pass: mode 0604 is readable by group or others" \
	"start refused with a world-readable passphrase file"
chmod 0600 "$pass"
refused 0644 "$key" "$key: mode 0644" "start refused with a world-readable PEM key"
chmod 0600 "$key"
refused 0777 "$state/keys" "directory $state/keys is writable by others" \
	"start refused when the key directory is writable by others"
chmod 1777 "$state/keys"
start "$conf"
tap $? "... but a sticky directory (like /tmp) is accepted"
me_stop "$pid"
pid=
chmod 0700 "$state/keys"

# ---- socket settings
sed 's|^socket_group = .*|socket_group = "no-such-group-x";|' "$conf" >"$work/g.conf"
chmod 0644 "$work/g.conf"
rc=0
start "$work/g.conf"
[ $? -ne 0 ] && grep -q "socket_group no-such-group-x: no such group" "$work/milter.log"
tap $? "an unknown socket_group stops the start with a clear error (exit $rc)"
{ cat "$conf"; echo 'socket_mode = "0600";'; } >"$work/m6.conf"
chmod 0644 "$work/m6.conf"
start "$work/m6.conf"
st=$(stat -c '%a' "$sock" 2>/dev/null)
[ "$st" = 600 ]
tap $? "socket_mode = \"0600\" gives mode 600 ($st)"
me_stop "$pid"
pid=
{ cat "$conf"; echo 'socket_mode = "rw-rw----";'; } >"$work/mb.conf"
"$ME_MILTER" -c "$work/mb.conf" -n >"$work/n.out" 2>&1
rc=$?
[ $rc = 78 ] && grep -q "mb.conf:[0-9]*: socket_mode: 'rw-rw----' is not an octal mode" "$work/n.out"
tap $? "a socket_mode that is not octal is a configuration error with its line (exit $rc)"

echo "1..$n"
