/*
 * audit_spool -- the local file where audit rows wait while the database
 * cannot take them and the in-memory queue is full (audit.c).
 *
 * Format, one row per line, ASCII only:
 *
 *     A1 TAB at TAB queue_id TAB message_id TAB from_addr TAB action TAB
 *     cert_serial TAB digest TAB result TAB recipients TAB cert_issuer TAB
 *     CHECK LF
 *
 * "A1" is the version of the line.  at is decimal seconds.  A text field
 * is "\N" for NULL, else its bytes with backslash, tab, newline, carriage
 * return written as \\ \t \n \r and every other byte below 0x20 or above
 * 0x7e as \xHH (so UTF-8 is hex-escaped).  CHECK is the FNV-1a 32-bit hash
 * of the line up to (not including) the tab before it, 8 lower-case hex
 * digits.  A line without its LF (a write torn by a crash), with a wrong
 * hash or an unknown version is not imported: it is counted, reported and
 * kept in PATH.bad when the spool is removed.  Lines are appended in one
 * write(2) each batch and fsync'd; an append first ends a torn last line,
 * so a torn fragment never swallows the next good row.
 */
#ifndef SMIME_AUDIT_SPOOL_H
#define SMIME_AUDIT_SPOOL_H

#include <stddef.h>

#include "db.h"

/* What audit_spool_read found. */
struct audit_spool_stats {
	size_t rows;            /* good rows handed to the callback */
	size_t bad;             /* lines not imported */
	size_t first_bad_line;  /* line number of the first (1-based) */
	char first_bad_why[64]; /* "torn", "checksum", "version", "format" */
	char *bad_lines;        /* their bytes, each ending in LF (malloc) */
	size_t bad_len;
};

/*
 * Format r as one spool line (with its LF) into a new buffer: *line
 * (free it) and *len.  Returns 0 or -1 (out of memory).
 */
int audit_spool_format(const struct audit_row *r, char **line, size_t *len);

/*
 * Parse one line (len bytes, without its LF) into r, whose strings are
 * new (audit_spool_row_clear them).  Returns 0, or -1 with why set to a
 * short reason ("checksum", "version", "format", "out of memory").
 */
int audit_spool_parse(const char *line, size_t len, struct audit_row *r,
                      const char **why);

/* Copy src into dst with strings of its own (audit_spool_row_clear them).
 * Returns 0, or -1 (out of memory; dst then holds nothing). */
int audit_spool_row_copy(struct audit_row *dst, const struct audit_row *src);

/* Free the strings of a row filled by audit_spool_parse or
 * audit_spool_row_copy; NULL is fine. */
void audit_spool_row_clear(struct audit_row *r);

/*
 * Append n rows to the spool file at path (created mode 0600), then
 * fsync.  Returns 0 or -1 with err filled (the file is unchanged or ends
 * in a torn line, which the next append ends and the reader skips).
 */
int audit_spool_append(const char *path, const struct audit_row *const *rows,
                       size_t n, char *err, size_t errlen);

/* Called for each good row in file order; nonzero stops the read. */
typedef int (*audit_spool_row_fn)(void *arg, const struct audit_row *r);

/*
 * Read the spool at path, calling fn for each good row in order; bad
 * lines are counted in *st (audit_spool_stats_clear it).  Returns 0 when
 * read to the end, 1 when there is no spool file (or it is empty), 2 when
 * fn stopped it, -1 with err filled when it cannot be read.
 */
int audit_spool_read(const char *path, audit_spool_row_fn fn, void *arg,
                     struct audit_spool_stats *st, char *err, size_t errlen);

/* Free the bad lines kept in st; NULL is fine. */
void audit_spool_stats_clear(struct audit_spool_stats *st);

/*
 * The rows of the spool are committed: append st's bad lines (if any) to
 * PATH.bad (mode 0600) and remove the spool.  Returns 0 or -1 with err.
 */
int audit_spool_remove(const char *path, const struct audit_spool_stats *st,
                       char *err, size_t errlen);

/*
 * Take the lock of the spool at path (flock on PATH.lock, created 0600),
 * waiting for another process (a second milter, "smime-milter -n") that
 * appends or imports.  Returns the descriptor to pass to
 * audit_spool_unlock, or -1 when PATH.lock cannot be made (then the caller
 * goes on without it).
 */
int audit_spool_lock(const char *path);

/* Release a lock from audit_spool_lock; -1 is fine. */
void audit_spool_unlock(int fd);

/* 1 when the spool file at path exists and is not empty. */
int audit_spool_exists(const char *path);

#endif
