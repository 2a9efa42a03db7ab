/*
 * inbound_body -- the body work of an inbound message: base64 decoding as
 * the spool is read, streaming decryption (cms_dec) with the keys of the
 * envelope recipients, the decrypted or unwrapped entity split into its
 * Content-* headers and a CRLF body, and the two signed shapes handed to
 * smime_verify.  Memory stays bounded: bodies live in spools.
 */
#include "authres.h"
#include "cms_dec.h"
#include "inbound_int.h"
#include "policy.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/evp.h>

#define PIECE 16384

/* The spool's content, base64-decoded when b64, read in pieces. */
struct b64rd {
	struct spool *sp;
	EVP_ENCODE_CTX *ctx;
	int b64, eof, bad;
	unsigned char out[PIECE + 128];
	size_t olen, opos;
};

static int b64rd_init(struct b64rd *r, struct spool *sp, int b64)
{
	memset(r, 0, sizeof(*r));
	r->sp = sp;
	r->b64 = b64;
	if (b64) {
		if ((r->ctx = EVP_ENCODE_CTX_new()) == NULL)
			return -1;
		EVP_DecodeInit(r->ctx);
	}
	return 0;
}

/* Refill r->out.  Returns 1, 0 at the end, -1 (r->bad: bad base64). */
static int b64rd_fill(struct b64rd *r)
{
	unsigned char in[PIECE / 4 * 3];
	ssize_t n;
	int ol = 0;

	while (!r->eof) {
		n = spool_read(r->sp, r->b64 ? in : r->out,
		               r->b64 ? sizeof(in) : PIECE);
		if (n < 0)
			return -1;
		if (n == 0) {
			r->eof = 1;
			if (r->b64 && EVP_DecodeFinal(r->ctx, r->out, &ol) < 0)
				return r->bad = 1, -1;
		} else if (!r->b64) {
			ol = (int)n;
		} else if (EVP_DecodeUpdate(r->ctx, r->out, &ol, in, (int)n) <
		           0) {
			return r->bad = 1, -1;
		}
		if (ol > 0) {
			r->olen = (size_t)ol;
			r->opos = 0;
			return 1;
		}
	}
	return 0;
}

static ssize_t b64rd_read(struct b64rd *r, void *buf, size_t len)
{
	size_t n;

	if (r->opos == r->olen) {
		int f = b64rd_fill(r);
		if (f <= 0)
			return f;
	}
	n = r->olen - r->opos < len ? r->olen - r->opos : len;
	memcpy(buf, r->out + r->opos, n);
	r->opos += n;
	return (ssize_t)n;
}

static void b64rd_done(struct b64rd *r)
{
	EVP_ENCODE_CTX_free(r->ctx);
	r->ctx = NULL;
}

/* A spool written with CRLF line ends whatever came in. */
struct crlf {
	struct spool *sp;
	int cr; /* the last byte written was CR */
};

static int crlf_put(struct crlf *c, const unsigned char *p, size_t n, char *err,
                    size_t errlen)
{
	size_t s = 0;

	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n' && !(i > 0 ? p[i - 1] == '\r' : c->cr)) {
			if (spool_write(c->sp, p + s, i - s, err, errlen) ||
			    spool_write(c->sp, "\r\n", 2, err, errlen))
				return -1;
			s = i + 1;
		}
	}
	if (n > 0)
		c->cr = p[n - 1] == '\r';
	return spool_write(c->sp, p + s, n - s, err, errlen);
}

typedef ssize_t (*rd_fn)(void *arg, void *buf, size_t len);

/* Keep the Content-* fields of the header block hdr (len octets, ends
 * with its blank line) as m->nh, values unfolded to "\n" line breaks. */
