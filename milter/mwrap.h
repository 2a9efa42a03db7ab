/*
 * mwrap -- every smfi_* call goes through here, so that the offline test
 * mode (smime-milter -t FILE) runs the very same callback code with a
 * context of its own instead of a live MTA connection.
 */
#ifndef MILTER_MWRAP_H
#define MILTER_MWRAP_H

#include <stddef.h>
#include <stdio.h>

#include <libmilter/mfapi.h>

#include "offline.h"

void *mw_getpriv(SMFICTX *ctx);
int mw_setpriv(SMFICTX *ctx, void *priv);
char *mw_getsymval(SMFICTX *ctx, char *name);
int mw_replacebody(SMFICTX *ctx, const unsigned char *buf, size_t len);
int mw_chgheader(SMFICTX *ctx, const char *name, int idx, const char *value);
int mw_addheader(SMFICTX *ctx, const char *name, const char *value);
int mw_setreply(SMFICTX *ctx, const char *rcode, const char *xcode,
                const char *msg);

#endif
