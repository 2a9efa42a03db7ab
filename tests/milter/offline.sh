#!/bin/sh
# The milter's offline modes, no MTA involved:
#   -n   configuration check: good config exits 0, broken ones exit non-zero
#        and name the file and line;
#   -t FILE -s ADDR   signs every corpus message (tests/data/corpus and the
#        generated ones) through the real callback code; each result is
#        checked with tests/lib/verify.sh (openssl, gpgsm, headers, content);
#        a message from a foreign domain comes out unsigned.
#   header protection (RFC 9788): every signed result's root part carries
#        the protected fields with hp="clear" (smimecheck.py hp, against the
#        same message signed with header_protection = false: the body is
#        byte for byte the same) and verifies in NSS (cmsutil) too; the
#        switch off leaves the entity as before; protected_headers adds a
#        field; a signed+encrypted message, decrypted by openssl, has
#        hp="cipher" and HP-Outer and verifies in openssl, gpgsm and NSS.
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
check_bad_conf "a structural field in protected_headers" 'protected_headers = [ "Content-Type" ];'
check_bad_conf "Bcc in protected_headers" 'protected_headers = [ "X-Ok", "Bcc" ];'
check_bad_conf "a header_protection that is not a boolean" 'header_protection = "yes";'

# header protection off, and one more protected field
plainconf=$work/plain.conf
me_conf "$plainconf" "$work" "inet:$1@127.0.0.1" 'header_protection = false;'
xconf=$work/x.conf
me_conf "$xconf" "$work" "inet:$1@127.0.0.1" 'protected_headers = [ "X-Test-Id" ];'

# NSS (Thunderbird's library) verifies SPLITDIR's signature: root trusted
mkdir -p "$work/nss" && certutil -N --empty-password -d "sql:$work/nss" >/dev/null 2>&1 &&
	certutil -A -d "sql:$work/nss" -n root -t "C,C,C" -i "$work/pki/root.crt.pem" >/dev/null 2>&1 ||
	echo "# NSS database not made (certutil)"
nss_verify() { # nss_verify SPLITDIR
	cmsutil -D -d "sql:$work/nss" -i "$1/p7s.der" -c "$1/entity.bin" -u 4 -n -h 2 \
		>"$1/nss.out" 2>&1
	grep -q "signer0.status=GoodSignature" "$1/nss.out" ||
		{ sed 's/^/#   nss: /' "$1/nss.out" | head -5; return 1; }
}

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
	# header protection: against the same message signed without it
	mkdir -p "$work/sp/$tag" "$work/sp/$tag.plain"
	/usr/bin/python3 "$SC" split "$work/out/$tag.eml" "$work/sp/$tag" >/dev/null
	if "$ME_MILTER" -c "$plainconf" -t "$work/in/$tag.eml" -s "$who" \
		>"$work/out/$tag.plain.eml" 2>"$work/out/$tag.plain.err" &&
		/usr/bin/python3 "$SC" split "$work/out/$tag.plain.eml" "$work/sp/$tag.plain" >/dev/null &&
		/usr/bin/python3 "$SC" hp "$work/sp/$tag/entity.bin" "$work/in/$tag.eml" clear \
			"$work/sp/$tag.plain/entity.bin"; then
		ok "offline $tag: root part carries the protected fields, hp=\"clear\", body unchanged"
	else
		nok "offline $tag: root part carries the protected fields, hp=\"clear\", body unchanged"
	fi
	if nss_verify "$work/sp/$tag"; then
		ok "offline $tag: NSS cmsutil verifies the signature (GoodSignature)"
	else
		nok "offline $tag: NSS cmsutil verifies the signature (GoodSignature)"
	fi
done

# header_protection = false: the entity is the Content-* fields and body
if /usr/bin/python3 - "$work/sp/01-plain-ascii.plain/entity.bin" <<'EOF'
import email, sys
m = email.message_from_bytes(open(sys.argv[1], "rb").read())
other = [k for k in m.keys() if not k.lower().startswith("content-")]
print("# non-Content fields: %r, hp=%r" % (other, m.get_param("hp")))
sys.exit(1 if other or m.get_param("hp") is not None else 0)
EOF
then
	ok "offline: header_protection = false signs the entity without copies or hp"
else
	nok "offline: header_protection = false signs the entity without copies or hp"
fi

# protected_headers = [ "X-Test-Id" ]: that field is copied too
mkdir -p "$work/sp/x"
if "$ME_MILTER" -c "$xconf" -t "$work/in/05-long-line.eml" -s andi@banjarkota.go.id \
	>"$work/out/x.eml" 2>"$work/out/x.err" &&
	/usr/bin/python3 "$SC" split "$work/out/x.eml" "$work/sp/x" >/dev/null &&
	HP_EXTRA=X-Test-Id /usr/bin/python3 "$SC" hp "$work/sp/x/entity.bin" \
		"$work/in/05-long-line.eml" clear "$work/sp/05-long-line.plain/entity.bin" &&
	grep -q "^X-Test-Id: corpus-05" "$work/sp/x/entity.bin"; then
	ok "offline: protected_headers adds X-Test-Id to the protected fields"
