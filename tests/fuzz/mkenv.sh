#!/bin/sh
# tests/fuzz/mkenv.sh DIR -- a throw-away PKI, database and milter
# configuration in DIR for fuzz_eom (and anyone else who wants one):
# DIR/m.conf signs for banjarkota.go.id with the keys of tests/lib/pki.sh
# (andi, sekda, noreply, legacy, ec).  Prints nothing on success.
set -u
TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
export TOP
. "$TOP/tests/lib/milterenv.sh"
work=$1
mkdir -p "$work"
me_conf "$work/m.conf" "$work" "inet:1@127.0.0.1" || exit 1
me_setup "$work" "$work/m.conf" || exit 1
"$ME_CTL" -c "$work/m.conf" import --mailbox ec@banjarkota.go.id --kind individual \
	--p12 "$work/pki/ec.p12" --passphrase-file "$work/pki/ec.pass" >"$work/ec.log" 2>&1 || {
	sed 's/^/# /' "$work/ec.log"
	exit 1
}
