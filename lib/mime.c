/*
 * mime.c -- incremental MIME structure scanner and 7-bit-safe rewriter.
 *
 * How it works
 * ------------
 * One line-oriented parser (the "engine") runs in both passes over the same
 * body bytes, so both passes see exactly the same tree of entities (an entity
 * is a header block plus its body; entity 0 is the top level, whose headers
 * the MTA handed over separately).  Pass 1 records what each entity's body
 * holds (8bit bytes, NUL, bare CR, over-long lines, ...); mime_scan_finish
 * turns that into an action per entity.  Pass 2 runs the same engine again
 * and a writer applies the recorded actions while the bytes stream through.
 * Nothing depends on chunking: the engine assembles lines itself and keeps at
 * most LMAX bytes of one line; longer lines are handed on in pieces.
 * When pass 1 finds that pass 2 would change nothing (every line end CR LF,
 * no entity to re-encode, no delimiter to add), the scan is an "identity":
 * pass 2 then copies the body octets (up to the outermost close delimiter
 * when a blank epilogue is dropped) instead of running the engine again.
 * tests/unit/test_mime and tests/fuzz/fuzz_mime check the copy against the
 * engine's output (mime_scan_fastpath).
 *
 * The body of an entity is made of "regions": the content of a leaf, the
 * preamble (region A) and the epilogue (region B) of a multipart.  Each
 * region is written one of these ways: copied, quoted-printable encoded,
 * base64 encoded, an existing QP or base64 encoding re-wrapped, or dropped.
 *
 * Behaviour decisions (mime.h has the contract):
 *
 *  - A delimiter line is "--" boundary, optionally "--" (close), then only
 *    spaces/tabs, and at most 998 octets long (a longer line is content: it
 *    could not cross SMTP unchanged anyway).  Boundaries compare
 *    case-sensitively.  The innermost open multipart is tried first; a
 *    delimiter of an outer multipart ends every part inside it.  After its
 *    close delimiter a multipart's boundary is no longer recognized (the rest
 *    up to an outer delimiter is epilogue).
 *
 *  - A multipart that saw at least one delimiter but no close delimiter
 *    before the end of the body or before an outer delimiter gets a close
 *    delimiter written for it, so the signed entity is well-formed.  The
 *    content of its last part is the same with or without it (the line end
 *    before a delimiter belongs to the delimiter).
 *
 *  - A multipart without usable structure -- no or empty boundary parameter,
 *    a boundary longer than 255 octets (struct mime_ct keeps 255), a
 *    boundary that never appears as a delimiter, a CTE other than
 *    7bit/8bit/binary, nested deeper than MAXD or past the MAXENT entity cap
 *    -- is treated as one opaque text leaf: its bytes are kept, and when they
 *    are not 7-bit safe (or the CTE says 8bit/binary) they are
 *    quoted-printable encoded and the CTE header says quoted-printable.  The
 *    Content-Type stays.  Strictly RFC 2046 forbids QP on a multipart, but
 *    such an entity has no parts to show anyway, decoding gives the bytes
 *    back, the signature covers exactly what we write, and rewriting the
 *    Content-Type would change the message more than the CTE does.  The same
 *    rule covers message/rfc822 that cannot be entered (bad CTE, too deep,
 *    entity cap reached).
 *
 *  - Preamble and epilogue of a structured multipart carry no content
 *    (readers ignore them).  If one is not 7-bit safe it is QP-escaped as a
 *    whole, so no relay has a reason to touch it.  The outermost multipart's
 *    epilogue is dropped when it is only blank/whitespace lines, and then the
 *    entity ends with the close delimiter and no CRLF.
 *
 *  - Leaves: CTE 8bit or binary -> always re-encoded (text/... and default
 *    text -> QP, else base64); 7bit, absent or unknown (x-uuencode...) ->
 *    re-encoded only when the bytes are not 7-bit safe (unknown encodings are
 *    then treated like binary: their raw bytes become the content); QP and
 *    base64 are only re-wrapped when not 7-bit safe (line > 998, raw 8bit,
 *    NUL or bare CR; lines of 77..998 octets are left alone).  message/rfc822
 *    and message/news are entered; other message/... subtypes are text leaves.
 *    Parts of multipart/digest without a Content-Type are message/rfc822.
 *
 *  - Header lines of nested entities are copied as they are (8bit bytes in
 *    them too); only line ends become CRLF.  When the CTE changes, the first
 *    CTE field (with its continuation lines) is replaced, later ones are
 *    dropped, or one is added at the end of the block.  The first
 *    Content-Type and the first CTE field count.  A part whose header block
 *    never ends with a blank line (ended by a delimiter or the end of the
 *    body) has no body and is copied unchanged.
 *
 *  - Limits: MAXD (32) levels; MAXENT (10000) entities, after which no
 *    delimiter is recognized and the rest of the body belongs to the current
 *    region (which is then made 7-bit safe as a whole); HMAX bytes of one
 *    Content-Type or CTE value are remembered.
 *
 *  - QP output lines are at most 76 characters; a '-' opening a line that
 *    follows a soft break is written =2D so a soft break can never forge a
 *    delimiter, and "From " opening any line is written =46rom.
 *
 *  - Re-wrapping existing QP keeps =XX escapes whole, escapes raw bytes
 *    that are not printable ASCII, writes a '=' that starts no valid escape
 *    as =3D (what robust decoders make of it), keeps the original soft
 *    breaks and drops trailing whitespace (transport padding that decoders
 *    delete).  A whitespace run of more than WSHOLD octets is emitted before
 *    we know whether it is trailing; if it was, the decoded text keeps it.
 *    Re-wrapping base64 keeps only alphabet characters and '='.
 *
 *  - Top-level header values are written with CRLF folding; an empty or
 *    all-whitespace continuation line is dropped and a continuation line not
 *    starting with whitespace gets one space, so a value can never end the
 *    header block or start a new field.  A line over LMAX octets is folded
 *    before a space or tab (the value unfolds unchanged); when there is no
 *    such place the rewrite fails rather than sign a line a relay would
 *    break (found by tests/fuzz/fuzz_eom).
 */
#include "mime.h"

#include <stdint.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define LMAX    998   /* longest line that may be a delimiter */
#define MAXD    32    /* nesting depth (frames) */
#define MAXENT  10000 /* entities (header block + body) */
#define HMAX    16384 /* bytes of one Content-Type / CTE value kept */
#define OBUF    65536 /* largest chunk handed to the writer */
#define RBUF    65536 /* pass-2 read size */
#define WSHOLD  1024  /* whitespace held while re-wrapping QP */
#define QPLINE  75    /* QP characters per line before the soft break */
#define B64LINE 76

enum { EOL_NONE = 0, EOL_LF, EOL_CRLF, EOL_EOF };
enum { K_LEAF = 0, K_MULTI, K_MSG };
enum { ST_HDRS = 0, ST_A, ST_B, ST_PARTS };
enum { LM_NEW = 0, LM_BUF, LM_STREAM };
enum { A_PASS = 0, A_QP, A_B64, A_QPWRAP, A_B64WRAP, A_DROP };
enum { H_NONE = 0, H_QP, H_B64, H_7BIT };

#define F_8BIT     0x01
#define F_NUL      0x02
#define F_CR       0x04
#define F_LONG     0x08
#define F_NONBLANK 0x10
#define F_BADUTF8  0x20
#define F_UNSAFE   (F_8BIT | F_NUL | F_CR | F_LONG)

static const unsigned char empty_buf[1];

/* ------------------------------------------------------------------ */
/* small helpers */

static int lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

static int is_sp(int c)
{
	return c == ' ' || c == '\t';
}

