/*
 * db_thread -- one read-only database connection per thread, kept open,
 * for lookups made once per message (the inbound path's revocation
 * checks): opening SQLite for every message cost 13% of the inbound CPU
 * (BENCHMARKS.md, issue 13).  A kept connection in autocommit mode sees
 * what others commit (a CRL import) at its next query.
 */
#include "db.h"
#include "util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct thread_db {
	struct db *db;
	char *path;
};

static pthread_key_t key;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int key_ok;

static void thread_db_free(void *p)
{
	struct thread_db *t = p;

	db_close(t->db);
	free(t->path);
	free(t);
}

static void key_init(void)
{
	key_ok = pthread_key_create(&key, thread_db_free) == 0;
}

struct db *db_thread_readonly(const char *path, char *err, size_t errlen)
{
	struct thread_db *t;

	if (pthread_once(&once, key_init) != 0 || !key_ok) {
		seterr(err, errlen, "cannot keep a connection per thread");
		return NULL;
	}
	t = pthread_getspecific(key);
	if (t && t->db && strcmp(t->path, path) == 0)
		return t->db;
	if (t == NULL) {
		if ((t = calloc(1, sizeof(*t))) == NULL ||
		    pthread_setspecific(key, t) != 0) {
			free(t);
			seterr(err, errlen, "out of memory");
			return NULL;
		}
	}
	db_close(t->db); /* another database since (a reload) */
	t->db = NULL;
	free(t->path);
	if ((t->path = strdup(path)) == NULL) {
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	if (db_open(path, DB_READONLY, &t->db, err, errlen) != 0) {
		t->db = NULL;
		return NULL;
	}
	return t->db;
}
