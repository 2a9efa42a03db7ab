/* audit_spool -- the audit rows' local spool file (see audit_spool.h). */
#include "audit_spool.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define SPOOL_TAG    "A1"
#define SPOOL_FIELDS 10 /* at and the nine text columns */

/* The bytes written as a backslash and a letter: ESC_RAW[i] as ESC_LETTER[i]. */
static const char esc_raw[] = "\\\t\n\r", esc_letter[] = "\\tnr";

static uint32_t fnv1a(const char *s, size_t n)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	return h;
}

#define ROW_TEXTS 9

/* The nine text fields of r, in spool order. */
static void row_texts(const struct audit_row *r, const char **t[ROW_TEXTS])
{
	struct audit_row *w = (struct audit_row *)r;

	t[0] = &w->queue_id;
	t[1] = &w->message_id;
	t[2] = &w->from_addr;
	t[3] = &w->action;
	t[4] = &w->cert_serial;
	t[5] = &w->digest;
	t[6] = &w->result;
	t[7] = &w->recipients;
	t[8] = &w->cert_issuer;
}

/* A tab and the text field s, escaped, to f. */
static void put_text(FILE *f, const char *s)
{
	fputc('\t', f);
	if (s == NULL) {
		fputs("\\N", f);
		return;
	}
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		const char *e = strchr(esc_raw, *p);
		if (e)
			fprintf(f, "\\%c", esc_letter[e - esc_raw]);
		else if (*p >= 0x20 && *p <= 0x7e)
			fputc(*p, f);
		else
			fprintf(f, "\\x%02x", *p);
	}
}

/* r's line (with LF) to f, a memory stream over *buf and *len. */
static void format_row(FILE *f, char **buf, size_t *len,
                       const struct audit_row *r)
{
	const char **text[ROW_TEXTS];
	size_t start;

	fflush(f);
	start = *len;
	fprintf(f, SPOOL_TAG "\t%lld", (long long)r->at);
	row_texts(r, text);
	for (size_t i = 0; i < ROW_TEXTS; i++)
		put_text(f, *text[i]);
	if (fflush(f) == 0)
		fprintf(f, "\t%08x\n",
		        (unsigned)fnv1a(*buf + start, *len - start));
}

/* The lines of rows[0..n) into a new buffer (*buf, *len).  0 or -1. */
static int format_rows(const struct audit_row *const *rows, size_t n,
                       char **buf, size_t *len)
{
	FILE *f = open_memstream(buf, len);

	if (f == NULL)
		return -1;
	for (size_t i = 0; i < n; i++)
		format_row(f, buf, len, rows[i]);
	if (ferror(f)) {
		fclose(f);
		free(*buf);
		*buf = NULL;
		return -1;
	}
	return fclose(f) == 0 ? 0 : -1;
}

int audit_spool_format(const struct audit_row *r, char **line, size_t *len)
{
	return format_rows(&r, 1, line, len);
}

static int unhex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* The field s[0..n) unescaped into a new string (*out; NULL for \N).
 * Returns 0, -1 on a bad escape, -2 out of memory. */
static int unescape(const char *s, size_t n, char **out)
{
	char *d, *o;

	*out = NULL;
	if (n == 2 && s[0] == '\\' && s[1] == 'N')
		return 0;
	if ((d = o = malloc(n + 1)) == NULL)
		return -2;
	for (size_t i = 0; i < n; i++) {
		const char *e;
		int hi, lo;
		if (s[i] != '\\') {
			if ((unsigned char)s[i] < 0x20 ||
			    (unsigned char)s[i] > 0x7e)
				goto bad; /* the writer escapes these */
			*o++ = s[i];
			continue;
		}
		if (++i >= n)
			goto bad;
		if ((e = strchr(esc_letter, s[i])) != NULL && *e) {
			*o++ = esc_raw[e - esc_letter];
		} else if (s[i] == 'x' && i + 2 < n &&
		           (hi = unhex(s[i + 1])) >= 0 &&
		           (lo = unhex(s[i + 2])) >= 0 && (hi || lo)) {
			*o++ = (char)(hi << 4 | lo);
			i += 2;
		} else {
			goto bad;
		}
	}
	*o = '\0';
	*out = d;
	return 0;
bad:
	free(d);
	return -1;
}

