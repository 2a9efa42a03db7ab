/*
 * inbound_int -- the inbound context shared by inbound.c (headers, the
 * verdict, the stamp) and inbound_body.c (decryption, the signed parts,
 * the new entity).  Private to those two.
 */
#ifndef SMIME_INBOUND_INT_H
#define SMIME_INBOUND_INT_H

#include "inbound.h"
#include "mime.h"
#include "smime_verify.h"
#include "spool.h"

/* Most header fields of one kind kept, and of an inner entity's header. */
#define INB_HEADERS_MAX   64
#define INB_INNER_HDR_MAX (64 * 1024)
/* Most octets of a detached signature part kept in memory. */
#define INB_SIG_MAX (1024 * 1024)

struct inb_hdr {
	char *name;
	char *value;
	int index;
};

struct inb {
	const struct snapshot *snap;
	char **rcpts;
	size_t nrcpts;
	char *rcpt_list; /* inb_recipients' text, made once */
	struct inb_hdr ch[INB_HEADERS_MAX]; /* top-level Content-* */
	size_t nch;
	int ch_overflow; /* more Content-* fields than kept */
	int *forged;     /* indexes of the A-R fields that claim our id: all of
	                them, however many (none may stay) */
	size_t nforged;
	int nar_seen; /* every A-R field seen, for the indexes */
	char *from_value, *subject, *message_id;
	char from[320]; /* the From address (inb_eoh), or "" */
	int verify;
	int need_body; /* S/MIME or multipart: the body is spooled */
	struct spool *body;
	/* the new entity (decrypted or unwrapped) */
	struct inb_hdr nh[INB_HEADERS_MAX];
	size_t nnh;
	struct spool *newbody;
	struct smime_verdict v;
	int signed_seen; /* v holds a verdict */
	char note[512];  /* the decryption note for the stamp */
	struct msg_edit *edits;
	size_t nedits;
	struct inb_result res;
};

/* The value of the first kept top-level header name, or NULL. */
const char *inb_top(const struct inb *m, const char *name);

/* Mark the message bad input: smime=permerror with why. */
void inb_permerror(struct inb *m, const char *why);

/* Decrypt the top-level body (pkcs7-mime, cte the transfer encoding).
 * Returns 0 (new entity made), 1 (not decrypted: the result says why, or
 * permerror), 2 (the content is signed-data, not encrypted: verify it as
 * opaque), -1 on local failure with err. */
int inb_decrypt(struct inb *m, enum mime_cte cte, char *err, size_t errlen);

/* Verify the multipart/signed entity of Content-Type ct whose body is in
 * body (from its start).  Fills m->v.  Returns 0, -1 on local failure. */
int inb_verify_signed(struct inb *m, const struct mime_ct *ct,
                      struct spool *body, char *err, size_t errlen);

/* Verify opaque signed-data in body (base64 when b64); with unwrap the
 * content becomes the new entity.  Returns 0, -1 on local failure. */
int inb_verify_opaque(struct inb *m, struct spool *body, int b64, int unwrap,
                      char *err, size_t errlen);

/* 1 when the body holds an application/pkcs7-mime part header (an
 * encrypted part nested in a multipart); -1 on a read error. */
int inb_nested_pkcs7(struct spool *body);

/* What smime_verify needs for m: ca_file, the From address, the database
 * for revocation, opened read-only (NULL when it cannot be). */
struct inb_vctx {
	struct smime_verify_opts o;
	struct db *db;
	char dberr[256];
};
void inb_verify_begin(struct inb *m, struct inb_vctx *c);

/* After smime_verify filled m->v: a pass whose revocation could not be
 * checked becomes temperror.  The database is the thread's
 * (db_thread_readonly), left open. */
void inb_verify_end(struct inb *m, struct inb_vctx *c);

/* Write the new body through out (64 KiB chunks).  Returns 0 or -1. */
int inb_write_body(struct inb *m, mime_write_fn out, void *outarg, char *err,
                   size_t errlen);

#endif
