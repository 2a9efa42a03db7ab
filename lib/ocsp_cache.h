/*
 * ocsp_cache -- the OCSP answers the milter uses (ocsp = true): a
 * thread-safe map in memory, seeded from the ocsp_responses table when a
 * snapshot is built, so that a known certificate costs no I/O on the mail
 * path; a miss asks the responder (ocsp.c) and keeps the answer until its
 * nextUpdate, in memory at once and in the database by a background
 * writer (a mail callback never waits on a database write).
 *
 * A responder that fails (unreachable, timeout, bad signature, malformed
 * answer) gives no answer, so the caller keeps the CRL status; the
 * failure is reported once through ocsp_reporter, not per message, and
 * the responder is not asked again for OCSP_RETRY seconds; when it
 * answers again, that is reported once too.
 */
#ifndef SMIME_OCSP_CACHE_H
#define SMIME_OCSP_CACHE_H

#include <stddef.h>
#include <time.h>

#include <openssl/x509.h>

#include "ocsp.h"

struct config;
struct db;
struct ocsp_cache;

/* Seconds a failed responder is left alone before it is asked again. */
#define OCSP_RETRY 30

/* Seconds an answer without nextUpdate is kept. */
#define OCSP_KEEP_NO_NEXT 300

/* Where the cache's news goes (the milter passes its logger): a responder
 * failing or answering again, a fresh answer, a failed database write.
 * Set once by the program at start-up; NULL: nothing is reported. */
typedef void (*ocsp_report_fn)(int is_error, const char *text);
extern ocsp_report_fn ocsp_reporter;

/*
 * A cache for cfg (ocsp_responder, ocsp_timeout, ca_file: the trust
 * bundle that verifies answers, required; database: where answers are
 * written), seeded with the answers in db still current.  Returns NULL
 * with err filled (as "FILE:LINE: ..." for a key that is wrong).
 */
struct ocsp_cache *ocsp_cache_new(const struct config *cfg, struct db *db,
                                  char *err, size_t errlen);

/*
 * The OCSP status of x at now, its issuer taken from untrusted (may be
 * NULL) or the trust bundle: from memory when a current answer is kept,
 * else from the responder (ocsp_responder, or x's AIA OCSP URL).
 * Returns 1 with *v filled; 0 when there is no answer (why, may be NULL,
 * says: no responder URL, issuer unknown, the responder failing), and the
 * CRL status is the one to use; -1 out of memory.
 */
int ocsp_cache_check(struct ocsp_cache *c, X509 *x, STACK_OF(X509) *untrusted,
                     time_t now, struct ocsp_verdict *v, char *why,
                     size_t whylen);

/* 1 when ocsp_cache_check says x is revoked (*when, may be NULL, gets the
 * revocation time), else 0 (c NULL included). */
int ocsp_cache_revoked(struct ocsp_cache *c, X509 *x, STACK_OF(X509) *untrusted,
                       time_t now, time_t *when);

/* The inbound signer's OCSP status weighed into v (a verdict of
 * smime_verify): a pass whose signer (v->signer, its issuer among v->certs
 * or in the trust bundle) the responder says is revoked becomes a fail,
 * with the revocation date as the CRL check gives it.  Anything else is
 * left as it is (c NULL included).  Returns 1 when v was changed. */
struct smime_verdict;
int ocsp_cache_judge(struct ocsp_cache *c, struct smime_verdict *v, time_t now);

/* Answers taken from memory, and questions sent to responders, so far. */
void ocsp_cache_counts(struct ocsp_cache *c, unsigned long *hits,
                       unsigned long *queries);

/* Write what is queued (waiting up to 5 s), then drop the cache; NULL is
 * fine. */
void ocsp_cache_free(struct ocsp_cache *c);

#endif
