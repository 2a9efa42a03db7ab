/*
 * fuzz_evidence -- libFuzzer target for lib/evidence*.c: a stored message
 * as smimectl verify reads it (header fields, the parts of a
 * multipart/signed, the signature part's DER, the LF to CRLF reader, the
 * pkcs7-mime shapes) and through it smime_verify.  Without a database or
 * a trust bundle the verdict is at most "could not check"; what is fuzzed
 * is the parsing, and the property that a verdict line is always written
 * and an invalid or unchecked message always says why.
 * Build: make tests/fuzz/fuzz_evidence (the pattern rule of the Makefile).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evidence.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct evidence_opts o = { 0 };
	struct evidence e;
	char err[256];

	o.ca_file = "/nonexistent/ca.pem";
	o.authserv_id = "mx.banjarkota.go.id";
	o.now = 1767225600;
	if (evidence_check(&o, data, size, &e, err, sizeof(err)) == 0) {
		if (e.verdict[0] == '\0' ||
		    (e.status != EVIDENCE_VALID && e.reason_en[0] == '\0' &&
		     !(e.signature_ok && e.audit.chain == 0)))
			abort();
		if (e.status == EVIDENCE_VALID)
			abort(); /* no trust bundle, no database: never valid */
	}
	evidence_clear(&e);
	return 0;
}
