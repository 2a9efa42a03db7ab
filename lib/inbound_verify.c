/*
 * inbound_verify -- the multipart/signed shape of inbound mail: find the
 * two parts between the boundaries in a spooled body (one pass, bounded
 * memory), stream the first part's bytes exactly as they are to
 * smime_verify_detached_fn and decode the signature part; plus the look
 * for S/MIME parts nested in a multipart, and writing the new body.
 */
#include "db.h"
#include "inbound_int.h"
#include "ocsp_cache.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

/* Lines of a spool with their offsets; only the first LINE_KEEP octets of
 * a line are kept (enough for a delimiter or a field name). */
#define LINE_KEEP 1000

struct lines {
	struct spool *sp;
	unsigned char buf[65536];
	size_t len, pos;
	size_t off; /* offset of buf[pos] in the spool */
	unsigned char line[LINE_KEEP];
	size_t keep;  /* octets in line */
	size_t start; /* offset of the line */
	size_t total; /* its length with the line end */
	size_t eol;   /* 2 (CRLF), 1 (LF) or 0 (the end) */
};

/* The next line.  Returns 1, 0 at the end, -1 on a read error. */
static int line_next(struct lines *l)
{
	int any = 0;

	l->keep = l->total = l->eol = 0;
	l->start = l->off;
	for (;;) {
		if (l->pos == l->len) {
			ssize_t n = spool_read(l->sp, l->buf, sizeof(l->buf));
			if (n < 0)
				return -1;
			if (n == 0)
				return any;
			l->len = (size_t)n;
			l->pos = 0;
		}
		unsigned char c = l->buf[l->pos++];
		l->off++;
		l->total++;
		any = 1;
		if (l->keep < LINE_KEEP)
			l->line[l->keep++] = c;
		if (c == '\n') {
			l->eol = l->total >= 2 && l->keep >= 2 &&
			                         l->line[l->keep - 2] == '\r'
			                 ? 2
			                 : 1;
			return 1;
		}
	}
}

/* 1 for "--boundary" (2 with "--" after: the close delimiter). */
static int delimiter(const struct lines *l, const char *b)
{
	size_t bl = strlen(b), n = l->keep - l->eol, i;

	if (bl == 0 || n < bl + 2 || memcmp(l->line, "--", 2) ||
	    memcmp(l->line + 2, b, bl))
		return 0;
	i = bl + 2;
	int close = n >= i + 2 && memcmp(l->line + i, "--", 2) == 0;
	for (i += close ? 2 : 0; i < n; i++)
		if (l->line[i] != ' ' && l->line[i] != '\t')
			return 0;
	return 1 + close;
}

/* A range [from, to) of a spool, read in order. */
struct range {
	struct spool *sp;
	size_t left;
};

static ssize_t range_rd(void *arg, void *buf, size_t len)
{
	struct range *r = arg;
	ssize_t n;

	if (r->left == 0)
		return 0;
	n = spool_read(r->sp, buf, len < r->left ? len : r->left);
	if (n > 0)
		r->left -= (size_t)n;
	return n == 0 ? -1 : n; /* shorter than scanned */
}

static int range_open(struct range *r, struct spool *sp, size_t from,
                      size_t len, char *err, size_t errlen)
{
	unsigned char buf[16384];

	r->sp = sp;
	if (spool_rewind(sp, err, errlen) != 0)
		return -1;
	while (from > 0) {
		ssize_t n = spool_read(sp, buf,
		                       from < sizeof(buf) ? from : sizeof(buf));
		if (n <= 0)
			return seterr(err, errlen, "cannot read the spool");
		from -= (size_t)n;
	}
	r->left = len;
	return 0;
}

/* Decode the signature part p (n octets: header, blank line, body) to
 * DER in *der.  NULL return: why. */
