#!/bin/sh
# The daemon as a postmaster runs it: started as root with `user` set, it
# opens its socket, drops to that user, and then loads keys and writes the
# audit log as that user.  smimectl run as root leaves every file it
# creates (database, WAL, keys) owned by that user, keys mode 0600.
# Uses the system account "nobody".  Prints TAP.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
fx_begin priv
pid=
fx_on_exit() { me_stop "$pid"; }
fx_need_root "it tests the privilege drop"
[ -x "$MILTC" ] || bail "tests/bench/miltc is built (make test-bins)"
uid=$(id -u nobody)

set -- $(me_free_ports 1)
port=$1
# the PKI stays root's: smimectl reads it as root
fx_nobody "inet:$port@127.0.0.1" "pidfile = \"$work/run/m.pid\";"

"$ME_CTL" -c "$conf" init >/dev/null
tap $? "smimectl init as root"
"$ME_CTL" -c "$conf" import --mailbox andi@banjarkota.go.id \
	--kind individual --p12 "$work/pki/andi.p12" \
	--passphrase-file "$work/pki/andi.pass" >/dev/null
tap $? "smimectl import as root of a root-only PKCS#12"
"$ME_CTL" -c "$conf" list >/dev/null
tap $? "smimectl list as root"

bad=$(find "$state" -newer "$conf" ! -user nobody | head -3)
[ -z "$bad" ]
tap $? "every file smimectl created belongs to nobody ${bad:+(not: $bad)}"
modes=$(stat -c '%a' "$state"/keys/* | sort -u | tr '\n' ' ')
[ "$modes" = "600 " ]
tap $? "copied key and passphrase files are 0600 ($modes)"

"$ME_MILTER" -c "$conf" -f 2>"$work/milter.log" &
pid=$!
me_wait_log "$work/milter.log" "starting on"
tap $? "milter started as root with user = nobody"
puid=$(awk '/^Uid:/ { print $2 " " $3 " " $4 }' "/proc/$pid/status" 2>/dev/null)
[ "$puid" = "$uid $uid $uid" ]
tap $? "running as nobody (real, effective, saved uid: $puid)"

printf 'From: Andi <andi@banjarkota.go.id>\r\nTo: x@example.org\r\nSubject: priv\r\n\r\nHalo.\r\n' >"$work/m.eml"
"$MILTC" -s "inet:$port@127.0.0.1" -n 3 -o "$work/out" "$work/m.eml" >/dev/null
grep -q '^#ADD Content-Type: multipart/signed' "$work/out"
tap $? "signs with a key loaded after the privilege drop"

kill -USR1 "$pid"
sleep 1
grep -q "reloaded: generation" "$work/milter.log"
tap $? "SIGUSR1 reload works as nobody"

me_stop "$pid"
pid=
rows=$(sqlite3 "$state/smime.db" "SELECT count(*) FROM audit WHERE action = 'signed'")
[ "$rows" = 3 ]
tap $? "audit rows written by the unprivileged daemon ($rows of 3)"
! grep -qi "not writable\|readonly\|permission denied" "$work/milter.log"
tap $? "no permission problem in the log"
[ ! -e "$work/run/m.pid" ]
tap $? "pidfile removed at stop"
echo "1..$n"