static int keep_fields(struct inb *m, const char *hdr, size_t len)
{
	size_t i = 0;

	while (i < len && m->nnh < INB_HEADERS_MAX) {
		size_t s = i, e, c;
		char *val;
		size_t vn = 0;
		if (hdr[i] == '\r' || hdr[i] == '\n')
			break;
		/* the field runs to a line end not followed by space/tab */
		for (e = i; e < len; e++)
			if (hdr[e] == '\n' &&
			    !(e + 1 < len &&
			      (hdr[e + 1] == ' ' || hdr[e + 1] == '\t')))
				break;
		i = e + 1;
		for (c = s; c < e && hdr[c] != ':'; c++)
			;
		if (c >= e || c - s < 9 || strncasecmp(hdr + s, "Content-", 8))
			continue;
		if ((val = malloc(e - c + 1)) == NULL)
			return -1;
		for (size_t k = c + 1; k < e; k++)
			if (hdr[k] != '\r' && !(vn == 0 && hdr[k] == ' '))
				val[vn++] = hdr[k];
		val[vn] = '\0';
		m->nh[m->nnh].name = strndup(hdr + s, c - s);
		m->nh[m->nnh].value = val;
		m->nh[m->nnh].index = 0;
		if (m->nh[m->nnh].name == NULL)
			return -1;
		m->nnh++;
	}
	return 0;
}

/* 1 when every line of the header block hdr is a field ("name:") or a
 * continuation, up to its blank line. */
static int fields_only(const char *hdr, size_t len)
{
	size_t i = 0;

	while (i < len && hdr[i] != '\r' && hdr[i] != '\n') {
		size_t k = i;
		if (hdr[i] != ' ' && hdr[i] != '\t') {
			while (k < len && hdr[k] > ' ' && hdr[k] < 127 &&
			       hdr[k] != ':')
				k++;
			if (k == i || k >= len || hdr[k] != ':')
				return 0;
		}
		while (k < len && hdr[k] != '\n')
			k++;
		i = k + 1;
	}
	return 1;
}

/* The MIME entity read through rd becomes the new body: its Content-*
 * headers (m->nh) and its body with CRLF line ends (m->newbody).
 * Returns 0, 1 (bad entity: permerror), -1 (local failure, err). */
static int take_entity(struct inb *m, rd_fn rd, void *arg, char *err,
                       size_t errlen)
{
	const struct config *cfg = m->snap->cfg;
	char *hdr = malloc(INB_INNER_HDR_MAX);
	unsigned char buf[PIECE];
	struct crlf c = { 0 };
	size_t hl = 0, end = 0;
	ssize_t n;
	int rc = -1, plain;

	if (hdr == NULL)
		return seterr(err, errlen, "out of memory");
	/* the header block, to the first empty line */
	while (end == 0 && hl < INB_INNER_HDR_MAX) {
		n = rd(arg, hdr + hl, 1);
		if (n <= 0)
			break;
		hl++;
		if (hl == 1 && (hdr[0] == '\n'))
			end = hl;
		else if (hl == 2 && hdr[0] == '\r' && hdr[1] == '\n')
			end = hl;
		else if (hl >= 2 && hdr[hl - 1] == '\n' &&
		         (hdr[hl - 2] == '\n' ||
		          (hl >= 3 && hdr[hl - 2] == '\r' &&
		           hdr[hl - 3] == '\n')))
			end = hl;
	}
	if (end == 0 && hl > 0 && !fields_only(hdr, hl))
		end = hl; /* text without a header, no blank line */
	if (end == 0) {
		inb_permerror(m, "the content's header has no end");
		rc = 1;
		goto out;
	}
	plain = !fields_only(hdr, hl);
	if (!plain && keep_fields(m, hdr, hl) != 0) {
		seterr(err, errlen, "out of memory");
		goto out;
	}
	c.sp = m->newbody =
	        spool_new((size_t)cfg->max_memory_body, cfg->temp_dir);
	if (c.sp == NULL) {
		seterr(err, errlen, "out of memory");
		goto out;
	}
	/* content without a MIME header is all body (text/plain) */
	if (plain && crlf_put(&c, (unsigned char *)hdr, hl, err, errlen) != 0)
		goto out;
	while ((n = rd(arg, buf, sizeof(buf))) > 0)
		if (crlf_put(&c, buf, (size_t)n, err, errlen) != 0)
			goto out;
	if (n < 0) {
		seterr(err, errlen, "cannot read the content");
		goto out;
	}
	rc = 0;
out:
	free(hdr);
	return rc;
}

static ssize_t dec_rd(void *arg, void *buf, size_t len)
{
	return cms_dec_read(arg, buf, len);
}

/* ", certificate revoked YYYY-MM-DD" (UTC) for a revocation at t, or ""
 * when t is not known. */
static void revoked_day(time_t t, char *buf, size_t len)
{
	struct tm tm;

	buf[0] = '\0';
	if (t > 0 && gmtime_r(&t, &tm) != NULL)
		strftime(buf, len, ", certificate revoked %Y-%m-%d", &tm);
}

