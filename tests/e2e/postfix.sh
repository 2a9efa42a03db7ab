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
set -u
TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
export TOP
. "$TOP/tests/lib/postfix.sh"
. "$TOP/tests/lib/verify.sh"
. "$TOP/tests/lib/milterenv.sh" # me_conf, me_stop
PY=/usr/bin/python3
SC="$TOP/tests/lib/smimecheck.py"
MILTER=${SMIME_MILTER:-$TOP/milter/smime-milter}
CTL=${SMIMECTL:-$TOP/admin/smimectl}
KEYSTORE=${KEYSTORE:-files}

work=$(mktemp -d /tmp/smime-e2e.XXXXXX)
chmod 0755 "$work"
milter_pid=
n=0

cleanup() {
	if [ -n "$milter_pid" ]; then
		kill "$milter_pid" 2>/dev/null
		i=0
		while kill -0 "$milter_pid" 2>/dev/null && [ $i -lt 300 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		kill -9 "$milter_pid" 2>/dev/null
		milter_pid=
	fi
	pf_stop
	if [ "${KEEP:-0}" = 1 ]; then
		echo "# work directory kept: $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

ok() { n=$((n + 1)); echo "ok $n - $*"; }
nok() { n=$((n + 1)); echo "not ok $n - $*"; }
tap() { # tap CONDITION-RESULT(0/1) DESCRIPTION
	if [ "$1" = 0 ]; then ok "$2"; else nok "$2"; fi
}
bail() {
	nok "$*"
	[ -f "$work/milter.log" ] && tail -20 "$work/milter.log" | sed 's/^/# milter: /'
	echo "1..$n"
	exit 1
}

for p in "$MILTER" "$CTL"; do
	[ -x "$p" ] || bail "$p is built (run make first)"
done

# ---------------------------------------------------------------- setup
if sh "$TOP/tests/lib/pki.sh" "$work/pki" >"$work/pki.log" 2>&1; then
	ok "test PKI created"
else
	sed 's/^/# /' "$work/pki.log"
	bail "test PKI created"
fi
pki=$work/pki
if [ "$KEYSTORE" = pkcs11 ]; then
	. "$TOP/tests/lib/hsm.sh"
	hsm_fixture "$work/hsm" "$pki" || bail "SoftHSM2 token with the five keys and certificates"
	ok "SoftHSM2 token $HSM_TOKEN with the five keys and certificates"
fi

mkdir -p "$work/gen/good" "$work/gen/bad" "$work/send" "$work/out"
"$PY" "$TOP/tests/lib/mkcorpus.py" "$work/gen/good" "$work/gen/bad" ||
	bail "generated corpus written"

set -- $(pf_free_ports 4)
milter_port=$1 smtp_port=$2 sink_port=$3 base_port=$4
conf=$work/smime-milter.conf
me_conf "$conf" "$work" "inet:$milter_port@127.0.0.1" # pidfile $conf.pid
[ "$KEYSTORE" = pkcs11 ] && hsm_conf_lines >>"$conf"

. "$TOP/tests/lib/expect.sh" # ctl
ctl "smimectl init" init
# imp NAME KIND DESCRIPTION FILE-ARGS...: imports NAME@banjarkota.go.id from
# the files, or with KEYSTORE=pkcs11 from the token
imp() {
	_n=$1 _k=$2 _d=$3
	shift 3
	if [ "$KEYSTORE" = pkcs11 ]; then
		case $_n in
		andi | sekda) set -- --cert "$pki/$_n.crt.pem" ;;
		*) set -- ;;
		esac
		_d="$_n ($_k, key on the token${1:+, --cert})"
		set -- --pkcs11-uri "$(hsm_uri "$HSM_TOKEN" "$_n")" "$@"
	fi
	ctl "smimectl import $_d" import --mailbox "$_n@banjarkota.go.id" --kind "$_k" "$@"
}
imp andi individual "andi (individual, PKCS#12)" \
	--p12 "$pki/andi.p12" --passphrase-file "$pki/andi.pass"