static const char *sig_der(char *p, size_t n, unsigned char **der,
                           size_t *derlen)
{
	struct mime_ct ct = { 0 };
	char *body = NULL, *ctv = NULL, *ctev = NULL;
	EVP_ENCODE_CTX *x;
	int ol = 0, fl = 0;

	for (size_t i = 0; i + 1 < n; i++)
		if (p[i] == '\n' &&
		    (p[i + 1] == '\n' ||
		     (p[i + 1] == '\r' && i + 2 < n && p[i + 2] == '\n'))) {
			body = p + i + (p[i + 1] == '\n' ? 2 : 3);
			p[i + 1] = '\0';
			break;
		}
	if (body == NULL)
		return "the signature part has no body";
	for (char *l = p; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : l) {
		if (strncasecmp(l, "Content-Type:", 13) == 0)
			ctv = l + 13;
		else if (strncasecmp(l, "Content-Transfer-Encoding:", 26) == 0)
			ctev = l + 26;
	}
	for (char *q = p; *q; q++) /* the values end at their line */
		if (*q == '\r' || (*q == '\n' && q[1] != ' ' && q[1] != '\t'))
			*q = '\0';
	mime_ct_parse(ctv, &ct);
	if (strcmp(ct.type, "application") ||
	    (strcmp(ct.subtype, "pkcs7-signature") &&
	     strcmp(ct.subtype, "x-pkcs7-signature")))
		return "the second part is not an S/MIME signature";
	n -= (size_t)(body - p);
	if (mime_cte_parse(ctev) != MIME_CTE_BASE64) {
		*der = malloc(n + 1);
		if (*der)
			memcpy(*der, body, n);
		*derlen = n;
		return *der ? NULL : "out of memory";
	}
	if ((*der = malloc(n / 4 * 3 + 80)) == NULL ||
	    (x = EVP_ENCODE_CTX_new()) == NULL)
		return "out of memory";
	EVP_DecodeInit(x);
	if (EVP_DecodeUpdate(x, *der, &ol, (unsigned char *)body, (int)n) < 0 ||
	    EVP_DecodeFinal(x, *der + ol, &fl) < 0) {
		EVP_ENCODE_CTX_free(x);
		return "the signature is not valid base64";
	}
	EVP_ENCODE_CTX_free(x);
	*derlen = (size_t)(ol + fl);
	return NULL;
}

/* Offsets of the two parts.  NULL: found; else why not. */
static const char *find_parts(struct lines *l, const char *b, size_t off[4])
{
	int state = 0, d, r;
	size_t preveol = 0;

	while ((r = line_next(l)) == 1) {
		d = delimiter(l, b);
		if (d && state == 0 && d == 1) {
			off[0] = l->start + l->total;
			state = 1;
		} else if (d && state == 1 && d == 1) {
			off[1] = l->start - preveol;
			off[2] = l->start + l->total;
			state = 2;
		} else if (d && state == 2) {
			off[3] = l->start - preveol;
			return off[1] < off[0] || off[3] < off[2]
			               ? "empty part in multipart/signed"
			               : NULL;
		} else if (d) {
			return "multipart/signed has not two parts";
		}
		preveol = l->eol;
	}
	return r < 0 ? "cannot read the spool"
	             : "multipart/signed is cut short";
}

int inb_verify_signed(struct inb *m, const struct mime_ct *ct,
                      struct spool *body, char *err, size_t errlen)
{
	struct inb_vctx c;
	struct lines *l = calloc(1, sizeof(*l));
	size_t off[4] = { 0 }, dl = 0;
	unsigned char *der = NULL;
	char *sig = NULL;
	const char *why;
	struct range r;
	int rc = -1;