static int ci_eq(const unsigned char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (lower(a[i]) != lower((unsigned char)b[i]))
			return 0;
	return 1;
}

static int ci_streq(const char *a, const char *b)
{
	size_t n = strlen(b);

	return strlen(a) == n && ci_eq((const unsigned char *)a, b, n);
}

static int seterr(char *err, size_t errlen, const char *msg)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "%s", msg);
	return -1;
}

/* ------------------------------------------------------------------ */
/* Content-Type and Content-Transfer-Encoding */

static int is_tok(int c)
{
	return c > 32 && c != 127 && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

/* Skip folding whitespace and (nested) comments. */
static const char *skip_cfws(const char *p)
{
	for (;;) {
		int depth = 0;

		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
			p++;
		if (*p != '(')
			return p;
		while (*p) {
			if (*p == '\\') {
				if (p[1])
					p++;
			} else if (*p == '(') {
				depth++;
			} else if (*p == ')' && --depth == 0) {
				p++;
				break;
			}
			p++;
		}
	}
}

/* Skip to the next ';' outside quotes and comments. */
static const char *skip_junk(const char *p)
{
	while (*p && *p != ';') {
		if (*p == '"') {
			p++;
			while (*p && *p != '"') {
				if (*p == '\\' && p[1])
					p++;
				p++;
			}
			if (*p)
				p++;
		} else if (*p == '(') {
			p = skip_cfws(p);
		} else {
			p++;
		}
	}
	return p;
}

static const char *take_token(const char *p, char *dst, size_t dsz, int lc)
{
	size_t n = 0;

	while (is_tok((unsigned char)*p)) {
		if (n + 1 < dsz)
			dst[n++] = (char)(lc ? lower((unsigned char)*p) : *p);
		p++;
	}
	dst[n] = '\0';
	return p;
}

static const char *take_value(const char *p, char *dst, size_t dsz)
{
	size_t n = 0;

	if (*p == '"') {
		p++;
		while (*p && *p != '"') {
			if (*p == '\\' && p[1])
				p++;
			if (*p != '\r' && *p != '\n' && n + 1 < dsz)
				dst[n++] = *p;
			p++;
		}
		if (*p == '"')
			p++;
	} else {
		while (*p && *p != ';' && *p != '(' && *p != '"' &&
		       (unsigned char)*p > ' ') {
			if (n + 1 < dsz)
				dst[n++] = *p;
			p++;
		}
	}
	dst[n] = '\0';
	return p;
}

static char *param_slot(struct mime_ct *ct, const char *attr, size_t *dsz)
{
	static const struct {
		const char *name;
		size_t off, size;
	} slots[] = {
		{ "boundary", offsetof(struct mime_ct, boundary),
		  sizeof(((struct mime_ct *)0)->boundary) },
		{ "charset", offsetof(struct mime_ct, charset),
		  sizeof(((struct mime_ct *)0)->charset) },
		{ "protocol", offsetof(struct mime_ct, protocol),
		  sizeof(((struct mime_ct *)0)->protocol) },
		{ "smime-type", offsetof(struct mime_ct, smime_type),
		  sizeof(((struct mime_ct *)0)->smime_type) },
		{ "name", offsetof(struct mime_ct, name),
		  sizeof(((struct mime_ct *)0)->name) },
	};

	for (size_t i = 0; i < sizeof(slots) / sizeof(slots[0]); i++) {
		char *dst = (char *)ct + slots[i].off;
		if (strcmp(attr, slots[i].name) == 0 && dst[0] == '\0') {
			*dsz = slots[i].size;
			return dst;
		}
	}
	return NULL;
}

int mime_ct_parse(const char *value, struct mime_ct *out)
{
	const char *p, *q;

	memset(out, 0, sizeof(*out));
	if (value == NULL)
		goto dflt;
	p = skip_cfws(value);
	q = take_token(p, out->type, sizeof(out->type), 1);
	if (q == p)
		goto dflt;
	p = skip_cfws(q);
	if (*p != '/')
		goto dflt;
	p = skip_cfws(p + 1);
	q = take_token(p, out->subtype, sizeof(out->subtype), 1);
	if (q == p)
		goto dflt;
	p = q;
	for (;;) {
		char attr[32], dummy[1];
		char *dst;
		size_t dsz = 0;

		p = skip_cfws(p);
		if (*p == '\0')
			break;
		if (*p != ';') {
			p = skip_junk(p);
			continue;
		}
		p = skip_cfws(p + 1);
		q = take_token(p, attr, sizeof(attr), 1);
		if (q == p)
			continue;
		p = skip_cfws(q);
		if (*p != '=')
			continue;
		p = skip_cfws(p + 1);
		dst = param_slot(out, attr, &dsz);
		if (dst == NULL) {
			dst = dummy;
			dsz = sizeof(dummy);
		}
		p = take_value(p, dst, dsz);
	}
	return 0;
dflt:
	memset(out, 0, sizeof(*out));
	strcpy(out->type, "text");
	strcpy(out->subtype, "plain");
	strcpy(out->charset, "us-ascii");
	return 0;
}

enum mime_cte mime_cte_parse(const char *value)
{
	char tok[24];
	const char *p, *q;

	if (value == NULL)
		return MIME_CTE_7BIT;
	p = skip_cfws(value);
	q = take_token(p, tok, sizeof(tok), 1);
	if (q == p)
		return *p ? MIME_CTE_OTHER : MIME_CTE_7BIT;
	if ((size_t)(q - p) >= sizeof(tok))
		return MIME_CTE_OTHER;
	if (strcmp(tok, "7bit") == 0)
		return MIME_CTE_7BIT;
	if (strcmp(tok, "8bit") == 0)
		return MIME_CTE_8BIT;
	if (strcmp(tok, "binary") == 0)
		return MIME_CTE_BINARY;
	if (strcmp(tok, "quoted-printable") == 0)
		return MIME_CTE_QP;
	if (strcmp(tok, "base64") == 0)
		return MIME_CTE_BASE64;
	return MIME_CTE_OTHER;
}

/* ------------------------------------------------------------------ */
/* data structures */

struct ent {
	unsigned char kind, cte, text, hdone; /* from the header block */
	unsigned char fa, fb;                 /* F_* of region A and B */
	unsigned char delim, closed;          /* multipart: delimiter seen */
	unsigned char acta, actb, hact;       /* plan (mime_scan_finish) */
};

struct eng;

struct mime_scan {
	char *top_ct, *top_cte;
	struct ent *ent;
	size_t nent, cap;
	size_t bytes, leaves;
	int finished, failed, needs, addct;
	struct eng *eng; /* pass 1, freed by finish */
	/* identity: pass 2 would write the body octets exactly as they came
	 * (no bare LF, nothing re-encoded, no delimiter added), up to
	 * ident_len -- short of the total only by the outermost multipart's
	 * dropped blank epilogue, which starts at close0 */
	int lf, have_close0, ident, nofast;
	size_t close0, ident_len;
};

struct frame {
	size_t e;
	unsigned char kind, state, digest, pdig;
	size_t blen;
	char bnd[sizeof(((struct mime_ct *)0)->boundary)];
};

/* pass-2 writer: the state fields come first; the buffers at the end
 * need no zeroing (see wr_new) */
struct wr {
	mime_write_fn fn;
	void *arg;
	size_t len;
	int pend;   /* a line is open: a CRLF comes before the next one */
	int lastnl; /* ... and it had a line end in the input */
	int failed;
	int act;
	/* quoted-printable */
	size_t col;
	int soft, fh, wsp, eq, eqws;
	unsigned char eqc;
	size_t wsn;
	/* base64 */
	unsigned char acc[3];
	int an, beol;
	size_t bcol;
	/* nested header block */
	int hact, hskip, hrep;
	int hlong; /* a top-level header line could not be folded to LMAX */
	unsigned char wsb[WSHOLD];
	unsigned char buf[OBUF];
};

struct eng {
	const struct mime_scan *s;
	struct mime_scan *ms; /* pass 1 records here; NULL in pass 2 */
	struct wr *w;         /* pass 2 writes here; NULL in pass 1 */
	int depth, frozen, nopen, failed;
	const char *emsg;
	size_t nent;
	/* line assembly */
	int lmode, lfirst, pcr;
	size_t lblen, llen;
	size_t cur_end; /* pass 1: body offset where the current line's
	                 * content ends (before its CR LF) */
	/* header block being read */
	int hf, have_ct, have_cte, cte;
	size_t hlen;
	/* UTF-8 check of the top-level text */
	int u8on, u8need;
	unsigned char u8lo, u8hi;
	struct mime_ct ct;
	struct frame fr[MAXD];
	unsigned char lbuf[LMAX];
	char hbuf[HMAX + 1];
};

/* ------------------------------------------------------------------ */
/* writer primitives */

static void w_flush(struct wr *w)
{
	if (w->len > 0 && !w->failed && w->fn(w->arg, w->buf, w->len) != 0)
		w->failed = 1;
	w->len = 0;
}

static void w_put(struct wr *w, const void *p, size_t n)
{
	const unsigned char *s = p;

	while (n > 0) {
		size_t take = OBUF - w->len;
		if (take == 0) {
			w_flush(w);
			continue;
		}
		if (take > n)
			take = n;
		memcpy(w->buf + w->len, s, take);
		w->len += take;
		s += take;
		n -= take;
	}
}

static void w_ch(struct wr *w, unsigned char c)
{
	if (w->len == OBUF)
		w_flush(w);
	w->buf[w->len++] = c;
}

static void w_str(struct wr *w, const char *s)
{
	w_put(w, s, strlen(s));
}

/* Output is a sequence of lines; the CRLF that ends one is written when the
 * next one begins, so whoever ends the entity decides about the last one. */
static void w_lbeg(struct wr *w)
{
	if (w->pend) {
		w_put(w, "\r\n", 2);
		w->pend = 0;
	}
}

static void w_lend(struct wr *w, int eol)
{
	w->pend = 1;
	w->lastnl = eol;
}

static const char *cte_name(int h)
{
	return h == H_QP ? "quoted-printable" : h == H_B64 ? "base64" : "7bit";
}

static void w_cte_line(struct wr *w, int h)
{
	w_lbeg(w);
	w_str(w, "Content-Transfer-Encoding: ");
	w_str(w, cte_name(h));
	w_lend(w, 1);
}

/* ------------------------------------------------------------------ */
/* quoted-printable */

static const char hexd[] = "0123456789ABCDEF";

static int qp_lit(unsigned char c)
{
	return c >= 33 && c <= 126 && c != '=';
}

static int is_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') ||
	       (c >= 'a' && c <= 'f');
}

