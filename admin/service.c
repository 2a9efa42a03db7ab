/*
 * service -- smimectl init and reload: the commands that tend the milter
 * itself, its database and its running process (on every node: a
 * PostgreSQL NOTIFY), and the lock of a run-once job.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sysexits.h>
#include <unistd.h>

#include "config.h"
#include "db.h"
#include "smimectl.h"

/* ---- init ------------------------------------------------------------ */

int cmd_init(int argc, char **argv)
{
	struct config *cfg = load_config();
	struct db *db = open_db_as_user(cfg, DB_CREATE);

	printf("database %s ready (schema version %d)\n", cfg->database,
	       db_version(db));
	db_close(db);
	config_free(cfg);
	return EX_OK;
}

/* ---- reload ---------------------------------------------------------- */

/* SIGUSR1 to the milter of cfg's pidfile: its pid, 0 without a pidfile,
 * -1 with err filled. */
static long reload_signal(const struct config *cfg, char *err, size_t errlen)
{
	FILE *f;
	long pid = 0;

	if (cfg->pidfile == NULL)
		return 0;
	f = fopen(cfg->pidfile, "r");
	if (f == NULL || fscanf(f, "%ld", &pid) != 1 || pid <= 1) {
		seterr(err, errlen, "%s: no running milter (%s)", cfg->pidfile,
		       f ? "bad pidfile" : strerror(errno));
		if (f != NULL)
			fclose(f);
		return -1;
	}
	fclose(f);
	if (kill((pid_t)pid, SIGUSR1) != 0)
		return seterr(err, errlen, "cannot signal pid %ld: %s", pid,
		              strerror(errno));
	return pid;
}

/* NOTIFY smime_milter_reload on cfg's PostgreSQL database (db, or one
 * opened here): "node=HOST pid=SIGNALLED at=SECONDS.MICROSECONDS", the
 * pid that was signalled already (0: none), so that milter skips it.
 * 0, or -1 with err filled. */
static int reload_notify(const struct config *cfg, struct db *db,
                         long signalled, char *err, size_t errlen)
{
	char host[256], payload[400];
	struct timeval tv;
	int own = db == NULL, rc;

	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "unknown");
	host[sizeof(host) - 1] = '\0';
	gettimeofday(&tv, NULL);
	snprintf(payload, sizeof(payload), "node=%s pid=%ld at=%ld.%06ld", host,
	         signalled > 0 ? signalled : 0, (long)tv.tv_sec,
	         (long)tv.tv_usec);
	if (own)
		db = open_db_as_user((struct config *)cfg, DB_READWRITE);
	rc = db_notify(db, DB_RELOAD_CHANNEL, payload, err, errlen);
	if (own)
		db_close(db);
	return rc;
}

long service_reload(const struct config *cfg, struct db *db, int *notified,
                    char *err, size_t errlen)
{
	char nerr[1024];
	long pid = reload_signal(cfg, err, errlen);

	*notified = 0;
	if (!db_target_is_pg(cfg->database))
		return pid;
	/* every node's milter listens; this one's too, told not to reload
	 * twice when it was signalled */
	if (reload_notify(cfg, db, pid, nerr, sizeof(nerr)) != 0) {
		if (pid >= 0)
			seterr(err, errlen, "%s", nerr);
		return -1;
	}
	*notified = 1;
	return pid;
}

int cmd_reload(int argc, char **argv)
{
	struct config *cfg = load_config();
	char err[1024];
	int notified;
	long pid = service_reload(cfg, NULL, &notified, err, sizeof(err));

	if (notified)
		printf("asked the milter of every node to reload (NOTIFY %s)\n",
		       DB_RELOAD_CHANNEL);
	if (pid == 0 && !notified)
		die(EX_CONFIG,
		    "%s sets no pidfile; send SIGUSR1 to the milter "
		    "yourself",
		    cfg->path);
	if (pid < 0 && !notified)
		die(EX_UNAVAILABLE, "%s", err);
	if (pid < 0)
		fprintf(stderr, "smimectl: no local milter signalled: %s\n",
		        err);
	if (pid > 0)
		printf("asked smime-milter (pid %ld) to reload\n", pid);
	config_free(cfg);
	return EX_OK;
}

/* ---- run-once jobs --------------------------------------------------- */

void job_begin(struct db *db, const char *name)
{
	char err[1024];
	int got;

	if (db_job_lock(db, name, &got, err, sizeof(err)) != 0)
		die(EX_TEMPFAIL, "%s: %s", name, err);
	if (got)
		return;
	printf("%s: another node is running it; nothing done\n", name);
	db_close(db);
	exit(EX_OK);
}
