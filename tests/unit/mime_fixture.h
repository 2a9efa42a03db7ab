/* mime_fixture.h -- what the lib/mime_*.c unit tests share (header-only,
 * static inline): a growable buffer that is also the pass-2 sink, a reader
 * with several chunkings, run_ex/run (scan + rewrite one body, check the
 * identity copy against the engine), and QP/base64 decoders and part
 * finders for the checks. */
#ifndef MIME_FIXTURE_H
#define MIME_FIXTURE_H

#include "mime.h"
#include "tap.h"

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

/* ------------------------------------------------------------------ */
/* growable byte buffer, also the pass-2 sink */

struct buf {
	unsigned char *p;
	size_t n, cap;
	size_t maxw, calls;
	long fail_after; /* sink fails after that many calls when >= 0 */
};

static size_t g_maxw; /* largest chunk any sink ever got */
/* runs whose scan said "identity", and of those, the ones where the copy
 * differed from what the parser writes */
static size_t g_ident, g_ident_bad;

static inline void buf_add(struct buf *b, const void *p, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		size_t nc = b->cap ? b->cap : 256;
		while (nc < b->n + n + 1)
			nc *= 2;
		b->p = realloc(b->p, nc);
		if (b->p == NULL) {
			fprintf(stderr, "out of memory\n");
			exit(2);
		}
		b->cap = nc;
	}
	if (n > 0)
		memcpy(b->p + b->n, p, n);
	b->n += n;
	b->p[b->n] = '\0';
}

static inline void buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static inline void buf_free(struct buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static inline int sink(void *arg, const unsigned char *p, size_t n)
{
	struct buf *b = arg;

	if (b->fail_after >= 0 && (long)b->calls >= b->fail_after)
		return -1;
	b->calls++;
	if (n > b->maxw)
		b->maxw = n;
	if (n > g_maxw)
		g_maxw = n;
	buf_add(b, p, n);
	return 0;
}

/* ------------------------------------------------------------------ */
/* body source for pass 2 */

static inline unsigned rnd_next(unsigned *s)
{
	*s = *s * 1103515245u + 12345u;
	return (*s >> 16) & 0x7fff;
}

struct src {
	const unsigned char *p;
	size_t n, off;
	int mode; /* 0 all, 1 byte by byte, 2 random sizes */
	unsigned seed;
	int fail;
	const unsigned char *alt; /* different bytes to hand out */
};

static inline ssize_t src_read(void *arg, unsigned char *b, size_t len)
{
	struct src *s = arg;
	size_t k = s->n - s->off;

	if (s->fail)
		return -1;
	if (s->mode == 1 && k > 1)
		k = 1;
	else if (s->mode == 2) {
		size_t r = 1 + rnd_next(&s->seed) % 3000;
		if (k > r)
			k = r;
	}
	if (k > len)
		k = len;
	memcpy(b, (s->alt ? s->alt : s->p) + s->off, k);
	s->off += k;
	return (ssize_t)k;
}

/* ------------------------------------------------------------------ */
/* one full run: pass 1 then pass 2 */

struct res {
	int rc1, rc;
	int needs;
	size_t parts, bytes;
	struct buf out;
	char err[256];
};

enum { FEED_ALL, FEED_BYTES, FEED_RANDOM, FEED_64K, FEED_1000 };

static inline void run_ex(const char *ct, const char *cte,
                          const struct mime_header *h, size_t nh,
                          const unsigned char *body, size_t blen, int feed,
                          unsigned seed, int readmode, struct res *r)
{
	struct mime_scan *s = mime_scan_new(ct, cte);
	struct src src;
	size_t off = 0;

	memset(r, 0, sizeof(*r));
	r->out.fail_after = -1;
	r->rc1 = -1;
	r->rc = -1;
	if (s == NULL)
		return;
	r->rc1 = 0;
	while (off < blen && r->rc1 == 0) {
		size_t k = blen - off;
		if (feed == FEED_BYTES)
			k = 1;
		else if (feed == FEED_RANDOM)
			k = 1 + rnd_next(&seed) % 700;
		else if (feed == FEED_64K)
			k = 65536;
		else if (feed == FEED_1000)
			k = 1000;
		if (k > blen - off)
			k = blen - off;
		r->rc1 = mime_scan_feed(s, body + off, k, r->err,
		                        sizeof(r->err));
		off += k;
	}
	if (r->rc1 == 0)
		r->rc1 = mime_scan_finish(s, r->err, sizeof(r->err));
	if (r->rc1 == 0) {
		r->needs = mime_scan_needs_rewrite(s);
		r->parts = mime_scan_parts(s);
		r->bytes = mime_scan_bytes(s);
		memset(&src, 0, sizeof(src));
		src.p = body;
		src.n = blen;
		src.mode = readmode;
		src.seed = seed + 7;
		r->rc = mime_rewrite(s, h, nh, src_read, &src, sink, &r->out,
		                     r->err, sizeof(r->err));
		if (mime_scan_identity(s)) {
			/* the copy against the parser, on every run */
			struct buf o2 = { .fail_after = -1 };
			char e2[256];
			int rc2;
			memset(&src, 0, sizeof(src));
			src.p = body;
			src.n = blen;
			mime_scan_fastpath(s, 0);
			rc2 = mime_rewrite(s, h, nh, src_read, &src, sink, &o2,
			                   e2, sizeof(e2));
			mime_scan_fastpath(s, 1);
			g_ident++;
			if (rc2 != r->rc || o2.n != r->out.n ||
			    (o2.n && memcmp(o2.p, r->out.p, o2.n) != 0))
				g_ident_bad++;
			buf_free(&o2);
		}
	}
	mime_scan_free(s);
	if (r->out.p == NULL)
		buf_add(&r->out, "", 0);
}

/* Headers from ct and cte (either may be NULL). */
static inline void run(const char *ct, const char *cte,
                       const unsigned char *body, size_t blen, struct res *r)
{
	struct mime_header h[2];
	size_t nh = 0;

	if (ct) {
		h[nh].name = "Content-Type";
		h[nh++].value = ct;
	}
	if (cte) {
		h[nh].name = "Content-Transfer-Encoding";
		h[nh++].value = cte;
	}
	run_ex(ct, cte, h, nh, body, blen, FEED_ALL, 1, 0, r);
}

static inline void runs(const char *ct, const char *cte, const char *body,
                        struct res *r)
{
	run(ct, cte, (const unsigned char *)body, strlen(body), r);
}

/* ------------------------------------------------------------------ */
/* checks and decoders */

/* 7-bit safe: no 8bit, no NUL, CR and LF only as CRLF, lines <= maxline */
static inline int clean7(const unsigned char *p, size_t n, size_t maxline)
{
	size_t col = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = p[i];
		if (c >= 0x80 || c == 0 || c == '\n')
			return 0;
		if (c == '\r') {
			if (i + 1 >= n || p[i + 1] != '\n')
				return 0;
			i++;
			col = 0;
			continue;
		}
		if (++col > maxline)
			return 0;
	}
	return 1;
}