static void qp_soft(struct wr *w)
{
	w_ch(w, '=');
	w_lend(w, 1);
	w_lbeg(w);
	w->col = 0;
	w->soft = 1;
}

static void qp_flush_fh(struct wr *w)
{
	if (w->fh) {
		w_put(w, "From", (size_t)w->fh);
		w->col = (size_t)w->fh;
		w->fh = 0;
	}
}

/* Emit one token: k characters that must stay together; litc is the
 * character when the token is one literal character, else -1. */
static void qp_out(struct wr *w, const unsigned char *t, size_t k, int litc)
{
	static const char from[] = "From ";

	if (w->fh) {
		if (litc == from[w->fh]) {
			if (++w->fh == 5) {
				w_put(w, "=46rom ", 7);
				w->col = 7;
				w->fh = 0;
			}
			return;
		}
		qp_flush_fh(w);
	}
	if (w->col + k > QPLINE)
		qp_soft(w);
	if (w->col == 0) {
		if (litc == 'F') {
			w->fh = 1;
			return;
		}
		if (litc == '-' && w->soft) {
			w_put(w, "=2D", 3);
			w->col = 3;
			return;
		}
	}
	w_put(w, t, k);
	w->col += k;
}

static void qp_esc(struct wr *w, unsigned char c)
{
	unsigned char t[3] = { '=', (unsigned char)hexd[c >> 4],
		               (unsigned char)hexd[c & 15] };

	qp_out(w, t, 3, -1);
}

static void qp_litc(struct wr *w, unsigned char c)
{
	qp_out(w, &c, 1, c);
}

/* Copy a run of literal characters while the line has room. */
static size_t qp_run(struct wr *w, const unsigned char *p, size_t n)
{
	size_t room, j = 0;

	if (w->col == 0 || w->fh || w->col >= QPLINE)
		return 0;
	room = QPLINE - w->col;
	if (room > n)
		room = n;
	while (j < room && qp_lit(p[j]))
		j++;
	if (j > 0) {
		w_put(w, p, j);
		w->col += j;
	}
	return j;
}

static void qp_line_start(struct wr *w)
{
	w_lbeg(w);
	w->col = 0;
	w->soft = 0;
}

/* Encode raw text (region A_QP). */
static void qpe_frag(struct wr *w, const unsigned char *p, size_t n, int first,
                     int eol)
{
	size_t i = 0;

	if (first)
		qp_line_start(w);
	while (i < n) {
		unsigned char c = p[i];
		if (qp_lit(c)) {
			size_t r;
			if (w->wsp) {
				qp_litc(w, (unsigned char)w->wsp);
				w->wsp = 0;
			}
			r = qp_run(w, p + i, n - i);
			if (r > 0) {
				i += r;
				continue;
			}
			qp_litc(w, c);
		} else if (is_sp(c)) {
			if (w->wsp)
				qp_litc(w, (unsigned char)w->wsp);
			w->wsp = c;
		} else {
			if (w->wsp) {
				qp_litc(w, (unsigned char)w->wsp);
				w->wsp = 0;
			}
			qp_esc(w, c);
		}
		i++;
	}
	if (eol) {
		if (w->wsp) {
			qp_esc(w, (unsigned char)w->wsp);
			w->wsp = 0;
		}
		qp_flush_fh(w);
		w_lend(w, eol != EOL_EOF);
	}
}

/* Held whitespace of a re-wrapped QP line turns out to be content. */
static void qpw_ws_flush(struct wr *w)
{
	if (w->eqws) {
		qp_out(w, (const unsigned char *)"=3D", 3, -1);
		w->eqws = 0;
	}
	for (size_t k = 0; k < w->wsn; k++)
		qp_litc(w, w->wsb[k]);
	w->wsn = 0;
}

static void qpw_byte(struct wr *w, unsigned char c)
{
	if (c == '=') {
		qpw_ws_flush(w);
		w->eq = 1;
	} else if (is_sp(c)) {
		if (w->wsn == WSHOLD)
			qpw_ws_flush(w);
		w->wsb[w->wsn++] = c;
	} else {
		qpw_ws_flush(w);
		if (qp_lit(c))
			qp_litc(w, c);
		else
			qp_esc(w, c);
	}
}

