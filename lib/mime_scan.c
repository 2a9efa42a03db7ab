/*
 * mime_scan.c -- pass 1: the statistics a body region is scanned for,
 * the plan (an action per entity) and the mime_scan_* API.
 */
#include "mime_int.h"

#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* pass-1 statistics */

static unsigned byte_flag(unsigned char c)
{
	return c >= 0x80 ? F_8BIT : c == 0 ? F_NUL : c == '\r' ? F_CR : 0;
}

unsigned mime_scan_flags(const unsigned char *p, size_t n)
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

void mime_u8_feed(struct eng *E, struct ent *x, const unsigned char *p,
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
		} else if (c >= 0xE0 && c <= 0xF4) {
			/* no overlongs, surrogates or code points past 10FFFF */
			E->u8need = c >= 0xF0 ? 3 : 2;
			if (c == 0xE0)
				E->u8lo = 0xA0;
			else if (c == 0xF0)
				E->u8lo = 0x90;
			else if (c == 0xED)
				E->u8hi = 0x9F;
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
/* pass 1 API */

struct mime_scan *mime_scan_new(const char *content_type, const char *cte)
{
	struct mime_scan *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	if ((content_type && (s->top_ct = strdup(content_type)) == NULL) ||
	    (cte && (s->top_cte = strdup(cte)) == NULL) ||
	    (s->eng = mime_eng_new(s, s, NULL)) == NULL) {
		mime_scan_free(s);
		return NULL;
	}
	return s;
}

int mime_scan_feed(struct mime_scan *s, const unsigned char *buf, size_t len,
                   char *err, size_t errlen)
{
	if (s == NULL || s->finished || s->eng == NULL)
		return mime_seterr(err, errlen, "mime: feed after finish");
	if (len == 0)
		return 0;
	if (buf == NULL)
		return mime_seterr(err, errlen, "mime: no buffer");
	mime_eng_feed(s->eng, buf, len);
	s->bytes += len;
	if (s->eng->failed) {
		s->failed = 1;
		return mime_seterr(err, errlen, s->eng->emsg);
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
		if (x->hfl != 0)
			s->needs =
			        1; /* a blank line to add, or lines to fold */
		if (!x->hdone)
			continue;
		if (x->kind == K_MULTI) {
			/* without a delimiter the whole body is the
			 * preamble, and a close delimiter is written */
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
	if (s->pad)
		s->needs = 1;
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
		return mime_seterr(err, errlen, "mime: no scan");
	if (s->finished)
		return s->failed ? mime_seterr(err, errlen, "mime: scan failed")
		                 : 0;
	if (s->failed || s->eng == NULL)
		return mime_seterr(err, errlen, "mime: scan failed");
	mime_eng_finish(s->eng);
	if (s->eng->failed) {
		s->failed = 1;
		mime_seterr(err, errlen, s->eng->emsg);
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