int audit_spool_row_copy(struct audit_row *dst, const struct audit_row *src)
{
	const char **d[ROW_TEXTS], **from[ROW_TEXTS];

	memset(dst, 0, sizeof(*dst));
	dst->at = src->at;
	row_texts(dst, d);
	row_texts(src, from);
	for (size_t i = 0; i < ROW_TEXTS; i++)
		if (*from[i] && (*d[i] = strdup(*from[i])) == NULL) {
			audit_spool_row_clear(dst);
			return -1;
		}
	return 0;
}

void audit_spool_row_clear(struct audit_row *r)
{
	const char **t[ROW_TEXTS];

	if (r == NULL)
		return;
	row_texts(r, t);
	for (size_t i = 0; i < ROW_TEXTS; i++)
		free((char *)*t[i]);
	memset(r, 0, sizeof(*r));
}

int audit_spool_parse(const char *line, size_t len, struct audit_row *r,
                      const char **why)
{
	const char **text[ROW_TEXTS];
	const char *p, *end, *tab;
	char num[24], *e;
	unsigned long check;
	long long at;
	size_t body;

	memset(r, 0, sizeof(*r));
	row_texts(r, text);
	*why = "format";
	/* the check: the last 8 characters, after a tab */
	if (len < 12 || line[len - 9] != '\t')
		return -1;
	body = len - 9;
	memcpy(num, line + body + 1, 8);
	num[8] = '\0';
	check = strtoul(num, &e, 16);
	if (*e != '\0' || (uint32_t)check != fnv1a(line, body)) {
		*why = "checksum";
		return -1;
	}
	if (body < 3 || memcmp(line, SPOOL_TAG "\t", 3) != 0) {
		*why = "version";
		return -1;
	}
	p = line + 3;
	end = line + body;
	tab = memchr(p, '\t', (size_t)(end - p));
	if (tab == NULL || tab == p || (size_t)(tab - p) >= sizeof(num))
		return -1;
	memcpy(num, p, (size_t)(tab - p));
	num[tab - p] = '\0';
	errno = 0;
	at = strtoll(num, &e, 10);
	if (*e != '\0' || errno != 0)
		return -1;
	r->at = (time_t)at;
	p = tab + 1;
	for (size_t i = 0; i < SPOOL_FIELDS - 1; i++) {
		char *v;
		int rc;
		tab = memchr(p, '\t', (size_t)(end - p));
		if ((tab == NULL) != (i == SPOOL_FIELDS - 2))
			goto bad;
		if (tab == NULL)
			tab = end;
		if ((rc = unescape(p, (size_t)(tab - p), &v)) != 0) {
			if (rc == -2)
				*why = "out of memory";
			goto bad;
		}
		*text[i] = v;
		p = tab + 1;
	}
	return 0;
bad:
	audit_spool_row_clear(r);
	return -1;
}

