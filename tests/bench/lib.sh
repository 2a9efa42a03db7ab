# tests/bench/lib.sh -- what run.sh and inbound.sh share (sourced, with
# TOP the top of the tree and work a scratch directory):
#   bench_port                 a free loopback TCP port
#   bench_setup PKI PORT       $work/smime-milter.conf (andi's PKCS#12 key,
#                              socket inet:PORT@127.0.0.1) in $conf; PKI is
#                              a tests/lib/pki.sh directory, made when absent
#   bench_messages [big]       $work/4k.eml (and 1m.eml, 50m.eml with big)
#   bench_4k_body              the 4 KB text of every 4 KB message
#   start_milter [LOG] / stop_milter
#                              the daemon of $conf in $pid, log LOG (default
#                              $work/milter.log)
#   hwm                        its peak RSS (kB)
#   median, pair, medians, rate_of: the pair arithmetic (below)
#   bench_begin TAG            secs, pid and a scratch $work (see below)
#   pairs_alternate N FILE A B N pairs of the rates of commands A and B

bench_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

bench_setup() {
	[ -f "$1/ca-bundle.pem" ] || sh tests/lib/pki.sh "$1" >/dev/null
	mkdir -p "$work/tmp"
	conf=$work/smime-milter.conf
	cat >"$conf" <<CONF
socket = "inet:$2@127.0.0.1";
database = "$work/db";
key_dir = "$work/keys";
temp_dir = "$work/tmp";
ca_file = "$1/ca-bundle.pem";
domains = [ "banjarkota.go.id" ];
CONF
	admin/smimectl -c "$conf" init >/dev/null
	admin/smimectl -c "$conf" import --mailbox andi@banjarkota.go.id \
		--kind individual --p12 "$1/andi.p12" \
		--passphrase-file "$1/andi.pass" >/dev/null
}

bench_4k_body() {
	/usr/bin/python3 -c '
import sys
line = "Laporan kegiatan bulanan Dinas Komunikasi dan Informatika Kota Banjar.\r\n"
sys.stdout.write((line * (4096 // len(line) + 1))[:4096])'
}

# messages: 4 KB text, and with "big" 1 MB and 50 MB attachments
bench_messages() {
	bench_4k_body >"$work/4k.body"
	/usr/bin/python3 - "$work" "${1:-}" <<'PY'
import base64, os, sys
w = sys.argv[1]
hdr = ("From: Andi <andi@banjarkota.go.id>\r\nTo: x@example.org\r\n"
       "Subject: bench\r\nDate: Tue, 24 Nov 2026 09:00:00 +0700\r\n"
       "Message-ID: <bench@banjarkota.go.id>\r\nMIME-Version: 1.0\r\n")
body = open(f"{w}/4k.body", newline="").read()
open(f"{w}/4k.eml", "w", newline="").write(
    hdr + "Content-Type: text/plain; charset=us-ascii\r\n\r\n" + body)
for name, size in (("1m", 1 << 20), ("50m", 50 << 20)) if sys.argv[2] else ():
    data = base64.encodebytes(os.urandom(size * 3 // 4)).replace(b"\n", b"\r\n")
    with open(f"{w}/{name}.eml", "wb") as f:
        f.write((hdr + "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
                 "--b1\r\nContent-Type: text/plain\r\n\r\nlampiran\r\n"
                 "--b1\r\nContent-Type: application/octet-stream\r\n"
                 "Content-Transfer-Encoding: base64\r\n\r\n").encode())
        f.write(data)
        f.write(b"--b1--\r\n")
PY
}

start_milter() {
	_log=${1:-$work/milter.log}
	milter/smime-milter -c "$conf" -f 2>"$_log" &
	pid=$!
	for i in $(seq 1 50); do
		grep -q "starting on" "$_log" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "milter did not start" >&2
	cat "$_log" >&2
	exit 1
}
stop_milter() {
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	pid=""
}
hwm() { awk '/VmHWM/ { print $2 }' "/proc/$pid/status"; }

# Each ratio is taken from pairs measured back to back (limit, then us),
# ROUNDS times; the median pair ratio is reported, which keeps the noise
# of a shared 2-core machine out of the ratio as far as it can be.
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# pair A B FILE: appends "B/A A B" to FILE
pair() { echo "$1 $2" | awk '{ printf "%.3f %s %s\n", $2 / $1, $1, $2 }' >>"$3"; }
# medians FILE WHAT: the medians of FILE's three columns in m1, m2, m3, and
# "pairs (WHAT): LINE;LINE;..." in mtext
medians() {
	m1=$(cut -d' ' -f1 "$1" | median)
	m2=$(cut -d' ' -f2 "$1" | median)
	m3=$(cut -d' ' -f3 "$1" | median)
	mtext="pairs ($2): $(tr '\n' ';' <"$1")"
}
rate_of() { sed -n '1s/.*rate=\([0-9.]*\).*/\1/p'; }

# bench_begin TAG (before anything else of the script's): secs from
# BENCH_SECONDS, pid empty, and an empty $work (/tmp/smime-bench-TAG.*)
# that is removed at exit, unless KEEP=1, after the script's bench_on_exit
# (if it defines one) stopped what it started.
bench_begin() {
	secs=${BENCH_SECONDS:-2}
	pid=""
	work=$(mktemp -d "/tmp/smime-bench-$1.XXXXXX")
	trap bench_end EXIT
}
bench_end() {
	# every step may fail (already stopped) without ending the cleanup
	[ -n "$pid" ] && { kill "$pid" && wait "$pid"; } 2>/dev/null || true
	command -v bench_on_exit >/dev/null 2>&1 && { bench_on_exit || true; }
	[ "${KEEP:-0}" = 1 ] && echo "# kept $work" >&2 || rm -rf "$work"
}

# pairs_alternate N FILE A B: N pairs of the rates (rate_of) that the
# commands A and B print, A first in odd rounds and B first in even ones,
# so that a drift of the machine does not favour one side; FILE gets
# "B/A A B" per pair (pair).
pairs_alternate() {
	: >"$2"
	for i in $(seq 1 "$1"); do
		if [ $((i % 2)) = 1 ]; then
			pa=$(eval "$3" | rate_of)
			pb=$(eval "$4" | rate_of)
		else
			pb=$(eval "$4" | rate_of)
			pa=$(eval "$3" | rate_of)
		fi
		pair "$pa" "$pb" "$2"
	done
}
