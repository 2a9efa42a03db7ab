#!/bin/sh
# The hostile-input invariant (issue 6), over every file of the fuzz seed
# corpus (tests/fuzz/seeds), the fuzz regression inputs (tests/fuzz/regress)
# and the messages tests/lib/mkcorpus.py generates: each goes through
# `smime-milter -t` with the test PKI, and exactly one of these holds:
#   passed  - exit 0, stderr says "passed unsigned", output byte-identical
#             to the input;
#   signed  - exit 0, the output's signature verifies with openssl (python-
#             cut entity and -inform SMIME, chain to the test root) and with
#             gpgsm, the signed entity is transport-safe (smimecheck.py
#             split: 7-bit, lines <= 998), and the decoded content (MIME
#             tree, leaf bytes) equals the input's (smimecheck.py content);
#   not delivered - exit 75 (tempfail) or 69 (reject) with no output: the
#             MTA keeps the message and retries, or refuses it to the client,
#             so nothing is lost and nothing broken leaves.  Allowed, but
#             printed, so a change that turns signable mail into tempfails
#             shows up.
# Anything else (a crash, a signal, output on failure, a signature that
# does not verify, changed content) is "not ok".
# Files named in tests/fuzz/KNOWN (open bugs elsewhere) are skipped when
# they fail.  GPGSM=0 ignores the gpgsm result (openssl only).  Prints TAP.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
fx_begin finv
sh "$TOP/tests/fuzz/mkenv.sh" "$work" || bail "test PKI and configuration built"
conf=$work/m.conf
mkdir -p "$work/gen/good" "$work/gen/bad" "$work/out"
/usr/bin/python3 "$TOP/tests/lib/mkcorpus.py" "$work/gen/good" "$work/gen/bad" ||
	bail "mkcorpus.py generated its messages"

# tests/fuzz/KNOWN: "FILE reason" lines for open bugs outside lib/mime.c
# and lib/message.c; such a file is skipped when it fails, and listed.
known() {
	known_why=$(awk -v f="$1" '$1 == f { $1 = ""; sub(/^ /, ""); print; exit }' \
		"$TOP/tests/fuzz/KNOWN" 2>/dev/null)
	[ -n "$known_why" ]
}

# every other failure smimecheck.py split reports
struct_fatal='^# (top-level Content-Type is|protocol parameter is|micalg parameter is|outer header has|outer header still|multipart/signed without|no opening delimiter|no second delimiter|only one part|signature part has no close|more than two parts|second part is|signature part Content-Transfer-Encoding|signature part is not valid|signed entity is empty|signed entity line)'

start=$(date +%s)
npass=0 nsign=0 nfail=0 n8=0
for f in "$TOP"/tests/fuzz/seeds/* "$TOP"/tests/fuzz/regress/* "$work"/gen/good/* "$work"/gen/bad/*; do
	[ -f "$f" ] || continue
	case $f in */README*) continue ;; esac
	tag=$(basename "$f")
	o=$work/out/$tag
	"$ME_MILTER" -c "$conf" -t "$f" -s andi@banjarkota.go.id >"$o" 2>"$o.err"
	rc=$?
	if [ $rc -eq 0 ] && grep -q "passed unsigned" "$o.err"; then
		if cmp -s "$f" "$o"; then
			ok "$tag: passed untouched ($(sed -n 's/.*passed unsigned.*/&/p' "$o.err" | head -1 | cut -c1-60))"
			npass=$((npass + 1))
		else
			nok "$tag: said passed unsigned but the output differs from the input"
		fi
	elif [ $rc -eq 0 ]; then
		if ! vm_is_signed "$o"; then
			if known "$tag"; then
				ok "$tag: # SKIP known issue: $known_why"
				continue
			fi
			nok "$tag: exit 0, not passed and not signed"
			sed 's/^/#   /' "$o.err" | head -5
			continue
		fi
		verify_message "$o" "$f" - "$work/pki" >"$o.vm" 2>&1
		[ "${GPGSM:-1}" = 0 ] && VM_GPGSM=ok
		note=
		# content: the only change allowed is the charset label mime.c
		# adds to 8bit text that had none (mime.h): us-ascii was the
		# RFC 2045 default, the bytes must still be equal
		if [ "$VM_CONTENT" != ok ] &&
			! grep -qE '^# (part [^ ]+ .*(content type|decoded content|file name)|part [^ ]+: |MIME tree has|cannot find)' "$o.vm" &&
			! grep -E "charset '" "$o.vm" | grep -qvE "charset '(unknown-8bit|utf-8)', original 'us-ascii'"; then
			VM_CONTENT=ok
			note="$note; charset label added to 8bit text"
		fi
		# transport safety: lines over 998 octets fail; 8bit octets
		# are allowed only where mime.c keeps them by design (header
		# lines of nested parts), noted here
		if [ "$VM_STRUCT" != ok ] &&
			grep -q 'bytes that are NUL or 8-bit' "$o.vm" &&
			! grep -qE "$struct_fatal" "$o.vm"; then
			VM_STRUCT=ok
			note="$note; 8bit octets in nested header lines"
			n8=$((n8 + 1))
		fi
		bad=
		for c in STRUCT OPENSSL GPGSM CONTENT; do
			eval "v=\$VM_$c"
			[ "$v" = ok ] || bad="$bad $c"
		done
		if [ -z "$bad" ]; then
			ok "$tag: signed, verifies (openssl, gpgsm), transport-safe, content unchanged$note"
			nsign=$((nsign + 1))
		elif known "$tag"; then
			ok "$tag: # SKIP known issue: $known_why (failed:$bad)"
		else
			nok "$tag: signed, verifies (openssl, gpgsm), transport-safe, content unchanged (failed:$bad)"
			sed 's/^/#   /' "$o.vm" | head -20
		fi
	elif [ $rc -eq 75 ] || [ $rc -eq 69 ]; then
		if [ -s "$o" ]; then
			nok "$tag: exit $rc (not delivered) but wrote output"
		else
			ok "$tag: not delivered (exit $rc: $(head -1 "$o.err" | cut -c1-80))"
			nfail=$((nfail + 1))
		fi
	else
		nok "$tag: smime-milter -t exits 0, 69 or 75 (exit $rc)"
		sed 's/^/#   /' "$o.err" | head -10
	fi
done
echo "# $npass passed untouched, $nsign signed and verified ($n8 with 8bit in nested headers), $nfail not delivered, in $(($(date +%s) - start)) s"
echo "1..$n"
