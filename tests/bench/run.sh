#!/bin/sh
# make bench -- the performance figures of BENCHMARKS.md, measured in one
# run so that ratios are comparable on a noisy 2-core machine:
#   openssl speed rsa2048 sign/s, single core and -multi 2 (the limits)
#   (a) messages/s through the signing core in-process (bench_core)
#   (b) messages/s over the milter protocol, 8 connections (miltc)
#   (c) messages/s with the key on a SoftHSM2 token against the same run
#       with the key in a PKCS#12 file, 8 connections each
#   (d) messages/s signed and encrypted (one RSA-2048 recipient) against
#       signed only, in-process, 1 thread
#   peak RSS (VmHWM) of the daemon signing a 1 MB and a 50 MB message, and
#   signing and encrypting the 50 MB one
#   (e) through a private Postfix: smtp-source into its smtpd with the
#       milter, against a second smtpd of the same Postfix without it
#   (f) the 50 MB message: the milter's signing time against
#       `openssl cms -sign -binary` of the same file
#   (g) latency per message at half the peak rate of (b): p50 and p99
#   (h) inbound decrypt+verify against outbound signing over the milter
#       protocol, 8 connections, interleaved pairs (tests/bench/inbound.sh)
#   (i) header protection, (j) RFC 3161 time-stamps (tests/bench/timestamp.sh)
#   (k) signing with the store on PostgreSQL against SQLite, 8 connections,
#       alternating pairs (tests/bench/pg.sh)
# Prints a Markdown table; BENCH_SECONDS sets the length of each run,
# BENCH_ROUNDS the number of back-to-back pairs per ratio (median kept).
set -eu
TOP=$(cd "$(dirname "$0")/../.." && pwd)
cd "$TOP"
secs=${BENCH_SECONDS:-2}
work=$(mktemp -d /tmp/smime-bench.XXXXXX)
pid=""
cleanup() {
	# set -e still applies to the last command of an && list: every
	# step here may fail (already stopped) without ending the cleanup
	[ -n "$pid" ] && { kill "$pid" && wait "$pid"; } 2>/dev/null || true
	[ -n "${hpid:-}" ] && { kill "$hpid" && wait "$hpid"; } 2>/dev/null || true
	# a private Postfix of (e), if the run stopped while it was up
	[ -n "${PF_WORKDIR:-}" ] && { pf_stop >/dev/null 2>&1 || true; }
	rm -rf "$work"
}
trap cleanup EXIT

. tests/bench/lib.sh
port=$(bench_port)
bench_setup "$work/pki" "$port"
bench_messages big

speed() { # $1: extra args
	openssl speed -seconds "$secs" $1 rsa2048 2>/dev/null |
		awk '/^rsa 2048 bits/ { print $6 }'
}
rounds=${BENCH_ROUNDS:-5}
: >"$work/core.pairs"
# (a) is a one-core figure: both sides run pinned to the same CPU, since
# the two vCPUs of these machines differ in speed by up to 20 %.
for i in $(seq 1 "$rounds"); do
	r=$(taskset -c 0 openssl speed -seconds "$secs" rsa2048 2>/dev/null |
		awk '/^rsa 2048 bits/ { print $6 }')
	c=$(taskset -c 0 tests/bench/bench_core "$conf" "$work/4k.eml" "$secs" | rate_of)
	pair "$r" "$c" "$work/core.pairs"
done
medians "$work/core.pairs" "ratio rsa/s msg/s"
core_ratio=$m1 rsa1=$m2 core_rate=$m3 core=$mtext

# (d) sign+encrypt against signing alone: the same core, one RSA-2048
# recipient certificate (plus the sender's own, as always)
econf=$work/encrypt.conf
eport=$(bench_port)
sed "s/inet:$port@/inet:$eport@/" "$conf" >"$econf"
cat >>"$econf" <<CONF
encrypt = ( { recipients = [ "jabarprov.go.id" ]; mode = "required"; } );
CONF
admin/smimectl -c "$econf" recipient import "$work/pki/mitra.crt.pem" >/dev/null
: >"$work/enc.pairs"
for i in $(seq 1 "$rounds"); do
	sg=$(taskset -c 0 tests/bench/bench_core "$conf" "$work/4k.eml" "$secs" | rate_of)
	se=$(taskset -c 0 tests/bench/bench_core "$econf" "$work/4k.eml" "$secs" \
		mitra@jabarprov.go.id | rate_of)
	pair "$sg" "$se" "$work/enc.pairs"
