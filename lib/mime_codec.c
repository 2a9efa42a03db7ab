/*
 * mime_codec.c -- the pass-2 writer: output lines, the quoted-printable
 * encoder and re-wrapper, the base64 encoder and re-wrapper, and the regions
 * that pick one of them; the public mime_b64_* / mime_base64_write.
 */
#include "mime_int.h"

#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* writer primitives */

void mw_flush(struct wr *w)
{
	if (w->len > 0 && !w->failed && w->fn(w->arg, w->buf, w->len) != 0)
		w->failed = 1;
	w->len = 0;
}

void mw_put(struct wr *w, const void *p, size_t n)
{
	const unsigned char *s = p;

	while (n > 0) {
		size_t take;
		if (w->len == OBUF) {
			mw_flush(w);
			continue;
		}
		take = mime_fill(w->buf, &w->len, OBUF, s, n);
		s += take;
		n -= take;
	}
}

void mw_ch(struct wr *w, unsigned char c)
{
	if (w->len == OBUF)
		mw_flush(w);
	w->buf[w->len++] = c;
}

void mw_str(struct wr *w, const char *s)
{
	mw_put(w, s, strlen(s));
}

/* Output is a sequence of lines; the CRLF that ends one is written when the
 * next one begins, so whoever ends the entity decides about the last one. */
void mw_lbeg(struct wr *w)
{
	if (w->pend) {
		mw_put(w, "\r\n", 2);
		w->pend = 0;
	}
}

void mw_lend(struct wr *w, int eol)
{
	w->pend = 1;
	w->lastnl = eol;
}

static const char *cte_name(int h)
{
	return h == H_QP ? "quoted-printable" : h == H_B64 ? "base64" : "7bit";
}

void mw_cte_line(struct wr *w, int h)
{
	mw_lbeg(w);
	mw_str(w, "Content-Transfer-Encoding: ");
	mw_str(w, cte_name(h));
	mw_lend(w, 1);
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
	mw_ch(w, '=');
	mw_lend(w, 1);
	mw_lbeg(w);
	w->col = 0;
	w->soft = 1;
}

static void qp_flush_fh(struct wr *w)
{
	if (w->fh) {
		mw_put(w, "From", (size_t)w->fh);
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
				mw_put(w, "=46rom ", 7);
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
			mw_put(w, "=2D", 3);
			w->col = 3;
			return;
		}
	}
	mw_put(w, t, k);
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
		mw_put(w, p, j);
		w->col += j;
	}
	return j;
}

static void qp_line_start(struct wr *w)
{
	mw_lbeg(w);
	w->col = 0;
	w->soft = 0;
}

/* Encode raw text (region A_QP); the caller starts the line. */
static void qpe_frag(struct wr *w, const unsigned char *p, size_t n, int eol)
{
	size_t i = 0;

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
		mw_lend(w, eol != EOL_EOF);
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

/* Re-wrap existing quoted-printable (region A_QPWRAP); the caller starts
 * the line. */
static void qpw_frag(struct wr *w, const unsigned char *p, size_t n, int eol)
{
	size_t i = 0;

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
			mw_ch(w, '=');
			w->col++;
		}
		mw_lend(w, eol != EOL_EOF);
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
		mw_lbeg(w);
	if (OBUF - w->len < 4)
		mw_flush(w);
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
		mw_lend(w, 1);
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
		mw_lend(w, 1);
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
			mw_lbeg(w);
		mw_ch(w, p[i]);
		if (++w->bcol == B64LINE) {
			w->bcol = 0;
			mw_lend(w, 1);
		}
	}
}

/* A writer with its state zeroed; the 64 KiB buffers are left as they
 * come, so a message does not pay for clearing (and faulting in) them. */
struct wr *mw_new(void)
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

	if (wr == NULL || (w = mw_new()) == NULL)
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
		mw_put(w, "\r\n", 2);
	mw_flush(w);
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

void mw_reg_begin(struct wr *w, int act)
{
	w->act = act;
	w->col = 0;
	w->soft = w->fh = w->wsp = w->eq = w->eqws = 0;
	w->wsn = 0;
	w->an = w->beol = 0;
	w->bcol = 0;
}

void mw_reg_frag(struct wr *w, const unsigned char *p, size_t n, int first,
                 int eol)
{
	switch (w->act) {
	case A_PASS:
		if (first)
			mw_lbeg(w);
		mw_put(w, p, n);
		if (eol)
			mw_lend(w, eol != EOL_EOF);
		break;
	case A_QP:
	case A_QPWRAP:
		if (first)
			qp_line_start(w);
		if (w->act == A_QP)
			qpe_frag(w, p, n, eol);
		else
			qpw_frag(w, p, n, eol);
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
void mw_reg_end(struct wr *w, int keep)
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
		mw_lend(w, 1);
	}
}
