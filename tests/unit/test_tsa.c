/*
 * Unit tests: lib/tsa.c -- the RFC 3161 client against a loopback TSA
 * (tests/lib/tsa_server.py: `openssl ts -reply` behind HTTP, started and
 * stopped here), tokens checked again by `openssl ts -verify`, the faults
 * of a TSA (untrusted, hanging, garbage, HTTP 500, redirects, a stale
 * nonce, another digest, a rejection, too much data), and the token
 * attached to a real CMS SignerInfo, seen by `openssl cms -cmsout -print`.
 * Loopback only: every URL is http://127.0.0.1.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "fixture.h"
#include "tap.h"
#include "tsa.h"

static int port, tls_port; /* http and https */
static long server_pid;
static const char *ca_pem; /* the trust bundle of the good TSA */
static char ca_path[512], ca2_path[512];

static time_t t_start; /* when the PKI was made */

/* An EC P-256 key; ends the test when none can be made. */
static EVP_PKEY *key_new(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");

	if (k == NULL) {
		printf("# cannot make a key\n");
		exit(1);
	}
	return k;
}

/* "PREFIX-SUFFIX" in the fixture directory. */
static const char *pki_path(const char *prefix, const char *suffix)
{
	char name[64];

	snprintf(name, sizeof(name), "%s-%s", prefix, suffix);
	return fixture_path(name);
}

#define TSA_EXTS                                                        \
	"basicConstraints:CA:FALSE|keyUsage:critical,digitalSignature|" \
	"extendedKeyUsage:critical,timeStamping|subjectKeyIdentifier:hash"

/* A certificate and key for ca/cak with the extensions exts, valid from
 * t_start + from to t_start + to: PREFIX-tsa.crt and PREFIX-tsa.key. */
static void tsa_make(const char *prefix, X509 *ca, EVP_PKEY *cak, long serial,
                     long from, long to, const char *exts)
{
	EVP_PKEY *tk = key_new();
	X509 *tsa = fixture_cert_make(tk, "Test TSA", ca, cak, serial, t_start,
	                              from, to, exts);

	if (fixture_pem_write(pki_path(prefix, "tsa.crt"), tsa, NULL) != 0 ||
	    fixture_key_write(pki_path(prefix, "tsa.key"), tk) != 0)
		exit(1);
	X509_free(tsa);
	EVP_PKEY_free(tk);
}

/* A CA named cn (PREFIX-ca.crt) and a TSA under it valid for a day;
 * the CA and its key in *cap, *cakp when those are not NULL. */
static void pki_make(const char *prefix, const char *cn, long serial,
                     X509 **cap, EVP_PKEY **cakp)
{
	EVP_PKEY *cak = key_new();
	X509 *ca = fixture_cert_make(cak, cn, NULL, NULL, serial, t_start,
	                             -7200, 86400,
	                             "basicConstraints:critical,CA:TRUE|"
	                             "keyUsage:critical,keyCertSign,cRLSign|"
	                             "subjectKeyIdentifier:hash");

	if (fixture_pem_write(pki_path(prefix, "ca.crt"), ca, NULL) != 0)
		exit(1);
	tsa_make(prefix, ca, cak, serial + 1, -3600, 86400, TSA_EXTS);
	if (cap != NULL) {
		*cap = ca;
		*cakp = cak;
	} else {
		X509_free(ca);
		EVP_PKEY_free(cak);
	}
}

/* One [section] of the openssl ts configuration, TSA of prefix. */
static void conf_section(FILE *f, const char *section, const char *prefix,
                         const char *digests)
{
	fprintf(f, "[ %s ]\n", section);
	fprintf(f, "serial = %s\n", fixture_path("serial"));
	fprintf(f, "crypto_device = builtin\n");
	fprintf(f, "signer_cert = %s\n", pki_path(prefix, "tsa.crt"));
	fprintf(f, "signer_key = %s\n", pki_path(prefix, "tsa.key"));
	fprintf(f,
	        "signer_digest = sha256\n"
	        "default_policy = 1.3.6.1.4.1.99999.1\n"
	        "digests = %s\n"
	        "accuracy = secs:1\n"
	        "ordering = yes\n"
	        "tsa_name = yes\n"
	        "ess_cert_id_chain = no\n"
	        "ess_cert_id_alg = sha256\n\n",
	        digests);
}

