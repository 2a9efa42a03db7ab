/* util -- small shared helpers (see util.h). */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>

int seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return -1;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

void adderr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	size_t used;

	if (err == NULL || errlen == 0)
		return;
	used = strlen(err);
	if (used > 0 && used + 1 < errlen) {
		err[used++] = '\n';
		err[used] = '\0';
	}
	if (used + 1 >= errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err + used, errlen - used, fmt, ap);
	va_end(ap);
}

void seterr_ssl(char *err, size_t errlen, const char *what)
{
	unsigned long e;
	char buf[256];
	size_t used;

	if (err == NULL || errlen == 0) {
		ERR_clear_error();
		return;
	}
	snprintf(err, errlen, "%s", what);
	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		used = strlen(err);
		if (used + 3 < errlen)
			snprintf(err + used, errlen - used, ": %s",
			         ERR_reason_error_string(e)
			                 ? ERR_reason_error_string(e)
			                 : buf);
	}
}

char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

char *str_lower(char *s)
{
	for (char *p = s; p && *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return s;
}

int str_ieq(const char *a, const char *b)
{
	return a && b && strcasecmp(a, b) == 0;
}

int str_iprefix(const char *s, const char *prefix)
{
	return s && strncasecmp(s, prefix, strlen(prefix)) == 0;
}

int path_exposed(const char *path, char *err, size_t errlen)
{
	struct stat st;
	char dir[PATH_MAX];
	char *slash;

	if (path == NULL || stat(path, &st) != 0)
		return 0;
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		seterr(err, errlen,
		       "%s: mode %04o is readable by group or others; chmod "
		       "600 "
		       "it",
		       path, (unsigned)(st.st_mode & 07777));
		return 1;
	}
	if (strlen(path) >= sizeof(dir))
		return 0;
	strcpy(dir, path);
	while ((slash = strrchr(dir, '/')) != NULL) {
		if (slash == dir)
			slash[1] = '\0';
		else
			*slash = '\0';
		if (stat(dir, &st) == 0 && (st.st_mode & S_IWOTH) &&
		    !(st.st_mode & S_ISVTX)) {
			seterr(err, errlen,
			       "%s: directory %s is writable by others", path,
			       dir);
			return 1;
		}
		if (slash == dir)
			break;
	}
	return 0;
}

int path_check_private(const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (stat(path, &st) != 0)
		return seterr(err, errlen, "%s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return seterr(err, errlen, "%s: not a regular file", path);
	if (strlen(path) >= PATH_MAX)
		return seterr(err, errlen, "%s: path too long", path);
	return path_exposed(path, err, errlen) ? -1 : 0;
}

int secret_read_file(const char *path, char *buf, size_t buflen, char *err,
                     size_t errlen)
{
	int fd;
	ssize_t n;
	size_t len = 0;

	if (path_check_private(path, err, errlen) != 0)
		return -1;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return seterr(err, errlen, "%s: %s", path, strerror(errno));
	while (len + 1 < buflen &&
	       (n = read(fd, buf + len, buflen - 1 - len)) > 0)
		len += (size_t)n;
	if (len + 1 >= buflen && read(fd, &buf[0], 1) > 0) {
		close(fd);
		OPENSSL_cleanse(buf, buflen);
		return seterr(err, errlen, "%s: secret longer than %zu bytes",
		              path, buflen - 2);
	}
	close(fd);
	buf[len] = '\0';
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		buf[--len] = '\0';
	return (int)len;
}

/* Skip an RFC 5322 comment starting at p ('('); returns the char after it. */
static const char *skip_comment(const char *p)
{
	int depth = 0;

	for (; *p; p++) {
		if (*p == '\\' && p[1])
			p++;
		else if (*p == '(')
			depth++;
		else if (*p == ')' && --depth == 0)
			return p + 1;
	}
	return p;
}

int addr_from_header(const char *value, char *out, size_t outlen, char *err,
                     size_t errlen)
{
	const char *p, *lt = NULL, *gt = NULL, *start = NULL, *end = NULL;
	size_t n = 0, len;
	int mailboxes = 0, inq = 0;
	char *o;

	if (value == NULL)
		return seterr(err, errlen, "no From header");
	/* Count top-level commas (several mailboxes) and find '<' */
	for (p = value; *p; p++) {
		if (inq) {
			if (*p == '\\' && p[1])
				p++;
			else if (*p == '"')
				inq = 0;
			continue;
		}
		if (*p == '"')
			inq = 1;
		else if (*p == '(') {
			p = skip_comment(p) - 1;
		} else if (*p == '<' && lt == NULL) {
			lt = p;
			gt = strchr(lt, '>'); /* once: a scan per comma is
			                         quadratic */
		} else if (*p == ',' && (lt == NULL || gt == NULL || gt < p))
			mailboxes++;
	}
	if (mailboxes > 0)
		return seterr(err, errlen, "From holds more than one mailbox");
	if (lt != NULL) {
		start = lt + 1;
		end = strchr(start, '>');
		if (end == NULL)
			return seterr(err, errlen, "From has '<' but no '>'");
	} else {
		/* bare addr-spec, possibly with comments and spaces */
		start = value;
		end = value + strlen(value);
	}
	o = out;
	for (p = start; p < end; p++) {
		if (*p == '(') {
			p = skip_comment(p) - 1;
			if (p >= end)
				break;
			continue;
		}
		if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
			continue;
		if ((unsigned char)*p < 0x20)
			return seterr(err, errlen,
			              "control byte in From address");
		if (n + 1 >= outlen)
			return seterr(err, errlen, "From address too long");
		*o++ = (char)tolower((unsigned char)*p);
		n++;
	}
	*o = '\0';
	len = strlen(out);
	if (len == 0)
		return seterr(err, errlen, "empty From address");
	o = strchr(out, '@');
	if (o == NULL || o == out || o[1] == '\0' || strchr(o + 1, '@'))
		return seterr(err, errlen, "From address '%s' is not a mailbox",
		              out);
	return 0;
}

int addr_list_each(const char *value, void (*fn)(void *arg, const char *addr),
                   void *arg)
{
	char *buf, *part, addr[320], err[128];
	const char *p;
	int inq = 0, angle = 0, n = 0;
	size_t len;

	if (value == NULL)
		return 0;
	len = strlen(value);
	if ((buf = malloc(len + 1)) == NULL)
		return -1;
	part = buf;
	for (p = value;; p++) {
		int end = *p == '\0';
		if (!end && inq) {
			if (*p == '\\' && p[1]) {
				*part++ = *p++;
			} else if (*p == '"')
				inq = 0;
			*part++ = *p;
			continue;
		}
		if (!end && *p == '(') {
			const char *q = skip_comment(p);
			memcpy(part, p, (size_t)(q - p));
			part += q - p;
			p = q - 1;
			continue;
		}
		if (!end && *p == '"')
			inq = 1;
		else if (!end && *p == '<')
			angle = 1;
		else if (!end && *p == '>')
			angle = 0;
		else if (!end && *p == ':' && !angle) {
			part = buf; /* a group name: drop it */
			continue;
		}
		if (end || (!angle && (*p == ',' || *p == ';'))) {
			*part = '\0';
			if (addr_from_header(buf, addr, sizeof(addr), err,
			                     sizeof(err)) == 0) {
				fn(arg, addr);
				n++;
			}
			part = buf;
			if (end)
				break;
			continue;
		}
		*part++ = *p;
	}
	free(buf);
	return n;
}

const char *addr_domain(const char *addr)
{
	const char *at = addr ? strrchr(addr, '@') : NULL;

	return at ? at + 1 : "";
}

char *time_fmt(time_t t, char *buf, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm);
	return buf;
}

