/*
 * spool -- a byte buffer that lives in memory up to a limit and then spills
 * to a private (0600, already unlinked) temp file.  Holds arbitrary bytes,
 * NUL included.  Write everything, then rewind and read it back in order.
 */
#ifndef SMIME_SPOOL_H
#define SMIME_SPOOL_H

#include <stddef.h>
#include <sys/types.h>

struct spool;

/* New empty spool keeping up to max_mem bytes in memory; dir is where the
 * temp file goes when it spills.  Returns NULL on out of memory. */
struct spool *spool_new(size_t max_mem, const char *dir);

/* Append len bytes.  Returns 0, or -1 with err filled (disk full...). */
int spool_write(struct spool *s, const void *buf, size_t len, char *err,
                size_t errlen);

/* Start reading from the first byte.  Returns 0 or -1 with err filled. */
int spool_rewind(struct spool *s, char *err, size_t errlen);

/* Read up to len bytes; returns the count, 0 at end, -1 on error. */
ssize_t spool_read(struct spool *s, void *buf, size_t len);

/* Bytes written so far; 1 when the spool has spilled to disk. */
size_t spool_size(const struct spool *s);
int spool_on_disk(const struct spool *s);

/* Close the file (already unlinked) and free memory; NULL is fine. */
void spool_free(struct spool *s);

#endif
