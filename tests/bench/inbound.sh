#!/bin/sh
# inbound.sh -- figure (h) of make bench (issue 13): inbound decrypt+verify
# messages/s over the milter protocol, 8 connections, as a ratio to
# outbound signing measured by the same daemon in the same run.
#
# Inbound message: the 4 KB text of the outbound one, signed by a partner
# (mitra@jabarprov.go.id, RSA-2048, multipart/signed with its intermediate)
# and then encrypted to andi's RSA-2048 certificate (openssl cms,
# AES-256-CBC, RSA PKCS#1 v1.5 key transport), sent from 192.0.2.25 (not in
# internal_hosts, not authenticated) with envelope recipient andi@.
#
# The two runs of a pair go back to back, in alternating order (outbound
# first in odd pairs, inbound first in even ones), BENCH_INBOUND_ROUNDS
# pairs (default 9); the median of the pair ratios is the figure.  Every
# message's replies are checked by miltc (-H, -B), so the rate cannot be
# that of a no-op: outbound, an added Content-Type multipart/signed and a
# new body with the signature; inbound, an Authentication-Results with
# smime=pass and "decrypted for andi@banjarkota.go.id", and a new body that
# holds the plaintext (which the encrypted message does not show).  The
# daemon's own log must count one "decrypted for" line per inbound message.
#
# The same two messages also go through the lib/ code in-process, one
# thread pinned to CPU 0 (bench_core, bench_core -i: every inbound message
# must come out decrypted with smime=pass), in pairs of their own: the
# crypto core without libmilter and the client.
#
# Prints two Markdown table rows, then lines of detail: the pairs, the CPU
# per message (the daemon's utime+stime from /proc; bench_core's
# getrusage), whose ratio moves less with the load than the rates do, and
# the load (uptime).
# BENCH_SECONDS sets the length of each run; BENCH_PKI a tests/lib/pki.sh
# directory to use instead of making one.
set -eu
TOP=$(cd "$(dirname "$0")/../.." && pwd)
cd "$TOP"
. tests/bench/lib.sh
bench_begin in
rounds=${BENCH_INBOUND_ROUNDS:-9}
pki=${BENCH_PKI:-$work/pki}
port=$(bench_port)
bench_setup "$pki" "$port"
bench_messages

# the partner's message: sign the entity, then encrypt the signed entity
# (CRLF throughout, -binary so the signed octets are encrypted as they are)
{
	printf 'Content-Type: text/plain; charset=us-ascii\r\n\r\n'
	cat "$work/4k.body"
} >"$work/inner.eml"
openssl cms -sign -in "$work/inner.eml" -md sha256 \
	-signer "$pki/mitra.crt.pem" -inkey "$pki/mitra.key.pem" \
	-certfile "$pki/inter.crt.pem" -out "$work/signed.txt"
sed -e '1{/^MIME-Version:/d}' -e 's/\r*$/\r/' "$work/signed.txt" >"$work/signed.eml"
openssl cms -encrypt -binary -aes256 -in "$work/signed.eml" \
	-out "$work/enc.txt" "$pki/andi.crt.pem"
{
	printf 'From: Mitra <mitra@jabarprov.go.id>\r\nTo: Andi <andi@banjarkota.go.id>\r\n'
	printf 'Subject: bench inbound\r\nDate: Tue, 24 Nov 2026 09:00:00 +0700\r\n'
	printf 'Message-ID: <bench-in@jabarprov.go.id>\r\n'
	sed 's/\r*$/\r/' "$work/enc.txt"
} >"$work/in4k.eml"
if grep -q 'Laporan' "$work/in4k.eml"; then
	echo "inbound.sh: the encrypted message shows its plaintext" >&2
	exit 1
fi

sock="inet:$port@127.0.0.1"
# side_out N / side_in N: one run of N messages over 8 connections, every reply checked
side_out() {
	tests/bench/miltc -s "$sock" -c 8 -n "$1" \
		-H 'Content-Type:multipart/signed' -B 'application/pkcs7-signature' \
		"$work/4k.eml"
}
side_in() {
	tests/bench/miltc -s "$sock" -c 8 -n "$1" -a 192.0.2.25 \
		-f mitra@jabarprov.go.id -r andi@banjarkota.go.id \
		-H 'Authentication-Results:smime=pass' \
		-H 'Authentication-Results:decrypted for andi@banjarkota.go.id' \
		-B 'Laporan kegiatan bulanan' "$work/in4k.eml"
}
cpu() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
# run SIDE N -> "rate ms-of-daemon-CPU-per-message"; fails unless every
# message was answered and passed the checks
run() {
	_c0=$(cpu)
	_r=$($1 "$2") || {
		echo "inbound.sh: $1 failed the reply checks: $_r" >&2
		tail -5 "$work/milter.log" >&2
		exit 1
	}
	_c1=$(cpu)
	case $_r in *" checked=$2 bad=0"*) ;; *)
		echo "inbound.sh: $1: not every message checked: $_r" >&2
		exit 1
		;;
	esac
	echo "$_r" | rate_of | awk -v a="$_c0" -v b="$_c1" -v hz="$hz" -v n="$2" \
		'{ printf "%s %.3f\n", $1, (b - a) * 1000 / hz / n }'
}
count() { # N rounded down to a multiple of 8, at least 64
	awk -v n="$1" 'BEGIN { n = int(n / 8) * 8; if (n < 64) n = 64; print n }'
}

