# tests/lib/tsa.sh -- a loopback RFC 3161 time-stamping authority for shell
# tests: tests/lib/tsa_server.py (`openssl ts -reply` behind HTTP on
# 127.0.0.1).  Source it after tests/lib/fixture.sh.
#
#   tsa_start DIR   makes two TSAs in DIR: "good" under the root
#                   DIR/a-ca.crt (the one to trust) and "untrusted" under
#                   DIR/b-ca.crt, starts the server and sets
#                     tsa_port  its port
#                     tsa_pid   its pid (tsa_stop stops it)
#                     tsa_url   http://127.0.0.1:PORT/tsa/good
#                   Paths: /tsa/good, /tsa/untrusted, /hang (no answer for
#                   60 s), /replay, /otherdigest, ... (see tsa_server.py).
#                   Unsets the proxy variables libcurl would read.
#                   Returns non-zero (with "# " lines) when it fails.
#   tsa_stop        stops the server (safe to call twice)
tsa_pid=

tsa__mk() { # tsa__mk DIR NAME CN SERIAL
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$1/$2-ca.key" -out "$1/$2-ca.crt" -subj "/CN=$3" -days 2 \
		-addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign &&
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-keyout "$1/$2-tsa.key" -out "$1/$2-tsa.csr" -subj "/CN=$3 TSA" &&
		openssl x509 -req -in "$1/$2-tsa.csr" -CA "$1/$2-ca.crt" \
			-CAkey "$1/$2-ca.key" -set_serial "$4" -days 2 \
			-extfile "$1/ext" -out "$1/$2-tsa.crt"
}

tsa__section() { # tsa__section DIR SECTION NAME
	printf '[ %s ]\nserial = %s\ncrypto_device = builtin\n' "$2" "$1/serial"
	printf 'signer_cert = %s\nsigner_key = %s\n' "$1/$3-tsa.crt" "$1/$3-tsa.key"
	printf 'signer_digest = sha256\ndefault_policy = 1.3.6.1.4.1.99999.1\n'
	printf 'digests = sha256\naccuracy = secs:1\nordering = yes\n'
	printf 'tsa_name = yes\ness_cert_id_chain = no\ness_cert_id_alg = sha256\n\n'
}

tsa_start() {
	_td=$1
	unset http_proxy https_proxy HTTPS_PROXY all_proxy ALL_PROXY
	mkdir -p "$_td"
	printf '%s\n' 'basicConstraints=CA:FALSE' 'keyUsage=critical,digitalSignature' \
		'extendedKeyUsage=critical,timeStamping' >"$_td/ext"
	if ! { tsa__mk "$_td" a "Test TSA Root" 10 && tsa__mk "$_td" b "Other TSA Root" 20; } \
		>"$_td/pki.log" 2>&1; then
		sed 's/^/# tsa: /' "$_td/pki.log"
		return 1
	fi
	echo 01 >"$_td/serial"
	{
		printf '[ tsa ]\ndefault_tsa = good\n\n'
		tsa__section "$_td" good a
		tsa__section "$_td" untrusted b
	} >"$_td/ts.cnf"
	"${PY:-python3}" "$TOP/tests/lib/tsa_server.py" "$_td/ts.cnf" "$_td/port" \
		>"$_td/server.log" 2>&1 </dev/null &
	tsa_pid=$!
	_ti=0
	while [ ! -s "$_td/port" ] && [ $_ti -lt 100 ]; do sleep 0.1; _ti=$((_ti + 1)); done
	tsa_port=$(head -1 "$_td/port" 2>/dev/null)
	if [ -z "$tsa_port" ]; then
		sed 's/^/# tsa: /' "$_td/server.log"
		return 1
	fi
	tsa_url=http://127.0.0.1:$tsa_port/tsa/good
}

tsa_stop() {
	[ -n "$tsa_pid" ] || return 0
	kill "$tsa_pid" 2>/dev/null
	wait "$tsa_pid" 2>/dev/null
	tsa_pid=
}
