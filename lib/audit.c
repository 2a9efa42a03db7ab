/* audit -- batched background writer of audit rows (see audit.h). */
#include "audit.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define AUDIT_MAX_PENDING 200000 /* rows held while the database is away */
#define AUDIT_BATCH       512
#define AUDIT_GATHER_MS   100 /* rows gathered into one transaction */

struct row {
	struct row *next;
	time_t at;
	char *queue_id, *message_id, *from_addr, *action, *cert_serial, *digest,
	        *result, *recipients, *cert_issuer;
};

struct audit_queue {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_cond_t idle;
	pthread_t thread;
	struct db *db;
	audit_report_fn report;
	struct row *head, *tail;
	size_t pending;
	size_t lost;
	int stop;
	int writing;
	int failing; /* the last batch failed; reported once */
};

static void row_free(struct row *r)
{
	free(r->queue_id);
	free(r->message_id);
	free(r->from_addr);
	free(r->action);
	free(r->cert_serial);
	free(r->digest);
	free(r->result);
	free(r->recipients);
	free(r->cert_issuer);
	free(r);
}

/* Write up to AUDIT_BATCH rows from the head in one transaction.  Called
 * without the lock; rows stay queued until the commit succeeded. */
static int write_batch(struct audit_queue *q, struct row *first, size_t n,
                       char *err, size_t errlen)
{
	struct row *r = first;

	if (db_begin(q->db, err, errlen) != 0)
		return -1;
	for (size_t i = 0; i < n && r; i++) {
		struct audit_row ar = { r->at,         r->queue_id,
			                r->message_id, r->from_addr,
			                r->action,     r->cert_serial,
			                r->digest,     r->result,
			                r->recipients, r->cert_issuer };
		if (db_audit_add(q->db, &ar, err, errlen) != 0) {
			db_rollback(q->db);
			return -1;
		}
		/* the last row's next may be being set by a submitter */
		r = i + 1 < n ? r->next : NULL;
	}
	if (db_commit(q->db, err, errlen) != 0) {
		db_rollback(q->db);
		return -1;
	}
	return 0;
}

static void *writer(void *arg)
{
	struct audit_queue *q = arg;
	char err[512], msg[700];

	pthread_mutex_lock(&q->lock);
	for (;;) {
		struct row *first;
		size_t n;
		int rc;
		while (q->head == NULL && !q->stop)
			pthread_cond_wait(&q->wake, &q->lock);
		if (q->head == NULL && q->stop)
			break;
		/* gather rows for a moment: one transaction for many messages
		 * instead of one (and a wake-up) per message */
		if (!q->stop && q->pending < AUDIT_BATCH) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += AUDIT_GATHER_MS * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			while (!q->stop && q->pending < AUDIT_BATCH &&
			       pthread_cond_timedwait(&q->wake, &q->lock,
			                              &ts) == 0)
				;
		}
		first = q->head;
		n = q->pending < AUDIT_BATCH ? q->pending : AUDIT_BATCH;
		q->writing = 1;
		pthread_mutex_unlock(&q->lock);

		rc = write_batch(q, first, n, err, sizeof(err));

		pthread_mutex_lock(&q->lock);
		q->writing = 0;
		if (rc == 0) {
			for (size_t i = 0; i < n; i++) {
				struct row *r = q->head;
				q->head = r->next;
				row_free(r);
			}
			if (q->head == NULL)
				q->tail = NULL;
			q->pending -= n;
			if (q->failing && q->report) {
				snprintf(msg, sizeof(msg),
				         "audit log writable again, %zu rows "
				         "still queued",
				         q->pending);
				q->report(0, msg);
			}
			q->failing = 0;
		} else {
			struct timespec ts;
			if (!q->failing && q->report) {
				snprintf(msg, sizeof(msg),
				         "audit rows kept in memory, database "
				         "not writable: %s",
				         err);
				q->report(1, msg);
			}
			q->failing = 1;
			if (q->stop)
				break; /* give up at shutdown */
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&q->wake, &q->lock, &ts);
		}
		pthread_cond_broadcast(&q->idle);
	}
	q->writing = 0;
	pthread_cond_broadcast(&q->idle);
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

audit_report_fn audit_reporter;

struct audit_queue *audit_queue_new(const char *path, audit_report_fn report,
                                    char *err, size_t errlen)
{
	struct audit_queue *q = calloc(1, sizeof(*q));

	if (q == NULL) {
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	if (db_open(path, DB_READWRITE, &q->db, err, errlen) != 0) {
		free(q);
		return NULL;
	}
	q->report = report;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->wake, NULL);
	pthread_cond_init(&q->idle, NULL);
	if (pthread_create(&q->thread, NULL, writer, q) != 0) {
		seterr(err, errlen, "cannot start the audit writer: %s",
		       strerror(errno));
		db_close(q->db);
		free(q);
		return NULL;
	}
	return q;
}

void audit_submit(struct audit_queue *q, const struct audit_row *ar)
{
	struct row *r;

	if (q == NULL)
		return;
	r = calloc(1, sizeof(*r));
	if (r) {
		r->at = ar->at ? ar->at : time(NULL);
		r->queue_id = xstrdup(ar->queue_id);
		r->message_id = xstrdup(ar->message_id);
		r->from_addr = xstrdup(ar->from_addr);
		r->action = xstrdup(ar->action);
		r->cert_serial = xstrdup(ar->cert_serial);
		r->digest = xstrdup(ar->digest);
		r->result = xstrdup(ar->result);
		r->recipients = xstrdup(ar->recipients);
		r->cert_issuer = xstrdup(ar->cert_issuer);
	}
	pthread_mutex_lock(&q->lock);
	if (r == NULL || q->pending >= AUDIT_MAX_PENDING) {
		if (q->lost++ == 0 && q->report)
			q->report(1, r ? "audit queue full: rows are being lost"
			               : "out of memory: audit rows are being "
			                 "lost");
		pthread_mutex_unlock(&q->lock);
		if (r)
			row_free(r);
		return;
	}
	if (q->tail)
		q->tail->next = r;
	else
		q->head = r;
	q->tail = r;
	q->pending++;
	/* wake the writer for the first row of a batch and for a full one */
	if (q->pending == 1 || q->pending == AUDIT_BATCH)
		pthread_cond_signal(&q->wake);
	pthread_mutex_unlock(&q->lock);
}

size_t audit_pending(struct audit_queue *q)
{
	size_t n;

	pthread_mutex_lock(&q->lock);
	n = q->pending;
	pthread_mutex_unlock(&q->lock);
	return n;
}

void audit_queue_free(struct audit_queue *q, int timeout_ms)
{
	struct timespec ts;

	if (q == NULL)
		return;
	pthread_mutex_lock(&q->lock);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	while ((q->head || q->writing) &&
	       pthread_cond_timedwait(&q->idle, &q->lock, &ts) == 0)
		;
	q->stop = 1;
	pthread_cond_signal(&q->wake);
	pthread_mutex_unlock(&q->lock);
	pthread_join(q->thread, NULL);
	if (q->pending > 0 && q->report) {
		char msg[128];
		snprintf(msg, sizeof(msg), "%zu audit rows not written",
		         q->pending);
		q->report(1, msg);
	}
	while (q->head) {
		struct row *r = q->head;
		q->head = r->next;
		row_free(r);
	}
	db_close(q->db);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->wake);
	pthread_cond_destroy(&q->idle);
	free(q);
}
