/*
 * bench_p11 -- where the time of a token signature goes, in-process.
 *
 *   bench_p11 MODULE TOKEN PINFILE LABEL KEY.pem CERT.pem SECONDS
 *
 * Prints three one-thread rates, measured back to back:
 *   sw=    RSA signatures/s with the key in memory (EVP_DigestSign)
 *   raw=   C_SignInit + C_Sign pairs/s straight on the module
 *   ours=  EVP_DigestSign/s with the same key through lib/p11.c
 * raw/sw is what the token itself costs; ours/raw is what our session
 * pool, locks and RSA_METHOD wrapper add.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <p11-kit/pkcs11.h>

#include "p11.h"

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double evp_rate(EVP_PKEY *k, double secs)
{
	unsigned char sig[1024];
	double start = now(), t;
	long n = 0;

	do {
		EVP_MD_CTX *m = EVP_MD_CTX_new();
		size_t len = sizeof(sig);
		if (m == NULL ||
		    EVP_DigestSignInit(m, NULL, EVP_sha256(), NULL, k) != 1 ||
		    EVP_DigestSign(m, sig, &len, (const unsigned char *)"abc",
		                   3) != 1) {
			fprintf(stderr, "bench_p11: signature failed: %s\n",
			        p11_last_error());
			exit(1);
		}
		EVP_MD_CTX_free(m);
		n++;
	} while ((t = now() - start) < secs);
	return (double)n / t;
}

static double raw_rate(const char *module, const char *pinfile,
                       const char *label, double secs)
{
	CK_FUNCTION_LIST *f;
	CK_C_GetFunctionList get;
	CK_C_INITIALIZE_ARGS args = { 0 };
	CK_SLOT_ID slots[8];
	CK_ULONG n = 8;
	CK_SESSION_HANDLE s;
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE tmpl[2] = { { CKA_CLASS, &cls, sizeof(cls) },
		                 { CKA_LABEL, (void *)label, strlen(label) } };
	CK_OBJECT_HANDLE h;
	CK_MECHANISM mech = { CKM_RSA_PKCS, NULL, 0 };
	unsigned char in[51] = { 0 }, out[1024];
	char pin[64] = "";
	FILE *pf = fopen(pinfile, "r");
	void *dl = dlopen(module, RTLD_NOW);
	double start, t;
	long count = 0;

	if (pf == NULL || fgets(pin, sizeof(pin), pf) == NULL || dl == NULL)
		return 0;
	fclose(pf);
	pin[strcspn(pin, "\r\n")] = '\0';
	*(void **)&get = dlsym(dl, "C_GetFunctionList");
	args.flags = CKF_OS_LOCKING_OK;
	/* a second C_Initialize in this process: the module is shared with
	 * lib/p11.c, which initialized it already */
	if (get(&f) != CKR_OK)
		return 0;
	f->C_Initialize(&args);
	if (f->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK || n == 0 ||
	    f->C_OpenSession(slots[0], CKF_SERIAL_SESSION, NULL, NULL, &s) !=
	            CKR_OK)
		return 0;
	f->C_Login(s, CKU_USER, (CK_UTF8CHAR *)pin, strlen(pin));
	if (f->C_FindObjectsInit(s, tmpl, 2) != CKR_OK ||
	    f->C_FindObjects(s, &h, 1, &n) != CKR_OK || n != 1)
		return 0;
	f->C_FindObjectsFinal(s);
	start = now();
	do {
		CK_ULONG olen = sizeof(out);
		if (f->C_SignInit(s, &mech, h) != CKR_OK ||
		    f->C_Sign(s, in, sizeof(in), out, &olen) != CKR_OK)
			return 0;
		count++;
	} while ((t = now() - start) < secs);
	f->C_CloseSession(s);
	return (double)count / t;
}

int main(int argc, char **argv)
{
	char *tokens[1], *pins[1], uri[512], err[512];
	struct p11_settings set = { 0 };
	struct p11_ctx *ctx;
	EVP_PKEY *sw, *hk;
	X509 *cert;
	FILE *f;
	double secs, r_sw, r_raw, r_ours;

	if (argc != 8) {
		fprintf(stderr, "usage: bench_p11 MODULE TOKEN PINFILE LABEL "
		                "KEY.pem CERT.pem SECONDS\n");
		return 2;
	}
	secs = atof(argv[7]);
	f = fopen(argv[5], "r");
	sw = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
	if (f)
		fclose(f);
	f = fopen(argv[6], "r");
	cert = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	if (f)
		fclose(f);
	if (sw == NULL || cert == NULL) {
		fprintf(stderr, "bench_p11: cannot read %s or %s\n", argv[5],
		        argv[6]);
		return 1;
	}
	tokens[0] = argv[2];
	pins[0] = argv[3];
	set.module = argv[1];
	set.pin_tokens = tokens;
	set.pin_files = pins;
	set.npins = 1;
	set.sessions = 1;
	set.retry = 5;
	ctx = p11_ctx_new(&set);
	snprintf(uri, sizeof(uri), "pkcs11:token=%s;object=%s", argv[2],
	         argv[4]);
	if (ctx == NULL ||
	    p11_ctx_key(ctx, uri, cert, &hk, NULL, err, sizeof(err)) != 0) {
		fprintf(stderr, "bench_p11: %s: %s\n", uri, err);
		return 1;
	}
	r_sw = evp_rate(sw, secs);
	r_raw = raw_rate(argv[1], argv[3], argv[4], secs);
	r_ours = evp_rate(hk, secs);
	if (r_raw == 0) {
		fprintf(stderr, "bench_p11: raw PKCS#11 loop failed\n");
		return 1;
	}
	printf("sw=%.1f raw=%.1f ours=%.1f raw/sw=%.3f ours/raw=%.3f\n", r_sw,
	       r_raw, r_ours, r_raw / r_sw, r_ours / r_raw);
	EVP_PKEY_free(hk);
	EVP_PKEY_free(sw);
	X509_free(cert);
	p11_ctx_free(ctx);
	return 0;
}
