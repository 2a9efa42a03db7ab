/*
 * service -- smimectl init and reload: the commands that tend the milter
 * itself, its database and its running process.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

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

long service_reload(const struct config *cfg, char *err, size_t errlen)
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

int cmd_reload(int argc, char **argv)
{
	struct config *cfg = load_config();
	char err[1024];
	long pid = service_reload(cfg, err, sizeof(err));

	if (pid == 0)
		die(EX_CONFIG,
		    "%s sets no pidfile; send SIGUSR1 to the milter "
		    "yourself",
		    cfg->path);
	if (pid < 0)
		die(EX_UNAVAILABLE, "%s", err);
	printf("asked smime-milter (pid %ld) to reload\n", pid);
	config_free(cfg);
	return EX_OK;
}
