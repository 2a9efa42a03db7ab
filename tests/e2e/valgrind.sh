#!/bin/sh
# The end-to-end Postfix run (tests/e2e/postfix.sh: the whole corpus, bad
# input, inbound, authenticated, reload-free) with the milter under valgrind
# memcheck.  Its checks count as usual; then valgrind's own log must show no
# invalid access, no use of uninitialized memory and no definitely or
# indirectly lost block after the milter's orderly stop (SIGTERM).
#
# A SANITIZE=1 build cannot run under valgrind (ASan owns the address
# space); the test then says so and skips.  Prints TAP.
set -u
TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
export TOP
. "$TOP/tests/lib/tap.sh"
MILTER=${SMIME_MILTER:-$TOP/milter/smime-milter}

command -v valgrind >/dev/null || bail "valgrind is installed (contrib/install-deps.sh)"
if ldd "$MILTER" 2>/dev/null | grep -q 'libasan'; then
	ok "valgrind run # SKIP $MILTER is a sanitizer build (make check SANITIZE=1 covers it)"
	echo "1..$n"
	exit 0
fi

work=$(mktemp -d /tmp/smime-vg.XXXXXX)
chmod 0755 "$work"
cleanup() {
	if [ "${KEEP:-0}" = 1 ]; then echo "# kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

cat >"$work/milter" <<EOF
#!/bin/sh
exec valgrind --tool=memcheck --leak-check=full \\
	--show-leak-kinds=definite,indirect \\
	--errors-for-leak-kinds=definite,indirect --num-callers=30 \\
	--log-file=$work/vg.%p.log "$MILTER" "\$@"
EOF
chmod 0755 "$work/milter"

SMIME_MILTER=$work/milter sh "$TOP/tests/e2e/postfix.sh" >"$work/e2e.out" 2>&1
rc=$?
# the e2e checks, prefixed, so they count and are told apart
sed -e 's/^ok [0-9]* - /ok - valgrind: /' -e 's/^not ok [0-9]* - /not ok - valgrind: /' \
	-e '/^1\.\.[0-9]*$/d' "$work/e2e.out" | grep -E '^(ok|not ok|#)'
tap "$rc" "the e2e run under valgrind exits 0 (exit $rc)"

set -- "$work"/vg.*.log
if [ ! -f "$1" ]; then
	nok "valgrind wrote a log (the milter ran under it)"
	echo "1..$n"
	exit 1
fi
ok "valgrind logs: $#"
for log in "$@"; do
	name=$(basename "$log")
	if ! grep -q "ERROR SUMMARY" "$log"; then
		nok "$name: the milter ended normally under valgrind (no ERROR SUMMARY)"
		tail -20 "$log" | sed 's/^/# /'
		continue
	fi
	errs=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$log" | tail -1)
	tap "$([ "$errs" = 0 ]; echo $?)" "$name: no invalid access or uninitialized use (ERROR SUMMARY: $errs errors)"
	[ "$errs" = 0 ] || grep -E -A12 'Invalid|uninitialised|definitely lost in|indirectly lost in' "$log" | head -60 | sed 's/^/# /'
	def=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$log" | tail -1)
	ind=$(sed -n 's/.*indirectly lost: \([0-9,]*\) bytes.*/\1/p' "$log" | tail -1)
	# "All heap blocks were freed" prints no LEAK SUMMARY at all
	if grep -q "All heap blocks were freed" "$log"; then def=0 ind=0; fi
	[ "${def:-x}" = 0 ] && [ "${ind:-x}" = 0 ]
	tap $? "$name: no leak (definitely lost ${def:-?}, indirectly lost ${ind:-?} bytes)"
done
echo "1..$n"
