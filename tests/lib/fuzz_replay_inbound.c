/*
 * fuzz_replay_inbound -- tests/fuzz/fuzz_inbound.c without libFuzzer: each
 * FILE argument goes once through LLVMFuzzerTestOneInput, after
 * LLVMFuzzerInitialize, so `make check` (and SANITIZE=1) replays the
 * inbound seeds and regressions with the target's own invariants (an
 * abort is a failure).  Usage: fuzz_replay_inbound FILE...  Exit 0, or 1
 * when a file cannot be read.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The whole file at path, malloc'd, in *len; NULL when unreadable. */
static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *p = NULL, *grown;
	size_t cap = 0, n;

	*len = 0;
	if (f == NULL)
		return NULL;
	do {
		if (*len == cap) {
			cap = cap ? cap * 2 : 65536;
			if ((grown = realloc(p, cap)) == NULL) {
				free(p);
				fclose(f);
				return NULL;
			}
			p = grown;
		}
		n = fread(p + *len, 1, cap - *len, f);
		*len += n;
	} while (n > 0);
	if (ferror(f)) {
		free(p);
		p = NULL;
	}
	fclose(f);
	return p;
}

int main(int argc, char **argv)
{
	int status = 0;

	LLVMFuzzerInitialize(&argc, &argv);
	for (int i = 1; i < argc; i++) {
		size_t len;
		uint8_t *data = slurp(argv[i], &len);
		if (data == NULL) {
			perror(argv[i]);
			status = 1;
			continue;
		}
		fprintf(stderr, "== %s (%zu octets)\n", argv[i], len);
		LLVMFuzzerTestOneInput(data, len);
		free(data);
	}
	return status;
}