else
	nok "offline: protected_headers adds X-Test-Id to the protected fields"
fi

# a raw 8-bit Subject (UTF-8 and Latin-1 mixed): copied as RFC 2047 words
# (charset unknown-8bit), so the signed entity stays 7-bit
b7=$work/in/b07.eml
/usr/bin/python3 "$SC" crlf "$TOP/tests/data/bad/b07-8bit-subject.eml" "$b7"
mkdir -p "$work/sp/b07"
if "$ME_MILTER" -c "$conf" -t "$b7" -s andi@banjarkota.go.id >"$work/out/b07.eml" 2>"$work/out/b07.err"; then
	verify_message "$work/out/b07.eml" "$b7" andi@banjarkota.go.id "$work/pki" >"$work/b07.vm" 2>&1
	/usr/bin/python3 "$SC" split "$work/out/b07.eml" "$work/sp/b07" >/dev/null
fi
if [ "$VM_STRUCT" = ok ] && [ "$VM_OPENSSL" = ok ] && [ "$VM_GPGSM" = ok ] &&
	[ "$VM_HEADERS" = ok ] && nss_verify "$work/sp/b07"; then
	ok "offline: an 8-bit Subject: the entity stays 7-bit, verifies in openssl, gpgsm and NSS"
else
	nok "offline: an 8-bit Subject: the entity stays 7-bit, verifies in openssl, gpgsm and NSS (failed:$VM_FAILED)"
	grep -v "^# note" "$work/b07.vm" | sed 's/^/#   /' | head -10
fi
if /usr/bin/python3 "$SC" hp "$work/sp/b07/entity.bin" "$b7" clear &&
	grep -q "^Subject: =?unknown-8bit?B?" "$work/sp/b07/entity.bin"; then
	ok "offline: an 8-bit Subject is protected as encoded words of its octets"
else
	nok "offline: an 8-bit Subject is protected as encoded words of its octets"
fi

# signed and encrypted: hp="cipher" and HP-Outer inside, outside unchanged
econf=$work/enc.conf
me_conf "$econf" "$work" "inet:$1@127.0.0.1" \
	'encrypt = ( { recipients = [ "mitra@jabarprov.go.id" ]; mode = "required"; } );'
"$ME_CTL" -c "$econf" recipient import "$work/pki/mitra.crt.pem" >"$work/rimp.log" 2>&1 ||
	sed 's/^/#   /' "$work/rimp.log"
mkdir -p "$work/sp/enc"
ein=$work/in/01-plain-ascii.eml
if "$ME_MILTER" -c "$econf" -t "$ein" -s andi@banjarkota.go.id -r mitra@jabarprov.go.id \
	>"$work/out/enc.eml" 2>"$work/out/enc.err" &&
	/usr/bin/python3 "$SC" is-encrypted "$work/out/enc.eml" &&
	/usr/bin/python3 "$SC" headers "$ein" "$work/out/enc.eml" >/dev/null; then
	ok "offline: mail to mitra@ is encrypted, its outer headers unchanged"
else
	nok "offline: mail to mitra@ is encrypted, its outer headers unchanged"
	sed 's/^/#   /' "$work/out/enc.err" | head -5
fi
openssl cms -decrypt -inform SMIME -in "$work/out/enc.eml" -recip "$work/pki/mitra.crt.pem" \
	-inkey "$work/pki/mitra.key.pem" -binary -out "$work/out/enc.dec" >"$work/dec.log" 2>&1 ||
	sed 's/^/#   /' "$work/dec.log" | head -5
# the decrypted multipart/signed, with the outer headers in front to split it
/usr/bin/python3 "$SC" env-join "$work/out/enc.eml" "$work/out/enc.dec" "$work/out/enc.joined" >/dev/null
/usr/bin/python3 "$SC" split "$work/out/enc.joined" "$work/sp/enc" >/dev/null
if /usr/bin/python3 "$SC" hp "$work/sp/enc/entity.bin" "$ein" cipher \
	"$work/sp/01-plain-ascii.plain/entity.bin"; then
	ok "offline: decrypted, the root part has hp=\"cipher\", the protected fields and HP-Outer"
else
	nok "offline: decrypted, the root part has hp=\"cipher\", the protected fields and HP-Outer"
fi
verify_message "$work/out/enc.joined" "$ein" andi@banjarkota.go.id "$work/pki" >"$work/enc.vm" 2>&1
if [ "$VM_OPENSSL" = ok ] && [ "$VM_GPGSM" = ok ] && nss_verify "$work/sp/enc"; then
	ok "offline: the decrypted signature verifies in openssl, gpgsm and NSS"
else
	nok "offline: the decrypted signature verifies in openssl, gpgsm and NSS (failed:$VM_FAILED)"
	sed 's/^/#   /' "$work/enc.vm" | head -10
fi

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