/* Re-wrap existing quoted-printable (region A_QPWRAP). */
static void qpw_frag(struct wr *w, const unsigned char *p, size_t n, int first,
                     int eol)
{
	size_t i = 0;

	if (first)
		qp_line_start(w);
	while (i < n) {
		unsigned char c = p[i];
		if (w->eq == 1) {
			i++;
			if (is_hex(c)) {
				w->eq = 2;
				w->eqc = c;
				continue;
			}
			w->eq = 0;
			if (is_sp(c)) { /* maybe "=" + padding: a soft break */
				w->eqws = 1;
				w->wsb[0] = c;
				w->wsn = 1;
				continue;
			}
			qp_out(w, (const unsigned char *)"=3D", 3, -1);
			qpw_byte(w, c);
			continue;
		}
		if (w->eq == 2) {
			i++;
			w->eq = 0;
			if (is_hex(c)) {
				unsigned char t[3] = { '=', w->eqc, c };
				qp_out(w, t, 3, -1);
				continue;
			}
			qp_out(w, (const unsigned char *)"=3D", 3, -1);
			qpw_byte(w, w->eqc);
			qpw_byte(w, c);
			continue;
		}
		if (w->wsn == 0 && qp_lit(c)) {
			size_t r = qp_run(w, p + i, n - i);
			if (r > 0) {
				i += r;
				continue;
			}
		}
		qpw_byte(w, c);
		i++;
	}
	if (eol) {
		int soft = 0;
		if (w->eq == 2) {
			qp_out(w, (const unsigned char *)"=3D", 3, -1);
			qpw_byte(w, w->eqc); /* a hex digit: literal */
		} else if (w->eq == 1 || w->eqws) {
			soft = 1;
		}
		w->eq = 0;
		w->eqws = 0;
		w->wsn = 0; /* trailing whitespace: transport padding */
		qp_flush_fh(w);
		if (soft) {
			w_ch(w, '=');
			w->col++;
		}
		w_lend(w, eol != EOL_EOF);
	}
}

/* ------------------------------------------------------------------ */
/* base64 */

static const char b64a[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int is_b64(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '=';
}

static void b64_quad(struct wr *w, const unsigned char *t, int n)
{
	unsigned char *o;

	if (w->bcol == 0)
		w_lbeg(w);
	if (OBUF - w->len < 4)
		w_flush(w);
	o = w->buf + w->len;
	o[0] = (unsigned char)b64a[t[0] >> 2];
	o[1] = (unsigned char)b64a[((t[0] & 3) << 4) | (n > 1 ? t[1] >> 4 : 0)];
	o[2] = n > 1 ? (unsigned char)
	                       b64a[((t[1] & 15) << 2) | (n > 2 ? t[2] >> 6 : 0)]
	             : '=';
	o[3] = n > 2 ? (unsigned char)b64a[t[2] & 63] : '=';
	w->len += 4;
	w->bcol += 4;
	if (w->bcol >= B64LINE) {
		w->bcol = 0;
		w_lend(w, 1);
	}
}

static void b64_feed(struct wr *w, const unsigned char *p, size_t n)
{
	while (w->an > 0 && n > 0) {
		w->acc[w->an++] = *p++;
		n--;
		if (w->an == 3) {
			b64_quad(w, w->acc, 3);
			w->an = 0;
		}
	}
	while (n >= 3) {
		b64_quad(w, p, 3);
		p += 3;
		n -= 3;
	}
	for (size_t i = 0; i < n; i++)
		w->acc[w->an++] = p[i];
}

static void b64_end(struct wr *w)
{
	if (w->an > 0) {
		if (w->an < 3)
			memset(w->acc + w->an, 0, (size_t)(3 - w->an));
		b64_quad(w, w->acc, w->an);
		w->an = 0;
	}
	if (w->bcol > 0) {
		w->bcol = 0;
		w_lend(w, 1);
	}
}

static void b64r_frag(struct wr *w, const unsigned char *p, size_t n, int first,
                      int eol)
{
	if (first && w->beol) {
		b64_feed(w,
		         (const unsigned char *)"\r\n" +
		                 (w->beol == EOL_LF ? 1 : 0),
		         w->beol == EOL_LF ? 1 : 2);
		w->beol = 0;
	}
	b64_feed(w, p, n);
	if (eol == EOL_LF || eol == EOL_CRLF)
		w->beol = eol;
}

static void b64w_frag(struct wr *w, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!is_b64(p[i]))
			continue;
		if (w->bcol == 0)
			w_lbeg(w);
		w_ch(w, p[i]);
		if (++w->bcol == B64LINE) {
			w->bcol = 0;
			w_lend(w, 1);
		}
	}
}

/* A writer with its state zeroed; the 64 KiB buffers are left as they
 * come, so a message does not pay for clearing (and faulting in) them. */
static struct wr *wr_new(void)
{
	struct wr *w = malloc(sizeof(*w));

	if (w)
		memset(w, 0, offsetof(struct wr, wsb));
	return w;
}

struct mime_b64 {
	struct wr w;
};

struct mime_b64 *mime_b64_new(mime_write_fn wr, void *warg)
{
	struct wr *w;

	if (wr == NULL || (w = wr_new()) == NULL)
		return NULL;
	w->fn = wr;
	w->arg = warg;
	return (struct mime_b64 *)w;
}

int mime_b64_feed(void *arg, const unsigned char *buf, size_t len)
{
	struct wr *w = &((struct mime_b64 *)arg)->w;

	if (len > 0)
		b64_feed(w, buf, len);
	return w->failed ? -1 : 0;
}

int mime_b64_end(struct mime_b64 *b)
{
	struct wr *w = &b->w;

	b64_end(w);
	if (w->pend && w->lastnl)
		w_put(w, "\r\n", 2);
	w_flush(w);
	return w->failed ? -1 : 0;
}

void mime_b64_free(struct mime_b64 *b)
{
	free(b);
}

int mime_base64_write(const unsigned char *buf, size_t len, mime_write_fn wr,
                      void *warg)
{
	struct mime_b64 *b;
	int rc;

	if (wr == NULL || (buf == NULL && len > 0))
		return -1;
	if ((b = mime_b64_new(wr, warg)) == NULL)
		return -1;
	rc = mime_b64_feed(b, buf, len) != 0 || mime_b64_end(b) != 0 ? -1 : 0;
	mime_b64_free(b);
	return rc;
}

/* ------------------------------------------------------------------ */
/* pass-2 regions and header blocks */

static void w_reg_begin(struct wr *w, int act)
{
	w->act = act;
	w->col = 0;
	w->soft = w->fh = w->wsp = w->eq = w->eqws = 0;
	w->wsn = 0;
	w->an = w->beol = 0;
	w->bcol = 0;
}

static void w_reg_frag(struct wr *w, const unsigned char *p, size_t n,
                       int first, int eol)
{
	switch (w->act) {
	case A_PASS:
		if (first)
			w_lbeg(w);
		w_put(w, p, n);
		if (eol)
			w_lend(w, eol != EOL_EOF);
		break;
	case A_QP:
		qpe_frag(w, p, n, first, eol);
		break;
	case A_QPWRAP:
		qpw_frag(w, p, n, first, eol);
		break;
	case A_B64:
		b64r_frag(w, p, n, first, eol);
		break;
	case A_B64WRAP:
		b64w_frag(w, p, n);
		break;
	default: /* A_DROP */
		break;
	}
}

/* keep: the last line end is content (nothing delimits the region). */
static void w_reg_end(struct wr *w, int keep)
{
	if (w->act == A_B64) {
		if (keep && w->beol)
			b64_feed(w,
			         (const unsigned char *)"\r\n" +
			                 (w->beol == EOL_LF ? 1 : 0),
			         w->beol == EOL_LF ? 1 : 2);
		w->beol = 0;
		b64_end(w);
	} else if (w->act == A_B64WRAP && w->bcol > 0) {
		w->bcol = 0;
		w_lend(w, 1);
	}
}

