/* Unit tests: RFC 3161 anchors of the audit chain (lib/anchor.c): the
 * imprint (the 32 bytes of a row's hash), and every verdict of
 * anchor_check, on tokens that `openssl ts -reply` makes here (no HTTP:
 * tests/admin/anchor.sh runs the loopback TSA). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "anchor.h"
#include "fixture.h"
#include "tap.h"

static const char hash[] =
        "00ff10a0b1c2d3e4f5061728394a5b6c7d8e9fa0b1c2d3e4f5061728394a5b6c";
static const char other[] =
        "11ff10a0b1c2d3e4f5061728394a5b6c7d8e9fa0b1c2d3e4f5061728394a5b6c";

/* Root PREFIX-ca.crt and its TSA PREFIX-tsa.{crt,key}; exits on failure. */
static void tsa_pki(const char *prefix, int serial)
{
	const char *d = fixture_path("");

	if (fixture_sh("cd '%s' && printf '%%s\\n' basicConstraints=CA:FALSE "
	               "keyUsage=critical,digitalSignature "
	               "extendedKeyUsage=critical,timeStamping >ext && "
	               "openssl req -x509 -newkey ec -pkeyopt "
	               "ec_paramgen_curve:P-256 -nodes -keyout %s-ca.key -out "
	               "%s-ca.crt -subj /CN=%s-root -days 2 -addext "
	               "basicConstraints=critical,CA:TRUE -addext "
	               "keyUsage=critical,keyCertSign 2>/dev/null && "
	               "openssl req -newkey ec -pkeyopt "
	               "ec_paramgen_curve:P-256 "
	               "-nodes -keyout %s-tsa.key -out %s-tsa.csr -subj "
	               "/CN=%s-tsa 2>/dev/null && openssl x509 -req -in "
	               "%s-tsa.csr -CA %s-ca.crt -CAkey %s-ca.key -set_serial "
	               "%d -days 2 -extfile ext -out %s-tsa.crt 2>/dev/null",
	               d, prefix, prefix, prefix, prefix, prefix, prefix,
	               prefix, prefix, prefix, serial, prefix) != 0) {
		printf("# cannot make the TSA certificates\n");
		exit(1);
	}
}

