/*
 * evidence_msg -- a stored message (.eml) as a buffer for evidence_check:
 * its header fields, the two parts of a multipart/signed, the signature's
 * DER, the canonical CRLF reading of the signed part, and the DER of an
 * application/pkcs7-mime body.  Unlike inbound_verify.c, which walks a
 * spool as the MTA handed it, this works on a file the caller mapped in
 * whole, whose line ends a mailbox may have changed to LF.
 */
#include "evidence_int.h"
#include "mime.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

/* The end of the line starting at i (the index after its LF, or n). */
static size_t line_end(struct ev_span s, size_t i)
{
	const unsigned char *lf = memchr(s.p + i, '\n', s.n - i);

	return lf ? (size_t)(lf - s.p) + 1 : s.n;
}

/* 1 when the line [i, e) is empty (just its line end). */
static int blank(struct ev_span s, size_t i, size_t e)
{
	return e == i || (e - i == 1 && s.p[i] == '\n') ||
	       (e - i == 2 && s.p[i] == '\r' && s.p[i + 1] == '\n');
}

void ev_split(struct ev_span msg, struct ev_span *hdr, struct ev_span *body)
{
	size_t i = 0, e;

	while (i < msg.n && !blank(msg, i, e = line_end(msg, i)))
		i = e;
	hdr->p = msg.p;
	hdr->n = i;
	e = i < msg.n ? line_end(msg, i) : i;
	body->p = msg.p + e;
	body->n = msg.n - e;
}

char *ev_header(struct ev_span hdr, const char *name)
{
	return ev_header_n(hdr, name, 0);
}

char *ev_header_n(struct ev_span hdr, const char *name, int n)
{
	size_t nl = strlen(name), i = 0, e;

	for (; i < hdr.n; i = e) {
		e = line_end(hdr, i);
		if (e - i <= nl || hdr.p[i + nl] != ':' ||
		    strncasecmp((const char *)hdr.p + i, name, nl) != 0 ||
		    n-- > 0)
			continue;
		/* the field and its continuation lines, unfolded */
		size_t end = e;
		while (end < hdr.n && (hdr.p[end] == ' ' || hdr.p[end] == '\t'))
			end = line_end(hdr, end);
		char *v = malloc(end - i), *w = v;
		if (v == NULL)
			return NULL;
		for (size_t k = i + nl + 1; k < end; k++)
			if (hdr.p[k] != '\r' && hdr.p[k] != '\n')
				*w++ = (char)hdr.p[k];
		*w = '\0';
		while (w > v && (w[-1] == ' ' || w[-1] == '\t'))
			*--w = '\0';
		size_t lead = strspn(v, " \t");
		memmove(v, v + lead, strlen(v + lead) + 1);
		return v;
	}
	return NULL;
}

/* 1 for the delimiter line "--boundary", 2 for the close delimiter. */
static int delimiter(struct ev_span s, size_t i, size_t e, const char *b)
{
	size_t bl = strlen(b), k;
	int close;

	while (e > i && (s.p[e - 1] == '\n' || s.p[e - 1] == '\r'))
		e--;
	if (bl == 0 || e - i < bl + 2 || memcmp(s.p + i, "--", 2) != 0 ||
	    memcmp(s.p + i + 2, b, bl) != 0)
		return 0;
	k = i + 2 + bl;
	close = e - k >= 2 && memcmp(s.p + k, "--", 2) == 0;
	for (k += close ? 2 : 0; k < e; k++)
		if (s.p[k] != ' ' && s.p[k] != '\t')
			return 0;
	return 1 + close;
}

/* The start of the line end before offset i (which starts a line). */
static size_t before_eol(struct ev_span s, size_t i)
{
	if (i >= 2 && s.p[i - 2] == '\r' && s.p[i - 1] == '\n')
		return i - 2;
	return i >= 1 && s.p[i - 1] == '\n' ? i - 1 : i;
}

const char *ev_signed_parts(struct ev_span body, const char *boundary,
                            struct ev_span *content, struct ev_span *sig)
{
	size_t at[3] = { 0 }, i, e;
	int seen = 0, d;

