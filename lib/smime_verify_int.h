/*
 * smime_verify_int.h -- shared by lib/smime_verify*.c only: the checks of
 * smime_verify.c, which smime_verify_opaque.c calls once it has split the
 * opaque signed-data into a detached signature and its digested content.
 */
#ifndef SMIME_VERIFY_INT_H
#define SMIME_VERIFY_INT_H

#include <openssl/cms.h>

#include "smime_verify.h"
#include "util.h"

/* Set v's result and reason (printf-formatted); returns 0 ("a verdict was
 * reached") for callers to pass on. */
int smime_judge(struct smime_verdict *v, enum smime_result r, const char *fmt,
                ...) PRINTFLIKE(3, 4);

/*
 * Steps 1 to 8 of smime_verify.h on a parsed CMS.  The content is either
 * dcont (read here through CMS_dataInit's digests) or, when digested is
 * not NULL, already run through digested, a chain of BIO_f_md BIOs (one
 * per digestAlgorithm).  read_failed (may be NULL) says the content's
 * reader failed (temperror).  Returns 0 with a verdict, -1 on out of
 * memory (v says temperror).
 */
int smime_verify_cms(const struct smime_verify_opts *o, CMS_ContentInfo *cms,
                     BIO *dcont, BIO *digested, const int *read_failed,
                     struct smime_verdict *v);

#endif
