# tests/lib/fixture.sh -- the start every shell test shares, so that no test
# carries its own copy.  A test begins with
#
#     . "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
#     fx_begin NAME
#
# Sourcing it turns on `set -u`, sets and exports TOP (the top of the tree),
# sources tap.sh (ok, nok, tap; bail is replaced below), expect.sh (expect,
# has, q, ctl), milterenv.sh (me_*; it sources postfix.sh, pf_*), verify.sh
# (verify_message, vm_is_signed) and hsm.sh (hsm_*), and sets
#   PY CLI SC MILTC       python3, miltercli.py, smimecheck.py, tests/bench/miltc
#   MILTER CTL            the smime-milter and smimectl binaries ($ME_MILTER, $ME_CTL)
#
#   fx_begin NAME [nobin]
#                      $work = a fresh /tmp/smime-NAME.XXXXXX; at exit (and on
#                      INT, TERM, HUP) runs the test's own fx_on_exit
#                      function, if it defines one (stop what it started
#                      there), then removes $work unless KEEP=1.  Bails
#                      unless smime-milter and smimectl are built (not with
#                      "nobin": a test of the test tools).
#   bail TEXT          tap.sh's, with the end of $work/milter.log if there is one
#   fx_pki             the test PKI (tests/lib/pki.sh) in $work/pki, path in
#                      $pki; on failure prints its log as "# " lines, 1
#   fx_nobody SOCKET [EXTRA_LINE...]
#                      the setting of a milter that drops to "nobody": the
#                      PKI (fx_pki, readable by all; bails if it fails),
#                      $state = $work/state and $work/run owned by nobody,
#                      $conf = $work/m.conf written by me_conf for $state
#                      with user = "nobody", ca_file in $pki and the
#                      EXTRA_LINEs, mode 0644
#   fx_two_milters     me_setup in $work, then two milters on free ports: the
#                      default policy ($conf_a, $port_a, $pid_a, log
#                      $work/milter-accept.log) and on_no_certificate =
#                      "reject" ($conf_r, $port_r, $pid_r, temp_dir
#                      $work/tmp-r, log $work/milter-reject.log); one check
#                      for the setup, bails on a failure; defines fx_on_exit
#                      to stop both
#   fx_setup TEXT      the common milter test setting: a free port in $port,
#                      $conf = $work/m.conf written by me_conf for $work on
#                      inet:$port@127.0.0.1, then me_setup (test PKI,
#                      database, mailboxes); bails unless it worked, else
#                      one check TEXT (none when TEXT is empty)
#   fx_need_root WHY   bails unless run as root and user nobody exists
#   fx_all_are LABEL PREFIX WANT NAME...
#                      0 when each variable PREFIXNAME is WANT; else a "# "
#                      line for each that is not, and 1
#   fx_no_sanitizer TEXT LOG...
#                      one check: no sanitizer report in the LOGs (shown if any)
#   fx_issue NAME DIR SERIAL DAYS SUBJECT ADDRESS... [-- EXT_LINE...]
#                      a certificate for the ADDRESSes (subjectAltName) from
#                      the test issuing CA in $pki: DIR/NAME.key.pem (mode
#                      0600) and DIR/NAME.crt.pem, serial 0xSERIAL, valid DAYS;
#                      the extension lines default to an S/MIME leaf's
#                      (CA:FALSE, digitalSignature, keyEncipherment,
#                      emailProtection); the CSR is DIR/NAME.csr
set -u
TOP=$(cd "${TOP:-$(dirname "$0")/../..}" && pwd)
export TOP
. "$TOP/tests/lib/tap.sh"
. "$TOP/tests/lib/expect.sh"
. "$TOP/tests/lib/milterenv.sh"
. "$TOP/tests/lib/verify.sh"
. "$TOP/tests/lib/hsm.sh"
# shellcheck disable=SC2034 # for the tests that source this file
PY=$ME_PY
CLI=$TOP/tests/lib/miltercli.py
SC=$TOP/tests/lib/smimecheck.py
MILTC=$TOP/tests/bench/miltc
MILTER=$ME_MILTER
CTL=$ME_CTL
work=

bail() {
	nok "$*"
	[ -f "$work/milter.log" ] && tail -20 "$work/milter.log" | sed 's/^/# milter: /'
	echo "1..$n"
	exit 1
}

fx_begin() {
	work=$(mktemp -d "/tmp/smime-$1.XXXXXX") || bail "mktemp -d /tmp/smime-$1.XXXXXX"
	trap fx__exit EXIT
	trap 'exit 1' INT TERM HUP
	if [ "${2:-}" != nobin ] && { [ ! -x "$ME_MILTER" ] || [ ! -x "$ME_CTL" ]; }; then
		bail "smime-milter and smimectl are built (run make)"
	fi
}