/* At the RecipientInfos: may every recipient read it, and whose key.
 * Returns 0 (key chosen), 1 (not decrypted: m->note), -1 (memory). */
static int choose_key(struct inb *m, struct cms_dec *d)
{
	const struct config *cfg = m->snap->cfg;
	int *named = calloc(m->nrcpts + 1, sizeof(int));
	char why[400], e[256] = "no key could be loaded";
	const struct decrypt_key *dk;
	size_t n;

	if (named == NULL)
		return -1;
	for (size_t i = 0; i < m->nrcpts; i++) {
		n = snapshot_decrypt_keys(m->snap, m->rcpts[i], &dk);
		for (size_t j = 0; j < n && !named[i]; j++)
			named[i] = cms_dec_names(d, dk[j].cert) >= 0;
	}
	if (!policy_may_decrypt(cfg, m->rcpts, named, m->nrcpts, why,
	                        sizeof(why))) {
		free(named);
		snprintf(m->note, sizeof(m->note), "not decrypted: %s", why);
		snprintf(m->res.reason, sizeof(m->res.reason), "%s", why);
		return 1;
	}
	free(named);
	for (size_t i = 0; i < m->nrcpts; i++) {
		n = snapshot_decrypt_keys(m->snap, m->rcpts[i], &dk);
		for (size_t j = 0; j < n; j++) {
			const char *st;
			char day[48] = "";
			if (dk[j].key == NULL ||
			    cms_dec_names(d, dk[j].cert) < 0 ||
			    cms_dec_try_key(d, dk[j].cert, dk[j].key, e,
			                    sizeof(e)) != 1)
				continue;
			st = snapshot_decrypt_state(&dk[j], time(NULL));
			m->res.revoked_key = strcmp(st, "revoked") == 0;
			if (m->res.revoked_key)
				revoked_day(dk[j].revoked_at, day, sizeof(day));
			snprintf(m->res.decrypted_by,
			         sizeof(m->res.decrypted_by),
			         "%s certificate %s (%s)", dk[j].address,
			         dk[j].serial, st);
			snprintf(m->note, sizeof(m->note),
			         "decrypted for %s, %scertificate %s%s, %s",
			         dk[j].address,
			         m->res.revoked_key ? "revoked " : "",
			         dk[j].serial, day,
			         cms_dec_cipher(d) ? cms_dec_cipher(d) : "?");
			snprintf(m->res.cipher, sizeof(m->res.cipher), "%s",
			         cms_dec_cipher(d) ? cms_dec_cipher(d) : "");
			return 0;
		}
	}
	snprintf(m->note, sizeof(m->note), "not decrypted: %s", e);
	snprintf(m->res.reason, sizeof(m->res.reason), "%s", e);
	return 1;
}

/* Bad input during decryption: permerror, and said as not decrypted. */
static int dec_bad(struct inb *m, const char *what, const char *e)
{
	char why[400];

	snprintf(why, sizeof(why), "%s%s%s", what, e ? ": " : "", e ? e : "");
	inb_permerror(m, why);
	snprintf(m->note, sizeof(m->note), "not decrypted: %s", why);
	return 1;
}

