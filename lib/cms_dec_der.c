/*
 * cms_dec_der -- the walk over the outer DER/BER of a ContentInfo holding
 * an EnvelopedData or AuthEnvelopedData, fed in pieces (cms_dec.h).
 *
 * Tags, lengths, nesting and the pieces of a constructed OCTET STRING are
 * der.h's; this file decides what each element is.  Elements before the
 * encrypted content are kept (cap[1], cap[2]) for OpenSSL;
 * unprotected/unauthenticated attributes are skipped without being kept;
 * the encrypted content (primitive, or a constructed OCTET STRING of any
 * shape up to CMS_DEC_DEPTH_MAX) streams to the cipher.
 */
#include "cms_dec_int.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

_Static_assert(CMS_DEC_DEPTH_MAX == DER_DEPTH_MAX,
               "cms_dec.h promises der.h's nesting limit");

/* Frame kinds, in the order they nest (struct der_frame's kind). */
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

/* Where primitive contents go (struct der_frame's sink). */
enum { SK_NONE, SK_OID, SK_MAC, SK_CIPHER };

static int is(const struct der_hdr *h, int cls, int tag, int cons)
{
	return der_hdr_is(h, cls, tag, cons);
}

/* Consume n octets of input; kept in cap[c] when c is not 0. */
static int consume(struct cms_dec *d, size_t n, int c, char *err, size_t errlen)
{
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
	return 0;
}

static int too_deep(struct cms_dec *d, char *err, size_t errlen)
{
	return cd_fail(d, err, errlen,
	               "CMS nesting deeper than %d levels at offset %llu",
	               CMS_DEC_DEPTH_MAX, (unsigned long long)d->w.pos);
}

/* Open a frame for the element whose header h is next, then consume the
 * header (kept when the new frame is). */
static int push(struct cms_dec *d, int kind, int sink, int cap,
                const struct der_hdr *h, char *err, size_t errlen)
{
	struct der_frame *f;

	if (d->w.depth >= DER_DEPTH_MAX)
		return too_deep(d, err, errlen);
	if (cap != 0 && !h->indef && h->len > CMS_DEC_HEADER_MAX)
		return cd_fail(d, err, errlen,
		               "CMS header element of %llu octets is too large",
		               (unsigned long long)h->len);
	if (der_walk_enter(&d->w, h, kind == CF_OCT ? DER_OCTETS : 0) < 0)
		return too_deep(d, err, errlen);
	f = der_walk_top(&d->w);
	f->kind = (unsigned char)(h->cons ? kind : CF_DATA);
	f->sink = (unsigned char)sink;
	f->keep = (unsigned char)cap;
	return consume(d, h->hl, cap, err, errlen);
}

static int malformed(struct cms_dec *d, char *err, size_t errlen,
                     const char *what)
{
	return cd_fail(d, err, errlen, "malformed CMS: %s at offset %llu", what,
	               (unsigned long long)d->w.pos);
}

