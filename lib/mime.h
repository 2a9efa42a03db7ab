/*
 * mime -- incremental MIME structure scanner and 7-bit-safe rewriter.
 *
 * Two passes over the body of one message:
 *
 *   pass 1 (mime_scan_feed, called as body chunks arrive from the MTA) learns
 *   the part tree: boundaries, each part's Content-Type and
 *   Content-Transfer-Encoding, whether a part holds 8bit bytes, NUL, bare CR
 *   or lines over 998 octets, and where each part starts and ends (byte
 *   offsets in the raw body).  Memory is bounded by the number of parts, not
 *   by the size of the body.
 *
 *   pass 2 (mime_rewrite) reads the raw body again from the start through a
 *   reader callback and writes the signed entity to a sink callback: the
 *   top-level Content-* headers, a blank line, then the body with every line
 *   ending canonicalized to CRLF and every part that is not 7-bit safe
 *   re-encoded (text parts -> quoted-printable, everything else -> base64;
 *   over-long base64/QP lines re-wrapped), nested multiparts and
 *   message/rfc822 included.  The body buffer is not a C string: it may hold
 *   NUL bytes.
 *
 * lib/ is pure: functions return 0 on success and -1 on error with a message
 * in the caller's error buffer.  Nothing here logs or exits.
 */
#ifndef SMIME_MIME_H
#define SMIME_MIME_H

#include <stddef.h>
#include <sys/types.h>

/* One header field as the MTA handed it: value may hold folded lines (LF or
 * CRLF between them) and may or may not start with the space after ':'. */
struct mime_header {
	const char *name;
	const char *value;
};

/* A parsed Content-Type value.  Empty strings where absent; type and subtype
 * are lower-cased.  Parameter values are unquoted. */
struct mime_ct {
	char type[64];
	char subtype[128];
	char boundary[256]; /* RFC 2046 allows 70; longer input is kept truncated */
	char charset[64];
	char protocol[128];
	char smime_type[64];
	char name[256];
};

/* Parse a Content-Type header value.  value may be NULL (then the RFC 2045
 * default text/plain; charset=us-ascii is filled in).  A value that does not
 * parse also yields text/plain (RFC 2045 5.2).  Returns 0. */
int mime_ct_parse(const char *value, struct mime_ct *out);

/* Transfer encodings we recognize. */
enum mime_cte {
	MIME_CTE_7BIT = 0, /* also: absent */
	MIME_CTE_8BIT,
	MIME_CTE_BINARY,
	MIME_CTE_QP,
	MIME_CTE_BASE64,
	MIME_CTE_OTHER /* x-uuencode and the like: treated like 7bit if clean */
};

/* Parse a Content-Transfer-Encoding value (NULL -> 7bit). */
enum mime_cte mime_cte_parse(const char *value);

struct mime_scan;

/* Start pass 1.  content_type and cte are the top-level header values (NULL
 * when absent).  Returns NULL on out of memory. */
struct mime_scan *mime_scan_new(const char *content_type, const char *cte);

/* Feed the next chunk of the raw body (any size, may split lines anywhere).
 * Past its limits (nesting depth, part count, line and header lengths) the
 * scanner degrades to treating content as opaque, never fails; returns -1
 * only on out of memory (or a feed after finish) with err filled. */
int mime_scan_feed(struct mime_scan *s, const unsigned char *buf, size_t len,
                   char *err, size_t errlen);

/* Mark the end of the body.  Returns 0 or -1 with err filled. */
int mime_scan_finish(struct mime_scan *s, char *err, size_t errlen);

/* After finish: 1 when the entity differs from the body by more than line
 * ends and a dropped blank epilogue (re-encoding, re-wrapping, a changed
 * CTE or charset header, an escaped preamble, a written close delimiter). */
int mime_scan_needs_rewrite(const struct mime_scan *s);

/* After finish: 1 when the entity's body is the raw body octets exactly
 * (every line end CR LF, nothing to re-encode or add), cut short only by a
 * dropped blank epilogue.  mime_rewrite then copies the octets instead of
 * parsing them again: a 50 MB attachment costs one parse, not three. */
