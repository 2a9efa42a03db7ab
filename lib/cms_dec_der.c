/*
 * cms_dec_der -- the walk over the outer DER/BER of a ContentInfo holding
 * an EnvelopedData or AuthEnvelopedData, fed in pieces (cms_dec.h).
 *
 * A stack of frames, one per structure being read.  Headers are read with
 * ASN1_get_object; a definite child must fit in its nearest definite
 * ancestor; an end-of-contents only ends an indefinite frame.  Elements
 * before the encrypted content are kept (cap[1], cap[2]) for OpenSSL;
 * unprotected/unauthenticated attributes are skipped without being kept;
 * the encrypted content (primitive, or a constructed OCTET STRING of any
 * shape up to CMS_DEC_DEPTH_MAX) streams to the cipher.  Every step
 * consumes input or pops a frame, so time is linear in the input.
 */
#include "cms_dec_int.h"
#include "util.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/err.h>

/* Frame kinds, in the order they nest. */
enum {
	CF_TOP,  /* the input: one ContentInfo */
	CF_CI,   /* ContentInfo SEQUENCE */
	CF_EXPL, /* its [0] EXPLICIT content */
	CF_ENV,  /* (Auth)EnvelopedData SEQUENCE */
	CF_ECI,  /* EncryptedContentInfo SEQUENCE */
	CF_OCT,  /* constructed [0] or OCTET STRING of encrypted content */
	CF_SKIP, /* any constructed element read past (or kept) */
	CF_DATA  /* primitive contents */
};

/* Where primitive contents go. */
enum { SK_NONE, SK_OID, SK_MAC, SK_CIPHER };

/* Longest header: tag (1 + up to 5 octets), length (1 + up to 8). */
#define HDR_PEEK 16

struct hdr {
	int tag, cls, cons, indef;
	long len;
	size_t hl; /* header octets */
};

/*
 * Read the header at p.  Returns 1, 0 when more input is needed, -1 when
 * it is malformed (or cut short at eof).  ASN1_get_object is given a copy
 * padded with zeros and no limit, so it neither reads past the input nor
 * flags a long element as an error: whether the header used only real
 * octets is checked after.
 */
static int hdr_get(const unsigned char *p, size_t avail, int eof, struct hdr *h)
{
	unsigned char tmp[HDR_PEEK + 8];
	const unsigned char *q = tmp;
	size_t n = avail < HDR_PEEK ? avail : HDR_PEEK;
	int r;

	memset(tmp, 0, sizeof(tmp));
	memcpy(tmp, p, n);
	ERR_set_mark();
	r = ASN1_get_object(&q, &h->len, &h->tag, &h->cls, LONG_MAX);
	ERR_pop_to_mark();
	if (r & 0x80)
		return n < HDR_PEEK && !eof ? 0 : -1;
	h->hl = (size_t)(q - tmp);
	if (h->hl > n)
		return eof ? -1 : 0;
	h->cons = (r & V_ASN1_CONSTRUCTED) != 0;
	h->indef = (r & 1) != 0;
	if (h->len < 0)
		return -1;
	return 1;
}

static int is(const struct hdr *h, int cls, int tag, int cons)
{
	return h->cls == cls && h->tag == tag && h->cons == cons;
}

static struct cd_frame *top(struct cms_dec *d)
{
	return &d->st[d->depth - 1];
}

/* Consume n octets of input; kept in cap[] when the top frame says so. */
static int consume(struct cms_dec *d, size_t n, char *err, size_t errlen)
{
	int c = top(d)->cap;

	if (c != 0) {
		size_t need = d->caplen[c] + n;
		if (d->caplen[1] + d->caplen[2] + n > CMS_DEC_HEADER_MAX)
			return cd_fail(d, err, errlen,
			               "CMS header (RecipientInfos) over %d "
			               "octets",
			               CMS_DEC_HEADER_MAX);
		if (need > d->capsize[c]) {
			size_t ns = need * 2 < CMS_DEC_HEADER_MAX
			                    ? need * 2
			                    : CMS_DEC_HEADER_MAX;
			unsigned char *np = realloc(d->cap[c], ns);
			if (np == NULL)
				return cd_fail(d, err, errlen, "out of memory");
			d->cap[c] = np;
			d->capsize[c] = ns;
		}
		memcpy(d->cap[c] + d->caplen[c], d->in + d->inoff, n);
		d->caplen[c] = need;
	}
	d->inoff += n;
	d->pos += n;
	return 0;
}