/* Write all of p[0..n) to fd. */
static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Append p[0..n) to path (0600) and fsync; first end a torn last line. */
static int append_bytes(const char *path, const char *p, size_t n, char *err,
                        size_t errlen)
{
	int fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	struct stat st;
	char last = '\n';

	if (fd < 0)
		return seterr(err, errlen, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0 ||
	    (st.st_size > 0 && pread(fd, &last, 1, st.st_size - 1) != 1) ||
	    (last != '\n' && write_all(fd, "\n", 1) != 0) ||
	    write_all(fd, p, n) != 0 || fsync(fd) != 0) {
		seterr(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (close(fd) != 0)
		return seterr(err, errlen, "%s: %s", path, strerror(errno));
	return 0;
}

int audit_spool_append(const char *path, const struct audit_row *const *rows,
                       size_t n, char *err, size_t errlen)
{
	char *buf = NULL;
	size_t len = 0;
	int rc;

	if (n == 0)
		return 0;
	if (format_rows(rows, n, &buf, &len) != 0)
		return seterr(err, errlen, "out of memory");
	rc = append_bytes(path, buf, len, err, errlen);
	free(buf);
	return rc;
}

/* Note line number lineno (bytes p[0..n)) as not imported: its bytes go
 * to bad (a memory stream). */
static void note_bad(struct audit_spool_stats *st, FILE *bad, size_t lineno,
                     const char *why, const char *p, size_t n)
{
	if (st->bad++ == 0) {
		st->first_bad_line = lineno;
		snprintf(st->first_bad_why, sizeof(st->first_bad_why), "%s",
		         why);
	}
	if (bad) {
		fwrite(p, 1, n, bad);
		fputc('\n', bad);
	}
}

int audit_spool_read(const char *path, audit_spool_row_fn fn, void *arg,
                     struct audit_spool_stats *st, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re"), *bad;
	char *line = NULL;
	size_t cap = 0, lineno = 0;
	ssize_t n;
	int rc = 0;

	memset(st, 0, sizeof(*st));
	if (f == NULL) {
		if (errno == ENOENT)
			return 1;
		return seterr(err, errlen, "%s: %s", path, strerror(errno));
	}
	bad = open_memstream(&st->bad_lines, &st->bad_len);
	while (rc == 0 && (n = getline(&line, &cap, f)) > 0) {
		struct audit_row r;
		const char *why;
		lineno++;
		if (line[n - 1] != '\n') {
			note_bad(st, bad, lineno, "torn", line, (size_t)n);
			break;
		}
		if (n == 1)
			continue; /* the LF that ended a torn line */
		if (audit_spool_parse(line, (size_t)n - 1, &r, &why) != 0) {
			if (strcmp(why, "out of memory") == 0)
				rc = seterr(err, errlen, "out of memory");
			else
				note_bad(st, bad, lineno, why, line,
				         (size_t)n - 1);
			continue;
		}
		st->rows++;
		if (fn(arg, &r) != 0)
			rc = 2;
		audit_spool_row_clear(&r);
	}
	if (rc == 0 && ferror(f))
		rc = seterr(err, errlen, "%s: %s", path, strerror(errno));
	free(line);
	fclose(f);
	if (bad && fclose(bad) != 0)
		audit_spool_stats_clear(st); /* out of memory: not kept */
	if (rc == 0 && lineno == 0) {
		audit_spool_stats_clear(st);
		return 1;
	}
	return rc;
}

void audit_spool_stats_clear(struct audit_spool_stats *st)
{
	if (st == NULL)
		return;
	free(st->bad_lines);
	st->bad_lines = NULL;
	st->bad_len = 0;
}

int audit_spool_remove(const char *path, const struct audit_spool_stats *st,
                       char *err, size_t errlen)
{
	if (st && st->bad_len > 0) {
		char bad[4096];
		snprintf(bad, sizeof(bad), "%s.bad", path);
		if (append_bytes(bad, st->bad_lines, st->bad_len, err,
		                 errlen) != 0)
			return -1;
	}
	if (unlink(path) != 0 && errno != ENOENT)
		return seterr(err, errlen, "%s: %s", path, strerror(errno));
	return 0;
}

int audit_spool_exists(const char *path)
{
	struct stat st;

	return path && stat(path, &st) == 0 && st.st_size > 0;
}

int audit_spool_lock(const char *path)
{
	char lock[4096];
	int fd;

	snprintf(lock, sizeof(lock), "%s.lock", path);
	fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	while (flock(fd, LOCK_EX) != 0)
		if (errno != EINTR) {
			close(fd);
			return -1;
		}
	return fd;
}

void audit_spool_unlock(int fd)
{
	if (fd >= 0)
		close(fd); /* releases the flock */
}
