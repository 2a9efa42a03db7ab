/*
 * der -- tags, lengths and the nesting of DER/BER read in pieces (der.h).
 */
#include "der.h"

#include <limits.h>
#include <string.h>

/* Octet i of the header at p: 1 and *c, 0 when it has not come yet, -1
 * when the header is cut short at eof or runs past DER_HDR_MAX. */
static int hdr_octet(const unsigned char *p, size_t avail, int eof, size_t i,
                     unsigned *c)
{
	if (i >= DER_HDR_MAX)
		return -1;
	if (i >= avail)
		return eof ? -1 : 0;
	*c = p[i];
	return 1;
}

int der_hdr_get(const unsigned char *p, size_t avail, int eof,
                struct der_hdr *h)
{
	size_t i = 0;
	unsigned c;
	int r;

	memset(h, 0, sizeof(*h));
	if ((r = hdr_octet(p, avail, eof, i++, &c)) != 1)
		return r;
	h->cls = (int)(c & 0xc0);
	h->cons = (c & 0x20) != 0;
	h->tag = (int)(c & 0x1f);
	if (h->tag == 0x1f) { /* high tag number, base 128 */
		h->tag = 0;
		do {
			if ((r = hdr_octet(p, avail, eof, i++, &c)) != 1)
				return r;
			if (h->tag > (INT_MAX >> 7))
				return -1;
			h->tag = h->tag << 7 | (int)(c & 0x7f);
		} while (c & 0x80);
	}
	if ((r = hdr_octet(p, avail, eof, i++, &c)) != 1)
		return r;
	if (c == 0x80) {
		h->indef = 1;
		h->hl = i;
		return h->cons ? 1 : -1;
	}
	if (c & 0x80) {
		unsigned k = c & 0x7f;
		while (k-- > 0) {
			if ((r = hdr_octet(p, avail, eof, i++, &c)) != 1)
				return r;
			if (h->len > ((uint64_t)INT64_MAX >> 8))
				return -1;
			h->len = h->len << 8 | c;
		}
	} else
		h->len = c;
	h->hl = i;
	return 1;
}

int der_hdr_is(const struct der_hdr *h, int cls, int tag, int cons)
{
	return h->cls == cls && h->tag == tag && h->cons == cons;
}

void der_walk_init(struct der_walk *w)
{
	memset(w, 0, sizeof(*w));
	w->depth = 1;
	w->st[0].limit = UINT64_MAX;
}

struct der_frame *der_walk_top(struct der_walk *w)
{
	return &w->st[w->depth - 1];
}

int der_walk_enter(struct der_walk *w, const struct der_hdr *h, int flags)
{
	const struct der_frame *parent = der_walk_top(w);
	uint64_t start = w->pos + h->hl;
	struct der_frame *f;

	if (w->depth >= DER_DEPTH_MAX)
		return DER_E_DEPTH;
	f = &w->st[w->depth++];
	memset(f, 0, sizeof(*f));
	f->flags = (unsigned char)flags;
	f->data = !h->cons || ((flags & DER_WHOLE) && !h->indef);
	f->indef = (unsigned char)h->indef;
	f->left = f->data ? h->len : 0;
	f->end = h->indef ? 0 : start + h->len;
	f->limit = h->indef ? parent->limit : f->end;
	w->pos = start;
	return 0;
}

/* The top frame has ended: pop it into ev->f. */
static int pop(struct der_walk *w, struct der_ev *ev)
{
	ev->f = *der_walk_top(w);
	w->depth--;
	return DER_END;
}

int der_walk_next(struct der_walk *w, const unsigned char *p, size_t avail,
                  int eof, struct der_ev *ev)
{
	struct der_frame *f = der_walk_top(w), *c;
	struct der_hdr *h = &ev->h;
	int r;

	ev->n = 0;
	ev->f = *f;
	if (f->data) {
		if (f->left == 0)
			return pop(w, ev);
		if (avail == 0)
			return DER_MORE;
		ev->n = (uint64_t)avail < f->left ? avail : (size_t)f->left;
		f->left -= ev->n;
		w->pos += ev->n;
		ev->f.left = f->left;
		return DER_DATA;
	}
	if (w->depth > 1 && !f->indef && w->pos == f->end)
		return pop(w, ev);
	if (avail == 0)
		return DER_MORE;
	if ((r = der_hdr_get(p, avail, eof, h)) <= 0)
		return r == 0 ? DER_MORE : DER_E_HEADER;
	if (h->cls == DER_UNIVERSAL && h->tag == 0) {
		if (h->cons || h->indef || h->len != 0 || !f->indef)
			return DER_E_EOC;
		w->pos += h->hl;
		ev->n = h->hl;
		return pop(w, ev);
	}
	if (w->pos + h->hl > f->limit ||
	    (!h->indef && h->len > f->limit - (w->pos + h->hl)))
		return DER_E_BEYOND;
	if (!(f->flags & DER_OCTETS))
		return DER_HEAD;
	if (h->cls != DER_UNIVERSAL || h->tag != DER_OCTET_STRING)
		return DER_E_PIECE;
	if ((r = der_walk_enter(w, h, f->flags)) < 0)
		return r;
	c = der_walk_top(w);
	c->kind = f->kind;
	c->step = f->step;
	c->sink = f->sink;
	c->keep = f->keep;
	ev->f = *c;
	ev->n = h->hl;
	return DER_PIECE;
}

const struct der_rule *der_rule_find(const struct der_rule *rules, size_t n,
                                     const struct der_frame *f,
                                     const struct der_hdr *h)
{
	for (size_t i = 0; i < n; i++) {
		const struct der_rule *r = &rules[i];
		if (r->kind == f->kind && r->step == f->step &&
		    r->cls == h->cls && r->tag == h->tag &&
		    (r->cons < 0 || r->cons == h->cons))
			return r;
	}
	return NULL;
}

int der_rule_enter(struct der_walk *w, const struct der_rule *r,
                   const struct der_hdr *h)
{
	struct der_frame *f = der_walk_top(w);

	if (der_walk_enter(w, h, r->flags) != 0)
		return DER_E_DEPTH;
	f->step = r->next;
	f = der_walk_top(w);
	f->kind = r->enter;
	f->sink = r->sink;
	f->keep = r->keep;
	return 0;
}
