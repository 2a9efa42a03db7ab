/*
 * audit -- the per-message audit log, written by a background thread in
 * batches (one transaction per batch), so a message never waits for the
 * database and a database locked by a long smimectl transaction delays
 * rows instead of mail.  Rows are kept in memory until written.  The
 * writer extends the audit hash chain (db_audit_add, schema 5) inside each
 * batch's BEGIN IMMEDIATE transaction, so the SHA-256 work is done in the
 * writer thread and never in a mail callback.
 */
#ifndef SMIME_AUDIT_H
#define SMIME_AUDIT_H

#include <stddef.h>

#include "db.h"

struct audit_queue;

/* Where problems of the writer go (the milter passes its logger); called
 * once per change of state, not once per row. */
typedef void (*audit_report_fn)(int is_error, const char *text);

/* Reporter used for the audit queues that snapshots open (set once by the
 * program at start-up; NULL: problems are not reported). */
extern audit_report_fn audit_reporter;

/*
 * Open the database at path (its own connection) and start the writer.
 * Returns NULL with err filled on failure.
 */
struct audit_queue *audit_queue_new(const char *path, audit_report_fn report,
                                    char *err, size_t errlen);

/* Queue one row (strings are copied).  Never blocks on the database. */
void audit_submit(struct audit_queue *q, const struct audit_row *r);

/* Rows queued but not yet written. */
size_t audit_pending(struct audit_queue *q);

/* Write what is queued (waiting up to timeout_ms), stop the writer and
 * close the database.  NULL is fine. */
void audit_queue_free(struct audit_queue *q, int timeout_ms);

#endif
