#!/bin/sh
# Certificates the milter must never sign with, and reload:
#   expired, not yet valid (future), serverAuth-only EKU, keyUsage without
#   digitalSignature (nosign), and a certificate revoked by a CRL imported
#   with `smimectl crl import`.  `smimectl import` may refuse them (fine); if
#   it takes them, a message from that mailbox must not come out signed
#   (default on_no_certificate=accept: it passes unsigned).
#   Reload: a mailbox imported after start is used after SIGUSR1, and a CRL
#   imported after start stops signing with the revoked certificate after
#   SIGUSR1.
# Driven with tests/lib/miltercli.py.  Prints TAP.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
fx_begin certs
pid=
fx_on_exit() { me_stop "$pid"; }

fx_setup "PKI built and good certificates imported"
pki=$work/pki
ctl() { "$ME_CTL" -c "$conf" "$@" >"$work/ctl.log" 2>&1; }

# Bad certificates: import (may be refused)
imported=
for b in expired future serveronly nosign; do
	if me_import_cmd "$b" "$pki" ctl; then
		echo "# smimectl accepted the $b certificate (the milter must not use it)"
		imported="$imported $b"
	else
		echo "# smimectl refused the $b certificate: $(head -1 "$work/ctl.log")"
	fi
done
# revoked: valid until the CRL is known; import it now, CRL after start
if ctl import --mailbox revoked@banjarkota.go.id --kind individual \
	--cert "$pki/revoked.crt.pem" --key "$pki/revoked.key.pem"; then
	ok "smimectl imports the (not yet known to be) revoked certificate"
else
	nok "smimectl imports the (not yet known to be) revoked certificate"
	sed 's/^/#   /' "$work/ctl.log"
fi

me_start "$conf" "$work/milter.log" "$port" || bail "milter started"
pid=$ME_PID
ok "milter started"

mk() { # mk NAME FROM
	printf '%s\r\n' "From: $2" "To: someone@example.org" "Subject: cert test $1" \
		"Date: Tue, 24 Nov 2026 15:00:00 +0700" "Message-ID: <cert-$1@banjarkota.go.id>" \
		"MIME-Version: 1.0" "Content-Type: text/plain; charset=us-ascii" "" \
		"certificate test $1" >"$work/$1.eml"
}
# send NAME : runs one message through the milter, result in $work/NAME.res/.out
send() {
	"$PY" "$CLI" --socket "inet:$port@127.0.0.1" --client-ip 127.0.0.1 \
		"$work/$1.eml=$work/$1.out" >"$work/$1.res" 2>&1
}
unsigned() { # unsigned NAME DESCRIPTION
	if send "$1" && ! grep -q '^m1\.bodychange=1' "$work/$1.res" && ! vm_is_signed "$work/$1.out"; then
		ok "$2"
	else
		nok "$2"
		sed 's/^/#   /' "$work/$1.res"
	fi
}
signed() { # signed NAME SIGNER DESCRIPTION
	if send "$1" && grep -q '^m1\.bodychange=1' "$work/$1.res"; then
		verify_message "$work/$1.out" "$work/$1.eml" "$2" "$pki" >"$work/v.log"
		rc=$?
		[ $rc = 0 ] || cat "$work/v.log"
		tap $rc "$3${VM_FAILED:+ (failed:$VM_FAILED)}"
	else
		nok "$3 (not signed)"
		sed 's/^/#   /' "$work/$1.res"
	fi
}

for b in expired future serveronly nosign; do
	mk "$b" "$b@banjarkota.go.id"
	unsigned "$b" "not signed with the $b certificate"
done

mk revoked1 revoked@banjarkota.go.id
signed revoked1 revoked@banjarkota.go.id "before the CRL: revoked@ is signed (the certificate looks valid)"

# reload: CRL import and a new mailbox
mk ec1 ec@banjarkota.go.id
unsigned ec1 "ec@ before its import: passes unsigned"
ctl crl import "$pki/crl.der"
tap $? "smimectl crl import (DER CRL of the intermediate)"
me_import_cmd ec "$pki" ctl
tap $? "smimectl import of ec@ while the milter runs"
before=$(grep -c 'reload' "$work/milter.log")
kill -USR1 "$pid"
# wait for the reload to be logged (at most 10 s), then go on regardless
i=0
while [ "$(grep -c 'reload' "$work/milter.log")" -lt $((before + 2)) ] && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
grep 'reload' "$work/milter.log" | tail -2 | sed 's/^/# milter: /'
kill -0 "$pid" 2>/dev/null
tap $? "milter survives SIGUSR1 (reload)"
mk ec2 ec@banjarkota.go.id
signed ec2 ec@banjarkota.go.id "after reload: ec@ (EC P-256) signed and verifies"
mk revoked2 revoked@banjarkota.go.id
unsigned revoked2 "after CRL import and reload: not signed with the revoked certificate"
mk andi andi@banjarkota.go.id
signed andi andi@banjarkota.go.id "after reload: andi@ still signed"

kill -0 "$pid" 2>/dev/null
tap $? "milter still running"
fx_no_sanitizer "no sanitizer report in the milter log" "$work/milter.log"
echo "1..$n"
