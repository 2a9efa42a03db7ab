#!/bin/sh
# smimectl crl fetch against a loopback distribution point
# (tests/lib/crl_server.py): a CRL that revokes a signing certificate is
# fetched and the running milter reloaded by the fetch itself; 304 on the
# second fetch; 404, a hang (timeout), garbage and a CRL signed by the wrong
# CA are refused without writing revocations; an expired CRL; the
# distribution points of a stored certificate; the exit codes (0 fresh, 1 a
# failure while the stored CRL holds, 2 expired or never stored).  TAP.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
fx_begin crlfetch
pid= srv=
fx_on_exit() {
	me_stop "$pid"
	[ -n "$srv" ] && kill "$srv" 2>/dev/null && wait "$srv" 2>/dev/null
	return 0
}
[ -x "$MILTC" ] || bail "tests/bench/miltc is built (make test-bins)"
unset http_proxy https_proxy HTTPS_PROXY all_proxy ALL_PROXY

www=$work/www
slog=$work/server.log
mkdir -p "$www"
: >"$slog"
"$PY" "$TOP/tests/lib/crl_server.py" "$www" "$work/sport" "$slog" \
	>"$work/server.err" 2>&1 </dev/null &
srv=$!
i=0
while [ ! -s "$work/sport" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
[ -s "$work/sport" ] || bail "the CRL server started"
base=http://127.0.0.1:$(cat "$work/sport")

fx_setup "PKI, database and mailboxes"
db=$work/smime.db
# conf CRL_URLS_LIST [EXTRA_LINE...]: the milter's configuration again,
# with crl_urls set to the list (libconfig syntax, e.g. [ "URL" ])
conf_with() {
	_cu=$1
	shift
	me_conf "$conf" "$work" "inet:$port@127.0.0.1" "crl_urls = $_cu;" "$@"
}
fetch() { "$CTL" -c "$conf" crl fetch "$@"; }
# the test CA's own openssl ca setting (tests/lib/pki.sh)
ca() { OPENSSL_CONF=$pki_dir/ca/openssl.cnf LEAF_EMAIL=x openssl ca -name inter_ca "$@" 2>"$work/ca.err"; }
pki_dir=$work/pki
pki=$pki_dir # for fx_issue
# a file of www served with a Last-Modified one step later than the last
stamp=$(($(date +%s) - 3600))
publish() {
	stamp=$((stamp + 10))
	cp "$1" "$www/$2" && touch -d "@$stamp" "$www/$2"
}
# what a refused CRL must leave as it was: CRLs, serials, andi's status
STATE="SELECT (SELECT count(*) FROM crls) || '/' || (SELECT count(*) FROM revoked_serials) || '/' || (SELECT status FROM certificates WHERE mailbox = 'andi@banjarkota.go.id' ORDER BY id DESC LIMIT 1)"

me_start "$conf" "$work/milter.log" "$port" || bail "milter started"
pid=$ME_PID
printf 'From: Andi <andi@banjarkota.go.id>\r\nTo: x@example.org\r\nSubject: r\r\n\r\nHalo.\r\n' >"$work/m.eml"
# what the running milter does with m.eml: "signed" or "not signed"
verdict() {
	rm -f "$work/out.milt"
	"$MILTC" -s "inet:$port@127.0.0.1" -n 1 -o "$work/out.milt" "$work/m.eml" >/dev/null 2>&1
	if grep -q '^#ADD Content-Type: multipart/signed' "$work/out.milt" 2>/dev/null; then
		echo signed
	else
		echo "not signed"
	fi
}
v=$(verdict)
[ "$v" = signed ]
tap $? "andi@ is signed before any CRL ($v)"

# the CA revokes andi and publishes its CRL; an impostor with the same
# name signs one too
ca -revoke "$pki_dir/andi.crt.pem" -crl_reason keyCompromise >/dev/null &&
	ca -gencrl -out "$work/inter.crl" >/dev/null &&
	openssl crl -in "$work/inter.crl" -outform DER -out "$work/inter.der"
tap $? "the test CA revokes andi and issues a CRL (DER)"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/wrong.key" -out "$work/wrong.crt" \
	-subj "/C=ID/O=Test BSrE/CN=Test BSrE Issuing CA" -days 30 2>/dev/null &&
	ca -gencrl -keyfile "$work/wrong.key" -cert "$work/wrong.crt" -out "$work/wrong.crl" >/dev/null
tap $? "a CRL with the issuing CA's name, signed by another key"
before=$(q "$STATE")

# ---- refused: nothing is written
publish "$work/wrong.crl" wrong.crl
conf_with "[ \"$base/wrong.crl\" ]"
expect 2 "a CRL signed by the wrong CA, none stored before: exit 2" fetch
has "$base/wrong.crl: refused: CRL signature does not verify" "... it is refused, and the line says why"
q_is "$before" "... no CRL, no serial, andi still active" "$STATE"
q_is "failed|0|" "... crl_sources records the failure, with no Last-Modified and no stored CRL" \
	"SELECT status, coalesce(last_modified, 0), issuer FROM crl_sources WHERE url = '$base/wrong.crl'"

conf_with "[ \"$base/garbage\" ]"
expect 2 "garbage instead of a CRL: exit 2" fetch
has "$base/garbage: refused: not a CRL (PEM or DER)" "... refused as not a CRL"
q_is "$before" "... nothing written" "$STATE"

conf_with "[ \"$base/BSrE-Inter.crl\" ]"
expect 2 "a 404 from a URL that never gave a CRL: exit 2" fetch
has "failed: HTTP status 404; no CRL was ever stored from it" "... the line says 404 and that none is stored"

# ---- the real CRL: imported, the milter reloaded by the fetch itself
publish "$work/inter.der" BSrE-Inter.crl
: >"$slog"
expect 0 "the CA's CRL (DER, a URL with capitals, from crl_urls): fetched, fresh" fetch
has "$base/BSrE-Inter.crl: fetched 3 entries, 1 certificate newly revoked; valid until" "... one line says what it got"
has "asked smime-milter (pid $pid) to reload" "... and crl fetch made the milter reload"
has "1 CRL URL: 1 fetched, 0 not modified, 0 failed, 0 refused, 0 skipped; 1 certificate newly revoked" "... then the summary"
grep -q "GET /BSrE-Inter.crl ims=- status=200" "$slog"
tap $? "the first GET was unconditional"
me_wait_log "$work/milter.log" "reloaded: generation"
tap $? "the milter logged its reload"
v=$(verdict)
[ "$v" = "not signed" ]
tap $? "after the fetch andi@ is no longer signed ($v)"
q_is "revoked" "andi's certificate is revoked" "SELECT status FROM certificates WHERE mailbox = 'andi@banjarkota.go.id' ORDER BY id DESC LIMIT 1"
q_is "1|3" "one CRL stored, its three serials kept" "SELECT (SELECT count(*) FROM crls), (SELECT count(*) FROM revoked_serials)"
q_is "fresh|1" "crl_sources: fresh, with the server's Last-Modified and nextUpdate" \
	"SELECT status, last_modified = $stamp AND next_update > strftime('%s','now') FROM crl_sources WHERE url = '$base/BSrE-Inter.crl'"

# ---- 304
: >"$slog"
expect 0 "the second fetch: not modified, the stored CRL is fresh" fetch
has "$base/BSrE-Inter.crl: not modified; valid until" "... the line says not modified"
grep -q "GET /BSrE-Inter.crl ims=[A-Z][a-z][a-z], .* GMT status=304" "$slog"
tap $? "the server saw If-Modified-Since and answered 304"
q_is "1|not-modified" "nothing was imported again" "SELECT (SELECT count(*) FROM crls), (SELECT status FROM crl_sources WHERE url = '$base/BSrE-Inter.crl')"
fetch --quiet >"$work/out" 2>&1
[ $? = 0 ] && [ ! -s "$work/out" ]
tap $? "--quiet says nothing when all is fresh"

# ---- 404 with a fresh stored CRL, a hang
mv "$www/BSrE-Inter.crl" "$work/gone.crl"
expect 1 "a 404 while the stored CRL is within nextUpdate: exit 1" fetch
has "failed: HTTP status 404; the stored CRL is valid until" "... the line says so"
fetch --quiet >"$work/out" 2>&1
[ $? = 1 ] && grep -q "404" "$work/out"
tap $? "--quiet still names the failure"
mv "$work/gone.crl" "$www/BSrE-Inter.crl"
conf_with "[ \"$base/hang\" ]" 'crl_timeout = 1;'
t0=$(date +%s)
expect 2 "a server that hangs, crl_timeout = 1: exit 2 (none stored)" fetch
t1=$(date +%s)
has "$base/hang: failed: CRL timed out after 1000 ms" "... the error says timed out"
[ $((t1 - t0)) -lt 10 ]
tap $? "... and the fetch gave up in time ($((t1 - t0)) s)"

# ---- an expired CRL: fetched, then stored past nextUpdate
ca -gencrl -crl_lastupdate 20200101000000Z -crl_nextupdate 20210101000000Z -out "$work/old.crl" >/dev/null
publish "$work/old.crl" old.crl
conf_with "[ \"$base/old.crl\" ]"
expect 2 "a CRL already past its nextUpdate: exit 2" fetch
has "$base/old.crl: fetched 3 entries, 0 certificates newly revoked; but it expired at 2021-01-01" "... the line says it expired"
expect 2 "the stored CRL past nextUpdate, not modified since: exit 2" fetch
has "not modified; the stored CRL expired at 2021-01-01" "... the line says so"
rm "$www/old.crl"
expect 2 "the stored CRL past nextUpdate and the URL fails: exit 2" fetch
has "the stored CRL expired at 2021-01-01" "... the line says so"

# ---- distribution points of a stored certificate; no pidfile
ca -revoke "$pki_dir/sekda.crt.pem" -crl_reason superseded >/dev/null &&
	ca -gencrl -out "$work/cdp.crl" >/dev/null && publish "$work/cdp.crl" cdp.crl
tap $? "the CA revokes sekda too and publishes a CRL at a distribution point"
fx_issue cdp "$work" 7A01 30 "/CN=CDP Mitra" cdp@jabarprov.go.id -- basicConstraints=CA:FALSE \
	keyUsage=critical,digitalSignature,keyEncipherment extendedKeyUsage=emailProtection \
	"crlDistributionPoints=URI:$base/cdp.crl,URI:ldap://ldap.example/cn=CRL"
"$CTL" -c "$conf" recipient import "$work/cdp.crt.pem" >"$work/out" 2>&1
tap $? "a recipient certificate with two distribution points (http, ldap) stored"
conf_with "[ \"$base/cdp.crl\" ]"
sed -i '/^pidfile/d' "$conf"
: >"$slog"
expect 0 "the distribution point of the recipient certificate is fetched: exit 0" fetch
has "$base/cdp.crl: fetched 4 entries, 1 certificate newly revoked" "... its CRL revokes sekda"
has "ldap://ldap.example/cn=CRL: skipped: not http or https" "... the ldap URL is skipped and named"
has "2 CRL URLs: 1 fetched" "... the same URL in crl_urls and the certificate is fetched once"
[ "$(grep -c "GET /cdp.crl" "$slog")" = 1 ]
tap $? "... one GET for it"
has "sets no pidfile: send SIGUSR1 to the milter" "... without a pidfile it says so in one line, and does not fail"
conf_with "[ ]"
expect 0 "with no crl_urls the certificate's distribution point is still fetched" fetch
has "$base/cdp.crl: not modified" "... (not modified now)"

# ---- the distribution points of a signing certificate and of a CA in ca_file
fx_issue cdpsign "$work" 7A02 30 "/CN=CDP Signer" cdpsign@banjarkota.go.id -- basicConstraints=CA:FALSE \
	keyUsage=critical,digitalSignature,keyEncipherment extendedKeyUsage=emailProtection \
	"crlDistributionPoints=URI:$base/sign-cdp.crl" &&
	"$CTL" -c "$conf" import --mailbox cdpsign@banjarkota.go.id --kind individual \
		--cert "$work/cdpsign.crt.pem" --key "$work/cdpsign.key.pem" >"$work/out" 2>&1
tap $? "a signing certificate with a distribution point imported"
printf '%s\n' "[ext]" "basicConstraints=critical,CA:true" "keyUsage=critical,keyCertSign,cRLSign" \
	"crlDistributionPoints=URI:$base/mirror.crl" >"$work/mirror.ext"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/mirror.key" -out "$work/mirror.crt" \
	-subj "/C=ID/O=Test BSrE/CN=Test Mirror CA" -days 30 -config "$work/mirror.ext" \
	-extensions ext 2>"$work/out" &&
	ca -gencrl -keyfile "$work/mirror.key" -cert "$work/mirror.crt" -out "$work/mirror.crl" >/dev/null &&
	cat "$pki_dir/ca-bundle.pem" "$work/mirror.crt" >"$work/ca-plus.pem"
tap $? "a second CA with a distribution point in ca_file, and its CRL"
publish "$work/mirror.crl" mirror.crl
publish "$work/cdp.crl" sign-cdp.crl
conf_with "[ ]" "ca_file = \"$work/ca-plus.pem\";"
: >"$slog"
expect 0 "the distribution points of a CA in ca_file and of a signing certificate: exit 0" fetch
has "$base/mirror.crl: fetched 4 entries" "... the CA's CRL is fetched (and verified against it)"
has "$base/sign-cdp.crl: fetched 4 entries" "... the signing certificate's CRL is fetched"
has "4 CRL URLs: 2 fetched, 1 not modified, 0 failed, 0 refused, 1 skipped" "... with the recipient's two, four URLs"
q_is "fresh" "crl_sources: the CA's CRL is stored as its own" \
	"SELECT status FROM crl_sources WHERE url = '$base/mirror.crl' AND issuer LIKE 'CN=Test Mirror CA,%'"

# ---- crl_max_size
head -c 4096 /dev/urandom >"$work/big.crl"
publish "$work/big.crl" big.crl
conf_with "[ \"$base/big.crl\" ]" "crl_max_size = 1024;"
expect 2 "a CRL larger than crl_max_size, none stored: exit 2" fetch
has "$base/big.crl: failed: CRL response is larger than 1024 bytes" "... the line says it is too large"
echo "1..$n"
