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
	MSG_ERROR,    /* cannot do the job: the configured on_error action */
	MSG_REJECT    /* refused by the encryption policy (550 5.7.1) */
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

/* The envelope sender (MAIL FROM argument, angle brackets allowed), for
 * encryption rules limited to senders until the From header is known. */
void msg_envfrom(struct msg *m, const char *addr);

/*
 * One envelope recipient (RCPT TO argument, angle brackets allowed).  For
 * outbound mail (outbound set) a recipient whose encryption rule is
 * "required" and who has no valid certificate is refused here: returns 1 and
 * *reason (static per thread) says why; the recipient is not recorded.
 * Returns 0 when recorded, -1 on out of memory.
 */
int msg_rcpt(struct msg *m, const char *addr, int outbound,
             const char **reason);

/*
 * End of headers: decide.  outbound says whether the client is internal or
 * authenticated.  *reason (may be NULL) gets a static-lifetime text that
 * explains PASS, NOCERT and ERROR verdicts.
 */
enum msg_verdict msg_eoh(struct msg *m, int outbound, const char **reason);
/*
 * MSG_SIGN also decides encryption: with encrypt rules that ask for it for
 * any recipient, the message is encrypted when every recipient and the
 * sender have a valid certificate that allows encryption.  Otherwise a
 * "required" recipient turns the verdict into MSG_REJECT, and opportunistic
 * ones leave it signed only with msg_encrypt_note saying why.
 * Inbound mail is inbound.h's (the harvest comes from its verdict).
 */

/* A chunk of the body (after a MSG_SIGN verdict).  Returns 0 or -1. */
int msg_body(struct msg *m, const unsigned char *buf, size_t len, char *err,
             size_t errlen);

/*
 * End of message: write the new body through out (chunks of at most 64 KiB,
 * CRLF line ends) and sign it.  On success *edits and *nedits list the
 * header edits to apply.  Returns 0, or -1 with err filled.  Part of the
 * body may have been written before a failure; msg_error_action then never
 * says "accept" (see there: with on_error = accept, msg_eom signs before it
 * writes anything, so a signing failure leaves the message untouched).
 */
int msg_eom(struct msg *m, mime_write_fn out, void *outarg,
            const struct msg_edit **edits, size_t *nedits, char *err,
            size_t errlen);

/*
 * The action when the filter cannot do its job on m: the configured one,
 * except that "accept" becomes "tempfail" (*note, may be NULL, then gets a
 * static text saying why; otherwise NULL) when mail an encryption rule
 * requires to be encrypted would leave in clear, or when msg_eom failed
 * after part of the new body went to the MTA (accepting would deliver a
 * half-replaced body).  msg_eom streams the body in one run, hashing what
 * it sends and signing before the signature part, whenever this function
 * would not say "accept"; otherwise it signs first and sends after.
 */
enum action msg_error_action(const struct msg *m, enum action configured,
                             const char **note);

/*
 * The action for verdict v on m (MSG_NOCERT: on_no_certificate,
 * MSG_REJECT: reject, anything else: on_error with msg_error_action's
 * rule), decided by policy_action.  *note as there.
 */
enum action msg_action(const struct msg *m, enum msg_verdict v,
                       const char **note);

/*
 * What end of message did, for the log and the audit row: *action is
 * "encrypted" or "signed"; result gets "encrypted (CIPHER, N
 * certificates)", "ok; not encrypted: WHY" or "ok"; the return value is
 * the text the log line adds after the signer (" and encrypted (...)",
 * ", not encrypted (opportunistic): WHY" or ""), static per thread.
 */
const char *msg_outcome(const struct msg *m, const char **action, char *result,
                        size_t resultlen);

/* Number of certificates the message is encrypted to (0: not encrypted). */
int msg_encrypt_count(const struct msg *m);
/* Why an opportunistic encryption did not happen, or NULL. */
const char *msg_encrypt_note(const struct msg *m);

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
