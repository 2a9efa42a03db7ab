/* Unit tests: the -t mode's header split and header store
 * (milter/offline.c, which needs no libmilter at link time). */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "offline.h"
#include "tap.h"

/*
 * The test links with -Wl,--wrap=realloc: every realloc moves the block,
 * the way ASan's does (glibc's often grows in place or remaps, which hides
 * a quadratic growth).
 */
void *__real_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n)
{
	size_t old = p ? malloc_usable_size(p) : 0;
	void *q = malloc(n ? n : 1);

	if (q == NULL)
		return NULL;
	if (p) {
		memcpy(q, p, old < n ? old : n);
		free(p);
	}
	return q;
}

static int collect(void *arg, const char *start, const char *end)
{
	return offline_add_header(arg, start, end);
}

/* CPU seconds to store n header fields one by one: the fastest of five. */
static double add_time(size_t n)
{
	static const char line[] = "X-Test: value\r\n";
	double best = -1;

	for (int r = 0; r < 5; r++) {
		struct offline_ctx o;
		struct timespec a, b;
		double t;
		int fail = 0;
		memset(&o, 0, sizeof(o));
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
		for (size_t i = 0; i < n && !fail; i++)
			fail = offline_add_header(&o, line,
			                          line + sizeof(line) - 1);
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
		offline_ctx_free(&o);
		if (fail)
			return -1;
		t = (double)(b.tv_sec - a.tv_sec) +
		    (double)(b.tv_nsec - a.tv_nsec) / 1e9;
		if (best < 0 || t < best)
			best = t;
	}
	return best;
}

int main(void)
{
	static const char msg[] = "From: Andi <andi@banjarkota.go.id>\r\n"
	                          "Subject:  folded\r\n\tsubject\r\n"
	                          "To: a@b.id\n"
	                          "\r\n"
	                          "Body: not a header\r\n";
	struct offline_ctx o;
	size_t off;
	char *name, *value;

	memset(&o, 0, sizeof(o));
	off = offline_split(msg, sizeof(msg) - 1, collect, &o);
	ok(o.nhdrs == 3, "three header fields (%zu)", o.nhdrs);
	ok(off < sizeof(msg) &&
	           strcmp(msg + off, "Body: not a header\r\n") == 0,
	   "the body starts after the empty line");
	is_str(o.nhdrs > 1 ? o.hdr_names[1] : NULL, "Subject", "a name");
	is_str(o.nhdrs > 1 ? o.hdr_values[1] : NULL, "folded\n\tsubject",
	       "a folded value as the MTA hands it");
	is_str(o.nhdrs > 1 ? o.hdr_raw[1] : NULL,
	       "Subject:  folded\r\n\tsubject\r\n", "the raw field is kept");
	is_str(o.nhdrs > 2 ? o.hdr_values[2] : NULL, "a@b.id",
	       "a bare LF line end");
	offline_ctx_free(&o);
	offline_ctx_free(NULL);

	off = offline_split("no header here\r\n", 16, collect, &o);
	ok(off == 0 && o.nhdrs == 0, "a message without headers is all body");
	offline_ctx_free(&o);
	off = offline_split("A: 1\r\nB: 2\r\nbody line\r\n", 24, collect, &o);
	ok(off == 12 && o.nhdrs == 2,
	   "the body starts at the first line that is no field (%zu)", off);
	offline_ctx_free(&o);

	ok(offline_header_parse("X-A:\tv \r\n", "X-A:\tv \r\n" + 9, &name,
	                        &value) == 0 &&
	           strcmp(name, "X-A") == 0 && strcmp(value, "v ") == 0,
	   "header_parse: leading blank gone, trailing kept");
	free(name);
	free(value);

	{
		/* with a realloc that always copies, growing one element
		 * at a time is quadratic */
		double t1, t4;
		t1 = add_time(10000);
		t4 = add_time(40000);
		ok(t1 >= 0 && t4 >= 0 &&
		                   t4<8 * (t1 > 1e-6 ? t1 : 1e-6),
		                      "40k header fields take %.1fx the time "
		                      "of 10k (%.4f s, "
		                      "%.4f s; linear ~4, quadratic ~16)",
		                      t1> 0
		           ? t4 / t1
		           : 0.0,
		   t1, t4);
	}
	return tap_done();
}