static void w_hdr_frag(struct wr *w, const unsigned char *p, size_t n,
                       int first, int start, int iscte, int eol)
{
	if (start)
		w->hskip = w->hact != H_NONE && iscte;
	if (w->hskip) {
		if (start && !w->hrep) {
			w_cte_line(w, w->hact);
			w->hrep = 1;
		}
		return;
	}
	if (first)
		w_lbeg(w);
	w_put(w, p, n);
	if (eol)
		w_lend(w, eol != EOL_EOF);
}

static void w_line(struct wr *w, const unsigned char *p, size_t n, int eol)
{
	w_lbeg(w);
	w_put(w, p, n);
	w_lend(w, eol != EOL_EOF);
}

/* ------------------------------------------------------------------ */
/* pass-1 statistics */

static unsigned byte_flag(unsigned char c)
{
	return c >= 0x80 ? F_8BIT : c == 0 ? F_NUL : c == '\r' ? F_CR : 0;
}

static unsigned scan_flags(const unsigned char *p, size_t n)
{
	const uint64_t ones = 0x0101010101010101ULL;
	const uint64_t highs = 0x8080808080808080ULL;
	const uint64_t crs = 0x0d0d0d0d0d0d0d0dULL;
	unsigned f = 0;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t v, x;
		memcpy(&v, p + i, 8);
		x = v ^ crs;
		if (((v & highs) | ((v - ones) & ~v & highs) |
		     ((x - ones) & ~x & highs)) == 0)
			continue;
		for (size_t k = 0; k < 8; k++)
			f |= byte_flag(p[i + k]);
	}
	for (; i < n; i++)
		f |= byte_flag(p[i]);
	return f;
}

static void u8_feed(struct eng *E, struct ent *x, const unsigned char *p,
                    size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = p[i];
		if (E->u8need) {
			if (c < E->u8lo || c > E->u8hi)
				goto bad;
			E->u8lo = 0x80;
			E->u8hi = 0xBF;
			E->u8need--;
			continue;
		}
		if (c < 0x80)
			continue;
		E->u8lo = 0x80;
		E->u8hi = 0xBF;
		if (c >= 0xC2 && c <= 0xDF) {
			E->u8need = 1;
		} else if (c >= 0xE0 && c <= 0xEF) {
			E->u8need = 2;
			if (c == 0xE0)
				E->u8lo = 0xA0;
			else if (c == 0xED)
				E->u8hi = 0x9F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			E->u8need = 3;
			if (c == 0xF0)
				E->u8lo = 0x90;
			else if (c == 0xF4)
				E->u8hi = 0x8F;
		} else {
			goto bad;
		}
	}
	return;
bad:
	x->fa |= F_BADUTF8;
	E->u8on = 0;
}

/* ------------------------------------------------------------------ */
/* the engine */

static void eng_fail(struct eng *E, const char *m)
{
	if (!E->failed) {
		E->failed = 1;
		E->emsg = m;
	}
}

static int ent_new(struct eng *E, size_t *out)
{
	struct mime_scan *s = E->ms;

	if (s != NULL) {
		if (s->nent == s->cap) {
			size_t nc = s->cap ? s->cap * 2 : 16;
			struct ent *n = realloc(s->ent, nc * sizeof(*n));
			if (n == NULL) {
				eng_fail(E, "out of memory");
				return -1;
			}
			s->ent = n;
			s->cap = nc;
		}
		memset(&s->ent[s->nent], 0, sizeof(s->ent[0]));
		s->nent++;
	} else if (E->nent >= E->s->nent) {
		eng_fail(E, "body changed between passes");
		return -1;
	}
	*out = E->nent++;
	if (E->nent >= MAXENT)
		E->frozen = 1;
	return 0;
}

static void ent_kind(struct eng *E, size_t e, int kind, int text, int cte,
                     int hdone)
{
	if (E->ms != NULL) {
		struct ent *x = &E->ms->ent[e];
		x->kind = (unsigned char)kind;
		x->text = (unsigned char)text;
		x->cte = (unsigned char)cte;
		x->hdone = (unsigned char)hdone;
	} else if (E->s->ent[e].kind != kind || E->s->ent[e].hdone != hdone) {
		eng_fail(E, "body changed between passes");
	}
}

static void reg_begin(struct eng *E, size_t e, int b)
{
	if (E->w != NULL) {
		const struct ent *x = &E->s->ent[e];
		w_reg_begin(E->w, b ? x->actb : x->acta);
	}
}

static void reg_frag(struct eng *E, size_t e, int b, const unsigned char *p,
                     size_t n, int first, int eol)
{
	struct ent *x;
	unsigned f;

	if (E->w != NULL) {
		w_reg_frag(E->w, p, n, first, eol);
		return;
	}
	x = &E->ms->ent[e];
	f = scan_flags(p, n);
	if (b && !(x->fb & F_NONBLANK)) {
		for (size_t i = 0; i < n; i++)
			if (!is_sp(p[i])) {
				f |= F_NONBLANK;
				break;
			}
	}
	if (eol && E->llen > LMAX)
		f |= F_LONG;
	if (e == 0 && !b && E->u8on) {
		u8_feed(E, x, p, n);
		if (eol && E->u8need) {
			x->fa |= F_BADUTF8;
			E->u8on = 0;
		}
	}
	if (b)
		x->fb |= (unsigned char)f;
	else
		x->fa |= (unsigned char)f;
}

static void reg_end(struct eng *E, int keep)
{
	if (E->w != NULL)
		w_reg_end(E->w, keep);
}

static void hdr_begin(struct eng *E, size_t e)
{
	E->hf = 0;
	E->hlen = 0;
	E->have_ct = E->have_cte = 0;
	E->cte = MIME_CTE_7BIT;
	mime_ct_parse(NULL, &E->ct);
	if (E->w != NULL) {
		E->w->hact = E->s->ent[e].hact;
		E->w->hskip = E->w->hrep = 0;
	}
}

static void hdr_field_end(struct eng *E)
{
	if (E->hf == 1) {
		E->hbuf[E->hlen] = '\0';
		mime_ct_parse(E->hbuf, &E->ct);
		E->have_ct = 1;
	} else if (E->hf == 2) {
		E->hbuf[E->hlen] = '\0';
		E->cte = mime_cte_parse(E->hbuf);
		E->have_cte = 1;
	}
	E->hf = 0;
}

static void hdr_append(struct eng *E, const unsigned char *p, size_t n)
{
	size_t room = HMAX - E->hlen;

	if (n > room)
		n = room;
	memcpy(E->hbuf + E->hlen, p, n);
	E->hlen += n;
}

/* 1: Content-Type, 2: Content-Transfer-Encoding, 0: other; *voff is where
 * the value starts. */
static int name_class(const unsigned char *p, size_t n, size_t *voff)
{
	const unsigned char *c = memchr(p, ':', n < LMAX ? n : LMAX);
	size_t k;

	if (c == NULL)
		return 0;
	k = (size_t)(c - p);
	*voff = k + 1;
	while (k > 0 && is_sp(p[k - 1]))
		k--;
	if (k == 12 && ci_eq(p, "content-type", 12))
		return 1;
	if (k == 25 && ci_eq(p, "content-transfer-encoding", 25))
		return 2;
	return 0;
}

static void hdr_frag(struct eng *E, const unsigned char *p, size_t n, int first,
                     int eol)
{
	int start = 0, cls = 0;

	if (first && !(n > 0 && is_sp(p[0]))) {
		size_t voff = 0;
		start = 1;
		hdr_field_end(E);
		cls = name_class(p, n, &voff);
		if ((cls == 1 && !E->have_ct) || (cls == 2 && !E->have_cte)) {
			E->hf = cls;
			E->hlen = 0;
			hdr_append(E, p + voff, n - voff);
		}
	} else if (E->hf) {
		hdr_append(E, p, n);
	}
	if (E->w != NULL)
		w_hdr_frag(E->w, p, n, first, start, cls == 2, eol);
}

