#!/bin/sh
# OCSP (issue 15, ocsp = true): recipient certificates are asked about
# before the milter encrypts to them, inbound signers before their
# signature passes.  The responder is `openssl ocsp` on loopback, started
# and stopped here, signing with the test issuing CA; the certificates
# name it in their Authority Information Access.
#
#   (1) good: encrypted to; the answer is stored (ocsp_responses)
#   (2) revoked: not encrypted to (opportunistic: signed only); an inbound
#       signature by it fails with the revocation date
#   (3) unknown: the CRL status decides (not listed: encrypted to)
#   (4) the cache: with the responder stopped, the stored good answer is
#       used until its nextUpdate (no question asked, nothing logged)
#   (5) unreachable: the CRL status decides, and the daemon logs the
#       failure once across two messages; ocsp_responder overrides AIA
#   (6) ocsp = false asks nothing (the responder counts requests)
# and smimectl ocsp check (a mailbox, a file; exit 2 revoked, 1 no answer).
# Prints TAP.  KEEP=1 keeps the work directory.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
. "$TOP/tests/lib/encrypt.sh"
enc_begin ocsp
pid_r='' pid_d=''
fx_on_exit() {
	[ -n "$pid_r" ] && kill "$pid_r" 2>/dev/null
	me_stop "$pid_d"
}
set -- $(me_free_ports 4)
port_r=$1 port_dead=$2 port_d=$3 port_z=$4
AIA="authorityInfoAccess=OCSP;URI:http://127.0.0.1:$port_r"
DEAD="authorityInfoAccess=OCSP;URI:http://127.0.0.1:$port_dead"
LEAF="basicConstraints=CA:FALSE keyUsage=critical,digitalSignature,keyEncipherment extendedKeyUsage=emailProtection"
# shellcheck disable=SC2086
fx_issue ogood "$pki" 0C51 365 "/O=Partner Agency/CN=OCSP Good" ogood@jabarprov.go.id -- $LEAF "$AIA" &&
	fx_issue orev "$pki" 0C52 365 "/O=Partner Agency/CN=OCSP Revoked" orev@jabarprov.go.id -- $LEAF "$AIA" &&
	fx_issue ounk "$pki" 0C53 365 "/O=Partner Agency/CN=OCSP Unknown" ounk@jabarprov.go.id -- $LEAF "$AIA" &&
	fx_issue odead "$pki" 0C54 365 "/O=Partner Agency/CN=OCSP Dead" odead@jabarprov.go.id -- $LEAF "$DEAD" ||
	bail "partner certificates with an OCSP URL issued"
"$CTL" -c "$work/base.conf" recipient import "$pki/ogood.crt.pem" "$pki/orev.crt.pem" \
	"$pki/ounk.crt.pem" "$pki/odead.crt.pem" >"$work/rimp.log" 2>&1 ||
	{ sed 's/^/#   /' "$work/rimp.log"; bail "the four imported as recipients"; }
# the responder's index (openssl ca format): ogood valid, orev revoked on
# 2026-11-01, ounk not listed at all
printf 'V\t301231000000Z\t\t0C51\tunknown\t/O=Partner Agency/CN=OCSP Good\n' >"$work/index.txt"
printf 'R\t301231000000Z\t261101000000Z,keyCompromise\t0C52\tunknown\t/O=Partner Agency/CN=OCSP Revoked\n' \
	>>"$work/index.txt"
