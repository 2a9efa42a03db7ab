# tests/lib/milterenv.sh -- set up and run smime-milter for tests.  Source it
# after setting TOP:  . "$TOP/tests/lib/milterenv.sh"
#
#   me_conf FILE WORK SOCKET [EXTRA_LINE...]
#       Writes a milter config using WORK/smime.db, WORK/keys, WORK/tmp,
#       WORK/pki/ca-bundle.pem; EXTRA_LINEs (e.g. 'on_no_certificate =
#       "reject";') are appended and override the defaults (the config is
#       written with each key once: an extra line replaces a default line
#       with the same key).  pidfile is FILE.pid.
#   me_setup WORK CONF
#       Builds the PKI in WORK/pki, runs `smimectl init` and imports andi
#       (p12), sekda (PEM), noreply (p12), legacy (p12).  Prints "# ..." on
#       failure and returns 1.
#   me_start CONF LOG PORT   starts `smime-milter -c CONF -f` in the
#       background, waits for 127.0.0.1:PORT; sets ME_PID; 1 on failure.
#   me_stop PID              TERM, wait up to 5 s, then KILL.
#   me_free_ports N          N free loopback TCP ports.

ME_MILTER=${SMIME_MILTER:-$TOP/milter/smime-milter}
ME_CTL=${SMIMECTL:-$TOP/admin/smimectl}
ME_PY=/usr/bin/python3

# the free-port probe lives in postfix.sh
. "$TOP/tests/lib/postfix.sh"
me_free_ports() {
	pf_free_ports "$@"
}

me_conf() {
	_file=$1 _work=$2 _sock=$3
	shift 3
	mkdir -p "$_work/keys" "$_work/tmp"
	chmod 0700 "$_work/keys" "$_work/tmp"
	{
		echo "socket = \"$_sock\";"
		echo "database = \"$_work/smime.db\";"
		echo "key_dir = \"$_work/keys\";"
		echo "temp_dir = \"$_work/tmp\";"
		echo "pidfile = \"$_file.pid\";"
		echo "ca_file = \"$_work/pki/ca-bundle.pem\";"
		echo 'domains = [ "banjarkota.go.id" ];'
		echo 'internal_hosts = [ "127.0.0.0/8", "::1/128" ];'
		echo 'on_error = "tempfail";'
		echo 'on_no_certificate = "accept";'
		echo 'digest = "sha256";'
		echo 'max_memory_body = 1048576;'
	} >"$_file.tmp"
	for _l in "$@"; do
		_k=$(printf '%s' "$_l" | sed 's/[ =:].*//')
		grep -v "^$_k[ =:]" "$_file.tmp" >"$_file.tmp2"
		mv "$_file.tmp2" "$_file.tmp"
		printf '%s\n' "$_l" >>"$_file.tmp"
	done
	mv "$_file.tmp" "$_file"
}

me_setup() {
	_work=$1 _conf=$2
	if ! sh "$TOP/tests/lib/pki.sh" "$_work/pki" >"$_work/pki.log" 2>&1; then
		sed 's/^/# pki: /' "$_work/pki.log"
		return 1
	fi
	_p=$_work/pki
	for _cmd in "init" \
		"import --mailbox andi@banjarkota.go.id --kind individual --p12 $_p/andi.p12 --passphrase-file $_p/andi.pass" \
		"import --mailbox sekda@banjarkota.go.id --kind role --cert $_p/sekda.crt.pem --key $_p/sekda.key.pem" \
		"import --mailbox noreply@banjarkota.go.id --kind system --p12 $_p/noreply.p12 --passphrase-file $_p/noreply.pass" \
		"import --mailbox legacy@banjarkota.go.id --kind individual --p12 $_p/legacy.p12 --passphrase-file $_p/legacy.pass"; do
		# shellcheck disable=SC2086
		if ! "$ME_CTL" -c "$_conf" $_cmd >"$_work/ctl.log" 2>&1; then
			echo "# smimectl -c $_conf $_cmd failed:"
			sed 's/^/#   /' "$_work/ctl.log"
			return 1
		fi
	done
	return 0
}

me_wait_port() {
	"$ME_PY" - "$1" "$2" <<'EOF'
import socket, sys, time
port, end = int(sys.argv[1]), time.time() + float(sys.argv[2])
while time.time() < end:
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect(("127.0.0.1", port))
        s.close()
        sys.exit(0)
    except OSError:
        s.close()
        time.sleep(0.1)
sys.exit(1)
EOF
}

me_start() {
	"$ME_MILTER" -c "$1" -f >"$2" 2>&1 &
	ME_PID=$!
	if me_wait_port "$3" 15 && kill -0 "$ME_PID" 2>/dev/null; then
		return 0
	fi
	echo "# smime-milter -c $1 -f did not come up on port $3"
	tail -20 "$2" | sed 's/^/#   milter: /'
	return 1
}

me_stop() {
	[ -n "${1:-}" ] || return 0
	kill "$1" 2>/dev/null || return 0
	_i=0
	while kill -0 "$1" 2>/dev/null && [ $_i -lt 50 ]; do
		sleep 0.1
		_i=$((_i + 1))
	done
	kill -9 "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	return 0
}
