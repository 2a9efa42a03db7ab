/*
 * listen -- reload across nodes (see listen.h): with a PostgreSQL
 * database, a thread of its own LISTENs on smime_milter_reload on a
 * connection of its own; a notice (smimectl reload on any node) triggers
 * the reload SIGUSR1 triggers, through the same signal, so the main
 * thread rebuilds the snapshot as it always does, one reload at a time.
 * A dropped connection is made again with a backoff (1 s doubling to
 * 30 s), said once when it goes and once when it is back; being back
 * reloads too, since notices sent meanwhile were missed.
 */
#include "listen.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "log.h"

#define LISTEN_WAIT_MS     1000 /* how often the stop flag is looked at */
#define LISTEN_BACKOFF_MAX 30   /* seconds between two connection tries */

static char *listen_target;
static int listen_stopping, listen_running;

/* The reload SIGUSR1 asks for: the main thread takes it (sigwait). */
static void listen_trigger(void)
{
	kill(getpid(), SIGUSR1);
}

/* A notice this milter need not act on: smimectl signalled it already
 * (its payload names this host and this pid). */
static int listen_own(const char *payload)
{
	char host[256], own[300];

	if (gethostname(host, sizeof(host)) != 0)
		return 0;
	host[sizeof(host) - 1] = '\0';
	snprintf(own, sizeof(own), "node=%s pid=%ld ", host, (long)getpid());
	return strncmp(payload, own, strlen(own)) == 0;
}

/* Sleep about secs seconds unless the milter stops first. */
static void listen_pause(int secs)
{
	for (int i = 0; i < secs * 10; i++) {
		if (__atomic_load_n(&listen_stopping, __ATOMIC_SEQ_CST))
			return;
		usleep(100000);
	}
}

/* A connection that LISTENs, or NULL with err filled. */
static struct db *listen_connect(char *err, size_t errlen)
{
	struct db *db;

	if (db_open(listen_target, DB_READONLY, &db, err, errlen) != 0)
		return NULL;
	if (db_listen(db, DB_RELOAD_CHANNEL, err, errlen) != 0) {
		db_close(db);
		return NULL;
	}
	return db;
}

static void *listen_thread(void *arg)
{
	struct db *db = NULL;
	char err[1024], payload[512];
	int backoff = 1, down = 0;

	(void)arg;
	while (!__atomic_load_n(&listen_stopping, __ATOMIC_SEQ_CST)) {
		int rc;
		if (db == NULL &&
		    (db = listen_connect(err, sizeof(err))) == NULL) {
			if (!down)
				mlog(LOG_WARNING,
				     "reload listener: %s; trying again", err);
			down = 1;
			listen_pause(backoff);
			backoff = backoff * 2 > LISTEN_BACKOFF_MAX
			                  ? LISTEN_BACKOFF_MAX
			                  : backoff * 2;
			continue;
		}
		if (down) {
			mlog(LOG_NOTICE,
			     "reload listener: connected again, LISTEN %s; "
			     "reloading, a notice may have been missed",
			     DB_RELOAD_CHANNEL);
			listen_trigger();
			down = 0;
			backoff = 1;
		}
		rc = db_wait_notify(db, LISTEN_WAIT_MS, payload,
		                    sizeof(payload), err, sizeof(err));
		if (rc < 0) {
			mlog(LOG_WARNING, "reload listener: %s", err);
			db_close(db);
			db = NULL;
			down = 1;
			listen_pause(backoff); /* never a busy loop */
		} else if (rc > 0 && listen_own(payload)) {
			mlog(LOG_INFO,
			     "NOTIFY %s (%s): signalled already, not reloading "
			     "twice",
			     DB_RELOAD_CHANNEL, payload);
		} else if (rc > 0) {
			mlog(LOG_INFO, "NOTIFY %s (%s): reloading",
			     DB_RELOAD_CHANNEL, payload);
			listen_trigger();
		}
	}
	db_close(db);
	__atomic_store_n(&listen_running, 0, __ATOMIC_SEQ_CST);
	return NULL;
}

int listen_start(const char *database)
{
	pthread_t tid;

	if (!db_target_is_pg(database))
		return 0; /* SQLite: one host, the pidfile and SIGUSR1 */
	if ((listen_target = strdup(database)) == NULL)
		return -1;
	__atomic_store_n(&listen_running, 1, __ATOMIC_SEQ_CST);
	if (pthread_create(&tid, NULL, listen_thread, NULL) != 0) {
		mlog(LOG_ERR, "cannot start the reload listener");
		listen_running = 0;
		return -1;
	}
	pthread_detach(tid);
	mlog(LOG_INFO, "reload listener: LISTEN %s", DB_RELOAD_CHANNEL);
	return 0;
}

void listen_stop(void)
{
	__atomic_store_n(&listen_stopping, 1, __ATOMIC_SEQ_CST);
	/* it looks at the flag every second; a connection being made may
	 * take longer: the exit then ends it */
	for (int i = 0;
	     i < 30 && __atomic_load_n(&listen_running, __ATOMIC_SEQ_CST); i++)
		usleep(100000);
}