printf 'V\t301231000000Z\t\t0C54\tunknown\t/O=Partner Agency/CN=OCSP Dead\n' >>"$work/index.txt"
# responder PORT NREQUEST: openssl ocsp in the background, $pid_r, once
# it listens (seen with ss: a connection without a request makes openssl
# ocsp spin and stop answering)
responder() {
	openssl ocsp -index "$work/index.txt" -port "$1" -rsigner "$pki/inter.crt.pem" \
		-rkey "$pki/inter.key.pem" -CA "$pki/inter.crt.pem" -ndays 1 -nrequest "$2" \
		>"$work/responder.log" 2>&1 &
	pid_r=$!
	command -v ss >/dev/null || { sleep 1; return 0; }
	_w=0
	while ! ss -Htln "sport = :$1" | grep -q .; do
		[ $_w -lt 100 ] || return 1
		sleep 0.1
		_w=$((_w + 1))
	done
}
# t_run NAME CONF MSG [ARGS...]: smime-milter -c CONF -t MSG ARGS, stdout
# in $out/NAME.out, stderr in $out/NAME.err; 0 when it exits 0 with a
# message (else a "#" line)
t_run() {
	_n=$1 _c=$2 _m=$3
	shift 3
	"$ME_MILTER" -c "$_c" -t "$_m" "$@" >"$out/$_n.out" 2>"$out/$_n.err" &&
		[ -s "$out/$_n.out" ] && return 0
	echo "# smime-milter -t $_m did not give a message"
	return 1
}
errhas() { grep -qF -- "$2" "$out/$1.err"; }
showerr() { sed 's/^/#   stderr: /' "$out/$1.err" | head -10; }
responder_stop() {
	[ -n "$pid_r" ] && kill "$pid_r" 2>/dev/null
	[ -n "$pid_r" ] && wait "$pid_r" 2>/dev/null
	pid_r=''
}
db=$work/smime.db
conf ocsp 'ocsp = true;' <<'EOF'
encrypt = ( { recipients = [ "jabarprov.go.id" ]; mode = "opportunistic"; } );
EOF
echo "authserv_id = \"mx.banjarkota.test\";" >>"$work/ocsp.conf"
for w in ogood orev ounk odead; do
	simple "to-$w" "Andi <andi@banjarkota.go.id>" "$w@jabarprov.go.id"
done
# enveloped NAME, signed NAME: what the -t result NAME is
enveloped() { H ctype "$out/$1.out" | grep -q 'smime-type=enveloped-data'; }
signed() { H ctype "$out/$1.out" | grep -q '^multipart/signed'; }
# ar_of NAME: our Authentication-Results field of the -t result NAME, on
# one line, into $out/NAME.ar
ar_of() {
	tr -d '\r' <"$out/$1.out" | grep -A3 '^Authentication-Results: mx.banjarkota.test' |
		tr -d '\n\t' >"$out/$1.ar"
	echo >>"$out/$1.ar"
}

# ================================================================ (1)-(3)
responder "$port_r" 100 || bail "openssl ocsp responder on 127.0.0.1:$port_r"
t_run good "$work/ocsp.conf" "$in/to-ogood.eml" -r ogood@jabarprov.go.id &&
	enveloped good &&
	[ "$(rserials "$out/good.out")" = "$(wserials andi ogood)" ]
tap $? "(1) good: encrypted to ogood@ (and the sender)" || showerr good
errhas good "OCSP: certificate 0C51 of" && errhas good "is good (responder http://127.0.0.1:$port_r"
tap $? "(1) ... the answer is logged with its responder (the AIA URL)" || showerr good
q_is "good::1" "(1) ... and stored in ocsp_responses until its nextUpdate" \
	"SELECT status || ':' || coalesce(revoked_at, '') || ':' || (next_update > strftime('%s','now')) FROM ocsp_responses WHERE serial = '0C51'"

t_run rev "$work/ocsp.conf" "$in/to-orev.eml" -r orev@jabarprov.go.id &&
	signed rev
tap $? "(2) revoked: not encrypted to orev@, signed only (opportunistic)" || showerr rev
q_is "revoked:1793491200:keyCompromise:1" "(2) ... stored as revoked, with its date and reason" \
	"SELECT status || ':' || revoked_at || ':' || reason || ':' || (next_update > strftime('%s','now')) FROM ocsp_responses WHERE serial = '0C52'"
