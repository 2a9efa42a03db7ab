/* audit -- batched background writer of audit rows (see audit.h). */
#include "audit.h"
#include "audit_spool.h"
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define AUDIT_HARD_LIMIT    200000 /* rows in memory when the spool fails */
#define AUDIT_QUEUE_MAX     10000  /* the default bound before the spool */
#define AUDIT_BATCH         512
#define AUDIT_GATHER_MS     100 /* rows gathered into one transaction */
#define AUDIT_RETRY_S       1   /* between attempts while the database fails */
#define AUDIT_SPOOL_RETRY_S 5   /* between attempts while the spool fails */

struct row {
	struct row *next;
	struct audit_row ar; /* strings of its own */
};

struct audit_queue {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_cond_t idle;
	pthread_t thread;
	struct db *db; /* NULL after a failure: reopened at the next try */
	char *path;
	char *spool; /* NULL: none */
	size_t max;  /* rows in memory before the spool */
	audit_report_fn report;
	struct row *head, *tail;
	size_t pending;
	size_t lost;
	size_t spooled;     /* rows this queue put in the spool this outage */
	size_t backlog;     /* rows written since the database came back */
	time_t spool_retry; /* no spool write before this (it failed) */
	int stop;
	int writing;
	int failing;          /* the last attempt failed; reported once */
	int spooling;         /* "spooling to" reported this outage */
	int spool_bad;        /* the spool cannot be written; reported once */
	int spool_dirty;      /* the spool may hold rows: write them first */
	int spool_unreadable; /* reported once */
	int retired; /* the database file was replaced: spool, do not write */
};

/* Every queue of the process appends to and imports from its spool file
 * under this lock (two queues share one file across a reload that
 * replaced the database file), and under the file's own lock (another
 * process with the same spool). */
static pthread_mutex_t spool_lock = PTHREAD_MUTEX_INITIALIZER;

static int spool_enter(const struct audit_queue *q)
{
	pthread_mutex_lock(&spool_lock);
	return audit_spool_lock(q->spool);
}

static void spool_leave(int fd)
{
	audit_spool_unlock(fd);
	pthread_mutex_unlock(&spool_lock);
}

static void row_free(struct row *r)
{
	audit_spool_row_clear(&r->ar);
	free(r);
}

/* Append n rows from h to the spool, under its locks.  Called without the
 * queue's lock.  Returns 0 or -1 (err). */