int inb_decrypt(struct inb *m, enum mime_cte cte, char *err, size_t errlen)
{
	const struct config *cfg = m->snap->cfg;
	unsigned char buf[PIECE];
	char e[256] = "";
	struct b64rd r;
	struct cms_dec *d;
	ssize_t n;
	int rc = -1, f;

	if (b64rd_init(&r, m->body, cte == MIME_CTE_BASE64) != 0)
		return seterr(err, errlen, "out of memory");
	d = cms_dec_new((size_t)cfg->max_memory_body, cfg->temp_dir, err,
	                errlen);
	if (d == NULL)
		goto out;
	while ((n = b64rd_read(&r, buf, sizeof(buf))) > 0) {
		f = cms_dec_feed(d, buf, (size_t)n, e, sizeof(e));
		if (f == CMS_DEC_NOT_ENCRYPTED) {
			rc = cms_dec_type(d) == CMS_DEC_TYPE_SIGNED
			             ? 2
			             : dec_bad(m,
			                       "the CMS content is not "
			                       "encrypted",
			                       cms_dec_type_name(
			                               cms_dec_type(d)));
			goto out;
		}
		if (f < 0) {
			rc = dec_bad(m, "malformed encrypted message", e);
			goto out;
		}
		if (f == CMS_DEC_RECIPIENTS && (rc = choose_key(m, d)) != 0) {
			if (rc < 0)
				seterr(err, errlen, "out of memory");
			goto out;
		}
	}
	if (n < 0) {
		rc = r.bad ? dec_bad(m, "malformed base64", NULL)
		           : seterr(err, errlen, "cannot read the spool");
		goto out;
	}
	if (cms_dec_type(d) != CMS_DEC_TYPE_ENVELOPED &&
	    cms_dec_type(d) != CMS_DEC_TYPE_AUTH_ENVELOPED) {
		rc = dec_bad(m, "not a CMS encrypted message",
		             cms_dec_type_name(cms_dec_type(d)));
		goto out;
	}
	if (cms_dec_matched(d) < 0) {
		rc = m->note[0] ? 1 : dec_bad(m, "truncated CMS", NULL);
		goto out;
	}
	if (cms_dec_finish(d, e, sizeof(e)) != 0) {
		rc = dec_bad(m, "cannot decrypt", e);
		goto out;
	}
	rc = take_entity(m, dec_rd, d, err, errlen);
	if (rc == 0)
		m->res.decrypted = 1;
	else if (rc == 1) {
		snprintf(m->note, sizeof(m->note), "not decrypted: %s",
		         m->v.reason);
	}
out:
	b64rd_done(&r);
	cms_dec_free(d);
	return rc;
}

/* A BIO that reads a b64rd (BIO_get_data) or writes a spool. */
static int bio_rd(BIO *b, char *buf, int len)
{
	ssize_t n = b64rd_read(BIO_get_data(b), buf, (size_t)len);

	return n < 0 ? -1 : (int)n;
}

static int bio_wr(BIO *b, const char *buf, int len)
{
	char e[64];

	return spool_write(BIO_get_data(b), buf, (size_t)len, e, sizeof(e))
	               ? -1
	               : len;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)b;
	(void)num;
	(void)ptr;
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static BIO *bio_over(BIO_METHOD **meth, int write, void *data)
{
	BIO *b;

	*meth = BIO_meth_new(BIO_TYPE_SOURCE_SINK | BIO_get_new_index(),
	                     "inbound spool");
	if (*meth == NULL ||
	    (write ? BIO_meth_set_write(*meth, bio_wr)
	           : BIO_meth_set_read(*meth, bio_rd)) != 1 ||
	    BIO_meth_set_ctrl(*meth, bio_ctrl) != 1 ||
	    (b = BIO_new(*meth)) == NULL)
		return NULL;
	BIO_set_data(b, data);
	BIO_set_init(b, 1);
	return b;
}

static ssize_t spool_rd(void *arg, void *buf, size_t len)
{
	return spool_read(arg, buf, len);
}

int inb_verify_opaque(struct inb *m, struct spool *body, int b64, int unwrap,
                      char *err, size_t errlen)
{
	const struct config *cfg = m->snap->cfg;
	struct inb_vctx c;
	BIO_METHOD *mi = NULL, *mo = NULL;
	BIO *in = NULL, *outb = NULL;
	struct spool *content = NULL;
	struct b64rd r;
	int rc = -1;

	if (b64rd_init(&r, body, b64) != 0)
		return seterr(err, errlen, "out of memory");
	if (unwrap && (content = spool_new((size_t)cfg->max_memory_body,
	                                   cfg->temp_dir)) == NULL)
		goto oom;
	if ((in = bio_over(&mi, 0, &r)) == NULL ||
	    (content && (outb = bio_over(&mo, 1, content)) == NULL))
		goto oom;
	inb_verify_begin(m, &c);
	smime_verify_opaque(&c.o, in, outb, &m->v);
	inb_verify_end(m, &c);
	rc = 0;
	if (content && m->v.result != SMIME_PERMERROR &&
	    spool_rewind(content, err, errlen) == 0)
		rc = take_entity(m, spool_rd, content, err, errlen) < 0 ? -1
		                                                        : 0;
	goto out;
oom:
	seterr(err, errlen, "out of memory");
out:
	BIO_free(in);
	BIO_free(outb);
	BIO_meth_free(mi);
	BIO_meth_free(mo);
	spool_free(content);
	b64rd_done(&r);
	return rc;
}