/* Stop the loopback TSA (also at exit, when a check ends the test). */
static void server_stop(void)
{
	if (server_pid > 0)
		kill((pid_t)server_pid, SIGTERM);
	server_pid = 0;
}

/* seconds the "short" TSA certificate lives after t_start */
#define SHORT_LIFE 3

static void server_start(void)
{
	EVP_PKEY *cak = NULL;
	X509 *ca = NULL;
	char pid[32];
	FILE *f;
	int i;

	t_start = time(NULL);
	pki_make("a", "Test TSA Root", 10, &ca, &cak);
	pki_make("b", "Other TSA Root", 20, NULL, NULL);
	/* under the good root: expired an hour ago, and expiring soon */
	tsa_make("expired", ca, cak, 12, -7200, -3600, TSA_EXTS);
	tsa_make("short", ca, cak, 13, -3600, SHORT_LIFE, TSA_EXTS);
	/* the HTTPS listener's certificate, from a root no system trusts */
	tsa_make("web", ca, cak, 14, -3600, 86400,
	         "basicConstraints:CA:FALSE|extendedKeyUsage:serverAuth|"
	         "subjectAltName:IP:127.0.0.1");
	X509_free(ca);
	EVP_PKEY_free(cak);
	snprintf(ca_path, sizeof(ca_path), "%s", fixture_path("a-ca.crt"));
	snprintf(ca2_path, sizeof(ca2_path), "%s", fixture_path("b-ca.crt"));
	ca_pem = ca_path;
	if (fixture_write(fixture_path("serial"), "01\n", 0600) != 0)
		exit(1);
	f = fopen(fixture_path("ts.cnf"), "w");
	if (f == NULL)
		exit(1);
	fprintf(f, "[ tsa ]\ndefault_tsa = good\n\n");
	conf_section(f, "good", "a", "sha256, sha384, sha512");
	conf_section(f, "untrusted", "b", "sha256, sha384, sha512");
	conf_section(f, "sha1only", "a", "sha1");
	conf_section(f, "expired", "expired", "sha256");
	conf_section(f, "short", "short", "sha256");
	if (fclose(f) != 0)
		exit(1);
	if (fixture_sh("python3 tests/lib/tsa_server.py '%s' '%s' '%s' '%s' "
	               ">'%s' 2>&1 </dev/null & echo $! >'%s'",
	               fixture_path("ts.cnf"), fixture_path("port"),
	               pki_path("web", "tsa.crt"), pki_path("web", "tsa.key"),
	               fixture_path("server.log"), fixture_path("pid")) != 0)
		exit(1);
	server_pid = atol(fixture_sh_out(pid, sizeof(pid), "cat '%s'",
	                                 fixture_path("pid")));
	atexit(server_stop);
	for (i = 0; i < 200 && port == 0; i++) {
		char p[32];
		if (access(fixture_path("port"), R_OK) == 0)
			port = atoi(fixture_sh_out(p, sizeof(p), "cat '%s'",
			                           fixture_path("port")));
		else
			usleep(50000);
	}
	tls_port = atoi(fixture_sh_out(pid, sizeof(pid), "sed -n 2p '%s'",
	                               fixture_path("port")));
	if (port == 0 || tls_port == 0 || server_pid <= 0) {
		printf("# the loopback TSA did not start\n");
		fixture_sh("cat '%s'", fixture_path("server.log"));
		exit(1);
	}
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

/* tsa_request to http://127.0.0.1:PORT/path; a failure must leave no
 * token.  The token is kept in *tok (may be NULL: freed). */
static int ask(const char *path, long tmo, const unsigned char *dg,
               const char *ca, unsigned char **tok, size_t *toklen, time_t *gen,
               char *err, size_t errlen)
{
	unsigned char *t = (unsigned char *)"x";
	size_t tl = 1;
	char url[256];
	int rc;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	err[0] = '\0';
	rc = tsa_request(url, tmo, dg, TSA_DIGEST_LEN, ca, &t, &tl, gen, err,
	                 errlen);
	if (rc != 0 && (t != NULL || tl != 0))
		rc = -2;
	if (rc != 0 || err[0])
		printf("# %s: %s\n", path, err);
	if (tok != NULL) {
		*tok = t;
		*toklen = tl;
	} else {
		OPENSSL_free(t);
	}
	return rc;
}

static int has(const char *err, const char *what)
{
	return strstr(err, what) != NULL;
}

static int write_bytes(const char *path, const void *p, size_t len)
{
	BIO *b = BIO_new_file(path, "wb");
	int done = b && BIO_write(b, p, (int)len) == (int)len;

	BIO_free(b);
	return done ? 0 : -1;
}

static void hex(const unsigned char *d, size_t n, char *out)
{
	size_t i;

	for (i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

static void test_good(const unsigned char *dg)
{
	unsigned char *tok = NULL, other[TSA_DIGEST_LEN];
	time_t gen = 0, gen2 = 0, now = time(NULL);
	char err[512], hx[2 * TSA_DIGEST_LEN + 1];
	size_t toklen = 0;

	ok(ask("/tsa/good", 5000, dg, ca_pem, &tok, &toklen, &gen, err,
	       sizeof(err)) == 0 &&
	           tok != NULL && toklen > 100,
	   "a good TSA gives a token (%zu bytes)", toklen);
	ok(gen >= now - 60 && gen <= now + 60, "its genTime is now (%lld)",
	   (long long)gen);
	if (tok == NULL)
		return;
	ok(tok[0] == 0x30, "the token is a DER SEQUENCE (a ContentInfo)");
	write_bytes(fixture_path("good.tst"), tok, toklen);
	hex(dg, TSA_DIGEST_LEN, hx);
	ok(fixture_sh("openssl ts -verify -digest %s -token_in -in '%s' "
	              "-CAfile '%s' >/dev/null 2>&1",
	              hx, fixture_path("good.tst"), ca_pem) == 0,
	   "openssl ts -verify accepts the token");
	ok(fixture_sh("openssl ts -verify -digest %s -token_in -in '%s' "
	              "-CAfile '%s' >/dev/null 2>&1",
	              hx, fixture_path("good.tst"), ca2_path) != 0,
	   "openssl ts -verify refuses it against another CA");

	ok(tsa_token_verify(tok, toklen, dg, TSA_DIGEST_LEN, ca_pem, &gen2, err,
	                    sizeof(err)) == 0 &&
	           gen2 == gen,
	   "tsa_token_verify accepts the stored token, same genTime");
	memcpy(other, dg, sizeof(other));
	other[5] ^= 0x40;
	ok(tsa_token_verify(tok, toklen, other, TSA_DIGEST_LEN, ca_pem, NULL,
	                    err, sizeof(err)) != 0 &&
	           has(err, "imprint mismatch"),
	   "tsa_token_verify refuses another digest: %s", err);
	ok(tsa_token_verify(tok, toklen, dg, TSA_DIGEST_LEN, ca2_path, NULL,
	                    err, sizeof(err)) != 0 &&
	           has(err, "TSA certificate not trusted"),
	   "tsa_token_verify refuses a TSA outside the bundle: %s", err);
	ok(tsa_token_verify(tok, toklen - 1, dg, TSA_DIGEST_LEN, ca_pem, NULL,
	                    err, sizeof(err)) != 0 &&
	           has(err, "not a TimeStampToken"),
	   "a truncated token is not a TimeStampToken: %s", err);
	ok(tsa_token_verify(tok, toklen, dg, TSA_DIGEST_LEN, NULL, NULL, err,
	                    sizeof(err)) != 0 &&
	           has(err, "trust bundle"),
	   "no trust bundle, no verdict: %s", err);
	OPENSSL_free(tok);
}

/* A TSA fault: the path asked, and what the error must say. */
static const struct fault {
	const char *path, *want, *what;
} faults[] = {
	{ "/tsa/untrusted",
	  "TSA certificate not trusted: unable to get local "
	  "issuer certificate",
	  "a token from an untrusted TSA is refused" },
	{ "/garbage",
	  "TSA response is not a TimeStampResp (33 bytes, "
	  "Content-Type text/html)",
	  "garbage is not a TimeStampResp" },
	{ "/status500", "TSA answered HTTP 500", "HTTP 500 is named" },
	{ "/empty", "TSA response is not a TimeStampResp (0 bytes",
	  "an empty answer is not a TimeStampResp" },
	{ "/rejecttext",
	  "TSA refused the request: rejection \"no??Forged: log line?[0m\"",
	  "a TSA's text comes back without control characters" },
	{ "/nosuchpath", "TSA answered HTTP 404", "HTTP 404 is named" },
	{ "/redirect/ftp", "not http or https",
	  "a redirect to ftp: is refused" },
	{ "/redirect/file", "not http or https",
	  "a redirect to file: is refused" },
	{ "/loop", "redirected more than 3 times", "a redirect loop ends" },
	{ "/otherdigest", "imprint mismatch",
	  "a token over another digest is refused" },
	{ "/tsa/sha1only", "TSA refused the request: rejection badAlg",
	  "a rejection is named with its failure info" },
	{ "/big", "larger than 262144 bytes",
	  "an answer over the cap (with a length) is refused" },
	{ "/bigchunked", "larger than 262144 bytes",
	  "an answer over the cap (chunked) is refused" },
};

static void test_faults(const unsigned char *dg)
{
	char err[512], url[128];
	unsigned char *t = NULL;
	size_t tl = 0, i;
	double t0, took;

	for (i = 0; i < sizeof(faults) / sizeof(faults[0]); i++)
		ok(ask(faults[i].path, 5000, dg, ca_pem, NULL, NULL, NULL, err,
		       sizeof(err)) == -1 &&
		           has(err, faults[i].want),
		   "%s", faults[i].what);

	t0 = now_ms();
	ok(ask("/hang", 700, dg, ca_pem, NULL, NULL, NULL, err, sizeof(err)) ==
	                   -1 &&
	           has(err, "TSA timed out after 700 ms"),
	   "a hanging TSA times out");
	took = now_ms() - t0;
	ok(took >= 650 && took < 700 + 1500,
	   "the call returned after the timeout, within 1.5 s (%.0f ms)", took);
	ok(ask("/redirect/good", 5000, dg, ca_pem, NULL, NULL, NULL, err,
	       sizeof(err)) == 0,
	   "a redirect to http is followed, still a POST");
	ok(ask("/tsa/good", 5000, dg, ca_pem, NULL, NULL, NULL, err,
	       sizeof(err)) == 0 &&
	           ask("/replay", 5000, dg, ca_pem, NULL, NULL, NULL, err,
	               sizeof(err)) == -1 &&
	           has(err, "nonce mismatch"),
	   "an old answer replayed is a nonce mismatch");
	ok(ask("/tsa/good", 5000, dg, "/nonexistent/ca.pem", NULL, NULL, NULL,
	       err, sizeof(err)) == -1 &&
	           has(err, "cannot read the TSA trust bundle"),
	   "an unreadable trust bundle is named");
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/tsa/good", tls_port);
	ok(tsa_request(url, 5000, dg, TSA_DIGEST_LEN, ca_pem, &t, &tl, NULL,
	               err, sizeof(err)) == -1 &&
	           has(err, "TSA request failed: SSL certificate problem"),
	   "https to a server no system CA vouches for is refused: %s", err);
	ok(fixture_sh("openssl ts -query -digest %064d -sha256 -cert "
	              "-out '%s' 2>/dev/null && python3 -c 'import ssl,sys,"
	              "urllib.request as u; c=ssl.create_default_context("
	              "cafile=sys.argv[1]); r=u.Request(sys.argv[2], "
	              "open(sys.argv[3],\"rb\").read(), {\"Content-Type\": "
	              "\"application/timestamp-query\"}); "
	              "open(sys.argv[4],\"wb\").write(u.urlopen(r, context=c)"
	              ".read())' '%s' '%s' '%s' '%s' && openssl ts -reply -in "
	              "'%s' -text 2>/dev/null | grep -q 'Status: Granted'",
	              0, fixture_path("tls.tsq"), ca_pem, url,
	              fixture_path("tls.tsq"), fixture_path("tls.tsr"),
	              fixture_path("tls.tsr")) == 0,
	   "while a client trusting that root gets a granted answer there");
	ok(tsa_request("ftp://127.0.0.1:1/", 2000, dg, TSA_DIGEST_LEN, ca_pem,
	               &t, &tl, NULL, err, sizeof(err)) == -1 &&
	           has(err, "not http or https") && t == NULL,
	   "an ftp: URL is refused: %s", err);
	ok(tsa_request("http://127.0.0.1:1/", 2000, dg, TSA_DIGEST_LEN, ca_pem,
	               &t, &tl, NULL, err, sizeof(err)) == -1 &&
	           has(err, "TSA request failed"),
	   "nobody listening: %s", err);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/tsa/good", port);
	ok(tsa_request(url, 2000, dg, 20, ca_pem, &t, &tl, NULL, err,
	               sizeof(err)) == -1 &&
	           has(err, "SHA-256"),
	   "a digest that is not 32 bytes is refused: %s", err);
	ok(tsa_request(url, 0, dg, TSA_DIGEST_LEN, ca_pem, &t, &tl, NULL, err,
	               sizeof(err)) == -1 &&
	           has(err, "timeout"),
	   "a zero timeout is refused: %s", err);
}

/* The whole file path into *out (malloc'd).  Returns its length, -1. */
static long read_all(const char *path, unsigned char **out)
{
	FILE *f = fopen(path, "rb");
	long n = -1;

	*out = NULL;
	if (f != NULL && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 &&
	    fseek(f, 0, SEEK_SET) == 0 && (*out = malloc((size_t)n)) != NULL &&
	    fread(*out, 1, (size_t)n, f) != (size_t)n)
		n = -1;
	if (f != NULL)
		fclose(f);
	return *out ? n : -1;
}

/*
 * Validity in time: a TSA certificate expired when asked is refused, and
 * so is a stored token made after its TSA certificate expired; a token
 * made while it was valid still verifies after it expired (checked at
 * genTime), where `openssl ts -verify` (checked now) no longer agrees.
 */
static void test_validity(const unsigned char *dg, const unsigned char *tok,
                          size_t toklen)
{
	char err[512], hx[2 * TSA_DIGEST_LEN + 1];
	unsigned char *old = NULL;
	long oldlen;

	ok(ask("/tsa/expired", 5000, dg, ca_pem, NULL, NULL, NULL, err,
	       sizeof(err)) == -1 &&
	           has(err, "TSA certificate not trusted: certificate has "
	                    "expired"),
	   "a TSA whose certificate expired is refused");
	hex(dg, TSA_DIGEST_LEN, hx);
	fixture_sh("openssl ts -query -digest %s -sha256 -cert -out '%s' "
	           "2>/dev/null && "
	           "openssl ts -reply -config '%s' -section expired "
	           "-queryfile '%s' -token_out -out '%s' >/dev/null 2>&1",
	           hx, fixture_path("exp.tsq"), fixture_path("ts.cnf"),
	           fixture_path("exp.tsq"), fixture_path("exp.tst"));
	oldlen = read_all(fixture_path("exp.tst"), &old);
	ok(oldlen > 0 &&
	           tsa_token_verify(old, (size_t)oldlen, dg, TSA_DIGEST_LEN,
	                            ca_pem, NULL, err, sizeof(err)) == -1 &&
	           has(err, "certificate has expired"),
	   "a stored token made after its TSA expired is refused: %s", err);
	free(old);

	while (time(NULL) <= t_start + SHORT_LIFE + 1)
		usleep(100000);
	write_bytes(fixture_path("short.tst"), tok, toklen);
	ok(tok != NULL &&
	           fixture_sh("openssl ts -verify -digest %s -token_in -in "
	                      "'%s' "
	                      "-CAfile '%s' >/dev/null 2>&1",
	                      hx, fixture_path("short.tst"), ca_pem) != 0,
	   "the short-lived TSA certificate has expired by now");
	ok(tok != NULL && tsa_token_verify(tok, toklen, dg, TSA_DIGEST_LEN,
	                                   ca_pem, NULL, err, sizeof(err)) == 0,
	   "a token made before its TSA expired still verifies: %s", err);
}

#define THREADS 4

/* One thread's request, over its own digest. */
struct job {
	unsigned char dg[TSA_DIGEST_LEN];
	int rc;
	char err[256];
};

static void *job_run(void *arg)
{
	struct job *j = arg;
	unsigned char *tok = NULL;
	size_t len = 0;
	char url[128];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/tsa/good", port);
	j->rc = tsa_request(url, 10000, j->dg, TSA_DIGEST_LEN, ca_pem, &tok,
	                    &len, NULL, j->err, sizeof(j->err));
	if (j->rc == 0)
		j->rc = tsa_token_verify(tok, len, j->dg, TSA_DIGEST_LEN,
		                         ca_pem, NULL, j->err, sizeof(j->err));
	OPENSSL_free(tok);
	return NULL;
}

/* Several threads at once (the milter signs in one thread per
 * connection): each gets a token over its own digest. */
static void test_threads(void)
{
	struct job jobs[THREADS];
	pthread_t th[THREADS];
	int i, made = 0, good = 0;

	for (i = 0; i < THREADS; i++) {
		memset(&jobs[i], 0, sizeof(jobs[i]));
		jobs[i].rc = -1;
		EVP_Digest(&i, sizeof(i), jobs[i].dg, NULL, EVP_sha256(), NULL);
		if (pthread_create(&th[made], NULL, job_run, &jobs[i]) == 0)
			made++;
	}
	for (i = 0; i < made; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < THREADS; i++) {
		if (jobs[i].rc == 0)
			good++;
		else
			printf("# thread %d: %s\n", i, jobs[i].err);
	}
	ok(made == THREADS && good == THREADS,
	   "%d threads stamp at once, each its own digest (%d good)", THREADS,
	   good);
}

/* A CMS signature with the fixture's leaf, time-stamped, written out and
 * read back. */
static void test_attach(void)
{
	static const char text[] = "Surat edaran nomor 2.\r\n";
	X509 *leaf = fixture_data_cert("leaf.crt.pem");
	EVP_PKEY *key = fixture_data_key("leaf.key.pem");
	unsigned char dg[TSA_DIGEST_LEN], dg2[TSA_DIGEST_LEN];
	unsigned char *tok = NULL, *der = NULL;
	const unsigned char *got = NULL, *p;
	size_t toklen = 0, gotlen = 0;
	CMS_ContentInfo *cms, *back = NULL;
	CMS_SignerInfo *si;
	ASN1_OCTET_STRING *sig;
	char err[512];
	BIO *in = BIO_new_mem_buf(text, (int)strlen(text));
	int derlen;

	cms = CMS_sign(leaf, key, NULL, in, CMS_DETACHED | CMS_BINARY);
	si = cms ? sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(cms), 0) : NULL;
	ok(si != NULL, "CMS_sign made a SignerInfo");
	if (si == NULL)
		goto done;
	ok(tsa_token_get(si, &got, &gotlen, err, sizeof(err)) == 0,
	   "a fresh SignerInfo has no time-stamp");
	ok(tsa_signature_digest(si, dg, err, sizeof(err)) == 0,
	   "the signature value hashes");
	ok(ask("/tsa/good", 5000, dg, ca_pem, &tok, &toklen, NULL, err,
	       sizeof(err)) == 0,
	   "the TSA stamps the signature");
	ok(tsa_attach(si, (const unsigned char *)"\x30\x03\x02\x01\x01", 5, err,
	              sizeof(err)) == -1 &&
	           has(err, "not a TimeStampToken"),
	   "tsa_attach refuses what is not a token: %s", err);
	ok(tsa_attach(NULL, tok, toklen, err, sizeof(err)) == -1,
	   "tsa_attach refuses a NULL SignerInfo");
	ok(tok && tsa_attach(si, tok, toklen, err, sizeof(err)) == 0,
	   "tsa_attach adds the token");
	derlen = i2d_CMS_ContentInfo(cms, &der);
	ok(derlen > 0 && write_bytes(fixture_path("stamped.p7s"), der,
	                             (size_t)derlen) == 0,
	   "the stamped CMS encodes (%d bytes)", derlen);
	ok(fixture_sh("openssl cms -cmsout -print -inform DER -in '%s' "
	              "| grep -A3 'unsignedAttrs:' "
	              "| grep -q 'object: id-smime-aa-timeStampToken "
	              "(1.2.840.113549.1.9.16.2.14)'",
	              fixture_path("stamped.p7s")) == 0,
	   "openssl cms -print shows the unsigned attribute");
	write_bytes(fixture_path("content.txt"), text, strlen(text));
	ok(fixture_sh("openssl cms -verify -binary -inform DER -in '%s' "
	              "-content '%s' -CAfile " FIXTURE_DATA "/ca.crt.pem "
	              "-purpose any >/dev/null 2>&1",
	              fixture_path("stamped.p7s"),
	              fixture_path("content.txt")) == 0,
	   "the signature still verifies with the token attached");

	/* what the token covers is the signature value (RFC 3161 App. A) */
	sig = CMS_SignerInfo_get0_signature(si);
	write_bytes(fixture_path("sigvalue.bin"), ASN1_STRING_get0_data(sig),
	            (size_t)ASN1_STRING_length(sig));
	write_bytes(fixture_path("sig.tst"), tok, toklen);
	ok(fixture_sh("openssl ts -verify -data '%s' -token_in -in '%s' "
	              "-CAfile '%s' >/dev/null 2>&1",
	              fixture_path("sigvalue.bin"), fixture_path("sig.tst"),
	              ca_pem) == 0,
	   "openssl ts -verify: the token stamps the signature value");

	p = der;
	back = d2i_CMS_ContentInfo(NULL, &p, derlen);
	si = back ? sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(back), 0)
	          : NULL;
	ok(si && tsa_token_get(si, &got, &gotlen, err, sizeof(err)) == 1 &&
	           gotlen == toklen && memcmp(got, tok, toklen) == 0,
	   "read back, the attribute holds the token byte for byte");
	ok(si && tsa_signature_digest(si, dg2, err, sizeof(err)) == 0 &&
	           memcmp(dg, dg2, sizeof(dg)) == 0 &&
	           tsa_token_verify(got, gotlen, dg2, TSA_DIGEST_LEN, ca_pem,
	                            NULL, err, sizeof(err)) == 0,
	   "and it verifies over the signature read back");
done:
	ok(tsa_signature_digest(NULL, dg, err, sizeof(err)) == -1,
	   "no SignerInfo, no digest");
	OPENSSL_free(der);
	OPENSSL_free(tok);
	CMS_ContentInfo_free(back);
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	EVP_PKEY_free(key);
	X509_free(leaf);
}

int main(void)
{
	static const char doc[] = "Surat edaran nomor 1.\r\n";
	unsigned char dg[TSA_DIGEST_LEN], *short_tok = NULL;
	size_t short_len = 0;
	char err[512];
	int rc;

	/* loopback only: no proxy from the environment */
	unsetenv("http_proxy");
	unsetenv("https_proxy");
	unsetenv("HTTPS_PROXY");
	unsetenv("all_proxy");
	unsetenv("ALL_PROXY");
	fixture_dir("tsa");
	server_start();
	EVP_Digest(doc, strlen(doc), dg, NULL, EVP_sha256(), NULL);
	ok(ask("/tsa/short", 5000, dg, ca_pem, &short_tok, &short_len, NULL,
	       err, sizeof(err)) == 0,
	   "a TSA certificate about to expire still stamps");
	test_threads();
	test_good(dg);
	test_faults(dg);
	test_attach();
	test_validity(dg, short_tok, short_len);
	OPENSSL_free(short_tok);
	server_stop();
	rc = tap_done();
	return fixture_end(rc);
}
