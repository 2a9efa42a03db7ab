#!/bin/sh
# End-to-end: real Postfix -> smime-milter -> smtp-sink, every delivered
# message checked by independent verifiers (openssl cms, gpgsm, python).
#
#   sh tests/e2e/postfix.sh          (KEEP=1 keeps the work directory)
#
# KEYSTORE=pkcs11 (tests/e2e/postfix-hsm.sh) keeps every private key on a
# private SoftHSM2 token instead (tests/lib/hsm.sh): the milter config gets
# the pkcs11_* keys and the mailboxes are imported with --pkcs11-uri (andi
# and sekda with --cert, the others through the certificate object on the
# token); everything else is the same.  The default, KEYSTORE=files, imports
# PKCS#12 and PEM files.
#
# Builds a fresh PKI (tests/lib/pki.sh), a milter config and SQLite DB with
# smimectl, starts the milter on a free loopback port and a private Postfix
# (tests/lib/postfix.sh) whose smtpd uses it, plus a second smtpd without the
# milter as a baseline.  Sends:
#   tests/data/corpus/*.eml + generated ones (tests/lib/mkcorpus.py): each must
#     arrive signed by its From address and pass tests/lib/verify.sh;
#   a message from other@example.org: must arrive untouched;
#   a message from an outside client (XCLIENT ADDR=192.0.2.1): untouched;
#   the same client authenticated (XCLIENT LOGIN=andi): signed;
#   tests/data/bad/*.eml + generated bad ones: each must be delivered and be
#     either signed-and-verifying or exactly what Postfix alone delivers.
# Finally the milter must still be running.  Everything is stopped and removed
# on exit.  Prints TAP.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
. "$TOP/tests/lib/e2e.sh"
e2e_begin e2e

# ---------------------------------------------------------------- setup
e2e_pki
if [ "$KEYSTORE" = pkcs11 ]; then
	hsm_fixture "$work/hsm" "$pki" || bail "SoftHSM2 token with the five keys and certificates"
	ok "SoftHSM2 token $HSM_TOKEN with the five keys and certificates"
fi
e2e_corpus

set -- $(pf_free_ports 4)
milter_port=$1 smtp_port=$2 sink_port=$3 base_port=$4
conf=$work/smime-milter.conf
me_conf "$conf" "$work" "inet:$milter_port@127.0.0.1" # pidfile $conf.pid
[ "$KEYSTORE" = pkcs11 ] && hsm_conf_lines >>"$conf"

e2e_import
if [ "$KEYSTORE" = pkcs11 ]; then
	# no key file anywhere for the milter to fall back to
	for a in andi sekda noreply legacy ec; do
		rm -f "$pki/$a.key.pem" "$pki/$a.p12" "$pki/$a.legacy.p12" "$pki/$a.pass"
	done
	left=$(find "$work/keys" -type f \( -name '*.p12' -o -name '*.pem' -o -name '*.pass' \) |
		xargs -r grep -lE 'PRIVATE KEY' 2>/dev/null; find "$work/keys" -name '*.p12' -o -name '*.pass')
	tap "$([ -z "$left" ]; echo $?)" "no key file in key_dir after the token imports${left:+: $(echo $left)}"
fi
"$CTL" -c "$conf" list >"$work/list.out" 2>&1
missing=
for a in andi sekda noreply legacy ec; do
	grep -q "$a@banjarkota.go.id" "$work/list.out" || missing="$missing $a"
done
if [ -z "$missing" ]; then
	ok "smimectl list shows the five imported mailboxes"
else
	nok "smimectl list shows the five imported mailboxes (missing:$missing)"
	sed 's/^/#   /' "$work/list.out"
fi

# ---------------------------------------------------------------- start
e2e_start_milter
i=0
while [ ! -s "$conf.pid" ] && [ $i -lt 30 ]; do sleep 0.1; i=$((i + 1)); done
if [ "$(cat "$conf.pid" 2>/dev/null | tr -d ' \n')" = "$milter_pid" ]; then
	ok "pidfile holds the milter's pid"
