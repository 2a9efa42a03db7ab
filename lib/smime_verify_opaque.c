/*
 * smime_verify_opaque -- opaque signed-data in bounded memory (see
 * smime_verify.h).  OpenSSL parses a CMS only whole, so the DER/BER is
 * walked here as it is read (der.h's walk, which also bounds nesting and
 * joins the pieces of a constructed OCTET STRING): the encapsulated
 * content goes straight to the caller and through one digest per
 * digestAlgorithm; what is left
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
#include "der.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

/* The parts besides the content are bounded (the nesting: der.h). */
#define SPLIT_REST_MAX (4u << 20)

/* id-signedData, 1.2.840.113549.1.7.2, as DER content octets. */
static const unsigned char oid_signed[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7,
	                                    0x0d, 0x01, 0x07, 0x02 };

struct rd {
	BIO *in;
	unsigned char buf[16384];
	size_t have, off;
	int eof; /* in has no more */
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
	SPLIT_WRITE,
	SPLIT_DONE /* the SignedData has ended: the walk is over */
};

/* Frame kinds (struct der_frame's kind). */
enum { K_TOP, K_CI, K_OID, K_SD0, K_SD, K_ECI, K_EC0, K_CONTENT, K_KEEP };

/* Where kept elements go (struct der_frame's keep): split's kept[]. */
enum { KEEP_NONE, KEEP_HEAD, KEEP_ECT, KEEP_REST };

struct split {
	/* [KEEP_HEAD] version, digestAlgorithms; [KEEP_ECT] eContentType;
	 * [KEEP_REST] certificates, crls, signerInfos */
	struct buf kept[4];
	BIO *md, *out;
	size_t algs_at; /* where digestAlgorithms starts in kept[KEEP_HEAD] */
	unsigned char oid[sizeof(oid_signed)];
	size_t oidlen;
};