static int spool_rows(struct audit_queue *q, const struct row *h, size_t n,
                      char *err, size_t errlen)
{
	const struct audit_row **v = malloc((n ? n : 1) * sizeof(*v));
	size_t i;
	int rc, fd;

	if (v == NULL)
		return seterr(err, errlen, "out of memory");
	for (i = 0; i < n && h; i++, h = h->next)
		v[i] = &h->ar;
	fd = spool_enter(q);
	rc = audit_spool_append(q->spool, v, i, err, errlen);
	spool_leave(fd);
	free(v);
	return rc;
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
		if (db_audit_add(q->db, &r->ar, err, errlen) != 0) {
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

static void report(struct audit_queue *q, int is_error, const char *fmt, ...)
        PRINTFLIKE(3, 4);

/* Tell the program (its log) about a change of state. */
static void report(struct audit_queue *q, int is_error, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (q->report == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	q->report(is_error, msg);
}

struct import {
	struct audit_queue *q;
	char *err;
	size_t errlen;
	int failed;
};

static int import_row(void *arg, const struct audit_row *r)
{
	struct import *im = arg;

	if (db_audit_add(im->q->db, r, im->err, im->errlen) != 0) {
		im->failed = 1;
		return 1;
	}
	return 0;
}

/*
 * Write every row of the spool in one transaction, then remove the file
 * (its bad lines kept in PATH.bad).  Called by the writer without the
 * queue's lock, under spool_lock.  Returns the rows written (0 when there
 * is no spool), -1 when the database failed (err), -2 when the spool
 * cannot be read (err; reported once, the memory rows go on).
 */
static long import_spool(struct audit_queue *q, char *err, size_t errlen)
{
	struct import im = { q, err, errlen, 0 };
	struct audit_spool_stats st;
	char rerr[512];
	int rc;

	if (db_begin(q->db, err, errlen) != 0)
		return -1;
	rc = audit_spool_read(q->spool, import_row, &im, &st, rerr,
	                      sizeof(rerr));
	if (rc != 0) {
		db_rollback(q->db);
		audit_spool_stats_clear(&st);
		if (rc == 1)
			return 0;
		if (im.failed)
			return -1;
		seterr(err, errlen, "%s", rerr);
		return -2;
	}
	if (db_commit(q->db, err, errlen) != 0) {
		db_rollback(q->db);
		audit_spool_stats_clear(&st);
		return -1;
	}
	if (st.bad > 0)
		report(q, 1,
		       "audit spool %s: %zu line%s not imported (line %zu: "
		       "%s), kept in %s.bad; %zu rows imported",
		       q->spool, st.bad, st.bad == 1 ? "" : "s",
		       st.first_bad_line, st.first_bad_why, q->spool, st.rows);
	if (audit_spool_remove(q->spool, &st, rerr, sizeof(rerr)) != 0)
		report(q, 1,
		       "audit spool written but not removed (its rows will be "
		       "written again): %s",
		       rerr);
	audit_spool_stats_clear(&st);
	return (long)st.rows;
}

/*
 * One attempt: (re)open the database, write the spool when there is one,
 * then n rows from first.  Called without the lock.  *imported gets the
 * spool's rows written.  Returns 0 or -1 (err).
 */
static int attempt(struct audit_queue *q, struct row *first, size_t n,
                   size_t *imported, char *err, size_t errlen)
{
	*imported = 0;
	if (q->db == NULL &&
	    db_open(q->path, DB_READWRITE, &q->db, err, errlen) != 0) {
		q->db = NULL;
		return -1;
	}
	if (q->spool) {
		long w = 0;
		int fd = spool_enter(q);
		if (audit_spool_exists(q->spool))
			w = import_spool(q, err, errlen);
		spool_leave(fd);
		if (w == -1)
			return -1;
		if (w == -2) {
			/* rows that cannot be read must not stop the rest */
			if (!q->spool_unreadable)
				report(q, 1, "audit spool: %s", err);
			q->spool_unreadable = 1;
		} else {
			q->spool_unreadable = 0;
			*imported = (size_t)w;
		}
	}
	return n ? write_batch(q, first, n, err, errlen) : 0;
}

/*
 * The database is failing and memory holds more than the bound: move every
 * row in memory, oldest first, to the spool.  Called by the writer with the
 * lock held (released while writing the file).
 */
static void overflow(struct audit_queue *q)
{
	struct row *h = q->head, *t = q->tail, *r;
	size_t n = q->pending;
	char err[512];
	int rc;

	if (q->spool == NULL || n == 0 || (n <= q->max && !q->retired) ||
	    time(NULL) < q->spool_retry)
		return;
	q->head = q->tail = NULL;
	q->pending = 0;
	pthread_mutex_unlock(&q->lock);
	rc = spool_rows(q, h, n, err, sizeof(err));
	pthread_mutex_lock(&q->lock);
	if (rc == 0) {
		while (h) {
			r = h;
			h = r->next;
			row_free(r);
		}
		q->spooled += n;
		q->spool_dirty = 1;
		if (!q->spooling)
			report(q, 1, "spooling audit rows to %s (%zu so far)",
			       q->spool, q->spooled);
		q->spooling = 1;
		q->spool_bad = 0;
		return;
	}
	/* back in front of what came meanwhile: the order stays */
	t->next = q->head;
	q->head = h;
	if (q->tail == NULL)
		q->tail = t;
	q->pending += n;
	q->spool_retry = time(NULL) + AUDIT_SPOOL_RETRY_S;
	if (!q->spool_bad)
		report(q, 1,
		       "audit spool %s cannot be written (%s): %zu rows kept "
		       "in memory beyond audit_queue_max",
		       q->spool, err, q->pending);
	q->spool_bad = 1;
}

static void deadline(struct timespec *ts, long ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* The attempt succeeded: n rows from the head and imported spooled rows
 * are written.  Lock held. */
static void written(struct audit_queue *q, size_t n, size_t imported)
{
	for (size_t i = 0; i < n; i++) {
		struct row *r = q->head;
		q->head = r->next;
		row_free(r);
	}
	if (q->head == NULL)
		q->tail = NULL;
	q->pending -= n;
	q->spool_dirty = 0;
	q->backlog += n + imported;
	if (!q->failing) {
		if (imported)
			report(q, 0, "audit spool %s: %zu rows written",
			       q->spool, imported);
		q->backlog = 0;
		return;
	}
	if (q->pending > AUDIT_BATCH)
		return; /* "back" once the backlog is (nearly) written */
	report(q, 0, "database back, %zu audit rows written", q->backlog);
	if (q->lost)
		report(q, 1,
		       "%zu audit rows were lost in the outage (memory "
		       "limit reached, spool not writable)",
		       q->lost);
	q->failing = q->spooling = q->spool_bad = 0;
	q->backlog = q->spooled = q->lost = 0;
	q->spool_retry = 0;
}

static void *writer(void *arg)
{
	struct audit_queue *q = arg;
	char err[512];

	pthread_mutex_lock(&q->lock);
	for (;;) {
		struct row *first;
		size_t n, imported;
		struct timespec ts;
		int rc;
		while (q->head == NULL && (!q->spool_dirty || q->retired) &&
		       !q->stop)
			pthread_cond_wait(&q->wake, &q->lock);
		if (q->stop && (q->failing || q->retired ||
		                (q->head == NULL && !q->spool_dirty)))
			break; /* audit_queue_free spools what is left */
		if (q->retired) {
			/* the queue of the new file writes them, in order */
			overflow(q);
			deadline(&ts, AUDIT_RETRY_S * 1000L);
			if (q->head)
				pthread_cond_timedwait(&q->wake, &q->lock, &ts);
			pthread_cond_broadcast(&q->idle);
			continue;
		}
		/* gather rows for a moment: one transaction for many messages
		 * instead of one (and a wake-up) per message */
		if (!q->stop && q->head && q->pending < AUDIT_BATCH) {
			deadline(&ts, AUDIT_GATHER_MS);
			while (!q->stop && q->pending < AUDIT_BATCH &&
			       pthread_cond_timedwait(&q->wake, &q->lock,
			                              &ts) == 0)
				;
		}
		first = q->head;
		n = q->pending < AUDIT_BATCH ? q->pending : AUDIT_BATCH;
		q->writing = 1;
		pthread_mutex_unlock(&q->lock);

		rc = attempt(q, first, n, &imported, err, sizeof(err));

		pthread_mutex_lock(&q->lock);
		q->writing = 0;
		if (rc == 0) {
			written(q, n, imported);
			pthread_cond_broadcast(&q->idle);
			continue;
		}
		if (!q->failing && q->spool)
			report(q, 1,
			       "database unreachable, %zu audit rows queued "
			       "(audit rows kept in memory up to %zu, then "
			       "spooled to %s): %s",
			       q->pending + q->spooled, q->max, q->spool, err);
		else if (!q->failing)
			report(q, 1,
			       "database unreachable, %zu audit rows queued "
			       "(audit rows kept in memory): %s",
			       q->pending + q->spooled, err);
		q->failing = 1;
		db_close(q->db); /* a fresh connection for the next try */
		q->db = NULL;
		pthread_cond_broadcast(&q->idle);
		/* until the next try, keep memory within its bound */
		deadline(&ts, AUDIT_RETRY_S * 1000L);
		do
			overflow(q);
		while (!q->stop &&
		       pthread_cond_timedwait(&q->wake, &q->lock, &ts) == 0);
	}
	q->writing = 0;
	pthread_cond_broadcast(&q->idle);
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

audit_report_fn audit_reporter;
int audit_spool_enabled;

static void queue_free_mem(struct audit_queue *q)
{
	while (q->head) {
		struct row *r = q->head;
		q->head = r->next;
		row_free(r);
	}
	db_close(q->db);
	free(q->path);
	free(q->spool);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->wake);
	pthread_cond_destroy(&q->idle);
	free(q);
}

struct audit_queue *audit_queue_open(const char *path,
                                     const struct audit_options *o,
                                     audit_report_fn report, char *err,
                                     size_t errlen)
{
	struct audit_queue *q = calloc(1, sizeof(*q));

	if (q == NULL) {
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->wake, NULL);
	pthread_cond_init(&q->idle, NULL);
	q->report = report;
	q->max = o && o->queue_max ? o->queue_max : AUDIT_QUEUE_MAX;
	q->path = xstrdup(path);
	if (o && o->spool && o->spool[0])
		q->spool = xstrdup(o->spool);
	if (q->path == NULL || (o && o->spool && o->spool[0] && !q->spool)) {
		seterr(err, errlen, "out of memory");
		queue_free_mem(q);
		return NULL;
	}
	if (db_open(path, DB_READWRITE, &q->db, err, errlen) != 0) {
		q->db = NULL;
		queue_free_mem(q);
		return NULL;
	}
	/* rows left by an earlier run (or queue) are written first */
	q->spool_dirty = audit_spool_exists(q->spool);
	if (pthread_create(&q->thread, NULL, writer, q) != 0) {
		seterr(err, errlen, "cannot start the audit writer: %s",
		       strerror(errno));
		queue_free_mem(q);
		return NULL;
	}
	return q;
}

struct audit_queue *audit_queue_new(const char *path, audit_report_fn report,
                                    char *err, size_t errlen)
{
	return audit_queue_open(path, NULL, report, err, errlen);
}

void audit_queue_set_max(struct audit_queue *q, size_t queue_max)
{
	if (q == NULL)
		return;
	pthread_mutex_lock(&q->lock);
	q->max = queue_max ? queue_max : AUDIT_QUEUE_MAX;
	pthread_mutex_unlock(&q->lock);
}

void audit_queue_retire(struct audit_queue *q)
{
	if (q == NULL)
		return;
	pthread_mutex_lock(&q->lock);
	if (q->spool && !q->retired) {
		q->retired = 1;
		report(q, 0,
		       "database file %s replaced: the audit rows still queued "
		       "for the old one go to %s and then to the new one",
		       q->path, q->spool);
		pthread_cond_signal(&q->wake);
	}
	pthread_mutex_unlock(&q->lock);
}

/* Rows in memory past which a row is lost (the spool cannot be written). */
static size_t hard_limit(const struct audit_queue *q)
{
	return q->max * 2 > AUDIT_HARD_LIMIT ? q->max * 2 : AUDIT_HARD_LIMIT;
}

void audit_submit(struct audit_queue *q, const struct audit_row *ar)
{
	struct row *r;

	if (q == NULL)
		return;
	r = calloc(1, sizeof(*r));
	if (r && audit_spool_row_copy(&r->ar, ar) != 0) {
		free(r);
		r = NULL;
	}
	if (r && r->ar.at == 0)
		r->ar.at = time(NULL);
	pthread_mutex_lock(&q->lock);
	if (r == NULL || q->pending >= hard_limit(q)) {
		if (q->lost++ == 0 && q->report)
			q->report(1, r ? "audit queue full and spool not "
			                 "writable: rows are being lost"
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
	/* wake the writer for the first row of a batch, for a full one, and
	 * while the database fails, when memory passes its bound */
	if (q->pending == 1 || q->pending == AUDIT_BATCH ||
	    (q->failing && q->pending == q->max + 1))
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

/* After the writer stopped: the rows still in memory go to the spool. */
static void spool_rest(struct audit_queue *q)
{
	char err[512] = "no audit_spool";
	size_t n = q->pending;
	int rc = -1;

	if (n == 0)
		return;
	if (q->spool)
		rc = spool_rows(q, q->head, n, err, sizeof(err));
	if (rc == 0)
		report(q, 1,
		       "%zu audit rows spooled to %s (database not writable); "
		       "they are written when the database is back",
		       n, q->spool);
	else
		report(q, 1, "%zu audit rows not written (%s)", n, err);
}

void audit_queue_free(struct audit_queue *q, int timeout_ms)
{
	struct timespec ts;

	if (q == NULL)
		return;
	pthread_mutex_lock(&q->lock);
	deadline(&ts, timeout_ms);
	/* while the database fails there is nothing to wait for: the rows
	 * go to the spool at once */
	while ((q->head || q->writing) && !q->failing && !q->retired &&
	       pthread_cond_timedwait(&q->idle, &q->lock, &ts) == 0)
		;
	q->stop = 1;
	pthread_cond_signal(&q->wake);
	pthread_mutex_unlock(&q->lock);
	pthread_join(q->thread, NULL);
	spool_rest(q);
	queue_free_mem(q);
}