static inline size_t max_line(const char *p, size_t n)
{
	size_t col = 0, mx = 0;

	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n') {
			i++;
			col = 0;
			continue;
		}
		if (++col > mx)
			mx = col;
	}
	return mx;
}

static inline int hexv(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Lenient QP decoder (RFC 2045 6.7): strips trailing whitespace, soft
 * breaks join lines, hard breaks become CRLF, bad '=' stays literal. */
static inline void qp_decode(const char *in, size_t n, struct buf *out)
{
	size_t i = 0;

	for (;;) {
		size_t e = i, le;
		int soft;
		while (e < n &&
		       !(in[e] == '\r' && e + 1 < n && in[e + 1] == '\n'))
			e++;
		le = e;
		while (le > i && (in[le - 1] == ' ' || in[le - 1] == '\t'))
			le--;
		soft = le > i && in[le - 1] == '=';
		if (soft)
			le--;
		for (size_t k = i; k < le; k++) {
			unsigned char c = (unsigned char)in[k];
			if (c == '=' && k + 2 < le && hexv(in[k + 1]) >= 0 &&
			    hexv(in[k + 2]) >= 0) {
				c = (unsigned char)(hexv(in[k + 1]) * 16 +
				                    hexv(in[k + 2]));
				k += 2;
			}
			buf_add(out, &c, 1);
		}
		if (e >= n)
			break;
		if (!soft)
			buf_add(out, "\r\n", 2);
		i = e + 2;
	}
}

static inline void b64_decode(const char *in, size_t n, struct buf *out)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrst"
	                        "uvwxyz0123456789+/";
	uint32_t acc = 0;
	int bits = 0;

	for (size_t i = 0; i < n; i++) {
		const char *q;
		if (in[i] == '\0' || (q = strchr(a, in[i])) == NULL)
			continue;
		acc = (acc << 6) | (uint32_t)(q - a);
		bits += 6;
		if (bits >= 8) {
			unsigned char c = (unsigned char)(acc >> (bits - 8));
			bits -= 8;
			buf_add(out, &c, 1);
		}
	}
}

/* LF -> CRLF (CRLF stays, bare CR stays). */
static inline void crlf(const unsigned char *p, size_t n, struct buf *out)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			buf_add(out, "\r", 1);
		buf_add(out, p + i, 1);
	}
}