# inbound: mail signed by orev's key to an internal mailbox
printf 'Laporan triwulan.\r\n' >"$work/body.txt"
sign_as orev "Orev <orev@jabarprov.go.id>" "andi@banjarkota.go.id" "Laporan" "$work/body.txt" "$in/from-orev.eml" &&
	sign_as ogood "Ogood <ogood@jabarprov.go.id>" "andi@banjarkota.go.id" "Laporan" "$work/body.txt" "$in/from-ogood.eml" ||
	bail "signed inbound messages made"
t_run inrev "$work/ocsp.conf" "$in/from-orev.eml" --inbound -r andi@banjarkota.go.id
ar_of inrev
grep -q 'smime=fail (certificate revoked 2026-11-01 [\\]*(serial 0C52 of .*says its OCSP responder' "$out/inrev.ar"
tap $? "(2) inbound: orev@'s signature fails, revoked 2026-11-01 by OCSP" || sed 's/^/#   /' "$out/inrev.ar"
t_run ingood "$work/ocsp.conf" "$in/from-ogood.eml" --inbound -r andi@banjarkota.go.id
ar_of ingood
grep -q 'smime=pass' "$out/ingood.ar"
tap $? "(2) ... while ogood@'s passes (its stored answer is good)" || sed 's/^/#   /' "$out/ingood.ar"

t_run unk "$work/ocsp.conf" "$in/to-ounk.eml" -r ounk@jabarprov.go.id &&
	enveloped unk &&
	[ "$(rserials "$out/unk.out")" = "$(wserials andi ounk)" ]
tap $? "(3) unknown to the responder: the CRL status decides, encrypted to ounk@" || showerr unk
q_is "unknown" "(3) ... stored as unknown" "SELECT status FROM ocsp_responses WHERE serial = '0C53'"

# smimectl ocsp check: a mailbox's certificates, a file.  occ NAME WANT
# ARG TEXT DESCRIPTION: exits WANT and prints the fixed string TEXT
occ() {
	"$CTL" -c "$work/ocsp.conf" ocsp check "$3" >"$out/$1.ctl" 2>&1
	_rc=$?
	[ "$_rc" = "$2" ] && grep -qF -- "$4" "$out/$1.ctl"
	tap $? "$5 (exit $_rc)" || sed 's/^/#   /' "$out/$1.ctl"
}
occ crev 2 orev@jabarprov.go.id \
	"0C52 CN=OCSP Revoked,O=Partner Agency: revoked since 2026-11-01 00:00 UTC, keyCompromise (responder http://127.0.0.1:$port_r" \
	"smimectl ocsp check orev@: revoked, since when, why, who said so"
occ cgood 0 "$pki/ogood.crt.pem" "0C51 CN=OCSP Good,O=Partner Agency: good (responder" \
	"smimectl ocsp check FILE: good"
occ cnone 1 "$pki/mitra.crt.pem" "names no OCSP responder" \
	"smimectl ocsp check of a certificate without a responder: no answer, and why"

# ================================================================ (4)
responder_stop
t_run cached "$work/ocsp.conf" "$in/to-ogood.eml" -r ogood@jabarprov.go.id &&
	enveloped cached && ! errhas cached "OCSP"
tap $? "(4) responder stopped: the stored good answer is used, nothing asked or logged" || showerr cached
t_run cachedrev "$work/ocsp.conf" "$in/to-orev.eml" -r orev@jabarprov.go.id &&
	signed cachedrev
tap $? "(4) ... and the stored revoked one: still not encrypted to orev@" || showerr cachedrev
q "UPDATE ocsp_responses SET next_update = strftime('%s','now') - 60 WHERE serial = '0C51'"
t_run expired "$work/ocsp.conf" "$in/to-ogood.eml" -r ogood@jabarprov.go.id &&
	enveloped expired &&
	errhas expired "OCSP responder" && errhas expired "CRL status is used"
