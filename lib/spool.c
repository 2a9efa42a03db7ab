/* spool -- memory that spills to an unlinked 0600 temp file (see spool.h). */
#include "spool.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SPOOL_WBUF 65536

struct spool {
	size_t max_mem;
	char *dir;
	unsigned char *mem; /* in-memory data, or the write buffer once on disk */
	size_t len;         /* bytes in mem */
	size_t cap;
	size_t total; /* bytes written in all */
	size_t rpos;  /* read position in mem (memory mode) */
	int fd;       /* -1 while in memory */
};

struct spool *spool_new(size_t max_mem, const char *dir)
{
	struct spool *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->max_mem = max_mem;
	s->dir = xstrdup(dir ? dir : "/tmp");
	s->fd = -1;
	if (s->dir == NULL) {
		free(s);
		return NULL;
	}
	return s;
}

/* The error names temp_dir: "No space left on device" alone does not tell a
 * postmaster which file system filled up. */
static int write_all(const struct spool *s, int fd, const unsigned char *p,
                     size_t n, char *err, size_t errlen)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return seterr(err, errlen,
			              "cannot write temp file in %s: %s",
			              s->dir, strerror(errno));
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int spill(struct spool *s, char *err, size_t errlen)
{
	char path[4096];
	int fd;

	if (snprintf(path, sizeof(path), "%s/smime-spool.XXXXXX", s->dir) >=
	    (int)sizeof(path))
		return seterr(err, errlen, "temp_dir path too long");
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return seterr(err, errlen, "cannot create temp file in %s: %s",
		              s->dir, strerror(errno));
	unlink(path); /* nothing is ever left behind */
	fchmod(fd, 0600);
	if (write_all(s, fd, s->mem, s->len, err, errlen) != 0) {
		close(fd);
		return -1;
	}
	s->fd = fd;
	s->len = 0;
	if (s->cap > SPOOL_WBUF) {
		unsigned char *m = realloc(s->mem, SPOOL_WBUF);
		if (m) {
			s->mem = m;
			s->cap = SPOOL_WBUF;
		}
	}
	return 0;
}

int spool_write(struct spool *s, const void *buf, size_t len, char *err,
                size_t errlen)
{
	const unsigned char *p = buf;

	if (s->fd < 0 && s->len + len > s->max_mem) {
		if (spill(s, err, errlen) != 0)
			return -1;
	}
	if (s->fd >= 0) {
		/* buffer small writes, pass big ones straight through */
		if (s->len + len > SPOOL_WBUF) {
			if (write_all(s, s->fd, s->mem, s->len, err, errlen) !=
			    0)
				return -1;
			s->len = 0;
		}
		if (len >= SPOOL_WBUF) {
			if (write_all(s, s->fd, p, len, err, errlen) != 0)
				return -1;
			s->total += len;
			return 0;
		}
	}
	if (s->len + len > s->cap) {
		size_t ncap = s->cap ? s->cap : 8192;
		unsigned char *m;
		while (ncap < s->len + len)
			ncap *= 2;
		m = realloc(s->mem, ncap);
		if (m == NULL)
			return seterr(err, errlen, "out of memory");
		s->mem = m;
		s->cap = ncap;
	}
	if (len > 0)
		memcpy(s->mem + s->len, p, len);
	s->len += len;
	s->total += len;
	return 0;
}

int spool_rewind(struct spool *s, char *err, size_t errlen)
{
	if (s->fd >= 0) {
		if (s->len > 0) {
			if (write_all(s, s->fd, s->mem, s->len, err, errlen) !=
			    0)
				return -1;
			s->len = 0;
		}
		if (lseek(s->fd, 0, SEEK_SET) != 0)
			return seterr(err, errlen, "spool seek: %s",
			              strerror(errno));
	}
	s->rpos = 0;
	return 0;
}

ssize_t spool_read(struct spool *s, void *buf, size_t len)
{
	if (s->fd >= 0) {
		ssize_t n;
		do
			n = read(s->fd, buf, len);
		while (n < 0 && errno == EINTR);
		return n;
	}
	if (len > s->len - s->rpos)
		len = s->len - s->rpos;
	if (len > 0) {
		memcpy(buf, s->mem + s->rpos, len);
		s->rpos += len;
	}
	return (ssize_t)len;
}

size_t spool_size(const struct spool *s)
{
	return s->total;
}

int spool_on_disk(const struct spool *s)
{
	return s->fd >= 0;
}

void spool_free(struct spool *s)
{
	if (s == NULL)
		return;
	if (s->fd >= 0)
		close(s->fd);
	free(s->mem);
	free(s->dir);
	free(s);
}
