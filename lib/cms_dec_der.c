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

#include <stdio.h>
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

/* Open a frame for the element whose header h is next, as rule r says,
 * then consume the header (kept when the new frame is). */
static int push(struct cms_dec *d, const struct der_rule *r,
                const struct der_hdr *h, char *err, size_t errlen)
{
	if (d->w.depth >= DER_DEPTH_MAX)
		return too_deep(d, err, errlen);
	if (r->keep != 0 && !h->indef && h->len > CMS_DEC_HEADER_MAX)
		return cd_fail(d, err, errlen,
		               "CMS header element of %llu octets is too large",
		               (unsigned long long)h->len);
	if (der_rule_enter(&d->w, r, h) < 0)
		return too_deep(d, err, errlen);
	return consume(d, h->hl, r->keep, err, errlen);
}

static int malformed(struct cms_dec *d, char *err, size_t errlen,
                     const char *what)
{
	return cd_fail(d, err, errlen, "malformed CMS: %s at offset %llu", what,
	               (unsigned long long)d->w.pos);
}

#define U DER_UNIVERSAL
#define C DER_CONTEXT

/* What each structure holds, in order (cms_dec.h has the ASN.1).  keep:
 * the cap[] the element is kept in for OpenSSL. */
static const struct der_rule rules[] = {
	/* kind, step, class, tag, constructed, next step, enters, flags,
	 * sink, keep */
	{ CF_TOP, 0, U, DER_SEQUENCE, 1, 1, CF_CI, 0, SK_NONE, 0 },
	{ CF_CI, 0, U, DER_OID, 0, 1, CF_DATA, 0, SK_OID, 0 },
	{ CF_CI, 1, C, 0, 1, 2, CF_EXPL, 0, SK_NONE, 0 },
	{ CF_EXPL, 0, U, DER_SEQUENCE, 1, 1, CF_ENV, 0, SK_NONE, 0 },
	/* version, originatorInfo, recipientInfos */
	{ CF_ENV, 0, U, DER_INTEGER, 0, 1, CF_DATA, 0, SK_NONE, 1 },
	{ CF_ENV, 1, C, 0, 1, 2, CF_SKIP, 0, SK_NONE, 1 },
	{ CF_ENV, 1, U, DER_SET, 1, 3, CF_SKIP, 0, SK_NONE, 1 },
	{ CF_ENV, 2, U, DER_SET, 1, 3, CF_SKIP, 0, SK_NONE, 1 },
	{ CF_ENV, 3, U, DER_SEQUENCE, 1, 4, CF_ECI, 0, SK_NONE, 0 },
	/* unprotectedAttrs, or (AuthEnvelopedData) the mac and
	 * unauthAttrs: not used */
	{ CF_ENV, 4, C, 1, 1, 6, CF_SKIP, 0, SK_NONE, 0 },
	{ CF_ENV, 4, U, DER_OCTET_STRING, 0, 5, CF_DATA, 0, SK_MAC, 0 },
	{ CF_ENV, 5, C, 2, 1, 6, CF_SKIP, 0, SK_NONE, 0 },
	/* contentType, contentEncryptionAlgorithm, encryptedContent */
	{ CF_ECI, 0, U, DER_OID, 0, 1, CF_DATA, 0, SK_NONE, 2 },
	{ CF_ECI, 1, U, DER_SEQUENCE, 1, 2, CF_SKIP, 0, SK_NONE, 2 },
	{ CF_ECI, 2, C, 0, -1, 3, CF_OCT, DER_OCTETS, SK_CIPHER, 0 },
};
#undef U
#undef C

/* No rule of frame f takes the element there. */
static int unexpected(struct cms_dec *d, const struct der_frame *f, int auth,
                      char *err, size_t errlen)
{
	char what[64];

	if (f->kind == CF_TOP || (f->kind == CF_CI && f->step == 0)) {
		d->type = CMS_DEC_TYPE_NOT_CMS;
		return cd_fail(d, err, errlen,
		               f->kind == CF_TOP ? "not a CMS ContentInfo"
		                                 : "not a CMS ContentInfo (no "
		                                   "content type)");
	}
	snprintf(what, sizeof(what), "unexpected element in %s",
	         f->kind == CF_CI     ? "ContentInfo"
	         : f->kind == CF_EXPL ? "content"
	         : f->kind == CF_ECI  ? "EncryptedContentInfo"
	         : auth               ? "AuthEnvelopedData"
	                              : "EnvelopedData");
	return malformed(d, err, errlen, what);
}

/* The element with header h starts inside frame f: decide what it is. */
static int child(struct cms_dec *d, struct der_frame *f,
                 const struct der_hdr *h, char *err, size_t errlen)
{
	int auth = d->type == CMS_DEC_TYPE_AUTH_ENVELOPED;
	const struct der_rule *r;

	if (f->kind == CF_SKIP) { /* read past (or kept) as its parent */
		struct der_rule skip = { 0 };
		skip.next = f->step;
		skip.enter = h->cons ? CF_SKIP : CF_DATA;
		skip.keep = f->keep;
		return push(d, &skip, h, err, errlen);
	}
	if (auth && f->kind == CF_ENV && f->step == 4 &&
	    h->cls == DER_CONTEXT && h->tag == 1)
		return cd_fail(d, err, errlen,
		               "AuthEnvelopedData with authenticated "
		               "attributes is not supported");
	r = der_rule_find(rules, sizeof(rules) / sizeof(rules[0]), f, h);
	if (r &&
	    ((r->sink == SK_MAC && !auth) ||
	     (r->sink == SK_OID && (h->len == 0 || h->len > sizeof(d->oid)))))
		r = NULL;
	if (r == NULL)
		return unexpected(d, f, auth, err, errlen);
	if (r->sink == SK_MAC && (h->len < 12 || h->len > sizeof(d->mac)))
		return cd_fail(d, err, errlen,
		               "AuthEnvelopedData tag of %llu octets (12 to 16 "
		               "expected)",
		               (unsigned long long)h->len);
	return push(d, r, h, err, errlen);
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
