/*
 * mime_engine.c -- the line engine both passes run over the same body:
 * line assembly, header blocks, the frame stack, delimiters.  Pass 1
 * records into the entity table, pass 2 drives the writer.
 */
#include "mime_int.h"

#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char empty_buf[1];

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
		mw_reg_begin(E->w, b ? x->actb : x->acta);
	}
}

static void reg_frag(struct eng *E, size_t e, int b, const unsigned char *p,
                     size_t n, int first, int eol)
{
	struct ent *x;
	unsigned f;

	if (E->w != NULL) {
		mw_reg_frag(E->w, p, n, first, eol);
		return;
	}
	x = &E->ms->ent[e];
	f = mime_scan_flags(p, n);
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
		mime_u8_feed(E, x, p, n);
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
		mw_reg_end(E->w, keep);
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

/* 1 when a line (its first piece, at most LMAX octets) is a header field:
 * a name of printable octets other than ':', optional blanks, ':'. */
static int is_field(const unsigned char *p, size_t n)
{
	size_t k = 0;

	if (n > LMAX) /* as when the line comes in pieces */
		n = LMAX;
	while (k < n && p[k] > 32 && p[k] < 127 && p[k] != ':')
		k++;
	if (k == 0)
		return 0;
	while (k < n && is_sp(p[k]))
		k++;
	return k < n && p[k] == ':';
}

static void hdr_frag(struct eng *E, const unsigned char *p, size_t n, int first,
                     int eol)
{
	int start = 0, cls = 0;

	if (E->ms != NULL) {
		struct ent *x = &E->ms->ent[E->fr[E->depth - 1].e];
		x->hfl |=
		        (unsigned char)(mime_scan_flags(p, n) & (F_NUL | F_CR));
		if (eol && E->llen > LMAX)
			x->hfl |= F_LONG;
	}

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
		mw_hdr_frag(E->w, p, n, first, start, cls == 2, eol);
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

/* Multiparts open around frame fi (their boundaries are pending). */
static int multi_open(const struct eng *E, int fi)
{
	int n = 0;

	for (int i = 0; i < fi; i++)
		if (E->fr[i].kind == K_MULTI)
			n++;
	return n;
}

/* Pass 1: a multipart Sendmail's MIME walk enters (CTE 7bit, 8bit, binary
 * or none) must be one the walk leaves alone after signing; if not, the
 * first reason is recorded and mime_rewrite fails with it (mime_int.h).
 * The scan itself goes on as before. */
static void sm_walk_check(struct eng *E, int fi, const struct mime_ct *ct)
{
	const char *m = NULL;
	size_t bl = strlen(ct->boundary);

	if (bl == 0)
		m = "mime: a multipart without a boundary: Sendmail's MIME "
		    "walk would rewrite it after signing";
	else if (bl > SM_BMAX)
		m = "mime: a multipart boundary over 127 octets: Sendmail's "
		    "MIME walk would rewrite it after signing";
	else if (multi_open(E, fi) + 1 > SM_NEST)
		m = "mime: multiparts nested more than 19 deep: Sendmail's "
		    "MIME walk would rewrite them after signing";
	else if (fi + 1 >= MAXD || E->frozen)
		m = "mime: a multipart past the nesting or entity limit: "
		    "Sendmail's MIME walk could rewrite it after signing";
	if (m != NULL && E->ms != NULL && E->ms->refuse == NULL)
		E->ms->refuse = m;
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
		if (cte <= MIME_CTE_BINARY)
			sm_walk_check(E, fi, ct);
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
			mw_cte_line(w, w->hact);
		mw_lbeg(w);
		mw_lend(w, 1);
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

/* Pass 2: write the close delimiter of multipart f (it had none). */
static void close_delim(struct eng *E, const struct frame *f)
{
	struct wr *w = E->w;

	if (w == NULL)
		return;
	mw_lbeg(w);
	mw_put(w, "--", 2);
	mw_put(w, f->bnd, f->blen);
	mw_put(w, "--", 2);
	mw_lend(w, 1);
}

static void pop_top(struct eng *E, int at_eof)
{
	struct frame *f = &E->fr[E->depth - 1];

	switch (f->state) {
	case ST_HDRS:
		hdr_end(E, f, 0);
		break;
	case ST_A:
		if (f->kind == K_MULTI) {
			/* its boundary never appeared: the body was its
			 * preamble, and the close delimiter is written, as
			 * Sendmail's MIME walk would write it after signing */
			reg_end(E, 0);
			close_delim(E, f);
			break;
		}
		reg_end(E, at_eof && !multi_below(E));
		break;
	case ST_B:
		reg_end(E, at_eof && !multi_below(E));
		break;
	default: /* ST_PARTS */
		if (f->kind == K_MULTI)
			close_delim(E, f);
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
		if (n != 2 + m->blen + (cl ? 2 : 0))
			E->ms->pad = 1;
		if (cl && fi == 0 && !E->ms->have_close0) {
			E->ms->have_close0 = 1;
			E->ms->close0 = E->cur_end;
		}
	} else {
		const struct ent *x = &E->s->ent[m->e];
		if (!x->delim || (cl && !x->closed))
			eng_fail(E, "body changed between passes");
		/* without transport padding: Sendmail's walk writes its
		 * delimiters so */
		mw_line(E->w, p, 2 + m->blen + (cl ? 2 : 0), eol);
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
		if (first && n > 0 && !is_sp(p[0]) && !is_field(p, n)) {
			/* not a field: the body starts here, as it does for
			 * readers that end a header block at such a line */
			if (E->ms != NULL)
				E->ms->ent[f->e].hfl |= F_JUNK;
			hdr_end(E, f, 1);
			if (!E->failed)
				frag(E, p, n, first, eol);
			break;
		}
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
		size_t take = mime_fill(E->lbuf, &E->lblen, LMAX, p, n);
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

void mime_eng_feed(struct eng *E, const unsigned char *p, size_t n)
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

void mime_eng_finish(struct eng *E)
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
struct eng *mime_eng_new(const struct mime_scan *s, struct mime_scan *ms,
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
