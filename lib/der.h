/*
 * der -- a walk over DER/BER that arrives in pieces, for the parsers that
 * must not hold a whole message (cms_dec_der.c, smime_verify_opaque.c).
 *
 * The caller owns the input buffer and hands der_walk_next what it has;
 * each call returns one event and says how many octets it took.  A stack
 * of frames, one per element being read: a definite element must fit in
 * its nearest definite ancestor, an end-of-contents only ends an
 * indefinite one, nesting is bounded by DER_DEPTH_MAX, headers by
 * DER_HDR_MAX octets.  The pieces of a constructed OCTET STRING (of any
 * shape) are entered here, so their octets come as plain data.  Every
 * event takes input or ends a frame, so time is linear in the input.
 *
 *	der_walk_init(&w);
 *	while ((e = der_walk_next(&w, p, avail, eof, &ev)) != DER_MORE) {
 *		if (e < 0) fail;
 *		use ev.n octets at p (they belong to frame ev.f), p += ev.n;
 *		DER_HEAD: der_walk_enter(&w, &ev.h, flags) or fail, then take
 *		          ev.h.hl octets (they belong to the new top frame);
 *		DER_END:  ev.f has ended; DER_DATA: contents of ev.f.
 *	}
 *	DER_MORE: read more input (at eof: the input is cut short).
 */
#ifndef SMIME_DER_H
#define SMIME_DER_H

#include <stddef.h>
#include <stdint.h>

/* The longest header read: longer ones are malformed. */
#define DER_HDR_MAX 16
/* Frames at most, the input itself (the bottom frame) included. */
#define DER_DEPTH_MAX 32

/* Tag classes (the top bits of the first octet). */
#define DER_UNIVERSAL   0x00
#define DER_APPLICATION 0x40
#define DER_CONTEXT     0x80
#define DER_PRIVATE     0xc0

/* Universal tag numbers the callers look for. */
#define DER_INTEGER      2
#define DER_OCTET_STRING 4
#define DER_OID          6
#define DER_SEQUENCE     16
#define DER_SET          17

/* One tag and length. */
struct der_hdr {
	int cls;      /* DER_UNIVERSAL ... DER_PRIVATE */
	int cons;     /* 1: constructed */
	int tag;      /* the tag number */
	int indef;    /* 1: indefinite length (constructed only) */
	uint64_t len; /* contents octets when definite (at most INT64_MAX) */
	size_t hl;    /* header octets */
};

/*
 * Read the header at p, of which avail octets are there; eof: no more will
 * come.  Lengths may have leading zero octets (BER), high tag numbers fit
 * an int.  Returns 1, 0 when more input is needed, -1 when it is malformed
 * (or cut short at eof, or longer than DER_HDR_MAX octets).
 */
int der_hdr_get(const unsigned char *p, size_t avail, int eof,
                struct der_hdr *h);

/* 1 when h is of class cls, number tag and constructed as cons says. */
int der_hdr_is(const struct der_hdr *h, int cls, int tag, int cons);

/* How der_walk_enter reads an element. */
#define DER_WHOLE  0x01 /* a definite constructed one as data, unparsed */
#define DER_OCTETS 0x02 /* an OCTET STRING: its pieces are entered here */

/* One element being read. */
struct der_frame {
	uint64_t end;        /* absolute end offset when definite */
	uint64_t limit;      /* nearest definite end of this or an ancestor */
	uint64_t left;       /* data: contents octets still to come */
	unsigned char data;  /* the contents come as data (DER_DATA) */
	unsigned char indef; /* indefinite length */
	unsigned char flags; /* DER_WHOLE, DER_OCTETS as entered */
	/* the caller's (copied to the pieces of a DER_OCTETS frame) */
	unsigned char kind, step, sink, keep;
};

struct der_walk {
	struct der_frame st[DER_DEPTH_MAX]; /* st[0]: the input itself */
	int depth;                          /* frames in st */
	uint64_t pos;                       /* offset of the next octet */
};

/* What der_walk_next found. */
struct der_ev {
	struct der_hdr h;   /* DER_HEAD, DER_PIECE: the header */
	struct der_frame f; /* the frame the ev.n octets belong to (the top
	                       one when none are taken); for
	                       DER_END the frame that ended */
	size_t n;           /* octets taken at p */
};

/* Events (> 0), DER_MORE, and errors (< 0). */
enum {
	DER_MORE = 0,      /* more input is needed; nothing taken */
	DER_HEAD = 1,      /* ev.h starts in the top frame: enter it or fail */
	DER_DATA = 2,      /* ev.n contents octets of ev.f */
	DER_END = 3,       /* ev.f ended (ev.n: its end-of-contents octets) */
	DER_PIECE = 4,     /* a piece of a DER_OCTETS frame, entered (ev.n: its
	                  header) */
	DER_E_HEADER = -1, /* a header that does not parse */
	DER_E_EOC = -2,    /* an end-of-contents where none may be */
	DER_E_BEYOND = -3, /* an element past its enclosing definite one */
	DER_E_PIECE = -4,  /* a piece of an OCTET STRING that is not one */
	DER_E_DEPTH = -5   /* nesting deeper than DER_DEPTH_MAX */
};

/* One element a frame of some kind may hold at some step: a caller's
 * grammar is a table of these, searched in order by der_rule_find. */
struct der_rule {
	unsigned char kind, step; /* in a frame of this kind, at this step */
	unsigned char cls, tag;   /* an element of this class and number */
	signed char cons;         /* constructed (1), primitive (0), either */
	unsigned char next;       /* the frame's step after it */
	unsigned char enter;      /* the kind of the frame it opens */
	unsigned char flags;      /* for der_walk_enter */
	unsigned char sink, keep; /* the new frame's */
};

/* The first of the n rules for element h in frame f, or NULL. */
const struct der_rule *der_rule_find(const struct der_rule *rules, size_t n,
                                     const struct der_frame *f,
                                     const struct der_hdr *h);

/* Enter h as rule r says (r came from der_rule_find for the top frame):
 * the top frame moves to r->next, the new one has r's kind, sink and keep.
 * Returns 0, or DER_E_DEPTH and nothing changes. */
int der_rule_enter(struct der_walk *w, const struct der_rule *r,
                   const struct der_hdr *h);

/* Start a walk at offset 0: only the bottom frame, without limit. */
void der_walk_init(struct der_walk *w);

/* The next event at p (avail octets; eof: no more input will come). */
int der_walk_next(struct der_walk *w, const unsigned char *p, size_t avail,
                  int eof, struct der_ev *ev);

/* Enter the element whose header h came with DER_HEAD (flags DER_WHOLE,
 * DER_OCTETS): its header is taken.  Returns 0, or DER_E_DEPTH and
 * nothing changes. */
int der_walk_enter(struct der_walk *w, const struct der_hdr *h, int flags);

/* The frame being read (the bottom one when none is open). */
struct der_frame *der_walk_top(struct der_walk *w);

#endif
