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

/* A growing byte buffer; oom set once an append failed. */
struct buf {
	char *p;
	size_t len, cap;
	int oom;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t ncap = b->cap ? b->cap : 256;
		char *np;
		while (ncap < b->len + n + 1)
			ncap *= 2;
		if ((np = realloc(b->p, ncap)) == NULL) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static uint32_t fnv1a(const char *s, size_t n)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	return h;
}

static void add_text(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	buf_add(b, "\t", 1);
	if (s == NULL) {
		buf_add(b, "\\N", 2);
		return;
	}
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		char esc[4] = { '\\', 0, 0, 0 };
		size_t n = 2;
		switch (*p) {
		case '\\':
			esc[1] = '\\';
			break;
		case '\t':
			esc[1] = 't';
			break;
		case '\n':
			esc[1] = 'n';
			break;
		case '\r':
			esc[1] = 'r';
			break;
		default:
			if (*p >= 0x20 && *p <= 0x7e) {
				buf_add(b, (const char *)p, 1);
				continue;
			}
			esc[1] = 'x';
			esc[2] = hex[*p >> 4];
			esc[3] = hex[*p & 15];
			n = 4;
		}
		buf_add(b, esc, n);
	}
}

/* r's line (with LF) appended to b. */
static void format_row(struct buf *b, const struct audit_row *r)
{
	const char *text[] = { r->queue_id, r->message_id,  r->from_addr,
		               r->action,   r->cert_serial, r->digest,
		               r->result,   r->recipients,  r->cert_issuer };
	char num[32];
	size_t start = b->len;

	buf_add(b, SPOOL_TAG, sizeof(SPOOL_TAG) - 1);
	snprintf(num, sizeof(num), "\t%lld", (long long)r->at);
	buf_add(b, num, strlen(num));
	for (size_t i = 0; i < sizeof(text) / sizeof(text[0]); i++)
		add_text(b, text[i]);
	if (b->oom)
		return;
	snprintf(num, sizeof(num), "\t%08x\n",
	         (unsigned)fnv1a(b->p + start, b->len - start));
	buf_add(b, num, strlen(num));
}

int audit_spool_format(const struct audit_row *r, char **line, size_t *len)
{
	struct buf b = { 0 };

	format_row(&b, r);
	if (b.oom) {
		free(b.p);
		return -1;
	}
	*line = b.p;
	*len = b.len;
	return 0;
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
		switch (s[i]) {
		case '\\':
			*o++ = '\\';
			break;
		case 't':
			*o++ = '\t';
			break;
		case 'n':
			*o++ = '\n';
			break;
		case 'r':
			*o++ = '\r';
			break;
		case 'x':
			if (i + 2 >= n || (hi = unhex(s[i + 1])) < 0 ||
			    (lo = unhex(s[i + 2])) < 0 || (hi == 0 && lo == 0))
				goto bad;
			*o++ = (char)(hi << 4 | lo);
			i += 2;
			break;
		default:
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

void audit_spool_row_clear(struct audit_row *r)
{
	if (r == NULL)
		return;
	free((char *)r->queue_id);
	free((char *)r->message_id);
	free((char *)r->from_addr);
	free((char *)r->action);
	free((char *)r->cert_serial);
	free((char *)r->digest);
	free((char *)r->result);
	free((char *)r->recipients);
	free((char *)r->cert_issuer);
	memset(r, 0, sizeof(*r));
}

int audit_spool_parse(const char *line, size_t len, struct audit_row *r,
                      const char **why)
{
	const char **text[] = { &r->queue_id, &r->message_id,  &r->from_addr,
		                &r->action,   &r->cert_serial, &r->digest,
		                &r->result,   &r->recipients,  &r->cert_issuer };
	const char *p, *end, *tab;
	char num[24], *e;
	unsigned long check;
	long long at;
	size_t body;

	memset(r, 0, sizeof(*r));
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
	struct buf b = { 0 };
	int rc;

	for (size_t i = 0; i < n; i++)
		format_row(&b, rows[i]);
	if (b.oom) {
		free(b.p);
		return seterr(err, errlen, "out of memory");
	}
	rc = n ? append_bytes(path, b.p, b.len, err, errlen) : 0;
	free(b.p);
	return rc;
}

/* Note line number lineno (bytes p[0..n)) as not imported. */
static void note_bad(struct audit_spool_stats *st, size_t lineno,
                     const char *why, const char *p, size_t n)
{
	struct buf b = { st->bad_lines, st->bad_len, st->bad_len, 0 };

	if (st->bad++ == 0) {
		st->first_bad_line = lineno;
		snprintf(st->first_bad_why, sizeof(st->first_bad_why), "%s",
		         why);
	}
	if (b.p)
		b.cap = b.len + 1;
	buf_add(&b, p, n);
	buf_add(&b, "\n", 1);
	if (!b.oom) {
		st->bad_lines = b.p;
		st->bad_len = b.len;
	}
}

int audit_spool_read(const char *path, audit_spool_row_fn fn, void *arg,
                     struct audit_spool_stats *st, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
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
	while (rc == 0 && (n = getline(&line, &cap, f)) > 0) {
		struct audit_row r;
		const char *why;
		lineno++;
		if (line[n - 1] != '\n') {
			note_bad(st, lineno, "torn", line, (size_t)n);
			break;
		}
		if (n == 1)
			continue; /* the LF that ended a torn line */
		if (audit_spool_parse(line, (size_t)n - 1, &r, &why) != 0) {
			if (strcmp(why, "out of memory") == 0)
				rc = seterr(err, errlen, "out of memory");
			else
				note_bad(st, lineno, why, line, (size_t)n - 1);
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
	if (rc == 0 && lineno == 0)
		return 1;
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