fx__exit() {
	command -v fx_on_exit >/dev/null 2>&1 && fx_on_exit
	if [ "${KEEP:-0}" = 1 ]; then
		echo "# work directory kept: $work"
	else
		rm -rf "$work"
	fi
}

fx_pki() {
	pki=$work/pki
	sh "$TOP/tests/lib/pki.sh" "$pki" >"$work/pki.log" 2>&1 && return 0
	sed 's/^/# pki: /' "$work/pki.log"
	return 1
}

fx_nobody() {
	chmod 0755 "$work"
	fx_pki || bail "test PKI"
	chmod 0755 "$pki"
	chmod 0644 "$pki/ca-bundle.pem"
	state=$work/state
	mkdir -p "$state" "$work/run"
	chown nobody "$state" "$work/run"
	chmod 0700 "$state"
	conf=$work/m.conf
	_fs=$1
	shift
	me_conf "$conf" "$state" "$_fs" 'user = "nobody";' \
		"ca_file = \"$pki/ca-bundle.pem\";" "$@"
	chown -R nobody "$state/keys" "$state/tmp"
	chmod 0644 "$conf"
}

fx_two_milters() {
	pid_a='' pid_r=''
	fx_on_exit() {
		me_stop "$pid_a"
		me_stop "$pid_r"
	}
	set -- $(me_free_ports 2)
	port_a=$1 port_r=$2
	conf_a=$work/accept.conf
	conf_r=$work/reject.conf
	mkdir -p "$work/tmp-r" && chmod 0700 "$work/tmp-r"
	me_conf "$conf_a" "$work" "inet:$port_a@127.0.0.1"
	me_conf "$conf_r" "$work" "inet:$port_r@127.0.0.1" \
		'on_no_certificate = "reject";' "temp_dir = \"$work/tmp-r\";"
	me_setup "$work" "$conf_a" || bail "PKI built and certificates imported with smimectl"
	ok "PKI built and certificates imported with smimectl"
	me_start "$conf_a" "$work/milter-accept.log" "$port_a" || bail "milter (default policy) started"
	pid_a=$ME_PID
	me_start "$conf_r" "$work/milter-reject.log" "$port_r" || bail "milter (on_no_certificate=reject) started"
	pid_r=$ME_PID
}

fx_setup() {
	set -- "$1" $(me_free_ports 1)
	port=$2
	conf=$work/m.conf
	me_conf "$conf" "$work" "inet:$port@127.0.0.1"
	me_setup "$work" "$conf" || bail "PKI built and certificates imported"
	[ -z "$1" ] || ok "$1"
}

fx_need_root() {
	[ "$(id -u)" = 0 ] || bail "runs as root ($1)"
	id nobody >/dev/null 2>&1 || bail "user nobody exists"
}

fx_all_are() {
	_al=$1 _ap=$2 _aw=$3 _ar=0
	shift 3
	for _av in "$@"; do
		eval "_ax=\$$_ap$_av"
		[ "$_ax" = "$_aw" ] || { echo "# $_al: $_ap$_av is $_ax, expected $_aw"; _ar=1; }
	done
	return $_ar
}

fx_no_sanitizer() {
	_fd=$1
	shift
	if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$@" 2>/dev/null; then
		nok "$_fd"
		grep -hE -A8 'AddressSanitizer|LeakSanitizer|runtime error:' "$@" | head -30 | sed 's/^/# /'
	else
		ok "$_fd"
	fi
}

fx_issue() {
	_in=$1 _id=$2 _is=$3 _iy=$4 _ij=$5
	shift 5
	_ia=
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		_ia="$_ia${_ia:+,}email:$1"
		shift
	done
	[ $# -gt 0 ] && shift
	[ $# -gt 0 ] || set -- basicConstraints=CA:FALSE \
		keyUsage=critical,digitalSignature,keyEncipherment extendedKeyUsage=emailProtection
	printf '%s\n' "$@" "subjectAltName=$_ia" >"$_id/$_in.ext"
	openssl req -newkey rsa:2048 -nodes -keyout "$_id/$_in.key.pem" -subj "$_ij" \
		-out "$_id/$_in.csr" 2>/dev/null &&
		openssl x509 -req -in "$_id/$_in.csr" -CA "$pki/inter.crt.pem" \
			-CAkey "$pki/inter.key.pem" -set_serial "0x$_is" -days "$_iy" \
			-extfile "$_id/$_in.ext" -out "$_id/$_in.crt.pem" 2>/dev/null &&
		chmod 600 "$_id/$_in.key.pem"
}
