/*
 * fuzz_mime -- libFuzzer target for lib/mime_*.c: the Content-Type and
 * Content-Transfer-Encoding parsers, the incremental scanner (pass 1), the
 * CRLF canonicalizer and 7-bit rewriter (pass 2) and the base64 encoders.
 *
 * Input: a message (top-level header block, blank line, body), the same
 * files as the eom target and tests/milter/fuzz-invariant.sh use.  The size
 * and last byte pick a second chunk size the body is fed in, as an MTA may
 * split it anywhere.  Besides the sanitizers' own checks, it asserts properties the
 * API promises (lib/mime.h):
 *   - the scan does not depend on how the body is split into chunks
 *     (one chunk and small chunks give the same parts, byte count,
 *     needs_rewrite and rewritten entity);
 *   - mime_rewrite run twice on one scan writes identical bytes;
 *   - when the scan says "identity", the copy mime_rewrite then makes
 *     equals what the parser writes (mime_scan_fastpath off);
 *   - the entity has no bare LF and no line over 998 octets, and past the
 *     top-level header block (values from the MTA, kept) no bare CR;
 *   - mime_b64_feed in pieces equals mime_base64_write in one go.
 * Build and run with `make fuzz` (tests/fuzz/README).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mime.h"

#define MAXHDR 64

struct buf {
	unsigned char *p;
	size_t len, cap;
};

static int buf_write(void *arg, const unsigned char *p, size_t n)
{
	struct buf *b = arg;

	if (n > 65536)
		abort(); /* promised: chunks of at most 64 KiB */
	if (b->len + n > b->cap) {
		size_t nc = (b->len + n) * 2 + 64;
		unsigned char *np = realloc(b->p, nc);
		if (np == NULL)
			return -1;
		b->p = np;
		b->cap = nc;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

struct reader {
	const unsigned char *p;
	size_t len, off, step;
};

static ssize_t rd(void *arg, unsigned char *out, size_t n)
{
	struct reader *r = arg;
	size_t k = r->len - r->off;

	if (k > n)
		k = n;
	if (r->step && k > r->step)
		k = r->step;
	memcpy(out, r->p + r->off, k);
	r->off += k;
	return (ssize_t)k;
}

/* Split the input into header fields and body, the way offline -t does
 * (a header line is "Name:"; folded lines start with space or tab). */
static size_t split(const unsigned char *d, size_t len, char **names,
                    char **values, size_t *nh)
{
	size_t p = 0;

	*nh = 0;
	while (p < len) {
		size_t start = p, colon, e;
		if (d[p] == '\n')
			return p + 1;
		if (d[p] == '\r' && p + 1 < len && d[p + 1] == '\n')
			return p + 2;
		colon = p;
		while (colon < len && d[colon] != ':' && d[colon] > 32 &&
		       d[colon] < 127)
			colon++;
		if (colon == p || colon >= len || d[colon] != ':')
			return start;
		e = colon;
		do {
			const unsigned char *nl = memchr(d + e, '\n', len - e);
			e = nl ? (size_t)(nl - d) + 1 : len;
		} while (e < len && (d[e] == ' ' || d[e] == '\t'));
		if (*nh < MAXHDR) {
			size_t vs = colon + 1, ve = e;
			while (vs < ve && (d[vs] == ' ' || d[vs] == '\t'))
				vs++;
			while (ve > vs &&
			       (d[ve - 1] == '\n' || d[ve - 1] == '\r'))
				ve--;
			names[*nh] =
			        strndup((const char *)d + start, colon - start);
			values[*nh] = malloc(ve - vs + 1);
			/* values are C strings: a NUL cuts them, as in libmilter */
			memcpy(values[*nh], d + vs, ve - vs);
			values[*nh][ve - vs] = '\0';
			(*nh)++;
		}
		p = e;
	}
	return p;
}

static struct mime_scan *scan(const char *ct, const char *cte,
                              const unsigned char *b, size_t n, size_t step)
{
	char err[256];
	struct mime_scan *s = mime_scan_new(ct, cte);

	if (s == NULL)
		return NULL;
	for (size_t off = 0; off < n;) {
		size_t k = n - off;
		if (step && k > step)
			k = step;
		if (mime_scan_feed(s, b + off, k, err, sizeof(err)) != 0)
			abort(); /* only out of memory may fail */
		off += k;
	}
	if (mime_scan_finish(s, err, sizeof(err)) != 0)
		abort();
	return s;
}

static int rewrite(struct mime_scan *s, const struct mime_header *h, size_t nh,
                   const unsigned char *b, size_t n, size_t rstep,
                   struct buf *out)
{
	char err[256];
	struct reader r = { b, n, 0, rstep };

	out->len = 0;
	return mime_rewrite(s, h, nh, rd, &r, buf_write, out, err, sizeof(err));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t steps[] = { 1, 2, 3, 7, 64, 1000, 4096, 65536 };
	char *names[MAXHDR], *values[MAXHDR];
	struct mime_header hdrs[MAXHDR];
	size_t nh = 0, nch = 0, bodyoff, bodylen, step;
	const char *ct = NULL, *cte = NULL;
	const unsigned char *body;
	struct mime_scan *s1, *s2;
	struct buf o1 = { 0 }, o2 = { 0 }, o3 = { 0 };
	struct mime_ct pct;
	int r1, r2, r3;

	if (size < 1)
		return 0;
	step = steps[(size ^ data[size - 1]) % 8];
	bodyoff = split(data, size, names, values, &nh);
	body = data + bodyoff;
	bodylen = size - bodyoff;
	for (size_t i = 0; i < nh; i++) {
		if (strncasecmp(names[i], "Content-", 8) != 0)
			continue;
		hdrs[nch].name = names[i];
		hdrs[nch].value = values[i];
		nch++;
		if (ct == NULL && strcasecmp(names[i], "Content-Type") == 0)
			ct = values[i];
		if (cte == NULL &&
		    strcasecmp(names[i], "Content-Transfer-Encoding") == 0)
			cte = values[i];
		mime_ct_parse(values[i], &pct);
		(void)mime_cte_parse(values[i]);
	}

	s1 = scan(ct, cte, body, bodylen, 0);
	s2 = scan(ct, cte, body, bodylen, step);
	if (s1 == NULL || s2 == NULL)
		goto out;
	if (mime_scan_parts(s1) != mime_scan_parts(s2) ||
	    mime_scan_bytes(s1) != mime_scan_bytes(s2) ||
	    mime_scan_bytes(s1) != bodylen ||
	    mime_scan_needs_rewrite(s1) != mime_scan_needs_rewrite(s2) ||
	    mime_scan_identity(s1) != mime_scan_identity(s2)) {
		fprintf(stderr, "scan depends on chunking (step %zu)\n", step);
		abort();
	}
	r1 = rewrite(s1, hdrs, nch, body, bodylen, 0, &o1);
	r2 = rewrite(s1, hdrs, nch, body, bodylen, step, &o2);
	r3 = rewrite(s2, hdrs, nch, body, bodylen, 0, &o3);
	if (r1 != r2 || r1 != r3) {
		fprintf(stderr, "rewrite result differs: %d %d %d\n", r1, r2,
		        r3);
		abort();
	}
	if (r1 == 0 && getenv("FUZZ_MIME_DUMP"))
		fwrite(o1.p, 1, o1.len,
		       stderr); /* for a human looking at a crash */
	if (r1 == 0) {
		if (o1.len != o2.len || memcmp(o1.p, o2.p, o1.len) != 0) {
			fprintf(stderr, "two rewrites of one scan differ\n");
			abort();
		}
		if (o1.len != o3.len || memcmp(o1.p, o3.p, o1.len) != 0) {
			fprintf(stderr, "rewrite depends on scan chunking\n");
			abort();
		}
		if (mime_scan_identity(s1)) {
			int r4;
			mime_scan_fastpath(s2, 0);
			r4 = rewrite(s2, hdrs, nch, body, bodylen, step, &o3);
			if (r4 != 0 || o1.len != o3.len ||
			    memcmp(o1.p, o3.p, o1.len) != 0) {
				fprintf(stderr, "identity copy != parser\n");
				abort();
			}
		}
		/* the top-level header block ends at the first blank line */
		size_t nhb = o1.len;
		if (o1.len >= 2 && o1.p[0] == '\r' && o1.p[1] == '\n') {
			nhb = 2;
		} else {
			const unsigned char *e =
			        memmem(o1.p, o1.len, "\r\n\r\n", 4);
			if (e != NULL)
				nhb = (size_t)(e - o1.p) + 4;
		}
		for (size_t i = 0, ls = 0; i < o1.len; i++) {
			if (o1.p[i] == '\n' &&
			    (i == 0 || o1.p[i - 1] != '\r')) {
				fprintf(stderr, "bare LF at %zu of entity\n",
				        i);
				abort();
			}
			if (o1.p[i] == '\n') {
				ls = i + 1;
				continue;
			}
			if (o1.p[i] != '\r' && i + 1 - ls > 998) {
				fprintf(stderr, "line over 998 at %zu\n", i);
				abort();
			}
			if (i >= nhb && o1.p[i] == '\r' &&
			    (i + 1 == o1.len || o1.p[i + 1] != '\n')) {
				fprintf(stderr, "bare CR at %zu of entity\n",
				        i);
				abort();
			}
		}
	}

	/* the base64 encoders agree */
	{
		struct buf a = { 0 }, b = { 0 };
		struct mime_b64 *e = mime_b64_new(buf_write, &b);
		size_t n = size < 4096 ? size : 4096;
		mime_base64_write(data, n, buf_write, &a);
		if (e) {
			for (size_t off = 0; off < n; off += step)
				mime_b64_feed(e, data + off,
				              n - off < step ? n - off : step);
			mime_b64_end(e);
			if (a.len != b.len || memcmp(a.p, b.p, a.len) != 0) {
				fprintf(stderr, "b64 stream != b64 write\n");
				abort();
			}
		}
		mime_b64_free(e);
		free(a.p);
		free(b.p);
	}
out:
	mime_scan_free(s1);
	mime_scan_free(s2);
	free(o1.p);
	free(o2.p);
	free(o3.p);
	for (size_t i = 0; i < nh; i++) {
		free(names[i]);
		free(values[i]);
	}
	return 0;
}