/* Open a frame for the element whose header h is next, then consume the
 * header (kept when the new frame is). */
static int push(struct cms_dec *d, int kind, int sink, int cap,
                const struct hdr *h, char *err, size_t errlen)
{
	struct cd_frame *parent = top(d), *f;
	uint64_t start = d->pos + h->hl;

	if (d->depth >= CMS_DEC_DEPTH_MAX)
		return cd_fail(d, err, errlen,
		               "CMS nesting deeper than %d levels at offset "
		               "%llu",
		               CMS_DEC_DEPTH_MAX, (unsigned long long)d->pos);
	if (cap != 0 && !h->indef && (uint64_t)h->len > CMS_DEC_HEADER_MAX)
		return cd_fail(d, err, errlen,
		               "CMS header element of %ld octets is too large",
		               h->len);
	f = &d->st[d->depth++];
	memset(f, 0, sizeof(*f));
	f->kind = (unsigned char)(h->cons ? kind : CF_DATA);
	f->sink = (unsigned char)sink;
	f->cap = (unsigned char)cap;
	f->indef = (unsigned char)h->indef;
	f->left = h->cons ? 0 : (uint64_t)h->len;
	f->end = h->indef ? 0 : start + (uint64_t)h->len;
	f->limit = h->indef ? parent->limit : f->end;
	return consume(d, h->hl, err, errlen);
}

static int malformed(struct cms_dec *d, char *err, size_t errlen,
                     const char *what)
{
	return cd_fail(d, err, errlen, "malformed CMS: %s at offset %llu", what,
	               (unsigned long long)d->pos);
}

/* The element with header h starts inside frame f: decide what it is. */
static int child(struct cms_dec *d, struct cd_frame *f, const struct hdr *h,
                 char *err, size_t errlen)
{
	int auth = d->type == CMS_DEC_TYPE_AUTH_ENVELOPED;

	switch (f->kind) {
	case CF_TOP:
		if (f->step == 0 &&
		    is(h, V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE, 1)) {
			f->step = 1;
			return push(d, CF_CI, SK_NONE, 0, h, err, errlen);
		}
		d->type = CMS_DEC_TYPE_NOT_CMS;
		return cd_fail(d, err, errlen, "not a CMS ContentInfo");
	case CF_CI:
		if (f->step == 0 && is(h, V_ASN1_UNIVERSAL, V_ASN1_OBJECT, 0) &&
		    h->len > 0 && (size_t)h->len <= sizeof(d->oid)) {
			f->step = 1;
			return push(d, CF_DATA, SK_OID, 0, h, err, errlen);
		}
		if (f->step == 0) {
			d->type = CMS_DEC_TYPE_NOT_CMS;
			return cd_fail(d, err, errlen,
			               "not a CMS ContentInfo (no content "
			               "type)");
		}
		if (f->step == 1 && is(h, V_ASN1_CONTEXT_SPECIFIC, 0, 1)) {
			f->step = 2;
			return push(d, CF_EXPL, SK_NONE, 0, h, err, errlen);
		}
		return malformed(d, err, errlen,
		                 "unexpected element in ContentInfo");
	case CF_EXPL:
		if (f->step == 0 &&
		    is(h, V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE, 1)) {
			f->step = 1;
			return push(d, CF_ENV, SK_NONE, 0, h, err, errlen);
		}
		return malformed(d, err, errlen,
		                 "unexpected element in content");
	case CF_ENV:
		if (f->step == 0 &&
		    is(h, V_ASN1_UNIVERSAL, V_ASN1_INTEGER, 0)) {
			f->step = 1; /* version */
			return push(d, CF_DATA, SK_NONE, 1, h, err, errlen);
		}
		if (f->step == 1 && is(h, V_ASN1_CONTEXT_SPECIFIC, 0, 1)) {
			f->step = 2; /* originatorInfo */
			return push(d, CF_SKIP, SK_NONE, 1, h, err, errlen);
		}
		if ((f->step == 1 || f->step == 2) &&
		    is(h, V_ASN1_UNIVERSAL, V_ASN1_SET, 1)) {
			f->step = 3; /* recipientInfos */
			return push(d, CF_SKIP, SK_NONE, 1, h, err, errlen);
		}
		if (f->step == 3 &&
		    is(h, V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE, 1)) {
			f->step = 4;
			return push(d, CF_ECI, SK_NONE, 0, h, err, errlen);
		}
		if (f->step == 4 && !auth &&
		    is(h, V_ASN1_CONTEXT_SPECIFIC, 1, 1)) {
			f->step = 6; /* unprotectedAttrs: not used */
			return push(d, CF_SKIP, SK_NONE, 0, h, err, errlen);
		}
		if (f->step == 4 && auth && h->cls == V_ASN1_CONTEXT_SPECIFIC &&
		    h->tag == 1)
			return cd_fail(d, err, errlen,
			               "AuthEnvelopedData with authenticated "
			               "attributes is not supported");
		if (f->step == 4 && auth &&
		    is(h, V_ASN1_UNIVERSAL, V_ASN1_OCTET_STRING, 0)) {
			if (h->len < 12 || (size_t)h->len > sizeof(d->mac))
				return cd_fail(d, err, errlen,
				               "AuthEnvelopedData tag of %ld "
				               "octets (12 to 16 expected)",
				               h->len);
			f->step = 5; /* mac */
			return push(d, CF_DATA, SK_MAC, 0, h, err, errlen);
		}
		if (f->step == 5 && is(h, V_ASN1_CONTEXT_SPECIFIC, 2, 1)) {
			f->step = 6; /* unauthAttrs: not used */
			return push(d, CF_SKIP, SK_NONE, 0, h, err, errlen);
		}
		return malformed(d, err, errlen,
		                 auth ? "unexpected element in "
		                        "AuthEnvelopedData"
		                      : "unexpected element in EnvelopedData");
	case CF_ECI:
		if (f->step == 0 && is(h, V_ASN1_UNIVERSAL, V_ASN1_OBJECT, 0)) {
			f->step = 1; /* contentType */
			return push(d, CF_DATA, SK_NONE, 2, h, err, errlen);
		}
		if (f->step == 1 &&
		    is(h, V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE, 1)) {
			f->step = 2; /* contentEncryptionAlgorithm */
			return push(d, CF_SKIP, SK_NONE, 2, h, err, errlen);
		}
		if (f->step == 2 && h->cls == V_ASN1_CONTEXT_SPECIFIC &&
		    h->tag == 0) {
			f->step = 3; /* encryptedContent */
			return push(d, CF_OCT, SK_CIPHER, 0, h, err, errlen);
		}
		return malformed(d, err, errlen,
		                 "unexpected element in EncryptedContentInfo");
	case CF_OCT:
		if (h->cls == V_ASN1_UNIVERSAL && h->tag == V_ASN1_OCTET_STRING)
			return push(d, CF_OCT, SK_CIPHER, 0, h, err, errlen);
		return malformed(d, err, errlen,
		                 "encrypted content piece that is not an "
		                 "OCTET STRING");
	default: /* CF_SKIP */
		return push(d, CF_SKIP, SK_NONE, f->cap, h, err, errlen);
	}
}