void malloc_tune(void)
{
	mallopt(M_TRIM_THRESHOLD, 8 * 1024 * 1024);
	mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
}

void strv_free(char **v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

int array_grow(void *arr, size_t *cap, size_t n, size_t elem)
{
	void **p = arr;
	size_t ncap;
	void *grown;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 8;
	if (ncap > SIZE_MAX / elem)
		return -1;
	grown = realloc(*p, ncap * elem);
	if (grown == NULL)
		return -1;
	*p = grown;
	*cap = ncap;
	return 0;
}

size_t buf_fill(unsigned char *dst, size_t *have, size_t cap,
                const unsigned char **src, size_t *len)
{
	size_t take = cap - *have;

	if (take > *len)
		take = *len;
	memcpy(dst + *have, *src, take);
	*have += take;
	*src += take;
	*len -= take;
	return take;
}

size_t utf8_len(const unsigned char *p, size_t n)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t k;

	if (n == 0)
		return 0;
	if (p[0] < 0x80)
		return 1;
	k = p[0] >= 0xc2 && p[0] <= 0xdf   ? 2
	    : p[0] >= 0xe0 && p[0] <= 0xef ? 3
	    : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4
	                                   : 0;
	if (k == 0 || k > n)
		return 0;
	if (p[0] == 0xe0)
		lo = 0xa0; /* overlong */
	else if (p[0] == 0xed)
		hi = 0x9f; /* surrogates */
	else if (p[0] == 0xf0)
		lo = 0x90; /* overlong */
	else if (p[0] == 0xf4)
		hi = 0x8f; /* past U+10FFFF */
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < k; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return k;
}

int utf8_valid(const unsigned char *p, size_t n)
{
	for (size_t i = 0, k; i < n; i += k)
		if ((k = utf8_len(p + i, n - i)) == 0)
			return 0;
	return 1;
}

int str_is_utf8(const char *s)
{
	return utf8_valid((const unsigned char *)s, strlen(s));
}

const char *utf8_escape(const char *s, int *made)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n, bad = 0, k;
	char *out, *o;

	*made = 0;
	if (s == NULL)
		return NULL;
	n = strlen(s);
	for (size_t i = 0; i < n; i += k ? k : 1)
		if ((k = utf8_len(p + i, n - i)) == 0)
			bad++;
	if (bad == 0)
		return s;
	if ((out = malloc(n + 3 * bad + 1)) == NULL)
		return NULL;
	o = out;
	for (size_t i = 0; i < n; i += k ? k : 1) {
		if ((k = utf8_len(p + i, n - i)) == 0) {
			o += sprintf(o, "\\x%02X", p[i]);
		} else {
			memcpy(o, p + i, k);
			o += k;
		}
	}
	*o = '\0';
	*made = 1;
	return out;
}