/* A part in the output: header block starts at marker (put first in each
 * test part), body runs from the blank line to the next "\r\n--". */
struct part {
	const char *hdr, *body;
	size_t hlen, blen;
	char cte[32];
};

static inline int find_part(const struct buf *o, const char *marker,
                            struct part *pt)
{
	const char *m = strstr((const char *)o->p, marker);
	const char *e, *end, *c;

	memset(pt, 0, sizeof(*pt));
	if (m == NULL || (e = strstr(m, "\r\n\r\n")) == NULL)
		return -1;
	pt->hdr = m;
	pt->hlen = (size_t)(e + 2 - m);
	pt->body = e + 4;
	end = strstr(pt->body, "\r\n--");
	if (end == NULL)
		end = (const char *)o->p + o->n;
	pt->blen = (size_t)(end - pt->body);
	c = m;
	while ((c = strstr(c, "Content-Transfer-Encoding: ")) != NULL &&
	       c < pt->hdr + pt->hlen) {
		size_t k = 0;
		c += 27;
		while (k + 1 < sizeof(pt->cte) && c[k] && c[k] != '\r')
			pt->cte[k] = c[k], k++;
		pt->cte[k] = '\0';
		break;
	}
	return 0;
}

static inline void decode_part(const struct part *pt, struct buf *out)
{
	if (strcmp(pt->cte, "quoted-printable") == 0)
		qp_decode(pt->body, pt->blen, out);
	else if (strcmp(pt->cte, "base64") == 0)
		b64_decode(pt->body, pt->blen, out);
	else
		buf_add(out, pt->body, pt->blen);
}

/* Decoded part equals want (n bytes)? */
static inline int part_is(const struct buf *o, const char *marker,
                          const void *want, size_t n, const char *cte)
{
	struct part pt;
	struct buf d = { 0 };
	int same;

	if (find_part(o, marker, &pt) != 0)
		return 0;
	if (cte && strcmp(pt.cte, cte) != 0) {
		printf("#   %s: cte '%s', want '%s'\n", marker, pt.cte, cte);
		return 0;
	}
	decode_part(&pt, &d);
	same = d.n == n && (n == 0 || memcmp(d.p, want, n) == 0);
	if (!same)
		printf("#   %s: decoded %zu bytes, want %zu\n", marker, d.n, n);
	buf_free(&d);
	return same;
}

/* The part's decoded text equals the CRLF form of text. */
static inline int part_text_is(const struct buf *o, const char *marker,
                               const char *text, const char *cte)
{
	struct buf want = { 0 };
	int r;

	crlf((const unsigned char *)text, strlen(text), &want);
	buf_add(&want, "", 0);
	r = part_is(o, marker, want.p, want.n, cte);
	buf_free(&want);
	return r;
}

static inline const char *body_of(const struct buf *o)
{
	const char *e = strstr((const char *)o->p, "\r\n\r\n");

	return e ? e + 4 : "";
}

/* runs() ct, cte and body, and the entity's body must be want. */
static inline void body_case(const char *ct, const char *cte, const char *body,
                             const char *want, const char *what)
{
	struct res r;

	runs(ct, cte, body, &r);
	is_str(body_of(&r.out), want, "%s", what);
	buf_free(&r.out);
}

/* The body of entity o, QP-decoded, equals the CRLF form of p[0..n). */
static inline int qp_body_is(const struct buf *o, const void *p, size_t n)
{
	struct buf d = { 0 }, want = { 0 };
	const char *b = body_of(o);
	int same;

	qp_decode(b, strlen(b), &d);
	crlf(p, n, &want);
	same = d.n == want.n && (d.n == 0 || memcmp(d.p, want.p, d.n) == 0);
	buf_free(&d);
	buf_free(&want);
	return same;
}

static inline int ends_with(const struct buf *o, const char *s)
{
	size_t k = strlen(s);

	return o->n >= k && memcmp(o->p + o->n - k, s, k) == 0;
}

static inline size_t count(const char *hay, const char *needle)
{
	size_t c = 0;

	while ((hay = strstr(hay, needle)) != NULL) {
		c++;
		hay += strlen(needle);
	}
	return c;
}

static inline double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------ */
/* The checks every mime test file ends with: no sink ever got more than
 * 64 KiB at once, and at least min_ident runs were identity copies, each
 * equal to what the parser writes. */
static inline void final_checks(size_t min_ident)
{
	ok(g_maxw <= 65536, "output: no write larger than 64 KiB (max %zu)",
	   g_maxw);
	ok(g_ident >= min_ident && g_ident_bad == 0,
	   "identity copy: writes what the parser writes, in every run whose "
	   "body needed no change (%zu runs, %zu differ)",
	   g_ident, g_ident_bad);
}

#endif
