/*
 * audit -- the per-message audit log, written by a background thread in
 * batches (one transaction per batch), so a message never waits for the
 * database and a database locked by a long smimectl transaction delays
 * rows instead of mail.  Rows are kept in memory until written.  The
 * writer extends the audit hash chain (db_audit_add, schema 5) inside each
 * batch's BEGIN IMMEDIATE transaction, so the SHA-256 work is done in the
 * writer thread and never in a mail callback.
 *
 * While the database cannot take rows (locked, unreachable), they wait in
 * memory up to a bound (audit_queue_max); beyond it the writer moves them,
 * oldest first, to a local spool file (audit_spool.c).  Rows in the spool
 * are always older than rows in memory, so once the database is back the
 * writer writes the spool (in one transaction, then removes the file),
 * then memory: the chain grows in the order the rows were submitted.  A
 * queue that starts with a spool left from before writes it first.  When
 * the spool cannot be written either, rows stay in memory past the bound,
 * up to a hard limit (AUDIT_HARD_LIMIT, or twice the bound if larger),
 * beyond which a row is counted as lost and the loss reported.
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

/* 1: the queues that snapshots open use the configured audit_spool; 0
 * (the default): they keep rows in memory only.  The daemon sets 1 at
 * start, so "smime-milter -n", -t and the tests never write or import a
 * spool that belongs to a running milter. */
extern int audit_spool_enabled;

/* How a queue holds rows the database cannot take. */
struct audit_options {
	size_t queue_max;  /* rows in memory before the spool (0: 10000) */
	const char *spool; /* the spool file (copied; NULL or "": none) */
};

/*
 * Open the database at path (its own connection) and start the writer,
 * with the options o (NULL: the defaults, no spool).  Returns NULL with
 * err filled on failure.
 */
struct audit_queue *audit_queue_open(const char *path,
                                     const struct audit_options *o,
                                     audit_report_fn report, char *err,
                                     size_t errlen);

/* audit_queue_open with the default options (no spool). */
struct audit_queue *audit_queue_new(const char *path, audit_report_fn report,
                                    char *err, size_t errlen);

/* Change the bound of rows in memory (a reload); 0 is the default.  The
 * spool path stays the one the queue was opened with. */
void audit_queue_set_max(struct audit_queue *q, size_t queue_max);

/*
 * The database file q writes to was replaced (a reload found another file
 * at the path): from now on q puts its rows in the spool instead of the old
 * file, and the queue of the new file writes them before its own.  Nothing
 * changes for a queue without a spool.  NULL is fine.
 */
void audit_queue_retire(struct audit_queue *q);

/* Queue one row (strings are copied).  Never blocks on the database. */
void audit_submit(struct audit_queue *q, const struct audit_row *r);

/* Rows queued in memory but not yet written (not those in the spool). */
size_t audit_pending(struct audit_queue *q);

/* Write what is queued (waiting up to timeout_ms; not at all while the
 * database is failing), stop the writer and close the database.  Rows
 * still unwritten go to the spool (or are reported as not written when
 * there is none or it cannot be written).  NULL is fine. */
void audit_queue_free(struct audit_queue *q, int timeout_ms);

#endif
