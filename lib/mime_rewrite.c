/*
 * mime_rewrite.c -- pass 2: header blocks (nested ones as they stream
 * through the engine, the top-level ones from the MTA) and mime_rewrite.
 */
#include "mime_int.h"

#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

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
	if (first)
		mw_lbeg(w);
	mw_put(w, p, n);
	if (eol)
		mw_lend(w, eol != EOL_EOF);
}

void mw_line(struct wr *w, const unsigned char *p, size_t n, int eol)
{
	mw_lbeg(w);
	mw_put(w, p, n);
	mw_lend(w, eol != EOL_EOF);
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
		mw_put(w, p, cut);
		mw_put(w, "\r\n", 2);
		p += cut;
		len -= cut;
		col = 0;
		content = 0;
	}
	mw_put(w, p, len);
}

static void w_top_header(struct wr *w, const char *name, const char *value)
{
	const char *v = value ? value : "";
	int firstseg = 1;

	size_t col;

	mw_lbeg(w);
	mw_str(w, name);
	mw_ch(w, ':');
	col = strlen(name) + 1;
	if (!is_sp((unsigned char)*v) && *v != '\r' && *v != '\n') {
		mw_ch(w, ' ');
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
				mw_put(w, "\r\n", 2);
				if (k == 0)
					mw_ch(w, ' ');
				w_fold(w, v, len, k == 0, k == 0);
			}
		}
		if (nl == NULL)
			break;
		v = nl + 1;
	}
	mw_lend(w, 1);
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
		w_top_header(w, "Content-Type",
		             (x0->fa & F_BADUTF8)
		                     ? "text/plain; charset=unknown-8bit"
		                     : "text/plain; charset=utf-8");
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
	if (total != s->bytes || (E != NULL && E->nent != s->nent)) {
		mime_seterr(err, errlen, "body changed between passes");
		goto out;
	}
	/* the outermost multipart ends with its close delimiter */
	if (E != NULL &&
	    !(x0->kind == K_MULTI && x0->delim && !(x0->fb & F_NONBLANK)) &&
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
