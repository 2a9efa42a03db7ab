/* Minimal TAP helpers for unit tests: each check prints "ok N - what" or
 * "not ok N - what"; tests/run.sh counts those lines. */
#ifndef TAP_H
#define TAP_H
#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;

#define ok(cond, ...)                                                        \
	do {                                                                 \
		int ok_c_ = (cond) ? 1 : 0;                                  \
		printf("%sok %d - ", ok_c_ ? "" : "not ", ++tap_n);          \
		printf(__VA_ARGS__);                                         \
		printf("\n");                                                \
		if (!ok_c_) {                                                \
			tap_failed++;                                        \
			printf("#   failed at %s:%d\n", __FILE__, __LINE__); \
		}                                                            \
	} while (0)

#define is_str(got, want, ...)                                           \
	do {                                                             \
		const char *g_ = (got), *w_ = (want);                    \
		int same_ = (g_ && w_) ? strcmp(g_, w_) == 0 : g_ == w_; \
		ok(same_, __VA_ARGS__);                                  \
		if (!same_)                                              \
			printf("#   got:  '%s'\n#   want: '%s'\n",       \
			       g_ ? g_ : "(null)", w_ ? w_ : "(null)");  \
	} while (0)

#define tap_done() (printf("1..%d\n", tap_n), tap_failed ? 1 : 0)
#endif
