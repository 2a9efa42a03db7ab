/*
 * mime_rewrite.c -- pass 2: header blocks (nested ones as they stream
 * through the engine, the top-level ones from the MTA) and mime_rewrite.
 */
#include "mime_int.h"

#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Header lines are written through a hold buffer of LMAX octets, so that
 * a line over LMAX octets is folded before a space or tab (unfolding gives
 * the same value back) even when it arrives in pieces: hl_begin starts a
 * line, hl_put appends to it, hl_break ends it with CRLF inside the field
 * (a continuation follows), hl_flush writes what is held.  A folded piece
 * must hold a non-blank octet (no all-blank continuation lines).  When a
 * line has no such fold point, w->hlong is set and the rest of the line is
 * written as it is (mime_rewrite then fails).  Each octet is searched and
 * moved a bounded number of times: linear in the length of the line. */
static void hl_begin(struct wr *w)
{
	mw_lbeg(w);
	w->hn = 0;
	w->hcont = 0;
	w->hraw = 0;
}

static void hl_flush(struct wr *w)
{
	mw_put(w, w->hb, w->hn);
	w->hn = 0;
}

static void hl_break(struct wr *w)
{
	hl_flush(w);
	mw_put(w, "\r\n", 2);
	w->hcont = 0;
	w->hraw = 0;
}

/* The hold is full and next comes c: fold, or give up on this line. */
static void hl_fold(struct wr *w, unsigned char c)
{
	size_t nb = 0, cut = 0;

	while (nb < w->hn && is_sp(w->hb[nb]))
		nb++;
	if (w->hcont)
		nb = 0;
	if (is_sp(c) && (w->hcont || nb < w->hn)) {
		hl_break(w); /* the line is exactly LMAX octets */
		return;
	}
	for (size_t i = w->hn - 1; i > nb; i--)
		if (is_sp(w->hb[i])) {
			cut = i;
			break;
		}
	if (cut == 0) {
		w->hlong = 1;
		w->hraw = 1;
		hl_flush(w);
		return;
	}
	mw_put(w, w->hb, cut);
	mw_put(w, "\r\n", 2);
	memmove(w->hb, w->hb + cut, w->hn - cut);
	w->hn -= cut;
	w->hcont = 0;
}

static void hl_put(struct wr *w, const unsigned char *p, size_t n)
{
	while (n > 0) {
		size_t take;
		if (w->hraw) {
			mw_put(w, p, n);
			return;
		}
		if (w->hn == LMAX) {
			hl_fold(w, p[0]);
			continue;
		}
		take = mime_fill(w->hb, &w->hn, LMAX, p, n);
		p += take;
		n -= take;
	}
}

void mw_hdr_frag(struct wr *w, const unsigned char *p, size_t n, int first,
                 int start, int iscte, int eol)
{
	if (start)
		w->hskip = w->hact != H_NONE && iscte;
	if (w->hskip) {
		if (start && !w->hrep) {
			mw_cte_line(w, w->hact);
			w->hrep = 1;
		}
		return;
	}
	if (memchr(p, '\0', n) != NULL || memchr(p, '\r', n) != NULL)
		w->hbad = "mime: NUL or bare CR in a header line of a nested "
		          "part";
	if (first)
		hl_begin(w);
	hl_put(w, p, n);
	if (eol) {
		hl_flush(w);
		mw_lend(w, eol != EOL_EOF);
	}
}

void mw_line(struct wr *w, const unsigned char *p, size_t n, int eol)
{
	mw_lbeg(w);
	mw_put(w, p, n);
	mw_lend(w, eol != EOL_EOF);
}

/* ------------------------------------------------------------------ */
/* pass 2 */

static void w_top_header(struct wr *w, const char *name, const char *value)
{
	const char *v = value ? value : "";
	int firstseg = 1;

	hl_begin(w);
	hl_put(w, (const unsigned char *)name, strlen(name));
	hl_put(w, (const unsigned char *)":", 1);
	if (!is_sp((unsigned char)*v) && *v != '\r' && *v != '\n')
		hl_put(w, (const unsigned char *)" ", 1);
	for (;;) {
		const char *nl = strchr(v, '\n');
		size_t len = nl ? (size_t)(nl - v) : strlen(v);
		if (len > 0 && v[len - 1] == '\r')
			len--;
		if (firstseg) {
			hl_put(w, (const unsigned char *)v, len);
			firstseg = 0;
		} else {
			size_t k = 0;
			while (k < len && is_sp((unsigned char)v[k]))
				k++;
			if (k < len) {
				hl_break(w);
				if (k == 0)
					hl_put(w, (const unsigned char *)" ",
					       1);
				hl_put(w, (const unsigned char *)v, len);
			}
		}
		if (nl == NULL)
			break;
		v = nl + 1;
	}
	hl_flush(w);
	mw_lend(w, 1);
}