done
medians "$work/enc.pairs" "ratio sign-msg/s sign+encrypt-msg/s"
enc_ratio=$m1 sign_rate=$m2 enc_rate=$m3 enc=$mtext

rsa2=$(speed "-multi 2")
start_milter
# warm-up, then as many messages as fit in about the time at 8 connections
tests/bench/miltc -s "inet:$port@127.0.0.1" -c 8 -n 80 "$work/4k.eml" >/dev/null
n=$(awk -v r="$core_rate" -v s="$secs" 'BEGIN { n = int(r * s / 8) * 8; if (n < 64) n = 64; print n }')
: >"$work/proto.pairs"
for i in $(seq 1 "$rounds"); do
	r=$(speed "-multi 2")
	p=$(tests/bench/miltc -s "inet:$port@127.0.0.1" -c 8 -n "$n" "$work/4k.eml" | rate_of)
	pair "$r" "$p" "$work/proto.pairs"
done
medians "$work/proto.pairs" "ratio rsa/s msg/s"
proto_ratio=$m1 rsa2=$m2 proto_rate=$m3 proto=$mtext
stop_milter

start_milter
tests/bench/miltc -s "inet:$port@127.0.0.1" -n 1 -o "$work/1m.out" "$work/1m.eml" >/dev/null
rss1=$(hwm)
stop_milter
start_milter
t50=$(tests/bench/miltc -s "inet:$port@127.0.0.1" -n 1 -o "$work/50m.out" "$work/50m.eml" | head -1)
rss50=$(hwm)
stop_milter
grep -q '^#ADD Content-Type: multipart/signed' "$work/50m.out" || {
	echo "50 MB message was not signed" >&2
	exit 1
}
out50=$(wc -c <"$work/50m.out")
# the same 50 MB message signed and encrypted: streamed as well
conf_plain=$conf
conf=$econf
start_milter
t50e=$(tests/bench/miltc -s "inet:$eport@127.0.0.1" -r mitra@jabarprov.go.id \
	-n 1 -o "$work/50me.out" "$work/50m.eml" | head -1)
rss50e=$(hwm)
stop_milter
conf=$conf_plain
grep -q '^#ADD Content-Type: application/pkcs7-mime; smime-type=enveloped-data' \
	"$work/50me.out" || {
	echo "50 MB message was not encrypted" >&2
	cat "$work/milter.log" >&2
	exit 1
}
[ "$out50" -gt $((50 * 1024 * 1024)) ] || {
	echo "50 MB message: replaced body is only $out50 bytes" >&2
	exit 1
}

# (c) the same key on a SoftHSM2 token, paired with the PKCS#12 milter
export SOFTHSM2_CONF="$work/softhsm2.conf"
mkdir -p "$work/tokens"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$work" >"$SOFTHSM2_CONF"
softhsm2-util --init-token --free --label bench --pin 1234 --so-pin 5678 >/dev/null
openssl pkcs8 -topk8 -nocrypt -in "$work/pki/andi.key.pem" -out "$work/andi.p8"
softhsm2-util --import "$work/andi.p8" --token bench --label andi --id 01 \
	--pin 1234 >/dev/null
printf 1234 >"$work/pin"
chmod 600 "$work/pin"
hport=$(bench_port)
hconf=$work/hsm.conf
sed -e "s/inet:$port@/inet:$hport@/" -e "s|$work/db|$work/db-hsm|" "$conf" >"$hconf"
cat >>"$hconf" <<CONF
pkcs11_module = "/usr/lib/softhsm/libsofthsm2.so";
pkcs11_tokens = ( { token = "bench"; pin_file = "$work/pin"; } );
CONF
admin/smimectl -c "$hconf" init >/dev/null
admin/smimectl -c "$hconf" import --mailbox andi@banjarkota.go.id \
	--kind individual --pkcs11-uri "pkcs11:token=bench;object=andi" \
	--cert "$work/pki/andi.crt.pem" >/dev/null
start_milter
milter/smime-milter -c "$hconf" -f 2>"$work/hsm.log" &
hpid=$!
for i in $(seq 1 50); do
	grep -q "starting on" "$work/hsm.log" 2>/dev/null && break
	sleep 0.1