/* A token over the bytes of hex from TSA a; malloc'd DER in *len. */
static unsigned char *token_over(const char *hex, size_t *len)
{
	unsigned char *der;
	FILE *f;
	long n;

	if (fixture_sh("cd '%s' && printf '[ tsa ]\\ndefault_tsa = a\\n[ a ]\\n"
	               "serial = serial\\ncrypto_device = builtin\\n"
	               "signer_cert = a-tsa.crt\\nsigner_key = a-tsa.key\\n"
	               "signer_digest = sha256\\ndefault_policy = 1.2.3.4\\n"
	               "digests = sha256\\ness_cert_id_alg = sha256\\n' "
	               ">ts.cnf && echo 01 >serial && openssl ts -query "
	               "-digest %s -sha256 -cert -out q.tsq 2>/dev/null && "
	               "openssl ts "
	               "-reply -config ts.cnf -queryfile q.tsq -token_out -out "
	               "tok.der 2>/dev/null",
	               fixture_path(""), hex) != 0 ||
	    (f = fopen(fixture_path("tok.der"), "rb")) == NULL) {
		printf("# cannot make a token\n");
		exit(1);
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	der = malloc((size_t)n);
	if (der == NULL || fread(der, 1, (size_t)n, f) != (size_t)n) {
		printf("# cannot read the token\n");
		exit(1);
	}
	fclose(f);
	*len = (size_t)n;
	return der;
}

static void test_digest(void)
{
	unsigned char d[TSA_DIGEST_LEN];
	char upper[65];

	ok(anchor_digest(hash, d) == 0 && d[0] == 0x00 && d[1] == 0xff &&
	           d[2] == 0x10 && d[31] == 0x6c,
	   "the imprint is the 32 bytes the 64 hex digits spell");
	for (int i = 0; i < 65; i++)
		upper[i] = (char)(hash[i] >= 'a' ? hash[i] - 32 : hash[i]);
	ok(anchor_digest(upper, d) == 0 && d[1] == 0xff,
	   "upper-case digits too");
	ok(anchor_digest("00ff", d) == -1 && anchor_digest(NULL, d) == -1,
	   "too short, or none: refused");
	memcpy(upper, hash, 65);
	upper[7] = 'g';
	ok(anchor_digest(upper, d) == -1, "a non-hex digit: refused");
	memcpy(upper, hash, 65);
	upper[10] = ':';
	ok(anchor_digest(upper, d) == -1, "a colon: refused");
}

static void test_keys(void)
{
	ok(strcmp(anchor_problem_key(ANCHOR_OK), "ok") == 0 &&
	           strcmp(anchor_problem_key(ANCHOR_UNCHECKED),
	                  "token-unchecked") == 0 &&
	           strcmp(anchor_problem_key(ANCHOR_TOKEN), "token-invalid") ==
	                   0 &&
	           strcmp(anchor_problem_key(ANCHOR_GEN_TIME),
	                  "gen-time-changed") == 0 &&
	           strcmp(anchor_problem_key(ANCHOR_ROW_GONE), "row-missing") ==
	                   0 &&
	           strcmp(anchor_problem_key(ANCHOR_HASH_CHANGED),
	                  "hash-changed") == 0 &&
	           strcmp(anchor_problem_key(ANCHOR_CHAIN_BROKEN),
	                  "chain-broken") == 0 &&
	           strcmp(anchor_problem_key((enum anchor_problem)99), "?") ==
	                   0,
	   "the JSON names of the problems (smimectl(8))");
}

static void test_check(void)
{
	struct db_audit_anchor a;
	struct db_audit_check chk;
	unsigned char d[TSA_DIGEST_LEN], *tok, junk[] = { 0x30, 0x00 };
	char ca[256], ca_b[256], why[1024], err[512] = "";
	time_t gen = 0;
	size_t len;

	tsa_pki("a", 2);
	tsa_pki("b", 3);
	snprintf(ca, sizeof(ca), "%s", fixture_path("a-ca.crt"));
	snprintf(ca_b, sizeof(ca_b), "%s", fixture_path("b-ca.crt"));
	tok = token_over(hash, &len);
	anchor_digest(hash, d);
	ok(tsa_token_verify(tok, len, d, sizeof(d), ca, &gen, err,
	                    sizeof(err)) == 0,
	   "the openssl token verifies (%s)", err);

	memset(&a, 0, sizeof(a));
	memset(&chk, 0, sizeof(chk));
	a.id = 1;
	a.audit_id = 3;
	memcpy(a.hash, hash, 65);
	a.token = tok;
	a.token_len = len;
	a.gen_time = gen;
	a.row_found = 1;
	memcpy(a.row_hash, hash, 65);
	chk.rows = 5;
	chk.last_id = 5;
	ok(anchor_check(&a, &chk, 0, ca, why, sizeof(why)) == ANCHOR_OK &&
	           strcmp(why, "ok") == 0,
	   "a good anchor holds (%s)", why);
	ok(anchor_check(&a, &chk, 0, ca, NULL, 0) == ANCHOR_OK,
	   "why may be NULL");
	ok(anchor_check(&a, &chk, 0, NULL, why, sizeof(why)) ==
	                   ANCHOR_UNCHECKED &&
	           strstr(why, "timestamp_ca_file is not set"),
	   "no timestamp_ca_file: unchecked (%s)", why);
	ok(anchor_check(&a, &chk, 0, ca_b, why, sizeof(why)) == ANCHOR_TOKEN &&
	           strstr(why, "its token does not verify against"),
	   "another TSA root: the token does not verify (%s)", why);

	memcpy(a.hash, other, 65);
	memcpy(a.row_hash, other, 65);
	ok(anchor_check(&a, &chk, 0, ca, why, sizeof(why)) == ANCHOR_TOKEN,
	   "the hash column changed (row hash to fit): not the imprint (%s)",
	   why);
	memcpy(a.hash, "xyz", 4);
	ok(anchor_check(&a, &chk, 0, ca, why, sizeof(why)) == ANCHOR_TOKEN &&
	           strstr(why, "not 64 hex digits"),
	   "a hash column that is no hash (%s)", why);
	memcpy(a.hash, hash, 65);
	memcpy(a.row_hash, hash, 65);

	a.token = junk;
	a.token_len = sizeof(junk);
	ok(anchor_check(&a, &chk, 0, ca, why, sizeof(why)) == ANCHOR_TOKEN,
	   "a damaged token (%s)", why);
	a.token = tok;
	a.token_len = len;

	a.gen_time = gen - 3600;
	ok(anchor_check(&a, &chk, 0, ca, why, sizeof(why)) == ANCHOR_GEN_TIME &&
	           strstr(why, "gen_time column says"),
	   "gen_time an hour off the token's (%s)", why);
	a.gen_time = gen;

	a.row_found = 0;
	a.row_hash[0] = '\0';
	ok(anchor_check(&a, &chk, 0, ca, why, sizeof(why)) == ANCHOR_ROW_GONE &&
	           strstr(why, "audit row 3, which it stamps, is gone"),
	   "the row is gone (%s)", why);
	a.row_found = 1;

	memcpy(a.row_hash, other, 65);
	ok(anchor_check(&a, &chk, 0, ca, why, sizeof(why)) ==
	                   ANCHOR_HASH_CHANGED &&
	           strstr(why, "row 3's hash is now 11ff") &&
	           strstr(why, "the token stamps 00ff"),
	   "the row's hash now differs: the chain was recomputed (%s)", why);
	memcpy(a.row_hash, hash, 65);

	chk.bad_id = 2;
	chk.problem = DB_AUDIT_CHANGED;
	ok(anchor_check(&a, &chk, 1, ca, why, sizeof(why)) ==
	                   ANCHOR_CHAIN_BROKEN &&
	           strstr(why, "the chain breaks at row 2, at or before row 3"),
	   "the chain breaks before the row (%s)", why);
	chk.bad_id = 3;
	ok(anchor_check(&a, &chk, 1, ca, why, sizeof(why)) ==
	           ANCHOR_CHAIN_BROKEN,
	   "... or at it");
	chk.bad_id = 4;
	ok(anchor_check(&a, &chk, 1, ca, why, sizeof(why)) == ANCHOR_OK,
	   "a break after the row leaves the anchor holding");
	chk.bad_id = 1;
	chk.problem = DB_AUDIT_ANCHOR_MISSING;
	ok(anchor_check(&a, &chk, 1, ca, why, sizeof(why)) == ANCHOR_OK,
	   "an --anchor row missing from the end is no break before it");
	free(tok);
}

int main(void)
{
	int rc;

	fixture_dir("anchor");
	test_digest();
	test_keys();
	test_check();
	rc = tap_done();
	return fixture_end(rc);
}
