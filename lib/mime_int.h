/*
 * mime_int.h -- what the lib/mime_*.c files share: limits, the entity
 * table, the engine and writer state, and the functions one file calls in
 * another.  Not an interface: lib/mime.h is.
 *
 * Where things live: mime_hdr.c parses Content-Type and CTE values;
 * mime_codec.c holds the pass-2 writer primitives and the quoted-printable
 * and base64 codecs; mime_engine.c is the line engine both passes run;
 * mime_scan.c is pass 1 (statistics, the plan, the mime_scan_* API);
 * mime_rewrite.c is pass 2 (header blocks and mime_rewrite).
 *
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
 *  - A multipart whose boundary never appears as a delimiter has its whole
 *    body as its preamble (QP-escaped when not 7-bit safe, like any
 *    preamble) and gets a close delimiter written at its end, before the
 *    outer delimiter that ends it.  Sendmail's MIME walk (on by default,
 *    MaxMimeHeaderLength) writes exactly that line when it relays such a
 *    message; without it, Sendmail would write the inner delimiter in place
 *    of the multipart/signed one after signing.
 *
 *  - Sendmail's MIME walk (MaxMimeHeaderLength, on by default) enters every
 *    multipart whose CTE is absent, 7bit, 8bit or binary, and rewrites
 *    what it cannot follow: without a boundary (or with an empty one) it
 *    assumes its own ("---") and writes it; it keeps 127 octets of a
 *    boundary; it nests 20 boundaries (MAXMIMENESTING), multipart/signed
 *    among them.  Such a multipart -- no or empty boundary, a boundary over
 *    SM_BMAX (127) octets, more than SM_NEST (19) multiparts deep, past
 *    MAXD or the MAXENT cap -- fails mime_rewrite with a reason (on_error
 *    then applies; the scan itself does not fail): no repair reads the
 *    same to Sendmail and to others.
 *    Delimiter lines are written without transport padding (trailing
 *    blanks), as the walk writes them.
 *
 *  - A multipart without usable structure that the walk does not enter
 *    (a CTE other than 7bit/8bit/binary) is treated as one opaque text
 *    leaf: its bytes are kept, and when they
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
 *  - A line of a nested header block that is neither a field (a name of
 *    printable octets but ':', optional blanks, ':' within its first LMAX
 *    octets) nor a continuation (leading space or tab) ends the block: a
 *    blank line is written before it and the body starts with it, as
 *    readers that end a header block at such a line (Python's email
 *    package) see it.  So a base64 line right after the part headers, or
 *    junk with NUL and bare CR, becomes content and is made 7-bit safe.
 *
 *  - Nested header lines over LMAX octets are folded before a space or tab
 *    like the top-level ones (the same writer, mime_rewrite.c).  A line
 *    with no such place, or a field holding NUL or a bare CR, fails
 *    mime_rewrite with a reason: a relay would break it (Postfix's SMTP
 *    client splits lines over smtp_line_length_limit), and replacing the
 *    octets would change what readers parse.
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
#ifndef SMIME_MIME_INT_H
#define SMIME_MIME_INT_H

#include "mime.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define LMAX    998   /* longest line that may be a delimiter */
#define MAXD    32    /* nesting depth (frames) */
#define MAXENT  10000 /* entities (header block + body) */
#define SM_BMAX 127   /* longest boundary Sendmail's MIME walk keeps */
#define SM_NEST 19    /* multiparts Sendmail's walk nests, with ours */
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
#define F_JUNK     0x40 /* header block ended by a non-field line */
#define F_UNSAFE   (F_8BIT | F_NUL | F_CR | F_LONG)

/* ------------------------------------------------------------------ */
/* small helpers */

static inline int lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

static inline int is_sp(int c)
{
	return c == ' ' || c == '\t';
}

static inline int ci_eq(const unsigned char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (lower(a[i]) != lower((unsigned char)b[i]))
			return 0;
	return 1;
}

static inline int ci_streq(const char *a, const char *b)
{
	size_t n = strlen(b);

	return strlen(a) == n && ci_eq((const unsigned char *)a, b, n);
}

/* Append to buf (*len octets of cap used) as much of p[0..n) as fits;
 * returns how much. */
static inline size_t mime_fill(unsigned char *buf, size_t *len, size_t cap,
                               const unsigned char *p, size_t n)
{
	size_t take = cap - *len;

	if (take > n)
		take = n;
	memcpy(buf + *len, p, take);
	*len += take;
	return take;
}

static inline int mime_seterr(char *err, size_t errlen, const char *msg)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "%s", msg);
	return -1;
}

/* ------------------------------------------------------------------ */
/* data structures */

struct ent {
	unsigned char kind, cte, text, hdone; /* from the header block */
	unsigned char fa, fb;                 /* F_* of region A and B */
	unsigned char delim, closed;          /* multipart: delimiter seen */
	unsigned char acta, actb, hact;       /* plan (mime_scan_finish) */
	unsigned char hfl; /* header block: F_NUL, F_CR, F_LONG, F_JUNK */
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
	int pad; /* a delimiter line with transport padding (rewritten) */
	/* why Sendmail's MIME walk would rewrite the signed entity (NULL:
	 * it would not); mime_rewrite then fails with it */
	const char *refuse;
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
	const char *hbad; /* a nested header line that cannot be signed */
	size_t hn;        /* octets of the current nested header line held */
	int hcont; /* ... and a non-blank octet was written before them */
	int hraw;  /* ... no fold point: the rest is copied */
	unsigned char wsb[WSHOLD];
	unsigned char hb[LMAX]; /* nested header line held for folding */
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

/* mime_codec.c: writer primitives, codecs and regions (pass 2) */
struct wr *mw_new(void);
void mw_flush(struct wr *w);
void mw_put(struct wr *w, const void *p, size_t n);
void mw_ch(struct wr *w, unsigned char c);
void mw_str(struct wr *w, const char *s);
void mw_lbeg(struct wr *w);
void mw_lend(struct wr *w, int eol);
void mw_cte_line(struct wr *w, int h);
void mw_reg_begin(struct wr *w, int act);
void mw_reg_frag(struct wr *w, const unsigned char *p, size_t n, int first,
                 int eol);
void mw_reg_end(struct wr *w, int keep);

/* mime_rewrite.c: nested header blocks (pass 2) */
void mw_hdr_frag(struct wr *w, const unsigned char *p, size_t n, int first,
                 int start, int iscte, int eol);
void mw_line(struct wr *w, const unsigned char *p, size_t n, int eol);

/* mime_scan.c: pass-1 statistics */
unsigned mime_scan_flags(const unsigned char *p, size_t n);
void mime_u8_feed(struct eng *E, struct ent *x, const unsigned char *p,
                  size_t n);

/* mime_engine.c: the line engine.  Pass 1: s is recorded into (ms == s, w
 * NULL).  Pass 2: s is only read (ms NULL) and w is written. */
struct eng *mime_eng_new(const struct mime_scan *s, struct mime_scan *ms,
                         struct wr *w);
void mime_eng_feed(struct eng *E, const unsigned char *p, size_t n);
void mime_eng_finish(struct eng *E);

#endif
