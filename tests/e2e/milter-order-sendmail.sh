#!/bin/sh
# Which message does a milter after smime-milter see in Sendmail (two
# INPUT_MAIL_FILTERs; a per-daemon InputMailFilters list as the control)?
# tests/e2e/milter-order.sh with MO_MTA=sendmail.  Prints TAP.
TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
export TOP
MO_MTA=sendmail exec sh "$TOP/tests/e2e/milter-order.sh"
