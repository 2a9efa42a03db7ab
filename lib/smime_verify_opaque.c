/*
 * smime_verify_opaque -- opaque signed-data in bounded memory (see
 * smime_verify.h).  OpenSSL parses a CMS only whole, so the DER/BER is
 * walked here as it is read: the encapsulated content goes straight to the
 * caller and through one digest per digestAlgorithm; what is left
 * (version, digest algorithms, content type, certificates, CRLs, signer
 * infos: small) is put together as a detached SignedData, which
 * smime_verify_cms checks against the digests.
 *
 *   ContentInfo ::= SEQUENCE { contentType OID (signedData),
 *     [0] EXPLICIT SignedData ::= SEQUENCE { version, digestAlgorithms SET,
 *       encapContentInfo SEQUENCE { eContentType OID,
 *         [0] EXPLICIT OCTET STRING (primitive, or constructed BER) },
 *       [0] certificates, [1] crls, signerInfos SET } }
 */
#include "smime_verify.h"
#include "smime_verify_int.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

/* The parts besides the content, and the nesting of BER, are bounded. */
#define SPLIT_REST_MAX  (4u << 20)
#define SPLIT_DEPTH_MAX 24

/* id-signedData, 1.2.840.113549.1.7.2, as DER content octets. */
static const unsigned char oid_signed[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7,
	                                    0x0d, 0x01, 0x07, 0x02 };

struct rd {
	BIO *in;
	unsigned char buf[16384];
	size_t have, off;
	unsigned long long pos; /* bytes taken so far */
};

/* A tag and length as read: hdr holds their raw bytes. */
struct tl {
	unsigned char hdr[16];
	size_t hlen;
	int tag; /* the first octet (class, constructed bit, number < 31) */
	int indef;
	unsigned long long len;
};

struct buf {
	unsigned char *p;
	size_t len, cap;
};

/* Outcomes of the walk: SPLIT_BAD and the three after it are permerrors. */
enum {
	SPLIT_OK = 0,
	SPLIT_BAD = 1,
	SPLIT_BIG,
	SPLIT_NOTSIGNED,
	SPLIT_NOCONTENT,
	SPLIT_OOM,
	SPLIT_WRITE
};

static int rd_fill(struct rd *r)
{
	int n;

	if (r->off < r->have)
		return 0;
	n = BIO_read(r->in, r->buf, sizeof(r->buf));
	if (n <= 0)
		return -1;
	r->have = (size_t)n;
	r->off = 0;
	return 0;
}

static int rd_byte(struct rd *r)
{
	if (rd_fill(r) != 0)
		return -1;
	r->pos++;
	return r->buf[r->off++];
}

