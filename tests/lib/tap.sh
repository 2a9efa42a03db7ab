# tests/lib/tap.sh -- TAP helpers for the shell tests.  Source it; it sets
# n=0.  ok TEXT / nok TEXT print one result line; tap RC TEXT prints ok when
# RC is 0; bail TEXT prints a failure and the plan, and exits.
n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
nok() { n=$((n + 1)); echo "not ok $n - $*"; }
tap() { if [ "$1" = 0 ]; then ok "$2"; else nok "$2"; fi; }
bail() { nok "$*"; echo "1..$n"; exit 1; }
