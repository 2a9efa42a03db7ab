/* log -- syslog, plus stderr in the foreground. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static int log_stderr = 1;
static int log_syslog;

static const struct {
	const char *name;
	int value;
} facilities[] = {
	{ "mail", LOG_MAIL },     { "daemon", LOG_DAEMON },
	{ "local0", LOG_LOCAL0 }, { "local1", LOG_LOCAL1 },
	{ "local2", LOG_LOCAL2 }, { "local3", LOG_LOCAL3 },
	{ "local4", LOG_LOCAL4 }, { "local5", LOG_LOCAL5 },
	{ "local6", LOG_LOCAL6 }, { "local7", LOG_LOCAL7 },
	{ "user", LOG_USER },
};

void log_open(const char *facility, int to_stderr)
{
	int fac = LOG_MAIL;

	for (size_t i = 0;
	     facility && i < sizeof(facilities) / sizeof(facilities[0]); i++)
		if (strcasecmp(facility, facilities[i].name) == 0)
			fac = facilities[i].value;
	openlog("smime-milter", LOG_PID | LOG_NDELAY, fac);
	log_syslog = 1;
	log_stderr = to_stderr;
}

void log_stderr_off(void)
{
	log_stderr = 0;
}

void mlog(int prio, const char *fmt, ...)
{
	va_list ap;
	char line[2048];

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (log_syslog)
		syslog(prio, "%s", line);
	if (log_stderr) {
		char ts[32];
		time_t now = time(NULL);
		struct tm tm;
		localtime_r(&now, &tm);
		strftime(ts, sizeof(ts), "%H:%M:%S", &tm);
		fprintf(stderr, "%s smime-milter: %s\n", ts, line);
	}
}

void mlog_lines(int prio, const char *prefix, const char *text)
{
	const char *p = text, *nl;

	while (p && *p) {
		nl = strchr(p, '\n');
		mlog(prio, "%s%.*s", prefix,
		     nl ? (int)(nl - p) : (int)strlen(p), p);
		p = nl ? nl + 1 : NULL;
	}
}