int mime_scan_identity(const struct mime_scan *s);

/* Tests only: on = 0 makes mime_rewrite always run the parser, so that a
 * test can check the copy against it.  The default is on. */
void mime_scan_fastpath(struct mime_scan *s, int on);

/* After finish: number of leaf parts, and bytes of raw body seen. */
size_t mime_scan_parts(const struct mime_scan *s);
size_t mime_scan_bytes(const struct mime_scan *s);

/* Free; NULL is fine. */
void mime_scan_free(struct mime_scan *s);

/* Reader for pass 2: fill buf with up to len bytes of the raw body, return
 * the count, 0 at end, -1 on error. */
typedef ssize_t (*mime_read_fn)(void *arg, unsigned char *buf, size_t len);

/* Sink for pass 2: take len bytes of output; return 0, or -1 to abort. */
typedef int (*mime_write_fn)(void *arg, const unsigned char *buf, size_t len);

/*
 * Pass 2: write the signed entity.
 *   scan      a finished scan of the same body
 *   hdrs,nhdrs the top-level Content-* headers (only those; in order)
 *   rd,rarg   reads the raw body from its first byte
 *   wr,warg   receives the entity
 * The entity is: the headers (name ": " value, folding kept, line ends
 * CRLF, Content-Transfer-Encoding changed where the top-level body is
 * re-encoded, a Content-Type with charset added when the top level had none
 * and holds 8bit text), CRLF, the canonical 7-bit body.  For a multipart
 * entity an epilogue made only of blank lines is dropped, so the entity ends
 * with the close delimiter (some clients reject a trailing epilogue).
 * Output is written in chunks of at most 64 KiB.  May run several times on
 * one finished scan and then writes identical bytes each time (the caller
 * hashes one run and sends the next).  Header lines of nested parts are
 * copied as they are, 8bit bytes included; only bodies are made 7-bit.  A
 * nested header block ends at the first line that is neither a field nor a
 * continuation (a blank line is added before it: the body starts there).
 * A header line over 998 octets, top-level or nested, is folded before a
 * space or tab.
 * For an identity scan (mime_scan_identity) the body is copied, and a body
 * that differs from the scanned one is only noticed by its length.
 * Returns 0, or -1 with err filled (reader/writer failure, out of memory,
 * a body that differs from the one scanned, a header line over 998 octets
 * with no space or tab to fold it at, NUL or a bare CR in a field of a
 * nested header block, or a multipart Sendmail's default MIME walk would
 * rewrite after signing -- no or an empty boundary, a boundary over 127
 * octets, more than 19 multiparts deep (lib/mime_int.h): a relay would
 * break or change them).  Delimiter lines are written without trailing
 * blanks.
 */
int mime_rewrite(const struct mime_scan *scan, const struct mime_header *hdrs,
                 size_t nhdrs, mime_read_fn rd, void *rarg, mime_write_fn wr,
                 void *warg, char *err, size_t errlen);

/* The Content-Type a finished scan's top level has when it carries none:
 * the one mime_rewrite adds (8bit text), else "text/plain;
 * charset=us-ascii" (RFC 2045's default).  For a caller that writes the
 * Content-Type itself (header protection adds a parameter). */
const char *mime_scan_default_ct(const struct mime_scan *scan);

/* Base64-encode len bytes as lines of 76 characters ending in CRLF, through
 * wr.  Used for the smime.p7s part as well.  Returns 0 or -1. */
int mime_base64_write(const unsigned char *buf, size_t len, mime_write_fn wr,
                      void *warg);

/* The same encoder fed in pieces of any size (a stream too large to hold):
 * new (NULL on out of memory), feed (has the mime_write_fn shape, so a
 * producer can write into it; the argument is the struct mime_b64), end
 * (the last partial group and line end), free (NULL is fine).  feed and end
 * return 0 or -1 when wr failed. */
struct mime_b64;
struct mime_b64 *mime_b64_new(mime_write_fn wr, void *warg);
int mime_b64_feed(void *b64, const unsigned char *buf, size_t len);
int mime_b64_end(struct mime_b64 *b);
void mime_b64_free(struct mime_b64 *b);

#endif