/* The element with header h starts inside frame f: decide what it is. */
static int child(struct cms_dec *d, struct der_frame *f,
                 const struct der_hdr *h, char *err, size_t errlen)
{
	int auth = d->type == CMS_DEC_TYPE_AUTH_ENVELOPED;

	switch (f->kind) {
	case CF_TOP:
		if (f->step == 0 && is(h, DER_UNIVERSAL, DER_SEQUENCE, 1)) {
			f->step = 1;
			return push(d, CF_CI, SK_NONE, 0, h, err, errlen);
		}
		d->type = CMS_DEC_TYPE_NOT_CMS;
		return cd_fail(d, err, errlen, "not a CMS ContentInfo");
	case CF_CI:
		if (f->step == 0 && is(h, DER_UNIVERSAL, DER_OID, 0) &&
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
		if (f->step == 1 && is(h, DER_CONTEXT, 0, 1)) {
			f->step = 2;
			return push(d, CF_EXPL, SK_NONE, 0, h, err, errlen);
		}
		return malformed(d, err, errlen,
		                 "unexpected element in ContentInfo");
	case CF_EXPL:
		if (f->step == 0 && is(h, DER_UNIVERSAL, DER_SEQUENCE, 1)) {
			f->step = 1;
			return push(d, CF_ENV, SK_NONE, 0, h, err, errlen);
		}
		return malformed(d, err, errlen,
		                 "unexpected element in content");
	case CF_ENV:
		if (f->step == 0 && is(h, DER_UNIVERSAL, DER_INTEGER, 0)) {
			f->step = 1; /* version */
			return push(d, CF_DATA, SK_NONE, 1, h, err, errlen);
		}
		if (f->step == 1 && is(h, DER_CONTEXT, 0, 1)) {
			f->step = 2; /* originatorInfo */
			return push(d, CF_SKIP, SK_NONE, 1, h, err, errlen);
		}
		if ((f->step == 1 || f->step == 2) &&
		    is(h, DER_UNIVERSAL, DER_SET, 1)) {
			f->step = 3; /* recipientInfos */
			return push(d, CF_SKIP, SK_NONE, 1, h, err, errlen);
		}
		if (f->step == 3 && is(h, DER_UNIVERSAL, DER_SEQUENCE, 1)) {
			f->step = 4;
			return push(d, CF_ECI, SK_NONE, 0, h, err, errlen);
		}
		if (f->step == 4 && !auth && is(h, DER_CONTEXT, 1, 1)) {
			f->step = 6; /* unprotectedAttrs: not used */
			return push(d, CF_SKIP, SK_NONE, 0, h, err, errlen);
		}
		if (f->step == 4 && auth && h->cls == DER_CONTEXT &&
		    h->tag == 1)
			return cd_fail(d, err, errlen,
			               "AuthEnvelopedData with authenticated "
			               "attributes is not supported");
		if (f->step == 4 && auth &&
		    is(h, DER_UNIVERSAL, DER_OCTET_STRING, 0)) {
			if (h->len < 12 || (size_t)h->len > sizeof(d->mac))
				return cd_fail(d, err, errlen,
				               "AuthEnvelopedData tag of %llu "
				               "octets (12 to 16 expected)",
				               (unsigned long long)h->len);
			f->step = 5; /* mac */
			return push(d, CF_DATA, SK_MAC, 0, h, err, errlen);
		}
		if (f->step == 5 && is(h, DER_CONTEXT, 2, 1)) {
			f->step = 6; /* unauthAttrs: not used */
			return push(d, CF_SKIP, SK_NONE, 0, h, err, errlen);
		}
		return malformed(d, err, errlen,
		                 auth ? "unexpected element in "
		                        "AuthEnvelopedData"
		                      : "unexpected element in EnvelopedData");
	case CF_ECI:
		if (f->step == 0 && is(h, DER_UNIVERSAL, DER_OID, 0)) {
			f->step = 1; /* contentType */
			return push(d, CF_DATA, SK_NONE, 2, h, err, errlen);
		}
		if (f->step == 1 && is(h, DER_UNIVERSAL, DER_SEQUENCE, 1)) {
			f->step = 2; /* contentEncryptionAlgorithm */
			return push(d, CF_SKIP, SK_NONE, 2, h, err, errlen);
		}
		if (f->step == 2 && h->cls == DER_CONTEXT && h->tag == 0) {
			f->step = 3; /* encryptedContent */
			return push(d, CF_OCT, SK_CIPHER, 0, h, err, errlen);
		}
		return malformed(d, err, errlen,
		                 "unexpected element in EncryptedContentInfo");
	case CF_OCT:
		if (h->cls == DER_UNIVERSAL && h->tag == DER_OCTET_STRING)
			return push(d, CF_OCT, SK_CIPHER, 0, h, err, errlen);
		return malformed(d, err, errlen,
		                 "encrypted content piece that is not an "
		                 "OCTET STRING");
	default: /* CF_SKIP */
		return push(d, CF_SKIP, SK_NONE, f->keep, h, err, errlen);
	}
}

/* Frame c has ended inside frame p (now the top): check that c was
 * complete, and act on what ended. */
static int ended(struct cms_dec *d, struct der_frame *p,
                 const struct der_frame *c, char *err, size_t errlen)
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

/* Primitive contents of frame f: n octets at p. */
static int sink(struct cms_dec *d, const struct der_frame *f,
                const unsigned char *p, size_t n, char *err, size_t errlen)
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

/* The walk stopped at error e (DER_E_*) with avail octets left. */
static int walk_error(struct cms_dec *d, int e, size_t avail, int eof,
                      char *err, size_t errlen)
{
	if (e == DER_E_DEPTH)
		return too_deep(d, err, errlen);
	if (e == DER_E_PIECE)
		return malformed(d, err, errlen,
		                 "encrypted content piece that is not an "
		                 "OCTET STRING");
	if (d->w.depth == 1)
		d->type = CMS_DEC_TYPE_NOT_CMS;
	if (e == DER_E_EOC)
		return malformed(d, err, errlen, "misplaced end-of-contents");
	if (e == DER_E_BEYOND)
		return malformed(d, err, errlen,
		                 "length beyond the enclosing element");
	return eof && avail < DER_HDR_MAX
	               ? cd_fail(d, err, errlen,
	                         "truncated CMS (a header is cut short)")
	               : malformed(d, err, errlen, "bad header");
}

int cd_walk(struct cms_dec *d, int eof, char *err, size_t errlen)
{
	struct der_ev ev;
	int e, r;

	while (d->state == CD_WALK || d->state == CD_CONTENT ||
	       d->state == CD_ENDED) {
		const unsigned char *p = d->in + d->inoff;
		size_t avail = d->inlen - d->inoff;

		if (d->state == CD_ENDED) {
			if (avail > 0)
				return cd_fail(d, err, errlen,
				               "data after the end of the CMS "
				               "structure");
			return CMS_DEC_MORE;
		}
		e = der_walk_next(&d->w, p, avail, eof, &ev);
		if (e == DER_MORE)
			goto more;
		if (e < 0)
			return walk_error(d, e, avail, eof, err, errlen);
		if (e == DER_DATA && sink(d, &ev.f, p, ev.n, err, errlen) < 0)
			return -1;
		if (consume(d, ev.n, ev.f.keep, err, errlen) < 0)
			return -1;
		if (e == DER_END) {
			r = ended(d, der_walk_top(&d->w), &ev.f, err, errlen);
			if (r != CMS_DEC_MORE)
				return r;
		} else if (e == DER_HEAD && child(d, der_walk_top(&d->w), &ev.h,
		                                  err, errlen) < 0)
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
	if (d->w.pos == 0) {
		d->type = CMS_DEC_TYPE_NOT_CMS;
		return cd_fail(d, err, errlen, "empty input: not CMS");
	}
	return cd_fail(d, err, errlen,
	               "truncated CMS: input ends at offset %llu",
	               (unsigned long long)d->w.pos);
}
