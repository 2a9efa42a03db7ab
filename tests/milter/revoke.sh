#!/bin/sh
# Revocation reaches a running milter: `smimectl revoke` and then
# `smimectl reload` (SIGUSR1 through the pidfile) stop signing with the
# certificate, without a restart.  Also `show` of the revoked certificate.
# Prints TAP.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
fx_begin revoke
pid=
fx_on_exit() { me_stop "$pid"; }
[ -x "$MILTC" ] || bail "tests/bench/miltc is built (make test-bins)"
fx_setup ""
me_start "$conf" "$work/milter.log" "$port" || bail "milter started"
pid=$ME_PID

printf 'From: Andi <andi@banjarkota.go.id>\r\nTo: x@example.org\r\nSubject: r\r\n\r\nHalo.\r\n' >"$work/m.eml"
signed() {
	rm -f "$work/out"
	"$MILTC" -s "inet:$port@127.0.0.1" -n 1 -o "$work/out" "$work/m.eml" >/dev/null
	grep -q '^#ADD Content-Type: multipart/signed' "$work/out" 2>/dev/null
}
signed
tap $? "andi@ is signed before revocation"
"$ME_CTL" -c "$conf" revoke andi@banjarkota.go.id --reason keyCompromise >/dev/null 2>&1
[ $? = 66 ]
tap $? "an address is not a certificate: revoke says no such certificate (66)"
serial=$(openssl x509 -in "$work/pki/andi.crt.pem" -noout -serial | sed 's/.*=//')
"$ME_CTL" -c "$conf" revoke "$serial" --reason keyCompromise >/dev/null
tap $? "revoke by serial $serial"
signed
tap $? "the running milter still signs until it reloads (its snapshot is immutable)"
"$ME_CTL" -c "$conf" reload >"$work/reload.out" 2>&1
tap $? "smimectl reload signals the milter through the pidfile"
me_wait_log "$work/milter.log" "reloaded: generation"
signed
[ $? != 0 ]
tap $? "after the reload the revoked certificate no longer signs"
grep -q "andi@banjarkota.go.id.*revoked" "$work/milter.log"
tap $? "the milter logs why andi@ cannot sign"
kill -0 "$pid"
tap $? "the milter kept running"
"$ME_CTL" -c "$conf" show "$serial" >"$work/show.out"
tap $? "show CERT"
grep -q "status:       revoked since" "$work/show.out" &&
	grep -q "revoked .*keyCompromise" "$work/show.out"
tap $? "show gives the status, when, and the history entry with the reason"
"$ME_CTL" -c "$conf" show andi@banjarkota.go.id >"$work/show2.out"
grep -q "^history:" "$work/show2.out" && grep -q "mapped" "$work/show2.out"
tap $? "show ADDR gives the mailbox history"
"$ME_CTL" -c "$conf" expiring --days x >/dev/null 2>&1
[ $? = 3 ]
tap $? "expiring with a bad argument is UNKNOWN (3)"
echo "1..$n"
