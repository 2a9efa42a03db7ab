/*
 * metrics -- the Prometheus text exposition format (version 0.0.4, what
 * node_exporter's textfile collector reads) of "smimectl stats": escaped
 * label values, metric families with # HELP and # TYPE, and a file that
 * is replaced atomically (a temp file in the same directory, fsync,
 * rename) so the collector never reads half of it.
 */
#ifndef SMIME_METRICS_H
#define SMIME_METRICS_H

#include <stddef.h>
#include <stdio.h>
#include <time.h>

#include "db.h"

/* s as the inside of a quoted label value on f: backslash, double quote
 * and newline escaped (\\, \", \n), bytes that are not UTF-8 written as
 * U+FFFD.  NULL is written as "". */
void metrics_label_value(FILE *f, const char *s);

/* The # HELP (help escaped: backslash and newline) and # TYPE lines of
 * the family name; type is "counter" or "gauge". */
void metrics_family(FILE *f, const char *name, const char *type,
                    const char *help);

/* One sample: name{l1="v1",l2="v2"} value.  labels holds name, value
 * pairs and ends with a NULL name (labels NULL: none). */
void metrics_sample(FILE *f, const char *name, const char *const *labels,
                    long long value);

/* Whether the milter is up, as the metrics say it. */
struct metrics_up {
	int up;   /* 1: the pidfile names a running process */
	long pid; /* the pid read (0: none) */
};

/*
 * The whole exposition of s at now (seconds), with up, on f: the
 * families and their samples as smimectl(8) STATS lists them.  A family
 * without a value (no certificate, no CRL, no anchor) is left out.
 * Returns 0, or -1 when writing to f failed.
 */
int metrics_write(FILE *f, const struct db_stats *s, time_t now,
                  const struct metrics_up *up);

/* Whole days from now until t, rounded down (negative once t passed). */
long metrics_days(time_t t, time_t now);

/*
 * Start replacing path: a new file "DIR/.NAME.XXXXXX" beside it, mode
 * 0644 (what node_exporter's user reads), its name in tmp.  Returns the
 * open descriptor, or -1 with err filled (the directory does not exist or
 * is not writable; path is not touched).
 */
int metrics_file_open(const char *path, char *tmp, size_t tmplen, char *err,
                      size_t errlen);

/*
 * Finish: fsync and close fd, rename tmp over path, fsync the directory.
 * With ok == 0 (the content failed) or on any error, tmp is removed and
 * path keeps its old content.  Returns 0, or -1 with err filled.
 */
int metrics_file_commit(int fd, const char *tmp, const char *path, int ok,
                        char *err, size_t errlen);

#endif