	for (i = 0; i < body.n; i = e) {
		e = line_end(body, i);
		if ((d = delimiter(body, i, e, boundary)) == 0)
			continue;
		if ((d == 2) != (seen == 2))
			return "multipart/signed has not two parts";
		if (seen == 2) {
			/* delimiters on adjacent lines leave a part whose end
			 * (the line end before the next delimiter) lies before
			 * its start: empty, and no length may wrap */
			size_t se = before_eol(body, i);
			if (at[1] < at[0] || se <= at[2])
				return "empty part in multipart/signed";
			content->p = body.p + at[0];
			content->n = at[1] - at[0];
			sig->p = body.p + at[2];
			sig->n = se - at[2];
			return NULL;
		}
		if (seen == 1)
			at[1] = before_eol(body, i);
		at[seen == 0 ? 0 : 2] = e;
		seen++;
	}
	return seen ? "multipart/signed is cut short"
	            : "multipart/signed without its boundary";
}

const char *ev_sig_der(struct ev_span sig, unsigned char **der, size_t *len)
{
	struct ev_span hdr, body;
	struct mime_ct ct;
	char *ctv, *cte;
	int b64, ol = 0, fl = 0;
	EVP_ENCODE_CTX *x;

	*der = NULL;
	*len = 0;
	ev_split(sig, &hdr, &body);
	ctv = ev_header(hdr, "Content-Type");
	cte = ev_header(hdr, "Content-Transfer-Encoding");
	mime_ct_parse(ctv, &ct);
	b64 = mime_cte_parse(cte) == MIME_CTE_BASE64;
	free(ctv);
	free(cte);
	if (strcmp(ct.type, "application") != 0 ||
	    (strcmp(ct.subtype, "pkcs7-signature") != 0 &&
	     strcmp(ct.subtype, "x-pkcs7-signature") != 0))
		return "the second part is not an S/MIME signature";
	if (body.n > 16 * 1024 * 1024)
		return "the signature part is too large";
	if ((*der = malloc(b64 ? body.n / 4 * 3 + 80 : body.n + 1)) == NULL)
		return "out of memory";
	if (!b64) {
		memcpy(*der, body.p, body.n);
		*len = body.n;
		return NULL;
	}
	if ((x = EVP_ENCODE_CTX_new()) == NULL)
		return "out of memory";
	EVP_DecodeInit(x);
	if (EVP_DecodeUpdate(x, *der, &ol, body.p, (int)body.n) < 0 ||
	    EVP_DecodeFinal(x, *der + ol, &fl) < 0) {
		EVP_ENCODE_CTX_free(x);
		return "the signature is not valid base64";
	}
	EVP_ENCODE_CTX_free(x);
	*len = (size_t)(ol + fl);
	return NULL;
}

ssize_t ev_canon_read(void *arg, void *buf, size_t len)
{
	struct ev_canon *c = arg;
	unsigned char *out = buf;
	size_t w = 0;

	while (w < len && (c->lf_owed || c->pos < c->s.n)) {
		if (c->lf_owed) {
			out[w++] = '\n';
			c->lf_owed = 0;
			c->pos++;
			continue;
		}
		unsigned char ch = c->s.p[c->pos];
		if (ch == '\n' && (c->pos == 0 || c->s.p[c->pos - 1] != '\r')) {
			out[w++] = '\r';
			c->lf_owed = 1;
			continue;
		}
		out[w++] = ch;
		c->pos++;
	}
	return (ssize_t)w;
}

BIO *ev_der_bio(struct ev_span body, int b64)
{
	BIO *mem = BIO_new_mem_buf(body.p, (int)body.n), *f;

	if (mem == NULL || !b64)
		return mem;
	if ((f = BIO_new(BIO_f_base64())) == NULL) {
		BIO_free(mem);
		return NULL;
	}
	return BIO_push(f, mem);
}

int ev_is_enveloped(struct ev_span body, int b64)
{
	/* the OIDs of id-envelopedData (1.2.840.113549.1.7.3) and
	 * id-ct-authEnvelopedData (1.2.840.113549.1.9.16.1.23), which
	 * follow the outer SEQUENCE's tag and length */
	static const unsigned char env[] = { 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
		                             0xf7, 0x0d, 0x01, 0x07, 0x03 };
	static const unsigned char aenv[] = { 0x06, 0x0b, 0x2a, 0x86, 0x48,
		                              0x86, 0xf7, 0x0d, 0x01, 0x09,
		                              0x10, 0x01, 0x17 };
	unsigned char head[32];
	BIO *b = ev_der_bio(body, b64);
	int n = b ? BIO_read(b, head, sizeof(head)) : 0, found = 0;

	BIO_free_all(b);
	for (int off = 2; off <= 6 && !found; off++)
		found = (n >= off + (int)sizeof(env) &&
		         memcmp(head + off, env, sizeof(env)) == 0) ||
		        (n >= off + (int)sizeof(aenv) &&
		         memcmp(head + off, aenv, sizeof(aenv)) == 0);
	return found;
}