/* The Content-Type of a top level that has none: what mime_rewrite adds
 * (8-bit text), else the RFC 2045 default. */
static const char *added_ct(const struct mime_scan *s)
{
	if (!s->addct)
		return "text/plain; charset=us-ascii";
	return (s->ent[0].fa & F_BADUTF8) ? "text/plain; charset=unknown-8bit"
	                                  : "text/plain; charset=utf-8";
}

const char *mime_scan_default_ct(const struct mime_scan *scan)
{
	if (scan == NULL || !scan->finished || scan->nent == 0)
		return "text/plain; charset=us-ascii";
	return added_ct(scan);
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
		return mime_seterr(err, errlen, "mime: scan not finished");
	if (rd == NULL || wr == NULL || (hdrs == NULL && nhdrs > 0))
		return mime_seterr(err, errlen, "mime: bad arguments");
	if (s->refuse != NULL)
		return mime_seterr(err, errlen, s->refuse);
	x0 = &s->ent[0];
	hact = x0->hact;
	w = mw_new();
	rb = malloc(RBUF);
	if (w == NULL || rb == NULL) {
		mime_seterr(err, errlen, "out of memory");
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
				mw_cte_line(w, hact);
			done = 1;
			continue;
		}
		w_top_header(w, nm, hdrs[i].value);
	}
	if (s->addct && !have_ct)
		w_top_header(w, "Content-Type", added_ct(s));
	if (hact != H_NONE && !done)
		mw_cte_line(w, hact);
	if (w->hlong) {
		/* a relay would fold it (Postfix inserts CRLF SPACE anywhere
		 * past smtp_line_length_limit) and break the signature */
		mime_seterr(err, errlen,
		            "mime: a Content-* header line is over 998 octets "
		            "with no place to fold it");
		goto out;
	}
	mw_lbeg(w);
	mw_lend(w, 1);

	if (s->ident && !s->nofast) {
		/* the body octets as they are: no second run of the engine */
		mw_lbeg(w); /* the blank line */
		mw_flush(w);
	} else if ((E = mime_eng_new(s, NULL, w)) == NULL) {
		mime_seterr(err, errlen, "out of memory");
		goto out;
	}
	while (E == NULL || !E->failed) {
		ssize_t r = rd(rarg, rb, RBUF);
		if (r < 0 || (size_t)r > RBUF) {
			mime_seterr(err, errlen, "mime: cannot read the body");
			goto out;
		}
		if (r == 0)
			break;
		total += (size_t)r;
		if (E != NULL) {
			mime_eng_feed(E, rb, (size_t)r);
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
		mime_eng_finish(E);
		if (E->failed) {
			mime_seterr(err, errlen, E->emsg);
			goto out;
		}
	}
	if (w->hbad != NULL || w->hlong) {
		/* never sign a line a relay would break or change */
		mime_seterr(err, errlen,
		            w->hbad != NULL
		                    ? w->hbad
		                    : "mime: a header line of a nested part is "
		                      "over 998 octets with no place to fold "
		                      "it");
		goto out;
	}
	if (total != s->bytes || (E != NULL && E->nent != s->nent)) {
		mime_seterr(err, errlen, "body changed between passes");
		goto out;
	}
	/* the outermost multipart ends with its close delimiter */
	if (E != NULL && !(x0->kind == K_MULTI && !(x0->fb & F_NONBLANK)) &&
	    w->pend && w->lastnl)
		mw_put(w, "\r\n", 2);
	mw_flush(w);
	if (w->failed) {
		mime_seterr(err, errlen, "mime: cannot write the entity");
		goto out;
	}
	rc = 0;
out:
	free(E);
	free(rb);
	free(w);
	return rc;
}
