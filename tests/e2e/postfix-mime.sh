#!/bin/sh
# End-to-end: the MIME inputs that broke signatures on the way through a real
# Postfix (issue 12), sent through private Postfix -> smime-milter -> Postfix's
# own SMTP client (smtp_line_length_limit 998) -> smtp-sink.
#   signed: tests/fuzz/regress/mime-part-long-description.eml (a 1,500-octet
#     Content-Description made of words: folded), mime-part-b64-no-blank.eml
#     (a 5,000-octet base64 line right after the part headers: the body
#     starts there), mime-bare-cr-nul-in-part-header-signed.eml and
#     eom-junk-part-header-block.eml (junk lines, NUL and bare CR in a
#     part's header block: the body starts there and is re-encoded), and
#     mime-part-nul-cr-field.eml (NUL and bare CR in a part's field, which
#     smime-milter -t refuses; Postfix itself cuts that header line at the
#     NUL before the milter sees it): each must arrive signed and pass tests/lib/verify.sh
#     as delivered (structure, lines <= 998 and 7-bit, openssl, gpgsm), with
#     the decoded content of the message sent, or else of what Postfix alone
#     (a baseline smtpd with no milter) delivers;
#   refused: mime-part-long-nofold.eml (a part header line with nowhere to
#     fold): on_error (default tempfail) gives a 4xx reply, the milter logs
#     the reason, and nothing is delivered.
#   sh tests/e2e/postfix-mime.sh    (KEEP=1 keeps the work directory).
# Prints TAP.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
. "$TOP/tests/lib/e2e.sh"
R=$TOP/tests/fuzz/regress

e2e_begin e2e-mime
e2e_milter_env
mkdir -p "$work/pf" "$work/send" "$work/out"
PF_BASELINE_PORT=$base_port pf_start "$work/pf" "$smtp_port" "$sink_port" "inet:$milter_port@127.0.0.1" ||
	bail "private Postfix started"
ok "private Postfix started (smtpd $smtp_port, sink $sink_port)"

signed="mime-part-long-description mime-part-b64-no-blank mime-bare-cr-nul-in-part-header-signed eom-junk-part-header-block mime-part-nul-cr-field"
refused="mime-part-long-nofold"
sent=0
for tag in $signed $refused; do
	# the files are kept with their raw octets; only LF becomes CRLF
	"$PY" "$SC" crlf "$R/$tag.eml" "$work/send/$tag.eml"
	code=$(pf_send andi@banjarkota.go.id "t-$tag@example.org" "$work/send/$tag.eml" 2>"$work/send/$tag.err")
	case " $refused " in
	*" $tag "*)
		case $code in
		4*) ok "$tag: refused with a temporary failure ($code)" ;;
		*) nok "$tag: refused with a temporary failure (got $code)" ;;
		esac
		;;
	*)
		# Postfix alone (no milter) is the original to compare with:
		# its smtpd already turns bare CR and NUL into spaces
		pf_send andi@banjarkota.go.id "t-base-$tag@example.org" "$work/send/$tag.eml" "$base_port" \
			>/dev/null 2>&1 && sent=$((sent + 1))
		if [ "$code" = 250 ]; then
			sent=$((sent + 1))
			ok "$tag: accepted by Postfix with the milter"
		else
			nok "$tag: accepted by Postfix with the milter (got $code)"
			sed 's/^/#   /' "$work/send/$tag.err"
		fi
		;;
	esac
done
grep -q 'a header line of a nested part is over 998 octets with no place to fold it' "$work/milter.log"
tap $? "the milter logs why the unfoldable line was refused"

if pf_wait_delivered "$sent" 120; then
	ok "all $sent accepted messages delivered to the sink"
else
	nok "all $sent accepted messages delivered to the sink"
	tail -20 "$work/pf/maillog" | sed 's/^/# maillog: /'
fi
for tag in $signed $refused; do
	f=$(pf_sink_files | while read -r x; do
		if grep -q "^X-Rcpt-Args: <t-$tag@example.org>" "$x"; then echo "$x"; break; fi
	done)
	case " $refused " in
	*" $tag "*)
		[ -z "$f" ]
		tap $? "$tag: nothing delivered"
		continue
		;;
	esac
	if [ -z "$f" ]; then
		nok "$tag: delivered signed and verifies"
		continue
	fi
	pf_strip_sink "$f" >"$work/out/$tag.eml"
	b=$(pf_sink_files | while read -r x; do
		if grep -q "^X-Rcpt-Args: <t-base-$tag@example.org>" "$x"; then echo "$x"; break; fi
	done)
	if [ -n "$b" ]; then pf_strip_sink "$b" >"$work/out/base-$tag.eml"; else cp "$work/send/$tag.eml" "$work/out/base-$tag.eml"; fi
	# the message sent with each bare CR as a space, as Postfix hands it
	# on (seen here: the baseline has the same spaces)
	"$PY" -c 'import re, sys; d = open(sys.argv[1], "rb").read(); open(sys.argv[2], "wb").write(re.sub(rb"\r(?!\n)", b" ", d))' \
		"$work/send/$tag.eml" "$work/out/cr-$tag.eml"
	# the decoded content is what was sent, or what Postfix alone made of
	# it, or what was sent with bare CR as spaces: Postfix turns a bare CR
	# into a space before the milter sees it, and its SMTP client splits
	# the long lines it relays (so the baseline alone does not do)
	verify_message "$work/out/$tag.eml" "$work/send/$tag.eml" andi@banjarkota.go.id "$work/pki" >"$work/out/$tag.vm" 2>&1
	for ref in "$work/out/base-$tag.eml" "$work/out/cr-$tag.eml"; do
		[ "$VM_CONTENT" = ok ] && break
		verify_message "$work/out/$tag.eml" "$ref" andi@banjarkota.go.id "$work/pki" >"$work/out/$tag.vm" 2>&1
	done
	if
		[ "$VM_STRUCT" = ok ] && [ "$VM_OPENSSL" = ok ] && [ "$VM_GPGSM" = ok ] && [ "$VM_CONTENT" = ok ]; then
		ok "$tag: delivered through Postfix's SMTP client signed, verifies (openssl, gpgsm), lines <= 998, content unchanged"
	else
		nok "$tag: delivered signed and verifies (struct $VM_STRUCT openssl $VM_OPENSSL gpgsm $VM_GPGSM content $VM_CONTENT)"
		sed 's/^/#   /' "$work/out/$tag.vm" | head -20
	fi
done
kill -0 "$milter_pid" 2>/dev/null
tap $? "smime-milter still running"
echo "1..$n"