static void push_child(struct eng *E, int dig)
{
	struct frame *c;
	size_t e;

	if (E->depth >= MAXD) {
		eng_fail(E, "internal error: MIME nesting");
		return;
	}
	if (ent_new(E, &e) != 0)
		return;
	c = &E->fr[E->depth++];
	c->e = e;
	c->kind = K_LEAF;
	c->state = ST_HDRS;
	c->digest = 0;
	c->pdig = (unsigned char)dig;
	c->blen = 0;
	c->bnd[0] = '\0';
	hdr_begin(E, e);
}

/* The header block of frame f is complete: decide what the body is. */
static void body_start(struct eng *E, struct frame *f)
{
	const struct mime_ct *ct = &E->ct;
	const char *type = ct->type, *sub = ct->subtype;
	int cte = E->cte, kind = K_LEAF, text = 0;
	int fi = (int)(f - E->fr);
	int comp = (cte == MIME_CTE_7BIT || cte == MIME_CTE_8BIT ||
	            cte == MIME_CTE_BINARY) &&
	           fi + 1 < MAXD && !E->frozen;

	if (!E->have_ct && f->pdig) {
		type = "message";
		sub = "rfc822";
	}
	if (strcmp(type, "multipart") == 0) {
		text = 1;
		if (comp && ct->boundary[0])
			kind = K_MULTI;
	} else if (strcmp(type, "message") == 0) {
		text = 1;
		if (comp &&
		    (strcmp(sub, "rfc822") == 0 || strcmp(sub, "news") == 0))
			kind = K_MSG;
	} else if (strcmp(type, "text") == 0) {
		text = 1;
	}
	ent_kind(E, f->e, kind, text, cte, 1);
	f->kind = (unsigned char)kind;
	if (kind == K_MULTI) {
		f->blen = strlen(ct->boundary);
		memcpy(f->bnd, ct->boundary, f->blen + 1);
		f->digest = strcmp(sub, "digest") == 0;
		E->nopen++;
	}
	if (kind == K_MSG) {
		f->state = ST_PARTS;
		push_child(E, 0);
	} else {
		f->state = ST_A;
		reg_begin(E, f->e, 0);
	}
}

static void hdr_end(struct eng *E, struct frame *f, int blank)
{
	hdr_field_end(E);
	if (!blank) {
		ent_kind(E, f->e, K_LEAF, 0, E->cte, 0);
		return;
	}
	if (E->w != NULL) {
		struct wr *w = E->w;
		if (w->hact != H_NONE && !w->hrep)
			w_cte_line(w, w->hact);
		w_lbeg(w);
		w_lend(w, 1);
	}
	body_start(E, f);
}

static int multi_below(const struct eng *E)
{
	for (int i = 0; i < E->depth - 1; i++)
		if (E->fr[i].kind == K_MULTI)
			return 1;
	return 0;
}

static void pop_top(struct eng *E, int at_eof)
{
	struct frame *f = &E->fr[E->depth - 1];

	switch (f->state) {
	case ST_HDRS:
		hdr_end(E, f, 0);
		break;
	case ST_A:
	case ST_B:
		reg_end(E, at_eof && !multi_below(E));
		break;
	default: /* ST_PARTS */
		if (f->kind == K_MULTI && E->w != NULL) {
			struct wr *w = E->w;
			w_lbeg(w);
			w_put(w, "--", 2);
			w_put(w, f->bnd, f->blen);
			w_put(w, "--", 2);
			w_lend(w, 1);
		}
		break;
	}
	if (f->kind == K_MULTI && f->state != ST_B)
		E->nopen--;
	E->depth--;
}

/* -1: no delimiter of this boundary, 0: delimiter, 1: close delimiter. */
static int delim_match(const unsigned char *p, size_t n, const char *b,
                       size_t bl)
{
	size_t i = 2 + bl;

	if (bl == 0 || n < i || memcmp(p + 2, b, bl) != 0)
		return -1;
	if (n - i >= 2 && p[i] == '-' && p[i + 1] == '-') {
		size_t j = i + 2;
		while (j < n && is_sp(p[j]))
			j++;
		if (j == n)
			return 1;
	}
	while (i < n && is_sp(p[i]))
		i++;
	return i == n ? 0 : -1;
}

static void on_delim(struct eng *E, int fi, int cl, const unsigned char *p,
                     size_t n, int eol)
{
	struct frame *m;

	while (E->depth - 1 > fi && !E->failed)
		pop_top(E, 0);
	m = &E->fr[fi];
	if (m->state == ST_A)
		reg_end(E, 0);
	if (E->ms != NULL) {
		struct ent *x = &E->ms->ent[m->e];
		x->delim = 1;
		if (cl)
			x->closed = 1;
		if (cl && fi == 0 && !E->ms->have_close0) {
			E->ms->have_close0 = 1;
			E->ms->close0 = E->cur_end;
		}
	} else {
		const struct ent *x = &E->s->ent[m->e];
		if (!x->delim || (cl && !x->closed))
			eng_fail(E, "body changed between passes");
		w_line(E->w, p, n, eol);
	}
	if (cl) {
		m->state = ST_B;
		E->nopen--;
		reg_begin(E, m->e, 1);
	} else {
		m->state = ST_PARTS;
		push_child(E, m->digest);
	}
}

static void frag(struct eng *E, const unsigned char *p, size_t n, int first,
                 int eol)
{
	struct frame *f = &E->fr[E->depth - 1];

	switch (f->state) {
	case ST_HDRS:
		hdr_frag(E, p, n, first, eol);
		break;
	case ST_A:
		reg_frag(E, f->e, 0, p, n, first, eol);
		break;
	case ST_B:
		reg_frag(E, f->e, 1, p, n, first, eol);
		break;
	default:
		break;
	}
}

/* A whole line of n octets (n may exceed LMAX when it came in one piece). */
static void full_line(struct eng *E, const unsigned char *p, size_t n, int eol)
{
	struct frame *f = &E->fr[E->depth - 1];

	if (n >= 2 && n <= LMAX && p[0] == '-' && p[1] == '-' && E->nopen > 0 &&
	    !E->frozen) {
		for (int i = E->depth - 1; i >= 0; i--) {
			const struct frame *m = &E->fr[i];
			int cl;
			if (m->kind != K_MULTI || m->state == ST_B ||
			    m->state == ST_HDRS)
				continue;
			cl = delim_match(p, n, m->bnd, m->blen);
			if (cl >= 0) {
				on_delim(E, i, cl, p, n, eol);
				return;
			}
		}
	}
	if (f->state == ST_HDRS && n == 0) {
		hdr_end(E, f, 1);
		return;
	}
	frag(E, p, n, 1, eol);
}

static int need_prefix(const struct eng *E, unsigned char c)
{
	if (E->fr[E->depth - 1].state == ST_HDRS)
		return 1;
	return c == '-' && E->nopen > 0 && !E->frozen;
}

/* The next n octets of the current line; eol says whether (and how) the
 * line ends after them. */