/* Frame c has ended inside frame p (now the top): check that c was
 * complete, and act on what ended. */
static int ended(struct cms_dec *d, struct cd_frame *p,
                 const struct cd_frame *c, char *err, size_t errlen)
{
	switch (c->kind) {
	case CF_CI:
		if (c->step != 2)
			return malformed(d, err, errlen,
			                 "ContentInfo without content");
		break;
	case CF_EXPL:
		if (c->step != 1)
			return malformed(d, err, errlen, "empty content");
		break;
	case CF_ENV:
		if (c->step < 4 ||
		    (d->type == CMS_DEC_TYPE_AUTH_ENVELOPED && c->step < 5))
			return malformed(d, err, errlen,
			                 c->step < 4
			                         ? "EnvelopedData without its "
			                           "EncryptedContentInfo"
			                         : "AuthEnvelopedData without "
			                           "its tag");
		break;
	case CF_ECI:
		if (c->step != 3)
			return cd_fail(d, err, errlen,
			               "CMS without encrypted content "
			               "(detached "
			               "content is not supported)");
		break;
	default:
		break;
	}
	if (p->kind == CF_TOP) {
		d->state = CD_ENDED;
		return CMS_DEC_MORE;
	}
	if (p->kind == CF_CI && p->step == 1) {
		cd_set_type(d);
		if (d->type != CMS_DEC_TYPE_ENVELOPED &&
		    d->type != CMS_DEC_TYPE_AUTH_ENVELOPED) {
			d->state = CD_OTHER;
			return CMS_DEC_NOT_ENCRYPTED;
		}
	}
	if (p->kind == CF_ECI && p->step == 2) {
		if (cd_header_done(d, err, errlen) < 0)
			return -1;
		d->state = CD_NEED_KEY;
		return CMS_DEC_RECIPIENTS;
	}
	return CMS_DEC_MORE;
}