static int put(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return SPLIT_OK;
	if (b->len + n > SPLIT_REST_MAX)
		return SPLIT_BIG;
	if (b->len + n > b->cap) {
		size_t cap = b->cap * 2 + n + 256;
		unsigned char *q = realloc(b->p, cap);
		if (q == NULL)
			return SPLIT_OOM;
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return SPLIT_OK;
}

/* DER length octets of n. */
static int put_len(struct buf *b, size_t n)
{
	unsigned char l[9];
	int k = 0;

	if (n < 0x80) {
		l[0] = (unsigned char)n;
		return put(b, l, 1);
	}
	for (size_t m = n; m; m >>= 8)
		k++;
	l[0] = (unsigned char)(0x80 | k);
	for (int i = 0; i < k; i++)
		l[1 + i] = (unsigned char)(n >> (8 * (k - 1 - i)));
	return put(b, l, (size_t)k + 1);
}

/* Read one tag and length.  Lengths over 4 octets are refused. */
static int rd_tl(struct rd *r, struct tl *t)
{
	int c = rd_byte(r), n;

	memset(t, 0, sizeof(*t));
	if (c < 0)
		return SPLIT_BAD;
	t->hdr[t->hlen++] = (unsigned char)c;
	t->tag = c;
	if ((c & 0x1f) == 0x1f) /* high tag number: seen, not needed */
		do {
			if ((c = rd_byte(r)) < 0 || t->hlen > 6)
				return SPLIT_BAD;
			t->hdr[t->hlen++] = (unsigned char)c;
		} while (c & 0x80);
	if ((c = rd_byte(r)) < 0)
		return SPLIT_BAD;
	t->hdr[t->hlen++] = (unsigned char)c;
	if (c == 0x80) {
		t->indef = 1;
		return (t->tag & 0x20) ? SPLIT_OK : SPLIT_BAD;
	}
	if (c < 0x80) {
		t->len = (unsigned long long)c;
		return SPLIT_OK;
	}
	if ((n = c & 0x7f) > 4)
		return SPLIT_BAD;
	while (n--) {
		if ((c = rd_byte(r)) < 0)
			return SPLIT_BAD;
		t->hdr[t->hlen++] = (unsigned char)c;
		t->len = t->len << 8 | (unsigned long long)c;
	}
	return SPLIT_OK;
}

static int is_eoc(const struct tl *t)
{
	return t->tag == 0 && !t->indef && t->len == 0;
}

/* The next element inside a container that began (after its header) at
 * start: 1 and *t, 0 when the container ended (its EOC read), or -SPLIT_*
 * on error.  An element must fit inside a definite container. */
static int next_in(struct rd *r, const struct tl *c, unsigned long long start,
                   struct tl *t)
{
	int rc;

	if (!c->indef && r->pos == start + c->len)
		return 0;
	if (!c->indef && r->pos > start + c->len)
		return -SPLIT_BAD;
	if ((rc = rd_tl(r, t)) != SPLIT_OK)
		return -rc;
	if (is_eoc(t))
		return c->indef ? 0 : -SPLIT_BAD;
	if (!c->indef && !t->indef && r->pos + t->len > start + c->len)
		return -SPLIT_BAD;
	return 1;
}

/* Copy n raw bytes into b (b NULL: pass them to sink). */
static int copy_n(struct rd *r, unsigned long long n, struct buf *b, BIO *out,
                  BIO *md)
{
	while (n > 0) {
		size_t k;
		int rc;
		if (rd_fill(r) != 0)
			return SPLIT_BAD;
		k = r->have - r->off;
		if (k > n)
			k = (size_t)n;
		if (b && (rc = put(b, r->buf + r->off, k)) != SPLIT_OK)
			return rc;
		if (out && BIO_write(out, r->buf + r->off, (int)k) != (int)k)
			return SPLIT_WRITE;
		if (md && BIO_write(md, r->buf + r->off, (int)k) != (int)k)
			return SPLIT_OOM;
		r->off += k;
		r->pos += k;
		n -= k;
	}
	return SPLIT_OK;
}

/* The rest of element t (its header already read) into b, raw. */
static int copy_tlv(struct rd *r, const struct tl *t, struct buf *b, int depth)
{
	unsigned long long start = r->pos;
	struct tl in;
	int rc = put(b, t->hdr, t->hlen);

	if (rc != SPLIT_OK || !t->indef)
		return rc != SPLIT_OK ? rc : copy_n(r, t->len, b, NULL, NULL);
	if (depth > SPLIT_DEPTH_MAX)
		return SPLIT_BAD;
	while ((rc = next_in(r, t, start, &in)) == 1)
		if ((rc = copy_tlv(r, &in, b, depth + 1)) != SPLIT_OK)
			return rc;
	return rc < 0 ? -rc : put(b, "\0\0", 2);
}

/* The octets of an OCTET STRING t (primitive, or constructed of pieces)
 * to out and md. */
static int stream_octets(struct rd *r, const struct tl *t, BIO *out, BIO *md,
                         int depth)
{
	unsigned long long start = r->pos;
	struct tl in;
	int rc;

	if (t->tag == 0x04)
		return copy_n(r, t->len, NULL, out, md);
	if (t->tag != 0x24 || depth > SPLIT_DEPTH_MAX)
		return SPLIT_BAD;
	while ((rc = next_in(r, t, start, &in)) == 1)
		if ((rc = stream_octets(r, &in, out, md, depth + 1)) !=
		    SPLIT_OK)
			return rc;
	return rc < 0 ? -rc : SPLIT_OK;
}

/* Read the next element of c, which must have tag tag; 0 or SPLIT_*. */
static int expect(struct rd *r, const struct tl *c, unsigned long long start,
                  int tag, struct tl *t)
{
	int rc = next_in(r, c, start, t);

	if (rc < 0)
		return -rc;
	return rc == 1 && t->tag == tag ? SPLIT_OK : SPLIT_BAD;
}

/* The next element of c, which must have tag tag, copied raw into b. */
static int expect_copy(struct rd *r, const struct tl *c,
                       unsigned long long start, int tag, struct buf *b)
{
	struct tl t;
	int rc = expect(r, c, start, tag, &t);

	return rc != SPLIT_OK ? rc : copy_tlv(r, &t, b, 0);
}

/* BIO_f_md BIOs for every digest algorithm of the SET in der (the raw
 * element), ending in a null sink; NULL when none is known. */
static BIO *digests(const unsigned char *der, size_t len)
{
	const unsigned char *p = der, *end = der + len;
	BIO *chain = BIO_new(BIO_s_null());
	long l;
	int tag, cls, inf;

	inf = ASN1_get_object(&p, &l, &tag, &cls, (long)len);
	if (chain == NULL || (inf & 0x80) || tag != V_ASN1_SET) {
		BIO_free_all(chain);
		return NULL;
	}
	if (!(inf & 0x01))
		end = p + l;
	while (p + 2 <= end && !(p[0] == 0 && p[1] == 0)) {
		X509_ALGOR *a = d2i_X509_ALGOR(NULL, &p, end - p);
		const EVP_MD *md = a ? EVP_get_digestbyobj(a->algorithm) : NULL;
		BIO *b = md ? BIO_new(BIO_f_md()) : NULL;
		X509_ALGOR_free(a);
		if (a == NULL)
			break;
		if (b && BIO_set_md(b, md) > 0)
			chain = BIO_push(b, chain);
		else
			BIO_free(b);
	}
	ERR_clear_error();
	if (BIO_find_type(chain, BIO_TYPE_MD) == NULL) {
		BIO_free_all(chain);
		return NULL;
	}
	return chain;
}

/* Wrap b's bytes in a tag with a DER length: out = tag len b. */
static int wrap(struct buf *out, int tag, const struct buf *b)
{
	unsigned char t = (unsigned char)tag;
	int rc = put(out, &t, 1);

	rc = rc ? rc : put_len(out, b->len);
	return rc ? rc : put(out, b->p, b->len);
}

struct split {
	struct buf head; /* version, digestAlgorithms */
	struct buf ect;  /* eContentType */
	struct buf rest; /* certificates, crls, signerInfos */
	BIO *md;
	size_t algs_at; /* where digestAlgorithms starts in head */
};

/* Walk the signed-data of r: content to out and s->md, the rest kept. */
static int split_walk(struct rd *r, BIO *out, struct split *s)
{
	struct tl ci, oid, sd0, sd, t, eci, ec0, os;
	unsigned long long ci_at, sd0_at, sd_at, eci_at, ec0_at;
	unsigned char o[sizeof(oid_signed)];
	int rc;

	if ((rc = rd_tl(r, &ci)) != SPLIT_OK || ci.tag != 0x30)
		return SPLIT_BAD;
	ci_at = r->pos;
	if ((rc = expect(r, &ci, ci_at, 0x06, &oid)) != SPLIT_OK)
		return rc;
	if (oid.len != sizeof(o))
		return SPLIT_NOTSIGNED;
	for (size_t i = 0; i < sizeof(o); i++) {
		int c = rd_byte(r);
		if (c < 0)
			return SPLIT_BAD;
		o[i] = (unsigned char)c;
	}
	if (memcmp(o, oid_signed, sizeof(o)) != 0)
		return SPLIT_NOTSIGNED;
	if ((rc = expect(r, &ci, ci_at, 0xa0, &sd0)) != SPLIT_OK)
		return rc;
	sd0_at = r->pos;
	if ((rc = expect(r, &sd0, sd0_at, 0x30, &sd)) != SPLIT_OK)
		return rc;
	sd_at = r->pos;
	if ((rc = expect_copy(r, &sd, sd_at, 0x02, &s->head)) != SPLIT_OK)
		return rc;
	s->algs_at = s->head.len;
	if ((rc = expect_copy(r, &sd, sd_at, 0x31, &s->head)) != SPLIT_OK)
		return rc;
	s->md = digests(s->head.p + s->algs_at, s->head.len - s->algs_at);
	if (s->md == NULL)
		return SPLIT_BAD;
	if ((rc = expect(r, &sd, sd_at, 0x30, &eci)) != SPLIT_OK)
		return rc;
	eci_at = r->pos;
	if ((rc = expect_copy(r, &eci, eci_at, 0x06, &s->ect)) != SPLIT_OK)
		return rc;
	if ((rc = next_in(r, &eci, eci_at, &ec0)) != 1)
		return rc == 0 ? SPLIT_NOCONTENT : -rc;
	if (ec0.tag != 0xa0)
		return SPLIT_BAD;
	ec0_at = r->pos;
	if ((rc = next_in(r, &ec0, ec0_at, &os)) != 1)
		return rc < 0 ? -rc : SPLIT_BAD;
	if ((rc = stream_octets(r, &os, out, s->md, 0)) != SPLIT_OK)
		return rc;
	if (next_in(r, &ec0, ec0_at, &t) != 0 ||
	    next_in(r, &eci, eci_at, &t) != 0)
		return SPLIT_BAD;
	while ((rc = next_in(r, &sd, sd_at, &t)) == 1)
		if ((rc = copy_tlv(r, &t, &s->rest, 0)) != SPLIT_OK)
			return rc;
	return rc < 0 ? -rc : SPLIT_OK;
}

/* The detached ContentInfo of s, parsed. */
static CMS_ContentInfo *split_cms(struct split *s, int *rc)
{
	struct buf eci = { 0 }, sdb = { 0 }, sd = { 0 }, a0 = { 0 };
	struct buf cib = { 0 }, ci = { 0 };
	static const unsigned char oid_hdr[] = { 0x06, sizeof(oid_signed) };
	CMS_ContentInfo *cms = NULL;
	const unsigned char *p;

	*rc = wrap(&eci, 0x30, &s->ect);
	*rc = *rc ? *rc : put(&sdb, s->head.p, s->head.len);
	*rc = *rc ? *rc : put(&sdb, eci.p, eci.len);
	*rc = *rc ? *rc : put(&sdb, s->rest.p, s->rest.len);
	*rc = *rc ? *rc : wrap(&sd, 0x30, &sdb);
	*rc = *rc ? *rc : wrap(&a0, 0xa0, &sd);
	*rc = *rc ? *rc : put(&cib, oid_hdr, sizeof(oid_hdr));
	*rc = *rc ? *rc : put(&cib, oid_signed, sizeof(oid_signed));
	*rc = *rc ? *rc : put(&cib, a0.p, a0.len);
	*rc = *rc ? *rc : wrap(&ci, 0x30, &cib);
	if (*rc == SPLIT_OK) {
		p = ci.p;
		cms = d2i_CMS_ContentInfo(NULL, &p, (long)ci.len);
		if (cms == NULL)
			*rc = SPLIT_BAD;
	}
	free(eci.p);
	free(sdb.p);
	free(sd.p);
	free(a0.p);
	free(cib.p);
	free(ci.p);
	ERR_clear_error();
	return cms;
}

int smime_verify_opaque(const struct smime_verify_opts *o, BIO *der,
                        BIO *content_out, struct smime_verdict *v)
{
	struct rd *r = calloc(1, sizeof(*r));
	struct split s;
	CMS_ContentInfo *cms = NULL;
	int rc, ret = 0;

	memset(v, 0, sizeof(*v));
	memset(&s, 0, sizeof(s));
	v->opaque = 1;
	if (r == NULL) {
		smime_judge(v, SMIME_TEMPERROR, "out of memory");
		return -1;
	}
	r->in = der;
	if (der == NULL || rd_fill(r) != 0) {
		free(r);
		return smime_judge(v, SMIME_PERMERROR, "signed-data is empty");
	}
	rc = split_walk(r, content_out, &s);
	if (rc == SPLIT_OK)
		cms = split_cms(&s, &rc);
	if (rc == SPLIT_BAD)
		smime_judge(v, SMIME_PERMERROR,
		            "signed-data does not parse (not DER/BER CMS "
		            "signed-data with content, or truncated)");
	else if (rc == SPLIT_NOTSIGNED)
		smime_judge(v, SMIME_PERMERROR,
		            "not a signature: the CMS content type is not "
		            "signed-data");
	else if (rc == SPLIT_NOCONTENT)
		smime_judge(v, SMIME_PERMERROR,
		            "opaque signed-data without content");
	else if (rc == SPLIT_BIG)
		smime_judge(v, SMIME_PERMERROR,
		            "signed-data's certificates and signer infos pass "
		            "%u MiB",
		            SPLIT_REST_MAX >> 20);
	else if (rc != SPLIT_OK) {
		smime_judge(v, SMIME_TEMPERROR, "%s",
		            rc == SPLIT_WRITE ? "cannot write the content out"
		                              : "out of memory");
		ret = -1;
	} else
		ret = smime_verify_cms(o, cms, NULL, s.md, NULL, v);
	CMS_ContentInfo_free(cms);
	BIO_free_all(s.md);
	free(s.head.p);
	free(s.ect.p);
	free(s.rest.p);
	free(r);
	ERR_clear_error();
	return ret;
}
