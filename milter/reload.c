/* reload -- SIGUSR1 reload and the pidfile (see reload.h). */
#include "reload.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "milter.h"
#include "snapshot.h"

void reload_log_decrypt(const struct snapshot *s)
{
	char report[8192];

	if (s->cfg->inbound_decrypt &&
	    snapshot_decrypt_report(s, report, sizeof(report)) > 0)
		mlog_lines(LOG_WARNING, "mailbox ", report);
}

/* The error of the last failed reload: while the database stays away,
 * every attempt fails the same way, and that is logged once, not once per
 * attempt.  Only the signal thread reloads, so no lock. */
static char failed_with[8192];
static unsigned long failed_attempts;

int reload_snapshot(const char *conf_path)
{
	struct snapshot *s;
	char err[8192], warn[8192];

	mlog(LOG_INFO, "SIGUSR1: reloading %s", conf_path);
	if (snapshot_build(conf_path, 0, &s, err, sizeof(err), warn,
	                   sizeof(warn)) != 0) {
		failed_attempts++;
		if (strcmp(err, failed_with) != 0) {
			mlog_lines(LOG_ERR,
			           "reload failed, keeping the previous "
			           "configuration: ",
			           err);
			snprintf(failed_with, sizeof(failed_with), "%s", err);
		} else {
			mlog(LOG_DEBUG,
			     "reload failed again (%lu attempts, same error), "
			     "keeping the previous configuration",
			     failed_attempts);
		}
		return -1;
	}
	if (failed_attempts > 0)
		mlog(LOG_NOTICE,
		     "reload works again after %lu failed attempt%s",
		     failed_attempts, failed_attempts == 1 ? "" : "s");
	failed_attempts = 0;
	failed_with[0] = '\0';
	if (warn[0])
		mlog_lines(LOG_WARNING, "mailbox ", warn);
	reload_log_decrypt(s);
	milter_set_snapshot(s);
	mlog(LOG_INFO, "reloaded: generation %lu, %zu mailboxes, %zu can sign",
	     s->generation, s->nentries, s->nusable);
	return 0;
}

int pidfile_write(const char *path)
{
	FILE *f;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
		mlog(LOG_ERR, "pidfile %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	fprintf(f, "%ld\n", (long)getpid());
	fclose(f);
	return 0;
}