tap $? "(4) past its nextUpdate the answer is not used: asked again, failed, the CRL status decides" || showerr expired

# ================================================================ (5)
t_run dead "$work/ocsp.conf" "$in/to-odead.eml" -r odead@jabarprov.go.id &&
	enveloped dead && errhas dead "127.0.0.1:$port_dead" &&
	errhas dead "the CRL status is used until it answers again"
tap $? "(5) unreachable responder: the CRL status decides (encrypted to odead@), said in the log" || showerr dead
# the daemon: two messages, one log line
CPORT=$port_d conf docsp 'ocsp = true;' <<'EOF'
encrypt = ( { recipients = [ "jabarprov.go.id" ]; mode = "opportunistic"; } );
EOF
me_start "$work/docsp.conf" "$work/docsp.log" "$port_d" || bail "milter with ocsp = true started"
pid_d=$ME_PID
"$PY" "$CLI" --socket "inet:$port_d@127.0.0.1" --client-ip 127.0.0.1 --rcpt odead@jabarprov.go.id \
	"$in/to-odead.eml=$out/d1.eml" "$in/to-odead.eml=$out/d2.eml" >"$out/d.res" 2>&1
c=$(grep -c "127.0.0.1:$port_dead.*CRL status is used" "$work/docsp.log")
[ "$c" = 1 ] && grep -q 'm2.result=accept\|m2.result=continue' "$out/d.res" &&
	grep -q 'smime-type=enveloped-data' "$out/d2.eml"
tap $? "(5) daemon: two messages to odead@ encrypted, the failure logged once ($c)" ||
	{ sed 's/^/#   /' "$out/d.res" | head -5; grep -i ocsp "$work/docsp.log" | sed 's/^/#   log: /'; }
# ocsp_responder overrides the AIA URL
responder "$port_z" 100 || bail "a second responder on 127.0.0.1:$port_z"
conf override 'ocsp = true;' "ocsp_responder = \"http://127.0.0.1:$port_z\";" <<'EOF'
encrypt = ( { recipients = [ "jabarprov.go.id" ]; mode = "opportunistic"; } );
EOF
q "DELETE FROM ocsp_responses WHERE serial = '0C54'"
t_run over "$work/override.conf" "$in/to-odead.eml" -r odead@jabarprov.go.id &&
	enveloped over && errhas over "OCSP: certificate 0C54 of" &&
	errhas over "is good (responder http://127.0.0.1:$port_z)" && ! errhas over "$port_dead"
tap $? "(5) ocsp_responder: asked instead of the certificate's URL" || showerr over
responder_stop

# ================================================================ (6)
conf nocsp <<'EOF'
encrypt = ( { recipients = [ "jabarprov.go.id" ]; mode = "opportunistic"; } );
EOF
q "DELETE FROM ocsp_responses"
responder "$port_r" 1 || bail "responder for one request"
t_run off "$work/nocsp.conf" "$in/to-orev.eml" -r orev@jabarprov.go.id &&
	enveloped off && kill -0 "$pid_r" 2>/dev/null &&
	[ "$(q "SELECT count(*) FROM ocsp_responses")" = 0 ]
tap $? "(6) ocsp = false: encrypted to orev@ (CRL only), no request sent, nothing stored" || showerr off
openssl ocsp -issuer "$pki/inter.crt.pem" -cert "$pki/orev.crt.pem" -url "http://127.0.0.1:$port_r" \
	-CAfile "$pki/ca-bundle.pem" >"$work/probe.log" 2>&1
sleep 0.5
! kill -0 "$pid_r" 2>/dev/null && grep -q "revoked" "$work/probe.log"
tap $? "(6) ... the responder was listening and counted (one probe ends it)" || sed 's/^/#   /' "$work/probe.log"
pid_r=''
kill -0 "$pid_d" 2>/dev/null
tap $? "the daemon kept running"
echo "1..$n"