done
tests/bench/miltc -s "inet:$hport@127.0.0.1" -c 8 -n 80 -o "$work/hsm.out" "$work/4k.eml" >/dev/null
grep -q '^#ADD Content-Type: multipart/signed' "$work/hsm.out" || {
	echo "the HSM milter did not sign" >&2
	cat "$work/hsm.log" >&2
	exit 1
}
: >"$work/hsm.pairs"
for i in $(seq 1 "$rounds"); do
	p=$(tests/bench/miltc -s "inet:$port@127.0.0.1" -c 8 -n "$n" "$work/4k.eml" | rate_of)
	h=$(tests/bench/miltc -s "inet:$hport@127.0.0.1" -c 8 -n "$n" "$work/4k.eml" | rate_of)
	pair "$p" "$h" "$work/hsm.pairs"
done
kill "$hpid"
wait "$hpid" 2>/dev/null || true
hpid=""
stop_milter
# where the difference goes: token alone vs key in memory, and what our
# own PKCS#11 layer adds on top of the bare module calls (one thread)
inproc=$(taskset -c 0 tests/bench/bench_p11 /usr/lib/softhsm/libsofthsm2.so \
	bench "$work/pin" andi "$work/pki/andi.key.pem" "$work/pki/andi.crt.pem" "$secs")
medians "$work/hsm.pairs" "ratio p12-msg/s hsm-msg/s"
hsm_ratio=$m1 p12_rate=$m2 hsm_rate=$m3 hsm=$mtext

# (f) 50 MB: the milter (one message over the protocol, a fresh daemon
# already warm from the run above) against openssl cms -sign -binary of
# the same file with the same key, back to back, median of the ratios
start_milter
: >"$work/big.pairs"
for i in $(seq 1 "$rounds"); do
	m=$(tests/bench/miltc -s "inet:$port@127.0.0.1" -n 1 "$work/50m.eml" |
		sed -n '1s/.*seconds=\([0-9.]*\).*/\1/p')
	t0=$(date +%s.%N)
	openssl cms -sign -binary -md sha256 -in "$work/50m.eml" \
		-signer "$work/pki/andi.crt.pem" -inkey "$work/pki/andi.key.pem" \
		-outform DER -out /dev/null
	t1=$(date +%s.%N)
	echo "$t0 $t1 $m" | awk '{ o = $2 - $1; printf "%.3f %.3f %.3f\n", $3 / o, $3, o }' \
		>>"$work/big.pairs"
done
stop_milter
medians "$work/big.pairs" "ratio milter-s openssl-s"
big_ratio=$m1 mil50=$m2 ossl50=$m3 big=$mtext

# (g) latency at half the peak rate of (b), 8 connections
start_milter
half=$(awk -v r="$proto_rate" 'BEGIN { printf "%d", r / 2 }')
nlat=$(awk -v r="$half" -v s="$secs" 'BEGIN { n = int(r * s * 2 / 8) * 8; if (n < 64) n = 64; print n }')
lat=$(tests/bench/miltc -s "inet:$port@127.0.0.1" -c 8 -n "$nlat" -R "$half" "$work/4k.eml" | grep latency_ms)
p50=$(echo "$lat" | sed 's/.*p50=\([0-9.]*\).*/\1/')
p99=$(echo "$lat" | sed 's/.*p99=\([0-9.]*\).*/\1/')

# (e) through Postfix: smtp-source, 8 sessions, into the smtpd with the
# milter and into the same Postfix's smtpd without it, pairs back to back
. tests/lib/postfix.sh
set -- $(pf_free_ports 3)
chmod 0755 "$work" # the postfix user walks into its queue below it
mkdir -p "$work/pf"
if PF_BASELINE_PORT=$3 pf_start "$work/pf" "$1" "$2" "inet:$port@127.0.0.1" >"$work/pf.log" 2>&1; then
	pf_with=$1 pf_without=$3
	nsrc=$((n * 2))
	src() { # src PORT -> seconds for nsrc messages
		_t0=$(date +%s.%N)
		smtp-source -s 8 -m "$nsrc" -l 4096 -f andi@banjarkota.go.id \
			-t x@example.org "127.0.0.1:$1" >/dev/null 2>&1
		_t1=$(date +%s.%N)
		echo "$_t0 $_t1" | awk '{ printf "%.3f", $2 - $1 }'
	}
	src "$pf_with" >/dev/null # warm-up
	: >"$work/pf.pairs"
	for i in $(seq 1 "$rounds"); do
		a=$(src "$pf_without")
		b=$(src "$pf_with")
		echo "$a $b" | awk -v m="$nsrc" '{ printf "%.3f %.1f %.1f\n", $1 / $2, m / $1, m / $2 }' >>"$work/pf.pairs"
	done
	medians "$work/pf.pairs" "ratio without-msg/s with-msg/s"
	pf_ratio=$m1 pf_base=$m2 pf_rate=$m3 pfp=$mtext
	signed_seen=$(grep -c ' signed for ' "$work/milter.log")
	pf_stop >/dev/null 2>&1 || true
