/*
 * message -- one message through the signer, shaped like the milter
 * callbacks (header, eoh, body, eom) so that the milter, the offline -t mode
 * and the unit tests all run the same code.  No libmilter and no logging in
 * here: results come back as a verdict, a reason and a list of edits.
 */
#ifndef SMIME_MESSAGE_H
#define SMIME_MESSAGE_H

#include <stddef.h>
#include <time.h>

#include "mime.h"
#include "snapshot.h"

enum msg_verdict {
	MSG_SIGN = 0, /* go on: body, then eom signs */
	MSG_PASS,     /* nothing to do: accept untouched */
	MSG_NOCERT,   /* signing domain but no usable certificate */
	MSG_ERROR     /* cannot do the job: the configured on_error action */
};

enum msg_edit_op { EDIT_DELETE, EDIT_ADD };

/* A header edit to apply at end of message, in order. */
struct msg_edit {
	enum msg_edit_op op;
	char *name;
	int index; /* EDIT_DELETE: 1-based occurrence among headers of name */
	char *value;
};

struct msg;

/* New message context on snapshot s (not referenced: the caller keeps s
 * alive).  Returns NULL on out of memory. */
struct msg *msg_new(const struct snapshot *s);

/* Fix the CMS signing time (tests); 0 means now. */
void msg_set_signing_time(struct msg *m, time_t t);

/* One header as the MTA passes it.  Returns 0 or -1 (limits, memory). */
int msg_header(struct msg *m, const char *name, const char *value, char *err,
               size_t errlen);

/*
 * End of headers: decide.  outbound says whether the client is internal or
 * authenticated.  *reason (may be NULL) gets a static-lifetime text that
 * explains PASS, NOCERT and ERROR verdicts.
 */
enum msg_verdict msg_eoh(struct msg *m, int outbound, const char **reason);

/* A chunk of the body (after a MSG_SIGN verdict).  Returns 0 or -1. */
int msg_body(struct msg *m, const unsigned char *buf, size_t len, char *err,
             size_t errlen);

/*
 * End of message: build the signed entity, sign it, and only then write the
 * new body through out (chunks of at most 64 KiB, CRLF line ends).  On
 * success *edits and *nedits list the header edits to apply.  Returns 0, or -1
 * with err filled and nothing written when signing failed.  A failure of out
 * itself is also -1 (then part of the body may have been written).
 */
int msg_eom(struct msg *m, mime_write_fn out, void *outarg,
            const struct msg_edit **edits, size_t *nedits, char *err,
            size_t errlen);

/* The From address (lower-case) once eoh ran, or NULL. */
const char *msg_from(const struct msg *m);
/* Message-ID header value, or NULL. */
const char *msg_message_id(const struct msg *m);
/* Serial of the signing certificate once eoh chose one, or NULL. */
const char *msg_signer_serial(const struct msg *m);
/* Body bytes received so far. */
size_t msg_body_size(const struct msg *m);

/* Free; NULL is fine.  Temp files are gone afterwards. */
void msg_free(struct msg *m);

#endif
