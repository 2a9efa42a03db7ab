/*
 * offline -- the -t mode: one message file through the real callbacks,
 * with the headers split the way an MTA splits them and the edits applied
 * to the output.  Needs no libmilter at link time (only its header for the
 * callback table), so the fuzzers link this very file.
 */
#ifndef MILTER_OFFLINE_H
#define MILTER_OFFLINE_H

#include <stddef.h>
#include <stdio.h>

#include <libmilter/mfapi.h>

/* The offline context: a message read from a file, edits collected. */
struct offline_ctx {
	void *priv;
	const char *queue_id;
	const char *auth_authen;
	char **hdr_names;  /* the file's headers, in order */
	char **hdr_values; /* value as a milter would see it */
	char **hdr_raw;    /* the raw header lines (with folding) */
	int *hdr_deleted;
	size_t nhdrs, caphdrs;
	char **add_names;
	char **add_values;
	size_t nadds;
	FILE *body_out; /* replaced body goes here (memstream) */
	int body_replaced;
	int inbound; /* --inbound: the client is outside, not authenticated */
	char reply[512];
};

/* When non-NULL every mw_* wrapper works on this offline context. */
extern struct offline_ctx *mw_offline;

/*
 * Split data into header fields like an MTA: each(arg, start, end) gets
 * every field, raw (folds and line end kept); a non-zero return stops the
 * split.  The header block ends at an empty line (taken) or at the first
 * line that is no field.  Returns the body's offset, or (size_t)-1 when
 * each stopped the split.
 */
size_t offline_split(const char *data, size_t len,
                     int (*each)(void *arg, const char *start, const char *end),
                     void *arg);

/*
 * Name and value of the raw field [start, end) as the MTA hands them to a
 * milter: leading blanks of the value gone, CRLF of folds made LF, the
 * line end dropped.  *name and *value are malloc'd.  Returns 0 or -1 (out
 * of memory: nothing to free).
 */
int offline_header_parse(const char *start, const char *end, char **name,
                         char **value);

/*
 * The body [body, body+len) the way an MTA sends it: bare LF made CRLF, in
 * chunks of at most 64 KiB (libmilter's size) to chunk(arg, buf, n); a
 * non-zero return stops.  Returns 0, or -1 when chunk stopped.
 */
int offline_body(const char *body, size_t len,
                 int (*chunk)(void *arg, unsigned char *buf, size_t n),
                 void *arg);

/* Append the raw field [start, end) to o's headers (arrays grow
 * geometrically).  Returns 0 or -1 (out of memory). */
int offline_add_header(struct offline_ctx *o, const char *start,
                       const char *end);

/* Free what o holds (not o itself); NULL is fine. */
void offline_ctx_free(struct offline_ctx *o);

/*
 * Run the file at path ("-": standard input) through desc's callbacks on
 * the current snapshot, from sender (NULL: "<>") to rcpts (none: the To,
 * Cc and Bcc addresses), and write the result (or the message untouched
 * when it passed unsigned) to standard output.  With inbound the message
 * comes from outside (the inbound path: decrypt, verify, stamp), else
 * from an internal client (the signer).  Returns a sysexits code.
 */
int offline_sign(const struct smfiDesc *desc, const char *path,
                 const char *sender, char *const *rcpts, size_t nrcpts,
                 int inbound);

#endif
