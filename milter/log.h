/* log -- syslog, plus stderr in the foreground. */
#ifndef MILTER_LOG_H
#define MILTER_LOG_H

#include <syslog.h>

#include "util.h"

/* Open syslog with the named facility ("mail", "local0"...); also copy
 * every line to stderr when to_stderr is set. */
void log_open(const char *facility, int to_stderr);

/* Stop copying lines to stderr (a daemon after start-up). */
void log_stderr_off(void);

/* Log one line. */
void mlog(int prio, const char *fmt, ...) PRINTFLIKE(2, 3);

/* Log each line of a multi-line text with a prefix. */
void mlog_lines(int prio, const char *prefix, const char *text);

#endif