imp sekda role "sekda (role, PEM cert + key)" \
	--cert "$pki/sekda.crt.pem" --key "$pki/sekda.key.pem"
imp noreply system "noreply (system, PKCS#12)" \
	--p12 "$pki/noreply.p12" --passphrase-file "$pki/noreply.pass"
imp legacy individual "legacy (address only in subject DN, PKCS#12)" \
	--p12 "$pki/legacy.p12" --passphrase-file "$pki/legacy.pass"
imp ec individual "ec (EC P-256, PKCS#12)" \
	--p12 "$pki/ec.p12" --passphrase-file "$pki/ec.pass"
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
"$MILTER" -c "$conf" -f >"$work/milter.log" 2>&1 &
milter_pid=$!
if pf__wait_port "$milter_port" 15 && kill -0 "$milter_pid" 2>/dev/null; then
	ok "milter listens on inet:$milter_port@127.0.0.1"
else
	bail "milter listens on inet:$milter_port@127.0.0.1"
fi
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
# Each message gets its own envelope recipient t-TAG@example.org, which is how
# the delivered copy is found again (X-Rcpt-Args in the sink dump).
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

good=
for f in "$TOP"/tests/data/corpus/*.eml "$work"/gen/good/*.eml; do
	tag=$(basename "$f" .eml)
	good="$good $tag"
	send "$tag" "$f"
	tap $? "$tag: accepted by Postfix with the milter"
done

# not a signing domain
other=$work/other-domain.eml
printf '%s\r\n' "From: Other Org <other@example.org>" "To: someone@example.org" \
	"Subject: message from a domain the milter does not sign for" \
	"Date: Tue, 24 Nov 2026 13:00:00 +0700" "Message-ID: <other-1@example.org>" \
	"MIME-Version: 1.0" "Content-Type: text/plain; charset=utf-8" \
	"Content-Transfer-Encoding: 8bit" "" "Salam dari luar – must stay untouched." \
	>"$other"
send other-domain "$other"
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

bad=
for f in "$TOP"/tests/data/bad/*.eml "$work"/gen/bad/*.eml; do
	tag=$(basename "$f" .eml)
	mode=
	case $tag in *bare-lf*) mode=raw ;; esac
	bad="$bad $tag"
	send "$tag" "$f" "$smtp_port" "$mode"
	tap $? "$tag: accepted by Postfix with the milter"
	send "base-$tag" "$f" "$base_port" "$mode" ||
		echo "# baseline copy of $tag not accepted"
done

if pf_wait_delivered "$sent" 120; then
	ok "all $sent accepted messages delivered to the sink"
else
	nok "all $sent accepted messages delivered to the sink"
	sed 's/^/# maillog: /' "$work/pf/maillog" | grep -v 'status=sent' | tail -20
fi

# delivered TAG -> writes $work/out/TAG.eml, returns 1 if not delivered
delivered() {
	_f=$(pf_sink_files | while read -r _x; do
		if grep -q "^X-Rcpt-Args: <t-$1@example.org>" "$_x"; then echo "$_x"; break; fi
	done)
	[ -n "$_f" ] || return 1
	pf_strip_sink "$_f" >"$work/out/$1.eml"
}

# ---------------------------------------------------------------- verify
for tag in $good; do
	if ! delivered "$tag"; then
		nok "$tag: delivered"
		continue
	fi
	ok "$tag: delivered"
	who=$("$PY" "$SC" from-addr "$work/send/$tag.eml")
	echo "# --- $tag (signer $who)"
	verify_message "$work/out/$tag.eml" "$work/send/$tag.eml" "$who" "$pki"
	tap "$([ $VM_STRUCT = ok ]; echo $?)" "$tag: multipart/signed structure, 7-bit entity"
	tap "$([ $VM_OPENSSL = ok ]; echo $?)" "$tag: openssl cms verifies (root-only trust)"
	tap "$([ $VM_GPGSM = ok ]; echo $?)" "$tag: gpgsm verifies (root-only trust)"
	tap "$([ $VM_SIGNER = ok ]; echo $?)" "$tag: signer certificate is $who"
	tap "$([ $VM_CMS = ok ]; echo $?)" "$tag: CMS attributes and embedded chain"
	tap "$([ $VM_HEADERS = ok ]; echo $?)" "$tag: original headers preserved outside"
	tap "$([ $VM_CONTENT = ok ]; echo $?)" "$tag: content ok (decoded parts equal)"
done

if delivered other-domain; then
	ok "other-domain: delivered"
	if vm_is_signed "$work/out/other-domain.eml"; then
		nok "other-domain: not signed"
	else
		ok "other-domain: not signed"
	fi
	"$PY" "$SC" same-body "$work/send/other-domain.eml" "$work/out/other-domain.eml"
	tap $? "other-domain: arrived untouched"
else
	nok "other-domain: delivered"
fi

if delivered inbound; then
	ok "inbound: delivered"
	if vm_is_signed "$work/out/inbound.eml"; then
		nok "inbound: not signed"
	else
		ok "inbound: not signed"
	fi
	"$PY" "$SC" same-body "$work/send/inbound.eml" "$work/out/inbound.eml"
	tap $? "inbound: arrived untouched"
else
	nok "inbound: delivered"
fi
if delivered authenticated; then
	ok "authenticated: delivered"
	verify_message "$work/out/authenticated.eml" "$work/send/authenticated.eml" \
		andi@banjarkota.go.id "$pki"
	tap $? "authenticated: signed and verifies (openssl, gpgsm, headers, content)${VM_FAILED:+ failed:$VM_FAILED}"
else
	nok "authenticated: delivered"
fi

for tag in $bad; do
	if ! delivered "$tag"; then
		nok "$tag: delivered"
		continue
	fi
	ok "$tag: delivered"
	echo "# --- $tag"
	have_base=no
	delivered "base-$tag" && have_base=yes
	if vm_is_signed "$work/out/$tag.eml"; then
		verify_message "$work/out/$tag.eml" - - "$pki"
		tap $? "$tag: signed, and the signature verifies (openssl and gpgsm)"
		# what was signed must be what Postfix alone would have delivered
		if [ $have_base = yes ]; then
			"$PY" "$SC" content "$work/out/base-$tag.eml" "$work/out/$tag.eml"
			tap $? "$tag: signed content equals what Postfix alone delivers"
		else
			nok "$tag: signed content equals what Postfix alone delivers (no baseline copy)"
		fi
		"$PY" "$SC" headers "$work/send/$tag.eml" "$work/out/$tag.eml" >"$work/hdr.log"
		tap $? "$tag: original headers preserved outside"
		grep -v 'present unchanged' "$work/hdr.log" | head -5
	elif [ $have_base = yes ]; then
		"$PY" "$SC" same-body "$work/out/base-$tag.eml" "$work/out/$tag.eml"
		tap $? "$tag: not signed, and identical to what Postfix alone delivers"
	else
		nok "$tag: not signed, and no baseline copy to compare with"
	fi
done

# ---------------------------------------------------------------- health
if kill -0 "$milter_pid" 2>/dev/null && [ -s "$conf.pid" ]; then
	ok "milter still running after all messages (pid $milter_pid)"
else
	nok "milter still running after all messages"
	tail -30 "$work/milter.log" | sed 's/^/# milter: /'
fi
if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$work/milter.log"; then
	nok "no sanitizer report in the milter log"
	grep -E -A10 'AddressSanitizer|LeakSanitizer|runtime error:' "$work/milter.log" | head -40 | sed 's/^/# /'
else
	ok "no sanitizer report in the milter log"
fi
grep -c ' signed for ' "$work/milter.log" | sed 's/^/# milter log lines "signed for": /'

echo "1..$n"
