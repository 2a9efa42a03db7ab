/*
 * anchor -- RFC 3161 anchors of the audit hash chain (issue 14): what a
 * TSA is asked to stamp (the head row's hash), and whether a stored
 * anchor still holds against the log as it is now.  The database side is
 * in db_audit.c (db_audit_anchor_add, db_audit_verify_anchors).
 */
#ifndef SMIME_ANCHOR_H
#define SMIME_ANCHOR_H

#include <stddef.h>

#include "db.h"
#include "tsa.h"

enum anchor_problem {
	ANCHOR_OK = 0,
	ANCHOR_UNCHECKED,    /* no timestamp_ca_file to check the token */
	ANCHOR_TOKEN,        /* the token does not verify (untrusted TSA,
	                        not over the stored hash, damaged) */
	ANCHOR_GEN_TIME,     /* gen_time is not the token's genTime */
	ANCHOR_ROW_GONE,     /* the anchored row was deleted */
	ANCHOR_HASH_CHANGED, /* the row's hash is not the stamped one: the
	                        chain was recomputed after a change */
	ANCHOR_CHAIN_BROKEN  /* the chain breaks at or before the row */
};

/*
 * The imprint an anchor of a row with hash hex (64 hex digits, the
 * audit.hash column) is asked over: the 32 bytes those digits spell.
 * Returns 0, or -1 when hex is not 64 hex digits.
 */
int anchor_digest(const char *hex, unsigned char out[TSA_DIGEST_LEN]);

/*
 * Judge anchor a against the log now: chk and chain_rc are what
 * db_audit_verify_anchors gave (chain_rc 0 or 1), ca_file the TSA's trust
 * bundle (timestamp_ca_file; NULL: the token cannot be checked).  The
 * token must verify over a->hash at its genTime, gen_time must be its
 * genTime, row a->audit_id must still have that hash, and the chain must
 * verify up to it.  Returns the first problem (ANCHOR_OK when none), with
 * why (may be NULL) saying it in words.
 */
enum anchor_problem anchor_check(const struct db_audit_anchor *a,
                                 const struct db_audit_check *chk, int chain_rc,
                                 const char *ca_file, char *why, size_t whylen);

/* A short stable name of p for --json ("ok", "token-invalid", ...). */
const char *anchor_problem_key(enum anchor_problem p);

#endif