static void line_piece(struct eng *E, const unsigned char *p, size_t n, int eol)
{
	if (E->lmode == LM_NEW) {
		if (eol) {
			E->llen = n;
			full_line(E, p, n, eol);
			return;
		}
		if (n == 0)
			return;
		if (need_prefix(E, p[0])) {
			E->lmode = LM_BUF;
			E->lblen = 0;
		} else {
			E->lmode = LM_STREAM;
			E->llen = 0;
			E->lfirst = 1;
		}
	}
	if (E->lmode == LM_BUF) {
		size_t take = LMAX - E->lblen;
		if (take > n)
			take = n;
		memcpy(E->lbuf + E->lblen, p, take);
		E->lblen += take;
		p += take;
		n -= take;
		if (n == 0) {
			if (eol) {
				E->lmode = LM_NEW;
				E->llen = E->lblen;
				full_line(E, E->lbuf, E->lblen, eol);
			}
			return;
		}
		/* longer than LMAX: neither a delimiter nor a blank line */
		E->lmode = LM_STREAM;
		E->llen = E->lblen;
		frag(E, E->lbuf, E->lblen, 1, EOL_NONE);
		E->lfirst = 0;
	}
	E->llen += n;
	frag(E, p, n, E->lfirst, eol);
	E->lfirst = 0;
	if (eol)
		E->lmode = LM_NEW;
}

static void eng_feed(struct eng *E, const unsigned char *p, size_t n)
{
	/* body offset of p[0]; pass 1 counts the bytes after the feed */
	const size_t base = E->ms != NULL ? E->ms->bytes : 0;
	const unsigned char *const p0 = p;

	while (n > 0 && !E->failed) {
		const unsigned char *nl;
		if (E->w != NULL && E->w->failed) {
			eng_fail(E, "write error");
			break;
		}
		if (E->pcr) {
			E->pcr = 0;
			if (*p == '\n') {
				/* the CR ended the previous chunk */
				E->cur_end = base + (size_t)(p - p0) - 1;
				line_piece(E, empty_buf, 0, EOL_CRLF);
				p++;
				n--;
				continue;
			}
			line_piece(E, (const unsigned char *)"\r", 1, EOL_NONE);
		}
		nl = memchr(p, '\n', n);
		if (nl != NULL) {
			size_t len = (size_t)(nl - p);
			int eol = EOL_LF;
			if (len > 0 && p[len - 1] == '\r') {
				len--;
				eol = EOL_CRLF;
			} else if (E->ms != NULL) {
				E->ms->lf = 1; /* pass 2 makes it CR LF */
			}
			E->cur_end = base + (size_t)(p - p0) + len;
			line_piece(E, p, len, eol);
			n -= (size_t)(nl - p) + 1;
			p = nl + 1;
		} else {
			size_t len = n;
			if (p[len - 1] == '\r') {
				len--;
				E->pcr = 1;
			}
			line_piece(E, p, len, EOL_NONE);
			break;
		}
	}
}

static void eng_finish(struct eng *E)
{
	if (E->failed)
		return;
	E->cur_end = E->ms != NULL ? E->ms->bytes : 0;
	if (E->pcr) {
		E->pcr = 0;
		line_piece(E, (const unsigned char *)"\r", 1, EOL_NONE);
	}
	if (E->lmode == LM_BUF) {
		E->lmode = LM_NEW;
		E->llen = E->lblen;
		full_line(E, E->lbuf, E->lblen, EOL_EOF);
	} else if (E->lmode == LM_STREAM) {
		E->lmode = LM_NEW;
		frag(E, empty_buf, 0, 0, EOL_EOF);
	}
	while (E->depth > 0 && !E->failed)
		pop_top(E, 1);
}

/* Pass 1: s is recorded into (w NULL).  Pass 2: s is only read. */
static struct eng *eng_new(const struct mime_scan *s, struct mime_scan *ms,
                           struct wr *w)
{
	struct eng *E = calloc(1, sizeof(*E));
	struct frame *f;
	size_t e;

	if (E == NULL)
		return NULL;
	E->s = s;
	E->ms = ms;
	E->w = w;
	if (ent_new(E, &e) != 0) {
		free(E);
		return NULL;
	}
	f = &E->fr[0];
	f->e = e;
	f->state = ST_HDRS;
	E->depth = 1;
	E->u8on = s->top_ct == NULL;
	mime_ct_parse(s->top_ct, &E->ct);
	E->have_ct = s->top_ct != NULL;
	E->cte = mime_cte_parse(s->top_cte);
	body_start(E, f);
	return E;
}

/* ------------------------------------------------------------------ */
/* pass 1 API */

struct mime_scan *mime_scan_new(const char *content_type, const char *cte)
{
	struct mime_scan *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	if ((content_type && (s->top_ct = strdup(content_type)) == NULL) ||
	    (cte && (s->top_cte = strdup(cte)) == NULL) ||
	    (s->eng = eng_new(s, s, NULL)) == NULL) {
		mime_scan_free(s);
		return NULL;
	}
	return s;
}

int mime_scan_feed(struct mime_scan *s, const unsigned char *buf, size_t len,
                   char *err, size_t errlen)
{
	if (s == NULL || s->finished || s->eng == NULL)
		return seterr(err, errlen, "mime: feed after finish");
	if (len == 0)
		return 0;
	if (buf == NULL)
		return seterr(err, errlen, "mime: no buffer");
	eng_feed(s->eng, buf, len);
	s->bytes += len;
	if (s->eng->failed) {
		s->failed = 1;
		return seterr(err, errlen, s->eng->emsg);
	}
	return 0;
}

static void leaf_plan(struct ent *x)
{
	int enc;

	switch (x->cte) {
	case MIME_CTE_8BIT:
	case MIME_CTE_BINARY:
		enc = 1;
		break;
	case MIME_CTE_QP:
		if (x->fa & F_UNSAFE)
			x->acta = A_QPWRAP;
		return;
	case MIME_CTE_BASE64:
		if (x->fa & F_UNSAFE)
			x->acta = A_B64WRAP;
		return;
	default:
		enc = (x->fa & F_UNSAFE) != 0;
		break;
	}
	if (enc) {
		x->acta = x->text ? A_QP : A_B64;
		x->hact = x->text ? H_QP : H_B64;
	}
}

static void plan(struct mime_scan *s)
{
	s->needs = 0;
	s->leaves = 0;
	for (size_t i = 0; i < s->nent; i++) {
		struct ent *x = &s->ent[i];
		int c8 = x->cte == MIME_CTE_8BIT || x->cte == MIME_CTE_BINARY;

		x->acta = x->actb = A_PASS;
		x->hact = H_NONE;
		if (x->kind == K_LEAF || (x->kind == K_MULTI && !x->delim))
			s->leaves++;
		if (!x->hdone)
			continue;
		if (x->kind == K_MULTI && x->delim) {
			if (x->fa & F_UNSAFE)
				x->acta = A_QP;
			if (x->fb & F_UNSAFE)
				x->actb = A_QP;
			if (i == 0 && !(x->fb & F_NONBLANK))
				x->actb = A_DROP;
			if (c8)
				x->hact = H_7BIT;
			if (!x->closed)
				s->needs = 1;
		} else if (x->kind == K_MSG) {
			if (c8)
				x->hact = H_7BIT;
		} else {
			leaf_plan(x);
		}
		if ((x->acta != A_PASS) || x->actb == A_QP || x->hact != H_NONE)
			s->needs = 1;
	}
	s->addct = s->top_ct == NULL && s->nent > 0 &&
	           s->ent[0].kind == K_LEAF && (s->ent[0].fa & F_8BIT);
	if (s->addct)
		s->needs = 1;
	s->ident = !s->needs && !s->lf && s->nent > 0;
	s->ident_len = s->bytes;
	if (s->ident && s->ent[0].actb == A_DROP) {
		if (s->have_close0 && s->close0 <= s->bytes)
			s->ident_len = s->close0;
		else
			s->ident = 0; /* cannot happen; the engine will do */
	}
}