load0=$(uptime | sed 's/.*load average: //')
# in-process pairs first (no daemon running), same order rule
core() { # core [-i] -> "rate cpu-ms-per-message"
	_r=$(taskset -c 0 tests/bench/bench_core ${1:-} "$conf" \
		"$work/${1:+in}4k.eml" "$secs" ${1:+andi@banjarkota.go.id}) || {
		echo "inbound.sh: bench_core ${1:-} failed" >&2
		exit 1
	}
	echo "$_r" | sed -n 's/.*rate=\([0-9.]*\).*cpu_ms=\([0-9.]*\).*/\1 \2/p'
}
: >"$work/core.pairs"
: >"$work/core.cpu"
for i in $(seq 1 "$rounds"); do
	if [ $((i % 2)) = 1 ]; then
		o=$(core)
		n=$(core -i)
	else
		n=$(core -i)
		o=$(core)
	fi
	pair "${o% *}" "${n% *}" "$work/core.pairs"
	echo "${o#* } ${n#* }" | awk '{ printf "%.3f %s %s\n", $1 / $2, $1, $2 }' >>"$work/core.cpu"
done
medians "$work/core.pairs" "ratio sign-msg/s inbound-msg/s"
core_ratio=$m1 core_out=$m2 core_in=$m3 core_pairs=$mtext
medians "$work/core.cpu" "ratio sign-ms inbound-ms"
core_cpu="$m1 (sign $m2 ms, inbound $m3 ms per message; $mtext)"

start_milter
# warm-up of both sides, then as many messages as fit in about secs
ro=$(run side_out 400)
ri=$(run side_in 160)
nout=$(count "$(echo "${ro% *} $secs" | awk '{ print $1 * $2 }')")
nin=$(count "$(echo "${ri% *} $secs" | awk '{ print $1 * $2 }')")
sent=160
: >"$work/in.pairs"
: >"$work/in.cpu"
for i in $(seq 1 "$rounds"); do
	if [ $((i % 2)) = 1 ]; then
		o=$(run side_out "$nout")
		n=$(run side_in "$nin")
	else
		n=$(run side_in "$nin")
		o=$(run side_out "$nout")
	fi
	sent=$((sent + nin))
	pair "${o% *}" "${n% *}" "$work/in.pairs"
	echo "${o#* } ${n#* }" | awk '{ printf "%.3f %s %s\n", $1 / $2, $1, $2 }' >>"$work/in.cpu"
done
load1=$(uptime | sed 's/.*load average: //')
decrypted=$(grep -c 'decrypted for andi@banjarkota.go.id' "$work/milter.log" || true)
stop_milter
[ "$decrypted" -ge "$sent" ] || {
	echo "inbound.sh: $sent inbound messages, only $decrypted logged as decrypted" >&2
	exit 1
}
medians "$work/in.cpu" "ratio outbound-ms inbound-ms"
proto_cpu="$m1 (outbound $m2 ms, inbound $m3 ms per message; $mtext)"
medians "$work/in.pairs" "ratio outbound-msg/s inbound-msg/s"
echo "| (h) inbound decrypt+verify, 4 KB signed (RSA-2048) then encrypted to RSA-2048, 8 connections, vs outbound signing 4 KB, same daemon, interleaved ($rounds pairs) | $m3 msg/s | $m2 msg/s | $m1 | >= 0.8 |"
echo "| (h) the same in-process, lib/ only, 1 thread on CPU 0 (bench_core -i vs bench_core) | $core_in msg/s | $core_out msg/s | $core_ratio | (report) |"
echo "inbound, protocol: $mtext"
echo "inbound, protocol: daemon CPU per message, ratio outbound/inbound $proto_cpu; runs of $nout outbound and $nin inbound messages"
echo "inbound, in-process: $core_pairs"
echo "inbound, in-process: CPU per message, ratio sign/inbound $core_cpu"
echo "inbound: $sent inbound messages over the protocol checked (smime=pass, decrypted, plaintext body), $decrypted logged as decrypted; load average before $load0, after $load1"