	if (l == NULL)
		return seterr(err, errlen, "out of memory");
	l->sp = body;
	if (spool_rewind(body, err, errlen) != 0)
		goto out;
	if ((why = find_parts(l, ct->boundary, off)) != NULL) {
		inb_permerror(m, why);
		rc = 0;
		goto out;
	}
	if (off[3] - off[2] > INB_SIG_MAX) {
		inb_permerror(m, "the signature part is too large");
		rc = 0;
		goto out;
	}
	if ((sig = malloc(off[3] - off[2] + 1)) == NULL)
		goto oom;
	if (range_open(&r, body, off[2], off[3] - off[2], err, errlen) != 0)
		goto out;
	for (size_t got = 0; got < off[3] - off[2];) {
		ssize_t n = range_rd(&r, sig + got, off[3] - off[2] - got);
		if (n <= 0) {
			seterr(err, errlen, "cannot read the spool");
			goto out;
		}
		got += (size_t)n;
	}
	sig[off[3] - off[2]] = '\0';
	if ((why = sig_der(sig, off[3] - off[2], &der, &dl)) != NULL) {
		inb_permerror(m, why);
		rc = 0;
		goto out;
	}
	if (range_open(&r, body, off[0], off[1] - off[0], err, errlen) != 0)
		goto out;
	inb_verify_begin(m, &c);
	smime_verify_detached_fn(&c.o, range_rd, &r, der, dl, &m->v);
	inb_verify_end(m, &c);
	rc = 0;
	goto out;
oom:
	seterr(err, errlen, "out of memory");
out:
	free(der);
	free(sig);
	free(l);
	return rc;
}

void inb_verify_begin(struct inb *m, struct inb_vctx *c)
{
	const struct config *cfg = m->snap->cfg;

	memset(c, 0, sizeof(*c));
	c->o.ca_file = cfg->ca_file;
	c->o.store = m->snap->trust;
	c->o.now = time(NULL);
	c->o.from = m->from[0] ? m->from : NULL; /* parsed at inb_eoh */
	/* kept open for the thread: not one open per message */
	c->db = db_thread_readonly(cfg->database, c->dberr, sizeof(c->dberr));
	c->o.db = c->db;
}

void inb_verify_end(struct inb *m, struct inb_vctx *c)
{
	m->signed_seen = 1;
	/* ocsp = true: a signer its responder says is revoked fails */
	ocsp_cache_judge(m->snap->ocsp, &m->v, c->o.now);
	if (c->db == NULL && m->v.result == SMIME_PASS) {
		m->v.result = SMIME_TEMPERROR;
		snprintf(m->v.reason, sizeof(m->v.reason),
		         "revocation not checked: %s", c->dberr);
	}
	c->db = NULL; /* the thread's: not closed here */
}

int inb_nested_pkcs7(struct spool *body)
{
	struct lines *l = calloc(1, sizeof(*l));
	char e[64];
	int r = 0, found = 0;

	if (l == NULL || spool_rewind(body, e, sizeof(e)) != 0) {
		free(l);
		return -1;
	}
	l->sp = body;
	while (!found && (r = line_next(l)) == 1) {
		l->line[l->keep < LINE_KEEP ? l->keep : LINE_KEEP - 1] = '\0';
		found = strncasecmp((char *)l->line, "Content-Type:", 13) ==
		                0 &&
		        strcasestr((char *)l->line, "pkcs7-mime") != NULL;
	}
	free(l);
	return found ? 1 : r < 0 ? -1 : 0;
}

int inb_write_body(struct inb *m, mime_write_fn out, void *outarg, char *err,
                   size_t errlen)
{
	unsigned char *buf = malloc(65536);
	ssize_t n;
	int rc = -1;

	if (buf == NULL)
		return seterr(err, errlen, "out of memory");
	if (spool_rewind(m->newbody, err, errlen) != 0)
		goto out;
	while ((n = spool_read(m->newbody, buf, 65536)) > 0)
		if (out(outarg, buf, (size_t)n) != 0) {
			seterr(err, errlen, "cannot write the new body");
			goto out;
		}
	if (n < 0)
		seterr(err, errlen, "cannot read the new body");
	else
		rc = 0;
out:
	free(buf);
	return rc;
}
