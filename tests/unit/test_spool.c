/* Unit tests: the spool (memory that spills to an unlinked 0600 file). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixture.h"
#include "spool.h"
#include "tap.h"

static int files_in(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	if (d)
		closedir(d);
	return n;
}

static int roundtrip(size_t max_mem, size_t total, size_t wchunk, int *disk,
                     const char *dir)
{
	struct spool *s = spool_new(max_mem, dir);
	unsigned char *buf = malloc(total), *back = malloc(total + 1);
	char err[256];
	size_t got = 0;
	ssize_t n;
	int same;

	for (size_t i = 0; i < total; i++)
		buf[i] = (unsigned char)(i * 7 + (i >> 9)); /* NUL bytes too */
	for (size_t off = 0; off < total; off += wchunk)
		spool_write(s, buf + off,
		            total - off < wchunk ? total - off : wchunk, err,
		            sizeof(err));
	*disk = spool_on_disk(s);
	spool_rewind(s, err, sizeof(err));
	while ((n = spool_read(s, back + got, 4093)) > 0)
		got += (size_t)n;
	same = got == total && spool_size(s) == total &&
	       memcmp(buf, back, total) == 0;
	spool_free(s);
	free(buf);
	free(back);
	return same;
}

int main(void)
{
	const char *dir = fixture_dir("spool");
	char err[256];
	int disk;
	struct spool *s;

	ok(roundtrip(65536, 1000, 100, &disk, dir) && !disk,
	   "small body stays in memory and reads back");
	ok(roundtrip(4096, 1 << 20, 1000, &disk, dir) && disk,
	   "1 MB body spills to disk and reads back byte for byte");
	ok(roundtrip(4096, 300000, 70000, &disk, dir) && disk,
	   "writes larger than the buffer pass straight through");
	ok(roundtrip(4096, 0, 1, &disk, dir), "empty spool reads back empty");
	ok(files_in(dir) == 0, "no temp file is left behind");

	s = spool_new(10, dir);
	spool_write(s, "0123456789abcdef", 16, err, sizeof(err));
	ok(spool_on_disk(s) && files_in(dir) == 0,
	   "spilled file is unlinked while open");
	spool_free(s);

	s = spool_new(10, "/nonexistent-dir");
	ok(spool_write(s, "0123456789abcdef", 16, err, sizeof(err)) != 0 &&
	           strstr(err, "cannot create temp file in /nonexistent-dir"),
	   "unwritable temp_dir is a clear error (%s)", err);
	spool_free(s);
	spool_free(NULL);
	ok(1, "spool_free(NULL) is fine");
	fixture_cleanup();
	return tap_done();
}