static int pop(struct cms_dec *d, char *err, size_t errlen)
{
	struct cd_frame c = *top(d);

	d->depth--;
	return ended(d, top(d), &c, err, errlen);
}

/* Primitive contents of frame f: n octets at p. */
static int sink(struct cms_dec *d, struct cd_frame *f, const unsigned char *p,
                size_t n, char *err, size_t errlen)
{
	switch (f->sink) {
	case SK_OID:
		memcpy(d->oid + d->oidlen, p, n);
		d->oidlen += n;
		break;
	case SK_MAC:
		memcpy(d->mac + d->maclen, p, n);
		d->maclen += n;
		break;
	case SK_CIPHER:
		return cd_cipher_write(d, p, n, err, errlen);
	default:
		break;
	}
	return 0;
}

int cd_walk(struct cms_dec *d, int eof, char *err, size_t errlen)
{
	struct hdr h;
	int r;

	while (d->state == CD_WALK || d->state == CD_CONTENT ||
	       d->state == CD_ENDED) {
		struct cd_frame *f = top(d);
		const unsigned char *p = d->in + d->inoff;
		size_t avail = d->inlen - d->inoff;

		if (d->state == CD_ENDED) {
			if (avail > 0)
				return cd_fail(d, err, errlen,
				               "data after the end of the CMS "
				               "structure");
			return CMS_DEC_MORE;
		}
		if (f->kind == CF_DATA) {
			size_t n;
			if (f->left == 0) {
				if ((r = pop(d, err, errlen)) != CMS_DEC_MORE)
					return r;
				continue;
			}
			if (avail == 0)
				goto more;
			n = (uint64_t)avail < f->left ? avail : (size_t)f->left;
			if (sink(d, f, p, n, err, errlen) < 0 ||
			    consume(d, n, err, errlen) < 0)
				return -1;
			f->left -= n;
			continue;
		}
		if (f->kind != CF_TOP && !f->indef && d->pos == f->end) {
			if ((r = pop(d, err, errlen)) != CMS_DEC_MORE)
				return r;
			continue;
		}
		if (avail == 0)
			goto more;
		r = hdr_get(p, avail, eof, &h);
		if (r == 0)
			return CMS_DEC_MORE;
		if (r < 0) {
			if (d->depth == 1)
				d->type = CMS_DEC_TYPE_NOT_CMS;
			return eof && avail < HDR_PEEK
			               ? cd_fail(d, err, errlen,
			                         "truncated CMS (a header is "
			                         "cut "
			                         "short)")
			               : malformed(d, err, errlen,
			                           "bad header");
		}
		if (h.cls == V_ASN1_UNIVERSAL && h.tag == 0) {
			if (h.cons || h.indef || h.len != 0 || !f->indef ||
			    f->kind == CF_TOP) {
				if (d->depth == 1)
					d->type = CMS_DEC_TYPE_NOT_CMS;
				return malformed(d, err, errlen,
				                 "misplaced end-of-contents");
			}
			if (consume(d, h.hl, err, errlen) < 0)
				return -1;
			if ((r = pop(d, err, errlen)) != CMS_DEC_MORE)
				return r;
			continue;
		}
		if (d->pos + h.hl > f->limit ||
		    (!h.indef &&
		     (uint64_t)h.len > f->limit - (d->pos + h.hl))) {
			if (d->depth == 1)
				d->type = CMS_DEC_TYPE_NOT_CMS;
			return malformed(d, err, errlen,
			                 "length beyond the enclosing element");
		}
		if (child(d, f, &h, err, errlen) < 0)
			return -1;
	}
	if (d->state == CD_OTHER)
		return CMS_DEC_NOT_ENCRYPTED;
	if (d->state == CD_NEED_KEY)
		return CMS_DEC_RECIPIENTS;
	return d->state == CD_FAILED ? -1 : CMS_DEC_MORE;
more:
	if (!eof)
		return CMS_DEC_MORE;
	if (d->pos == 0) {
		d->type = CMS_DEC_TYPE_NOT_CMS;
		return cd_fail(d, err, errlen, "empty input: not CMS");
	}
	return cd_fail(d, err, errlen,
	               "truncated CMS: input ends at offset %llu",
	               (unsigned long long)d->pos);
}