else
	pf_ratio=n/a pf_base=n/a pf_rate=n/a signed_seen=0
	pfp="Postfix did not start: $(tail -3 "$work/pf.log" | tr '\n' ' ')"
fi
stop_milter

# (i) header protection (issue 14): signing with it against without, the
# two alternating in one run on one snapshot (bench_core -p)
hpr=$(taskset -c 0 tests/bench/bench_core -p "$conf" "$work/4k.eml" "$secs")
hp_rate=$(echo "$hpr" | sed -n 's/.*hp_rate=\([0-9.]*\).*/\1/p')
hp_plain=$(echo "$hpr" | sed -n 's/.*plain_rate=\([0-9.]*\).*/\1/p')
hp_ratio=$(echo "$hpr" | sed -n 's/.* ratio=\([0-9.]*\).*/\1/p')

# (j) signature time-stamps from a loopback TSA (issue 14), reported
tsr=$(BENCH_PKI="$work/pki" sh tests/bench/timestamp.sh)
ts_row=$(echo "$tsr" | grep '^|')
ts_more=$(echo "$tsr" | grep -v '^|')

# (k) the store on PostgreSQL against SQLite (issue 16): two daemons,
# alternating pairs, the same PKI
pgr=$(BENCH_PKI="$work/pki" sh tests/bench/pg.sh)
pg_row=$(echo "$pgr" | grep '^|')
pg_more=$(echo "$pgr" | grep -v '^|')

# (h) inbound: its own daemon and pairs, the same PKI
inb=$(BENCH_PKI="$work/pki" sh tests/bench/inbound.sh)
inb_row=$(echo "$inb" | grep '^|')
inb_more=$(echo "$inb" | grep -v '^|')

cat <<TABLE
| figure | measured | limit | ratio | target |
|---|---|---|---|---|
| openssl speed rsa2048, 1 core (median) | $rsa1 sign/s | | | |
| openssl speed -multi 2 rsa2048 (median) | $rsa2 sign/s | | | |
| (a) signing core in-process, 4 KB, 1 thread | $core_rate msg/s | $rsa1 | $core_ratio | >= 0.9 |
| (b) milter protocol, 4 KB, 8 connections | $proto_rate msg/s | $rsa2 | $proto_ratio | >= 0.6 |
| (c) key on SoftHSM2 vs PKCS#12, 4 KB, 8 connections | $hsm_rate msg/s | $p12_rate | $hsm_ratio | >= 0.8 |
| peak RSS, 1 MB message | $((rss1 / 1024)) MB ($rss1 kB) | | | < 32 MB |
| peak RSS, 50 MB message | $((rss50 / 1024)) MB ($rss50 kB) | | | < 32 MB |
| (d) sign+encrypt vs sign, 4 KB, 1 RSA-2048 recipient, 1 thread | $enc_rate msg/s | $sign_rate | $enc_ratio | (report) |
| peak RSS, 50 MB message signed and encrypted | $((rss50e / 1024)) MB ($rss50e kB) | | | < 32 MB |
| (e) through Postfix, smtp-source 4 KB, 8 sessions: with the milter vs without | $pf_rate msg/s | $pf_base | $pf_ratio | >= 0.85 |
| (f) 50 MB message: milter signing time vs openssl cms -sign -binary | $mil50 s | $ossl50 s | $big_ratio | <= 1.5 |
| (g) latency at half the peak rate of (b) ($half msg/s, 8 connections) | p50 $p50 ms, p99 $p99 ms | | | (report) |
$inb_row
| (i) signing with header protection vs without, 4 KB, in-process, alternating | $hp_rate msg/s | $hp_plain | $hp_ratio | >= 0.95 |
$ts_row
$pg_row
TABLE
echo
echo "core: $core"
echo "protocol: $proto"
echo "hsm: $hsm"
echo "encrypt: $enc"
echo "postfix: $pfp (milter log lines \"signed for\": $signed_seen)"
echo "latency: $lat"
echo "50 MB message signed and encrypted: $t50e"
echo "hsm in-process, 1 core: $inproc"
echo "50 MB message: $t50 (new body and header edits: $out50 bytes)"
echo "50 MB message against openssl: $big"
echo "$inb_more"
echo "$ts_more"
echo "$pg_more"
