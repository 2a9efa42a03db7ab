#!/bin/sh
# End-to-end: every hostile MIME seed through the private Sendmail of
# tests/lib/sendmail.sh with its default MIME walk (confMAX_MIME_HEADER_LENGTH
# left alone: Sendmail walks every multipart at delivery and rewrites broken
# structure) -> smime-milter -> smtp-sink (issue 12).
#
#   sh tests/e2e/sendmail-mime.sh     (KEEP=1 keeps the work directory)
#
# Sends tests/fuzz/seeds/*.eml, tests/data/corpus/*.eml and
# tests/data/bad/*.eml once through a daemon socket with the milter and once
# through a second socket with no filter (what Sendmail alone delivers).
# Each message with the milter must be one of:
#   refused by Sendmail itself, with or without the milter alike;
#   refused by the milter with a 4xx (on_error tempfail), the milter logging
#     the reason listed below for that seed (REFUSE);
#   delivered signed, the signature verifying as delivered (openssl, both
#     detached and -inform SMIME, and gpgsm: tests/lib/verify.sh), with the
#     decoded content of the message sent or of what Sendmail alone
#     delivers;
#   delivered unsigned (a sender the milter does not sign for, or mail that
#     is signed already), identical to what Sendmail alone delivers.
# Same isolation (sm_isolate) and SKIP rules as tests/e2e/sendmail.sh.
# Prints TAP.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
. "$TOP/tests/lib/e2e.sh"
. "$TOP/tests/lib/sendmail.sh"

# seeds the milter must refuse, and the reason it logs for each
REFUSE="
s-e-deep multiparts nested more than 19 deep: Sendmail's MIME walk would rewrite them after signing
s-e-no-boundary a multipart without a boundary: Sendmail's MIME walk would rewrite it after signing
s-e-empty-boundary a multipart without a boundary: Sendmail's MIME walk would rewrite it after signing
"

# seeds with 8-bit octets in a nested header block (signed as they are)
HDR8="s-e-rfc822-8bit"

if [ "${SM_ISOLATED:-0}" != 1 ]; then
	skip() {
		echo "ok 1 - Sendmail MIME end-to-end # SKIP $*"
		echo "1..1"
		exit 0
	}
	[ "$(id -u)" = 0 ] || skip "needs root (sendmail daemon, namespaces)"
	sm_fetch || skip "$SM_WHY"
	sm_isolate "$0" "$@"
	skip "$SM_WHY"
fi

e2e_begin sm-mime sm_stop
sm_unpack "$work/root" || bail "sendmail unpacked: $SM_WHY"
e2e_milter_env
mkdir -p "$work/sm" "$work/send" "$work/out"
SM_EXTRA_MC="DAEMON_OPTIONS(\`Port=$base_port, Addr=127.0.0.1, Name=Base, InputMailFilters=')dnl"
sm_start "$work/sm" "$smtp_port" "$sink_port" "inet:$milter_port@127.0.0.1" ||
	bail "private sendmail started"
grep -q '^O MaxMimeHeaderLength' "$work/sm/sendmail.cf" &&
	nok "sendmail.cf keeps the default MIME walk (no MaxMimeHeaderLength)" ||
	ok "private sendmail started with its default MIME walk (smtp $smtp_port, baseline $base_port, sink $sink_port)"

