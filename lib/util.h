/*
 * util -- small helpers shared by lib/, milter/ and admin/.
 */
#ifndef SMIME_UTIL_H
#define SMIME_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <sys/types.h>

#define SMIME_VERSION "0.1.0"

#if defined(__GNUC__)
#define PRINTFLIKE(a, b) __attribute__((format(printf, a, b)))
#else
#define PRINTFLIKE(a, b)
#endif

/* Write a formatted message into err (may be NULL); returns -1 so callers
 * can `return seterr(...)`. */
int seterr(char *err, size_t errlen, const char *fmt, ...) PRINTFLIKE(3, 4);

/* Append a line to a multi-line error buffer (newline separated). */
void adderr(char *err, size_t errlen, const char *fmt, ...) PRINTFLIKE(3, 4);

/* Append the OpenSSL error queue (and clear it) to err as ": reason". */
void seterr_ssl(char *err, size_t errlen, const char *what);

/* strdup that returns NULL for NULL. */
char *xstrdup(const char *s);

/* Lower-case ASCII in place; returns s. */
char *str_lower(char *s);

/* Case-insensitive ASCII comparisons. */
int str_ieq(const char *a, const char *b);
int str_iprefix(const char *s, const char *prefix);

/*
 * Read a secret (passphrase or PIN) file into buf (NUL-terminated, trailing
 * CR/LF removed).  Refuses a file that is group- or world-readable, or not a
 * regular file.  Returns the secret's length or -1 with err filled.  Callers
 * must OPENSSL_cleanse(buf) after use.
 */
int secret_read_file(const char *path, char *buf, size_t buflen, char *err,
                     size_t errlen);

/*
 * Check that path is a regular file not readable by group or others, and that
 * no directory along its path is writable by others (sticky dirs excepted).
 * Returns 0 or -1 with err naming the offending path.
 */
int path_check_private(const char *path, char *err, size_t errlen);

/*
 * The part of path_check_private that makes a secret exposed: path exists
 * and its mode lets group or others in, or a directory along it is
 * writable by others (sticky directories excepted).  Returns 1 with err
 * naming the path, else 0 (a missing file is not exposed, only missing).
 */
int path_exposed(const char *path, char *err, size_t errlen);

/*
 * Extract the single addr-spec of an RFC 5322 From (or Sender) header value:
 * handles "Display Name <a@b>", bare a@b, comments and quoted display names.
 * The result is lower-cased.  Returns 0, or -1 when there is not exactly one
 * usable mailbox (err says why).
 */
int addr_from_header(const char *value, char *out, size_t outlen, char *err,
                     size_t errlen);

/*
 * Every mailbox of an address-list header value (To, Cc, Bcc): splits at
 * top-level commas (not inside quotes, comments or angle brackets), drops
 * group names ("Team: a@b, c@d;"), and calls fn(arg, address) with each
 * address lower-cased as addr_from_header gives it.  Parts that hold no
 * mailbox are skipped.  Returns the number of addresses, or -1 on out of
 * memory.
 */
int addr_list_each(const char *value, void (*fn)(void *arg, const char *addr),
                   void *arg);

/* Pointer to the domain part of a lower-cased address (after '@'), or "". */
const char *addr_domain(const char *addr);

/*
 * Tune malloc for a long-running signer: every message allocates and frees
 * a few 64 KiB buffers, and glibc's default would give the heap top back to
 * the kernel and fault it in again each time (a third of the CPU time in
 * measurements).  Called once by programs, never by lib/ itself.
 */
void malloc_tune(void);

/* Format time t as "YYYY-MM-DD HH:MM:SS UTC" into buf (>= 32 bytes). */
char *time_fmt(time_t t, char *buf, size_t len);

/* Free the n strings of v, then v itself; NULL is fine. */
void strv_free(char **v, size_t n);

/*
 * Make room for one more element in *arr (n in use, *cap allocated, each
 * elem bytes): the array doubles from 8.  Returns 0, or -1 when out of
 * memory (*arr unchanged).
 */
int array_grow(void *arr, size_t *cap, size_t n, size_t elem);

/*
 * Copy into dst (*have bytes in use of cap) as much of *src (*len bytes)
 * as fits, and advance *src and *len past what was taken.  Returns the
 * number of bytes copied.
 */
size_t buf_fill(unsigned char *dst, size_t *have, size_t cap,
                const unsigned char **src, size_t *len);

/*
 * The length (1..4) of the UTF-8 sequence at p, of n octets, or 0 when p
 * does not start a valid one: cut short, overlong, a surrogate, or past
 * U+10FFFF (what PostgreSQL refuses too).
 */
size_t utf8_len(const unsigned char *p, size_t n);

/* 1 when the n octets at p are valid UTF-8 throughout, else 0. */
int utf8_valid(const unsigned char *p, size_t n);

/* utf8_valid of the string s. */
int str_is_utf8(const char *s);

/*
 * s with every octet that is not part of valid UTF-8 written as \xHH, in
 * new memory; s itself (not copied) when it is valid UTF-8 or NULL.
 * *made is 1 when a copy was made (free it), 0 when not; NULL when out of
 * memory.
 */
const char *utf8_escape(const char *s, int *made);

#endif
