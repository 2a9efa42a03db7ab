/*
 * fuzz_cmsdec -- libFuzzer target for lib/cms_dec*.c: the streaming walk
 * over a CMS ContentInfo, the RecipientInfo list, key choice and the
 * content cipher.
 *
 * Input: the DER of a ContentInfo (seeds-cmsdec/: messages encrypted to
 * tests/data/unit/leaf.crt.pem in several flavours, other content types,
 * broken ones).  The input is decrypted twice with leaf's key, once in one
 * piece and once in pieces of a size picked from its length (1 to 64
 * octets); besides the sanitizers' own checks it asserts what cms_dec.h
 * promises:
 *   - how the input is split changes nothing the structure decides: the
 *     content type, whether the RecipientInfos were reached, how many
 *     entries, which one names leaf, the result of cms_dec_try_key (the
 *     plaintext itself may differ: a damaged RSA key transport decrypts
 *     with a random key, by design);
 *   - no plaintext before cms_dec_finish; after it, cms_dec_read gives
 *     exactly cms_dec_plain_size octets;
 *   - every recipient entry has an issuer+serial or a subjectKeyIdentifier
 *     (not both) unless it is of another kind.
 * Build and run with `make fuzz` (tests/fuzz/README).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>

#include "cms_dec.h"

static X509 *leaf;
static EVP_PKEY *leaf_key;

struct outcome {
	enum cms_dec_type type;
	int recipients; /* CMS_DEC_RECIPIENTS was returned */
	int nrecips, named, tried;
	int finished;
};

static void load(void)
{
	const char *top = getenv("TOP");
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/tests/data/unit/leaf.crt.pem",
	         top ? top : ".");
	if ((f = fopen(path, "r")) != NULL) {
		leaf = PEM_read_X509(f, NULL, NULL, NULL);
		fclose(f);
	}
	snprintf(path, sizeof(path), "%s/tests/data/unit/leaf.key.pem",
	         top ? top : ".");
	if ((f = fopen(path, "r")) != NULL) {
		leaf_key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
	}
	if (leaf == NULL || leaf_key == NULL) {
		fprintf(stderr, "fuzz_cmsdec: cannot read %s (set TOP)\n",
		        path);
		abort();
	}
}

static void check_recips(struct cms_dec *d, struct outcome *o)
{
	int i;

	o->recipients = 1;
	o->nrecips = cms_dec_recipient_count(d);
	for (i = 0; i < o->nrecips; i++) {
		const struct cms_dec_recip *e = cms_dec_recipient_get(d, i);
		if (e == NULL || e->keyalg == NULL)
			abort();
		if (e->kind != CMS_DEC_RI_OTHER &&
		    (e->issuer != NULL) == (e->ski != NULL))
			abort();
		if ((e->issuer != NULL) != (e->serial != NULL))
			abort();
	}
	if (cms_dec_recipient_get(d, o->nrecips) != NULL)
		abort();
	o->named = cms_dec_names(d, leaf);
}

static void run(const uint8_t *data, size_t size, size_t step,
                struct outcome *o)
{
	char err[512];
	struct cms_dec *d = cms_dec_new(1 << 20, "/tmp", err, sizeof(err));
	unsigned char buf[4096];
	size_t off = 0, total = 0;
	ssize_t n;
	int rc = CMS_DEC_MORE;

	memset(o, 0, sizeof(*o));
	o->named = -1;
	o->tried = -9;
	if (d == NULL)
		abort();
	while (off < size) {
		size_t k = size - off < step ? size - off : step;
		rc = cms_dec_feed(d, data + off, k, err, sizeof(err));
		off += k;
		if (rc == CMS_DEC_RECIPIENTS) {
			check_recips(d, o);
			o->tried = cms_dec_try_key(d, leaf, leaf_key, err,
			                           sizeof(err));
			if (o->tried != 1)
				break;
			if (cms_dec_matched(d) != o->named ||
			    cms_dec_matched_cert(d) != leaf)
				abort();
			rc = CMS_DEC_MORE;
		} else if (rc != CMS_DEC_MORE)
			break;
		if (cms_dec_read(d, buf, sizeof(buf)) != -1)
			abort(); /* no plaintext before finish */
	}
	if (rc == CMS_DEC_MORE && o->tried != 0 && o->tried != -1) {
		o->finished = cms_dec_finish(d, err, sizeof(err)) == 0;
		if (o->finished) {
			while ((n = cms_dec_read(d, buf, sizeof(buf))) > 0)
				total += (size_t)n;
			if (n < 0 || total != cms_dec_plain_size(d))
				abort();
		} else if (cms_dec_read(d, buf, sizeof(buf)) != -1 ||
		           cms_dec_plain_size(d) != 0) {
			abort(); /* a failed finish hands out nothing */
		}
	}
	o->type = cms_dec_type(d);
	cms_dec_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct outcome a, b;

	if (leaf == NULL)
		load();
	run(data, size, size ? size : 1, &a);
	run(data, size, 1 + size % 64, &b);
	if (a.type != b.type || a.recipients != b.recipients ||
	    a.nrecips != b.nrecips || a.named != b.named || a.tried != b.tried)
		abort();
	return 0;
}