# ---------------------------------------------------------------- send
tags=
: >"$work/send.list"
for f in "$TOP"/tests/fuzz/seeds/*.eml "$TOP"/tests/data/corpus/*.eml "$TOP"/tests/data/bad/*.eml; do
	case $f in
	*/seeds/*) tag=s-$(basename "$f" .eml) ;;
	*/corpus/*) tag=c-$(basename "$f" .eml) ;;
	*) tag=b-$(basename "$f" .eml) ;;
	esac
	# the files are sent with their own octets (LF becomes CRLF), the
	# bare-LF ones as they are
	mode=
	case $tag in *bare-lf* | *crlf-mixed*) mode=raw ;; esac
	tags="$tags $tag"
	echo "$tag $f - $mode" >>"$work/send.list"
	echo "base-$tag $f $base_port $mode" >>"$work/send.list"
done
sm_send_batch "$work/send.list" "$work/send" >"$work/send.out"

# code TAG: the SMTP reply code of TAG's submission
code() {
	set -- $(grep "^$1 " "$work/send.out") - - - -
	echo "$2"
}
sent=0
for tag in $tags base-$(echo $tags | sed 's/ / base-/g'); do
	[ "$(code "$tag")" = 250 ] && sent=$((sent + 1))
done
if sm_wait_delivered "$sent" 180; then
	ok "all $sent accepted messages delivered to the sink, sendmail's queue empty"
else
	nok "all $sent accepted messages delivered to the sink, sendmail's queue empty"
fi

# delivered TAG -> writes $work/out/TAG.eml, returns 1 if not delivered
delivered() {
	_f=$(pf_sink_files | xargs -r grep -l "^X-Rcpt-Args: <t-$1@example.org>" | head -1)
	[ -n "$_f" ] || return 1
	pf_strip_sink "$_f" >"$work/out/$1.eml"
}

# ---------------------------------------------------------------- verify
for tag in $tags; do
	c=$(code "$tag")
	bc=$(code "base-$tag")
	why=$(printf '%s\n' "$REFUSE" | sed -n "s/^$tag //p")
	if [ "$c" != 250 ] && [ "$c" = "$bc" ]; then
		ok "$tag: refused by Sendmail itself, with or without the milter ($c)"
		continue
	fi
	if [ -n "$why" ]; then
		case $c in
		4??)
			# as many log lines with the reason as seeds refused for it
			want=$(printf '%s\n' "$REFUSE" | grep -cF " $why")
			if [ "$(grep -cF "$why" "$work/milter.log")" -ge "$want" ]; then
				ok "$tag: refused by the milter ($c): $why"
			else
				nok "$tag: refused by the milter ($c), but the log lacks \"$why\""
			fi
			;;
		*) nok "$tag: refused by the milter with 4xx and \"$why\" (got $c)" ;;
		esac
		continue
	fi
	if [ "$c" != 250 ] || ! delivered "$tag"; then
		nok "$tag: accepted ($c) and delivered"
		grep "^$tag " "$work/send.out" | sed 's/^/#   /'
		continue
	fi
	if ! delivered "base-$tag"; then
		nok "$tag: delivered, but Sendmail alone did not deliver it ($bc)"
		continue
	fi
	if vm_is_signed "$work/out/$tag.eml" && ! vm_is_signed "$work/out/base-$tag.eml"; then
		verify_message "$work/out/$tag.eml" - - "$work/pki" >"$work/out/$tag.vm" 2>&1
		vm=$?
		# 8-bit octets in the header of a nested entity stay as they
		# are (lib/mime_int.h): the entity is then not 7-bit, which
		# only the structure check minds; the signature must verify
		case " $HDR8 " in
		*" $tag "*) [ "$VM_FAILED" = " STRUCT" ] && vm=0 ;;
		esac
		# the decoded content is what was sent, or what Sendmail alone
		# made of it (it splits long lines), or what was sent with the
		# label the milter gives 8-bit text without a Content-Type
		"$PY" -c 'import sys
sys.path.insert(0, sys.argv[3])
import smimecheck as sc
h, b = sc.split_head_body(sc.read_canon(sys.argv[1]))
if b"content-type" not in [n for n, _ in sc.header_fields(h)]:
    h += b"Content-Type: text/plain; charset=unknown-8bit\r\n"
open(sys.argv[2], "wb").write(h + b"\r\n" + b)' "$work/send/$tag.eml" "$work/out/ct-$tag.eml" "$TOP/tests/lib"
		ct=1
		for ref in "$work/send/$tag.eml" "$work/out/base-$tag.eml" "$work/out/ct-$tag.eml"; do
			"$PY" "$SC" content "$ref" "$work/out/$tag.eml" >>"$work/out/$tag.ct" 2>&1 && ct=0 && break
		done
		if [ $vm = 0 ] && [ $ct = 0 ]; then
			ok "$tag: delivered signed, verifies (openssl, gpgsm), content of what Sendmail alone delivers"
		else
			nok "$tag: delivered signed, verifies (failed:$VM_FAILED), content (rc $ct)"
			sed 's/^/#   /' "$work/out/$tag.vm" "$work/out/$tag.ct" | head -20
		fi
	else
		sm_same_as_base "$work/out/base-$tag.eml" "$work/out/$tag.eml"
		tap $? "$tag: delivered unsigned, identical to what Sendmail alone delivers"
	fi
done

kill -0 "$milter_pid" 2>/dev/null
tap $? "smime-milter still running"
if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$work/milter.log"; then
	nok "no sanitizer report in the milter log"
else
	ok "no sanitizer report in the milter log"
fi
echo "1..$n"
