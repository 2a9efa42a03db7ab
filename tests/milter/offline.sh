#!/bin/sh
# The milter's offline modes, no MTA involved:
#   -n   configuration check: good config exits 0, broken ones exit non-zero
#        and name the file and line;
#   -t FILE -s ADDR   signs every corpus message (tests/data/corpus and the
#        generated ones) through the real callback code; each result is
#        checked with tests/lib/verify.sh (openssl, gpgsm, headers, content);
#        a message from a foreign domain comes out unsigned.
# Prints TAP.
set -u
TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
export TOP
. "$TOP/tests/lib/milterenv.sh"
. "$TOP/tests/lib/verify.sh"
SC=$TOP/tests/lib/smimecheck.py

work=$(mktemp -d /tmp/smime-off.XXXXXX)
n=0
cleanup() { if [ "${KEEP:-0}" = 1 ]; then echo "# kept $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
ok() { n=$((n + 1)); echo "ok $n - $*"; }
nok() { n=$((n + 1)); echo "not ok $n - $*"; }
bail() { nok "$*"; echo "1..$n"; exit 1; }

[ -x "$ME_MILTER" ] && [ -x "$ME_CTL" ] || bail "smime-milter and smimectl are built (run make)"

set -- $(me_free_ports 1)
conf=$work/m.conf
me_conf "$conf" "$work" "inet:$1@127.0.0.1"
me_setup "$work" "$conf" || bail "PKI built and certificates imported with smimectl"
ok "PKI built and certificates imported with smimectl"
"$ME_CTL" -c "$conf" import --mailbox ec@banjarkota.go.id --kind individual \
	--p12 "$work/pki/ec.p12" --passphrase-file "$work/pki/ec.pass" >"$work/ec.log" 2>&1 ||
	{ echo "# smimectl import of the EC certificate failed:"; sed 's/^/#   /' "$work/ec.log"; }

# ---- -n
if "$ME_MILTER" -c "$conf" -n >"$work/n.out" 2>&1; then
	ok "smime-milter -n accepts the test configuration"
else
	nok "smime-milter -n accepts the test configuration (exit $?)"
	sed 's/^/#   /' "$work/n.out"
fi
check_bad_conf() { # check_bad_conf DESCRIPTION EXTRA_LINE
	me_conf "$work/bad.conf" "$work" "inet:1@127.0.0.1" "$2"
	"$ME_MILTER" -c "$work/bad.conf" -n >"$work/bad.out" 2>&1
	rc=$?
	if [ $rc -ne 0 ] && grep -q "bad.conf:[0-9]" "$work/bad.out"; then
		ok "smime-milter -n rejects $1 with file:line (exit $rc)"
	else
		nok "smime-milter -n rejects $1 with file:line (exit $rc)"
		sed 's/^/#   /' "$work/bad.out"
	fi
}
check_bad_conf "an unknown digest" 'digest = "md5";'
check_bad_conf "an unknown action" 'on_error = "explode";'
check_bad_conf "an empty domain list" 'domains = [ ];'
check_bad_conf "a bad CIDR block" 'internal_hosts = [ "10.0.0.0/33" ];'

# ---- -t
mkdir -p "$work/gen/good" "$work/gen/bad" "$work/in" "$work/out"
/usr/bin/python3 "$TOP/tests/lib/mkcorpus.py" "$work/gen/good" "$work/gen/bad"
for f in "$TOP"/tests/data/corpus/*.eml "$work"/gen/good/*.eml; do
	tag=$(basename "$f" .eml)
	/usr/bin/python3 "$SC" crlf "$f" "$work/in/$tag.eml"
	who=$(/usr/bin/python3 "$SC" from-addr "$work/in/$tag.eml")
	echo "# --- $tag (signer $who)"
	if ! "$ME_MILTER" -c "$conf" -t "$work/in/$tag.eml" -s "$who" \
		>"$work/out/$tag.eml" 2>"$work/out/$tag.err"; then
		nok "offline $tag: smime-milter -t exits 0"
		sed 's/^/#   /' "$work/out/$tag.err" | head -10
		continue
	fi
	verify_message "$work/out/$tag.eml" "$work/in/$tag.eml" "$who" "$work/pki"
	crypto=ok
	for v in "$VM_STRUCT" "$VM_OPENSSL" "$VM_GPGSM" "$VM_SIGNER" "$VM_CMS"; do
		[ "$v" = ok ] || crypto=fail
	done
	if [ $crypto = ok ]; then
		ok "offline $tag: signed by $who, verified by openssl and gpgsm"
	else
		nok "offline $tag: signed by $who, verified by openssl and gpgsm (failed:$VM_FAILED)"
	fi
	if [ "$VM_HEADERS" = ok ]; then ok "offline $tag: headers preserved"; else nok "offline $tag: headers preserved"; fi
	if [ "$VM_CONTENT" = ok ]; then ok "offline $tag: content preserved"; else nok "offline $tag: content preserved"; fi
done

# foreign domain: comes out unsigned
printf '%s\r\n' "From: other@example.org" "To: someone@example.org" \
	"Subject: foreign" "Date: Tue, 24 Nov 2026 10:00:00 +0700" "" "body" \
	>"$work/in/foreign.eml"
if "$ME_MILTER" -c "$conf" -t "$work/in/foreign.eml" -s other@example.org \
	>"$work/out/foreign.eml" 2>"$work/out/foreign.err"; then
	if vm_is_signed "$work/out/foreign.eml"; then
		nok "offline: message from other@example.org is not signed"
	else
		ok "offline: message from other@example.org is not signed"
	fi
else
	nok "offline: message from other@example.org is not signed (exit $?)"
	sed 's/^/#   /' "$work/out/foreign.err" | head -5
fi
echo "1..$n"