/* Keep what is not read yet and read more after it; -1 at the end. */
static int rd_more(struct rd *r)
{
	int n;

	if (r->eof)
		return -1;
	memmove(r->buf, r->buf + r->off, r->have - r->off);
	r->have -= r->off;
	r->off = 0;
	n = BIO_read(r->in, r->buf + r->have, (int)(sizeof(r->buf) - r->have));
	if (n <= 0)
		r->eof = 1;
	else
		r->have += (size_t)n;
	return 0;
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

/* BIO_f_md BIOs for every digest algorithm of the SET in der (the raw
 * element), ending in a null sink; NULL when none is known. */
static BIO *digests(const unsigned char *der, size_t len)
{
	const unsigned char *p = der, *end = der + len;
	BIO *chain = BIO_new(BIO_s_null());
	struct der_hdr h;

	if (chain == NULL || der_hdr_get(der, len, 1, &h) != 1 ||
	    h.tag != DER_SET) {
		BIO_free_all(chain);
		return NULL;
	}
	p += h.hl;
	if (!h.indef && h.len <= (uint64_t)(end - p))
		end = p + h.len;
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

#define U DER_UNIVERSAL
#define C DER_CONTEXT

/* What each structure holds, in order (the ASN.1 above). */
static const struct der_rule rules[] = {
	/* kind, step, class, tag, constructed, next step, enters, flags,
	 * sink, keep */
	{ K_TOP, 0, U, DER_SEQUENCE, 1, 1, K_CI, 0, 0, KEEP_NONE },
	{ K_CI, 0, U, DER_OID, 0, 1, K_OID, 0, 0, KEEP_NONE },
	{ K_CI, 1, C, 0, 1, 2, K_SD0, 0, 0, KEEP_NONE },
	{ K_SD0, 0, U, DER_SEQUENCE, 1, 1, K_SD, 0, 0, KEEP_NONE },
	/* version, digestAlgorithms, encapContentInfo */
	{ K_SD, 0, U, DER_INTEGER, 0, 1, K_KEEP, DER_WHOLE, 0, KEEP_HEAD },
	{ K_SD, 1, U, DER_SET, 1, 2, K_KEEP, DER_WHOLE, 0, KEEP_HEAD },
	{ K_SD, 2, U, DER_SEQUENCE, 1, 3, K_ECI, 0, 0, KEEP_NONE },
	/* eContentType, [0] EXPLICIT OCTET STRING */
	{ K_ECI, 0, U, DER_OID, 0, 1, K_KEEP, DER_WHOLE, 0, KEEP_ECT },
	{ K_ECI, 1, C, 0, 1, 2, K_EC0, 0, 0, KEEP_NONE },
	{ K_EC0, 0, U, DER_OCTET_STRING, -1, 1, K_CONTENT, DER_OCTETS, 0,
	  KEEP_NONE },
};
#undef U
#undef C

/* The element h starts in frame t: what it must be, where it goes. */
static int head(struct der_walk *w, const struct der_frame *t,
                const struct der_hdr *h, struct split *s)
{
	struct der_rule keep = { 0 };
	const struct der_rule *r = &keep;

	if (t->kind == K_KEEP || (t->kind == K_SD && t->step == 3)) {
		/* in an indefinite kept element, or certificates, crls,
		 * signerInfos: kept unparsed */
		keep.next = t->step;
		keep.enter = K_KEEP;
		keep.flags = DER_WHOLE;
		keep.keep = t->kind == K_KEEP ? t->keep : KEEP_REST;
	} else
		r = der_rule_find(rules, sizeof(rules) / sizeof(rules[0]), t,
		                  h);
	if (r == NULL)
		return SPLIT_BAD;
	if (r->enter == K_OID && h->len != sizeof(oid_signed))
		return SPLIT_NOTSIGNED;
	if (r->keep == KEEP_HEAD && r->next == 2) /* digestAlgorithms */
		s->algs_at = s->kept[KEEP_HEAD].len;
	return der_rule_enter(w, r, h) == 0 ? SPLIT_OK : SPLIT_BAD;
}

/* Frame f has ended inside t: was it whole, and what follows from it. */
static int ended(const struct der_frame *t, const struct der_frame *f,
                 struct split *s)
{
	switch (f->kind) {
	case K_OID:
		return memcmp(s->oid, oid_signed, sizeof(oid_signed)) != 0
		               ? SPLIT_NOTSIGNED
		               : SPLIT_OK;
	case K_SD:
		return f->step == 3 ? SPLIT_DONE : SPLIT_BAD;
	case K_ECI:
		return f->step == 2   ? SPLIT_OK
		       : f->step == 1 ? SPLIT_NOCONTENT
		                      : SPLIT_BAD;
	case K_EC0:
		return f->step == 1 ? SPLIT_OK : SPLIT_BAD;
	case K_KEEP:
		if (t->kind != K_SD || t->step != 2)
			return SPLIT_OK;
		/* digestAlgorithms: the digests the content goes through */
		s->md = digests(s->kept[KEEP_HEAD].p + s->algs_at,
		                s->kept[KEEP_HEAD].len - s->algs_at);
		return s->md ? SPLIT_OK : SPLIT_BAD;
	case K_CONTENT:
		return SPLIT_OK;
	default: /* K_CI, K_SD0: their SignedData has not ended */
		return SPLIT_BAD;
	}
}

/* n octets at p that belong to frame f (e: the event they came with). */
static int take(struct split *s, int e, const struct der_frame *f,
                const unsigned char *p, size_t n)
{
	int rc = SPLIT_OK;

	if (n == 0)
		return SPLIT_OK;
	if (f->keep != KEEP_NONE) /* an end-of-contents is kept as 00 00 */
		rc = e == DER_END ? put(&s->kept[f->keep], "\0\0", 2)
		                  : put(&s->kept[f->keep], p, n);
	if (rc != SPLIT_OK || e != DER_DATA)
		return rc;
	if (f->kind == K_OID) {
		memcpy(s->oid + s->oidlen, p, n);
		s->oidlen += n;
	} else if (f->kind == K_CONTENT) {
		if (s->out && BIO_write(s->out, p, (int)n) != (int)n)
			return SPLIT_WRITE;
		if (BIO_write(s->md, p, (int)n) != (int)n)
			return SPLIT_OOM;
	}
	return SPLIT_OK;
}

/* Walk the signed-data of r: content to s->out and s->md, the rest kept.
 * It ends with the SignedData: what follows is not read. */
static int split_walk(struct rd *r, struct split *s)
{
	struct der_walk w;
	struct der_ev ev;
	int e, rc;

	der_walk_init(&w);
	for (;;) {
		e = der_walk_next(&w, r->buf + r->off, r->have - r->off, r->eof,
		                  &ev);
		if (e == DER_MORE) {
			if (rd_more(r) != 0)
				return SPLIT_BAD;
			continue;
		}
		if (e < 0)
			return SPLIT_BAD;
		rc = take(s, e, &ev.f, r->buf + r->off, ev.n);
		r->off += ev.n;
		if (rc == SPLIT_OK && e == DER_HEAD) {
			rc = head(&w, der_walk_top(&w), &ev.h, s);
			if (rc == SPLIT_OK) {
				const struct der_frame *f = der_walk_top(&w);
				rc = take(s, e, f, r->buf + r->off, ev.h.hl);
				r->off += ev.h.hl;
			}
		} else if (rc == SPLIT_OK && e == DER_END)
			rc = ended(der_walk_top(&w), &ev.f, s);
		if (rc != SPLIT_OK)
			return rc == SPLIT_DONE ? SPLIT_OK : rc;
	}
}

/* The detached ContentInfo of s, parsed. */
static CMS_ContentInfo *split_cms(struct split *s, int *rc)
{
	struct buf eci = { 0 }, sdb = { 0 }, sd = { 0 }, a0 = { 0 };
	struct buf cib = { 0 }, ci = { 0 };
	static const unsigned char oid_hdr[] = { 0x06, sizeof(oid_signed) };
	CMS_ContentInfo *cms = NULL;
	const unsigned char *p;

	*rc = wrap(&eci, 0x30, &s->kept[KEEP_ECT]);
	*rc = *rc ? *rc
	          : put(&sdb, s->kept[KEEP_HEAD].p, s->kept[KEEP_HEAD].len);
	*rc = *rc ? *rc : put(&sdb, eci.p, eci.len);
	*rc = *rc ? *rc
	          : put(&sdb, s->kept[KEEP_REST].p, s->kept[KEEP_REST].len);
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
	if (der == NULL || rd_more(r) != 0 || r->have == 0) {
		free(r);
		return smime_judge(v, SMIME_PERMERROR, "signed-data is empty");
	}
	s.out = content_out;
	rc = split_walk(r, &s);
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
	for (int i = 0; i < 4; i++)
		free(s.kept[i].p);
	free(r);
	ERR_clear_error();
	return ret;
}
