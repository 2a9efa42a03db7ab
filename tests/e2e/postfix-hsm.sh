#!/bin/sh
# End-to-end through a real Postfix with every private key on a SoftHSM2
# token: tests/e2e/postfix.sh with KEYSTORE=pkcs11 (same corpus, same
# verifiers; keys imported with smimectl --pkcs11-uri).  Prints TAP.
TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
export TOP
KEYSTORE=pkcs11 exec sh "$TOP/tests/e2e/postfix.sh"
