/*
 * slurp -- what the benchmark tools share: a whole message file read into
 * memory, NUL-terminated.  Header-only: each tool is one .c file.
 */
#ifndef SMIME_BENCH_SLURP_H
#define SMIME_BENCH_SLURP_H

#include <stdio.h>
#include <stdlib.h>

/* The contents of path (malloc'd, NUL-terminated) and their length in
 * *len; NULL with perror's message when it cannot be read whole. */
static inline char *bench_slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *text = NULL;
	long n;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0) {
		perror(path);
		if (f)
			fclose(f);
		return NULL;
	}
	rewind(f);
	text = malloc((size_t)n + 1);
	if (text == NULL || fread(text, 1, (size_t)n, f) != (size_t)n) {
		perror(path);
		free(text);
		fclose(f);
		return NULL;
	}
	fclose(f);
	text[n] = '\0';
	*len = (size_t)n;
	return text;
}

#endif
