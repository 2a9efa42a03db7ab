#!/bin/sh
# Milter protocol scenarios that end in a signed message, driven by
# tests/lib/miltercli.py (Debian 12's miltertest crashes as soon as a filter
# replaces the body with more than ~1 KiB: OpenDKIM issue #66; the protocol
# decisions before end-of-message are also covered by the miltertest Lua
# scenarios in scenarios.sh).  Every signed result is rebuilt as the MTA would
# and verified with tests/lib/verify.sh (openssl, gpgsm, headers, content).
#   (a) internal client 127.0.0.1 / ::1, mailbox with certificate: body
#       replaced, Content-* headers removed, Content-Type multipart/signed;
#       MIME-Version added when missing; multipart, empty and 3 MB bodies
#   (e) no certificate, on_no_certificate=accept: accepted unsigned
#   (f) no certificate, on_no_certificate=reject: 5xx reply; andi still signed
#   (g) authenticated external client: signed; unauthenticated: untouched
#   (h) several messages and an abort on one connection
# Prints TAP.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
fx_begin sig
fx_two_milters
ok "two milters started (default policy on $port_a, on_no_certificate=reject on $port_r)"

mkdir -p "$work/in" "$work/out"
# msg NAME FROM [HEADER-LINES...] -- BODY-LINES... : writes $work/in/NAME.eml
msg() {
	_f=$work/in/$1.eml
	_from=$2
	shift 2
	{
		printf '%s\r\n' "From: $_from" "To: someone@example.org" \
			"Subject: protocol scenario $(basename "$_f" .eml)" \
			"Date: Tue, 24 Nov 2026 10:00:00 +0700" \
			"Message-ID: <$(basename "$_f" .eml)@banjarkota.go.id>"
		while [ $# -gt 0 ] && [ "$1" != -- ]; do printf '%s\r\n' "$1"; shift; done
		printf '\r\n'
		[ $# -gt 0 ] && shift
		for _l in "$@"; do printf '%s\r\n' "$_l"; done
	} >"$_f"
}

# run LABEL RESULTFILE CLI-ARGS... : runs miltercli.py, keeps key=value output
run() {
	_label=$1 _res=$2
	shift 2
	if "$PY" "$CLI" "$@" >"$_res" 2>&1; then
		return 0
	fi
	nok "$_label: protocol run completed"
	sed 's/^/#   /' "$_res"
	return 1
}
has() { grep -qxF "$2" "$1"; }        # has RESULTFILE LINE
hasp() { grep -q "^$2" "$1"; }       # hasp RESULTFILE PREFIX-REGEX

# check_signed LABEL RESULTFILE M SIGNED ORIGINAL SIGNER [CONTENT-HEADERS...]
check_signed() {
	_l=$1 _r=$2 _m=$3 _s=$4 _o=$5 _who=$6
	shift 6
	if has "$_r" "$_m.stage=eom" && has "$_r" "$_m.result=continue"; then
		ok "$_l: reaches end of message, reply continue"
	else
		nok "$_l: reaches end of message, reply continue"
		grep "^$_m\." "$_r" | sed 's/^/#   /'
	fi
	has "$_r" "$_m.bodychange=1"
	tap $? "$_l: body replaced"
	grep "^$_m\.hdr\(add\|chg\|ins\)=\(.* \)\?Content-Type: multipart/signed;" "$_r" |
		grep 'protocol="application/pkcs7-signature"' | grep -q 'micalg=sha-256'
	tap $? "$_l: Content-Type multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256"
	for _h in "$@"; do
		grep -qi "^$_m\.hdrdel=$_h\$" "$_r"
		tap $? "$_l: original $_h removed from the outside"
	done
	if grep "^$_m\.hdrdel=" "$_r" | grep -qvi "^$_m\.hdrdel=content-"; then
		nok "$_l: only Content-* headers deleted"
		grep "^$_m\.hdrdel=" "$_r" | sed 's/^/#   /'
	else
		ok "$_l: only Content-* headers deleted"
	fi
	verify_message "$_s" "$_o" "$_who" "$work/pki"
	tap $? "$_l: result verifies (openssl, gpgsm, signer $_who, headers, content)${VM_FAILED:+ failed:$VM_FAILED}"
}

# check_untouched LABEL RESULTFILE M
check_untouched() {
	_l=$1 _r=$2 _m=$3
	if has "$_r" "$_m.result=accept" || { has "$_r" "$_m.stage=eom" && has "$_r" "$_m.result=continue"; }; then
		ok "$_l: passes ($(grep "^$_m\.result=" "$_r" | cut -d= -f2) at $(grep "^$_m\.stage=" "$_r" | cut -d= -f2))"
	else
		nok "$_l: passes"
		grep "^$_m\." "$_r" | sed 's/^/#   /'
	fi
	if has "$_r" "$_m.bodychange=0" && ! hasp "$_r" "$_m\.\(hdr\|other\)"; then
		ok "$_l: no modification"
	else
		nok "$_l: no modification"
		grep "^$_m\." "$_r" | sed 's/^/#   /'
	fi
}

A="--socket inet:$port_a@127.0.0.1"
R="--socket inet:$port_r@127.0.0.1"

# ---- (a) internal client
msg a1 "Andi Pratama <andi@banjarkota.go.id>" "MIME-Version: 1.0" \
	"Content-Type: text/plain; charset=utf-8" "Content-Transfer-Encoding: 8bit" \
	"Content-Disposition: inline" -- "Selamat pagi – café ✓" ".leading dot" "" "Salam"
if run "a1" "$work/a1.res" $A --client-ip 127.0.0.1 "$work/in/a1.eml=$work/out/a1.eml"; then
	check_signed "(a) 127.0.0.1 andi 8bit text" "$work/a1.res" m1 "$work/out/a1.eml" \
		"$work/in/a1.eml" andi@banjarkota.go.id Content-Type Content-Transfer-Encoding Content-Disposition
fi

msg a2 "andi@banjarkota.go.id" -- "No MIME headers at all." "Second line."
if run "a2" "$work/a2.res" $A --client-ip 127.0.0.1 "$work/in/a2.eml=$work/out/a2.eml"; then
	check_signed "(a) 127.0.0.1 andi without MIME headers" "$work/a2.res" m1 "$work/out/a2.eml" \
		"$work/in/a2.eml" andi@banjarkota.go.id
	grep -q '^m1\.hdr\(add\|ins\)=\([0-9]* \)\?MIME-Version: 1\.0$' "$work/a2.res"
	tap $? "(a) 127.0.0.1 andi without MIME headers: MIME-Version: 1.0 added"
fi

msg a3 "sekda@banjarkota.go.id" "MIME-Version: 1.0" \
	'Content-Type: multipart/mixed; boundary="mt-b1"' -- "preamble" "--mt-b1" \
	"Content-Type: text/plain; charset=iso-8859-1" "Content-Transfer-Encoding: 8bit" "" \
	"$(printf 'caf\351 latin-1')" "--mt-b1" "Content-Type: application/octet-stream" \
	"Content-Transfer-Encoding: base64" "" "AAECAwQFBgcICQ==" "--mt-b1--"
if run "a3" "$work/a3.res" $A --client-ip ::1 --client-host localhost "$work/in/a3.eml=$work/out/a3.eml"; then
	check_signed "(a) ::1 sekda (role) multipart/mixed with latin-1 8bit part" "$work/a3.res" m1 \
		"$work/out/a3.eml" "$work/in/a3.eml" sekda@banjarkota.go.id Content-Type
fi

msg a4 "noreply@banjarkota.go.id" "MIME-Version: 1.0" "Content-Type: text/plain; charset=us-ascii" --
if run "a4" "$work/a4.res" $A --client-ip 127.0.0.1 "$work/in/a4.eml=$work/out/a4.eml"; then
	check_signed "(a) 127.0.0.1 noreply (system), empty body" "$work/a4.res" m1 \
		"$work/out/a4.eml" "$work/in/a4.eml" noreply@banjarkota.go.id Content-Type
fi

mkdir -p "$work/gen/good" "$work/gen/bad"
"$PY" "$TOP/tests/lib/mkcorpus.py" "$work/gen/good" "$work/gen/bad"
"$PY" "$SC" crlf "$work/gen/good/04-large-attachment.eml" "$work/in/a5.eml"
if run "a5" "$work/a5.res" $A --client-ip 127.0.0.1 "$work/in/a5.eml=$work/out/a5.eml"; then
	check_signed "(a) 3 MB attachment in 64 KiB chunks (spills over max_memory_body)" "$work/a5.res" m1 \
		"$work/out/a5.eml" "$work/in/a5.eml" andi@banjarkota.go.id Content-Type
fi
left=$(find "$work/tmp" -type f | wc -l)
[ "$left" -eq 0 ]
tap $? "(a) no spool file left in temp_dir after the messages ($left found)"

# ---- (e) no certificate, default policy
msg e1 "Budi <budi@banjarkota.go.id>" "MIME-Version: 1.0" "Content-Type: text/plain" -- "no certificate"
if run "e1" "$work/e1.res" $A --client-ip 127.0.0.1 "$work/in/e1.eml"; then
	check_untouched "(e) budi@ without certificate, on_no_certificate=accept" "$work/e1.res" m1
fi

# ---- (f) no certificate, on_no_certificate=reject
if run "f1" "$work/f1.res" $R --client-ip 127.0.0.1 "$work/in/e1.eml"; then
	if has "$work/f1.res" "m1.result=reject" || grep -q '^m1\.reply=5[0-9][0-9] ' "$work/f1.res"; then
		ok "(f) budi@ without certificate, on_no_certificate=reject: rejected with 5xx ($(grep '^m1\.reply=' "$work/f1.res" | cut -d= -f2-))"
	else
		nok "(f) budi@ without certificate, on_no_certificate=reject: rejected with 5xx"
		sed 's/^/#   /' "$work/f1.res"
	fi
fi
if run "f2" "$work/f2.res" $R --client-ip 127.0.0.1 "$work/in/a2.eml=$work/out/f2.eml"; then
	check_signed "(f) andi@ under on_no_certificate=reject" "$work/f2.res" m1 \
		"$work/out/f2.eml" "$work/in/a2.eml" andi@banjarkota.go.id
fi

# ---- (g) authenticated external client
if run "g1" "$work/g1.res" $A --client-ip 203.0.113.9 --client-host laptop.example.net \
	--auth andi "$work/in/a1.eml=$work/out/g1.eml"; then
	check_signed "(g) 203.0.113.9 authenticated as andi" "$work/g1.res" m1 "$work/out/g1.eml" \
		"$work/in/a1.eml" andi@banjarkota.go.id Content-Type Content-Transfer-Encoding Content-Disposition
fi
if run "g2" "$work/g2.res" $A --client-ip 203.0.113.9 --client-host laptop.example.net \
	"$work/in/a1.eml"; then
	check_untouched "(b) 203.0.113.9 not authenticated" "$work/g2.res" m1
fi

# ---- (h) one connection, several transactions
msg h2 "other@example.org" "MIME-Version: 1.0" "Content-Type: text/plain" -- "foreign domain"
msg h3 "legacy@banjarkota.go.id" "MIME-Version: 1.0" "Content-Type: text/plain" -- "legacy certificate"
if run "h" "$work/h.res" $A --client-ip 127.0.0.1 \
	"$work/in/a1.eml=$work/out/h1.eml" "$work/in/h2.eml" "abort:$work/in/a2.eml" \
	"$work/in/h3.eml=$work/out/h3.eml" "$work/in/a4.eml=$work/out/h5.eml"; then
	check_signed "(h) message 1 (andi)" "$work/h.res" m1 "$work/out/h1.eml" "$work/in/a1.eml" \
		andi@banjarkota.go.id Content-Type
	check_untouched "(h) message 2 (other@example.org)" "$work/h.res" m2
	if has "$work/h.res" "m3.stage=abort" && has "$work/h.res" "m3.bodychange=0"; then
		ok "(h) message 3 aborted after its body"
	else
		nok "(h) message 3 aborted after its body"
	fi
	check_signed "(h) message 4 after the abort (legacy)" "$work/h.res" m4 "$work/out/h3.eml" \
		"$work/in/h3.eml" legacy@banjarkota.go.id Content-Type
	check_signed "(h) message 5 (noreply, empty body)" "$work/h.res" m5 "$work/out/h5.eml" \
		"$work/in/a4.eml" noreply@banjarkota.go.id Content-Type
fi

for p in "$pid_a" "$pid_r"; do
	kill -0 "$p" 2>/dev/null
	tap $? "milter pid $p still running"
done
fx_no_sanitizer "no sanitizer report in the milter logs" "$work"/milter-*.log
echo "1..$n"