else
	nok "pidfile holds the milter's pid (got '$(cat "$conf.pid" 2>/dev/null)', want $milter_pid)"
fi

mkdir -p "$work/pf"
# XCLIENT from loopback lets the test pose as an outside client; relaying
# for it is fine here (everything listens on 127.0.0.1 only).
PF_EXTRA_MAIN='smtpd_authorized_xclient_hosts = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, check_client_access static:OK, reject'
if PF_BASELINE_PORT=$base_port pf_start "$work/pf" "$smtp_port" "$sink_port" \
	"inet:$milter_port@127.0.0.1"; then
	ok "private Postfix started (smtpd $smtp_port, baseline $base_port, sink $sink_port)"
else
	bail "private Postfix started"
fi

# ---------------------------------------------------------------- send
sent=0
send() { # send TAG FILE [PORT] [raw]
	_tag=$1 _file=$2 _port=${3:-$smtp_port}
	if [ "${4:-}" = raw ]; then
		cp "$_file" "$work/send/$_tag.eml"
	else
		"$PY" "$SC" crlf "$_file" "$work/send/$_tag.eml"
	fi
	_from=$("$PY" "$SC" from-addr "$work/send/$_tag.eml" 2>/dev/null)
	[ -n "$_from" ] || _from=andi@banjarkota.go.id
	_code=$(pf_send "$_from" "t-$_tag@example.org" "$work/send/$_tag.eml" "$_port" 2>"$work/send/$_tag.err")
	if [ "$_code" = 250 ]; then
		sent=$((sent + 1))
		return 0
	fi
	sed 's/^/#   /' "$work/send/$_tag.err"
	return 1
}

for tag in $good; do
	send "$tag" "$(e2e_src "$tag")"
	tap $? "$tag: accepted by Postfix with the milter"
done

# not a signing domain
send other-domain "$work/other-domain.eml"
tap $? "other-domain: accepted by Postfix with the milter"

# an outside client (XCLIENT ADDR) is inbound mail: untouched; the same
# client authenticated (XCLIENT LOGIN -> {auth_authen}) is signed
export PF_XCLIENT="ADDR=192.0.2.1 NAME=mx.example.net"
send inbound "$TOP/tests/data/corpus/02-8bit-utf8.eml"
tap $? "inbound (client 192.0.2.1 via XCLIENT): accepted by Postfix with the milter"
export PF_XCLIENT="ADDR=203.0.113.9 NAME=laptop.example.net LOGIN=andi"
send authenticated "$TOP/tests/data/corpus/02-8bit-utf8.eml"
tap $? "authenticated outside client (203.0.113.9, LOGIN=andi via XCLIENT): accepted"
unset PF_XCLIENT

for tag in $bad; do
	f=$(e2e_src "$tag")
	send "$tag" "$f" "$smtp_port" "$(e2e_mode "$tag")"
	tap $? "$tag: accepted by Postfix with the milter"
	send "base-$tag" "$f" "$base_port" "$(e2e_mode "$tag")" ||
		echo "# baseline copy of $tag not accepted"
done

if pf_wait_delivered "$sent" 120; then
	ok "all $sent accepted messages delivered to the sink"
else
	nok "all $sent accepted messages delivered to the sink"
	sed 's/^/# maillog: /' "$work/pf/maillog" | grep -v 'status=sent' | tail -20
fi

# ---------------------------------------------------------------- verify
for tag in $good; do
	e2e_check_signed "$tag" "$("$PY" "$SC" from-addr "$work/send/$tag.eml")"
done
e2e_check_untouched other-domain
e2e_check_untouched inbound
if e2e_delivered authenticated; then
	ok "authenticated: delivered"
	verify_message "$work/out/authenticated.eml" "$work/send/authenticated.eml" \
		andi@banjarkota.go.id "$pki"
	tap $? "authenticated: signed and verifies (openssl, gpgsm, headers, content)${VM_FAILED:+ failed:$VM_FAILED}"
else
	nok "authenticated: delivered"
fi
for tag in $bad; do
	e2e_check_bad "$tag"
done

# ---------------------------------------------------------------- health
e2e_health
echo "1..$n"