int mime_scan_finish(struct mime_scan *s, char *err, size_t errlen)
{
	if (s == NULL)
		return seterr(err, errlen, "mime: no scan");
	if (s->finished)
		return s->failed ? seterr(err, errlen, "mime: scan failed") : 0;
	if (s->failed || s->eng == NULL)
		return seterr(err, errlen, "mime: scan failed");
	eng_finish(s->eng);
	if (s->eng->failed) {
		s->failed = 1;
		seterr(err, errlen, s->eng->emsg);
	}
	free(s->eng);
	s->eng = NULL;
	s->finished = 1;
	if (s->failed)
		return -1;
	plan(s);
	return 0;
}

int mime_scan_needs_rewrite(const struct mime_scan *s)
{
	return s != NULL && s->finished && !s->failed && s->needs;
}

int mime_scan_identity(const struct mime_scan *s)
{
	return s != NULL && s->finished && !s->failed && s->ident;
}

void mime_scan_fastpath(struct mime_scan *s, int on)
{
	if (s != NULL)
		s->nofast = !on;
}

size_t mime_scan_parts(const struct mime_scan *s)
{
	return s != NULL && s->finished ? s->leaves : 0;
}

size_t mime_scan_bytes(const struct mime_scan *s)
{
	return s != NULL ? s->bytes : 0;
}

void mime_scan_free(struct mime_scan *s)
{
	if (s == NULL)
		return;
	free(s->eng);
	free(s->ent);
	free(s->top_ct);
	free(s->top_cte);
	free(s);
}

/* ------------------------------------------------------------------ */
/* pass 2 */

/* Write p[0..len) on an output line already col octets long, folding
 * before a space or tab so that no line exceeds LMAX octets (unfolding gives
 * the same value).  content says the line already holds a non-blank octet;
 * a folded piece must hold one too (no all-blank continuation lines).  When
 * no such fold point exists, w->hlong is set and the rest is written as it
 * is (mime_rewrite then fails). */
static void w_fold(struct wr *w, const char *p, size_t len, size_t col,
                   int content)
{
	while (col + len > LMAX) {
		size_t cut = 0;
		if (col < LMAX)
			for (size_t i = LMAX - col; i > 0; i--) {
				if (!is_sp((unsigned char)p[i]))
					continue;
				for (size_t j = 0; !content && j < i; j++)
					if (!is_sp((unsigned char)p[j]))
						content = 1;
				if (content) {
					cut = i;
					break;
				}
			}
		if (cut == 0) {
			w->hlong = 1;
			break;
		}
		w_put(w, p, cut);
		w_put(w, "\r\n", 2);
		p += cut;
		len -= cut;
		col = 0;
		content = 0;
	}
	w_put(w, p, len);
}

static void w_top_header(struct wr *w, const char *name, const char *value)
{
	const char *v = value ? value : "";
	int firstseg = 1;

	size_t col;

	w_lbeg(w);
	w_str(w, name);
	w_ch(w, ':');
	col = strlen(name) + 1;
	if (!is_sp((unsigned char)*v) && *v != '\r' && *v != '\n') {
		w_ch(w, ' ');
		col++;
	}
	for (;;) {
		const char *nl = strchr(v, '\n');
		size_t len = nl ? (size_t)(nl - v) : strlen(v);
		if (len > 0 && v[len - 1] == '\r')
			len--;
		if (firstseg) {
			w_fold(w, v, len, col, 1);
			firstseg = 0;
		} else {
			size_t k = 0;
			while (k < len && is_sp((unsigned char)v[k]))
				k++;
			if (k < len) {
				w_put(w, "\r\n", 2);
				if (k == 0)
					w_ch(w, ' ');
				w_fold(w, v, len, k == 0, k == 0);
			}
		}
		if (nl == NULL)
			break;
		v = nl + 1;
	}
	w_lend(w, 1);
}

int mime_rewrite(const struct mime_scan *scan, const struct mime_header *hdrs,
                 size_t nhdrs, mime_read_fn rd, void *rarg, mime_write_fn wr,
                 void *warg, char *err, size_t errlen)
{
	const struct mime_scan *s = scan;
	struct wr *w = NULL;
	struct eng *E = NULL;
	unsigned char *rb = NULL;
	const struct ent *x0;
	size_t total = 0;
	int hact, done = 0, have_ct = 0, rc = -1;

	if (s == NULL || !s->finished || s->failed || s->nent == 0)
		return seterr(err, errlen, "mime: scan not finished");
	if (rd == NULL || wr == NULL || (hdrs == NULL && nhdrs > 0))
		return seterr(err, errlen, "mime: bad arguments");
	x0 = &s->ent[0];
	hact = x0->hact;
	w = wr_new();
	rb = malloc(RBUF);
	if (w == NULL || rb == NULL) {
		seterr(err, errlen, "out of memory");
		goto out;
	}
	w->fn = wr;
	w->arg = warg;

	for (size_t i = 0; i < nhdrs; i++) {
		const char *nm = hdrs[i].name ? hdrs[i].name : "";
		if (ci_streq(nm, "Content-Type"))
			have_ct = 1;
		if (hact != H_NONE &&
		    ci_streq(nm, "Content-Transfer-Encoding")) {
			if (!done)
				w_cte_line(w, hact);
			done = 1;
			continue;
		}
		w_top_header(w, nm, hdrs[i].value);
	}
	if (s->addct && !have_ct)
		w_top_header(w, "Content-Type",
		             (x0->fa & F_BADUTF8)
		                     ? "text/plain; charset=unknown-8bit"
		                     : "text/plain; charset=utf-8");
	if (hact != H_NONE && !done)
		w_cte_line(w, hact);
	if (w->hlong) {
		/* a relay would fold it (Postfix inserts CRLF SPACE anywhere
		 * past smtp_line_length_limit) and break the signature */
		seterr(err, errlen,
		       "mime: a Content-* header line is over 998 octets "
		       "with no place to fold it");
		goto out;
	}
	w_lbeg(w);
	w_lend(w, 1);

	if (s->ident && !s->nofast) {
		/* the body octets as they are: no second run of the engine */
		w_lbeg(w); /* the blank line */
		w_flush(w);
	} else if ((E = eng_new(s, NULL, w)) == NULL) {
		seterr(err, errlen, "out of memory");
		goto out;
	}
	while (E == NULL || !E->failed) {
		ssize_t r = rd(rarg, rb, RBUF);
		if (r < 0 || (size_t)r > RBUF) {
			seterr(err, errlen, "mime: cannot read the body");
			goto out;
		}
		if (r == 0)
			break;
		total += (size_t)r;
		if (E != NULL) {
			eng_feed(E, rb, (size_t)r);
		} else if (total - (size_t)r < s->ident_len && !w->failed) {
			/* up to ident_len: a dropped epilogue stays out */
			size_t k = s->ident_len - (total - (size_t)r);
			if (k > (size_t)r)
				k = (size_t)r;
			if (w->fn(w->arg, rb, k) != 0)
				w->failed = 1;
		}
	}
	if (E != NULL) {
		eng_finish(E);
		if (E->failed) {
			seterr(err, errlen, E->emsg);
			goto out;
		}
	}
	if (total != s->bytes || (E != NULL && E->nent != s->nent)) {
		seterr(err, errlen, "body changed between passes");
		goto out;
	}
	/* the outermost multipart ends with its close delimiter */
	if (E != NULL &&
	    !(x0->kind == K_MULTI && x0->delim && !(x0->fb & F_NONBLANK)) &&
	    w->pend && w->lastnl)
		w_put(w, "\r\n", 2);
	w_flush(w);
	if (w->failed) {
		seterr(err, errlen, "mime: cannot write the entity");
		goto out;
	}
	rc = 0;
out:
	free(E);
	free(rb);
	free(w);
	return rc;
}
