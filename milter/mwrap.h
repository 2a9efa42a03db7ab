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

/* The offline context: a message read from a file, edits collected. */
struct offline_ctx {
	void *priv;
	const char *queue_id;
	const char *auth_authen;
	char **hdr_names;  /* the file's headers, in order */
	char **hdr_values; /* value as a milter would see it */
	char **hdr_raw;    /* the raw header lines (with folding) */
	int *hdr_deleted;
	size_t nhdrs;
	char **add_names;
	char **add_values;
	size_t nadds;
	FILE *body_out; /* replaced body goes here (memstream) */
	int body_replaced;
	char reply[512];
};

/* When non-NULL every wrapper works on this offline context. */
extern struct offline_ctx *mw_offline;

void *mw_getpriv(SMFICTX *ctx);
int mw_setpriv(SMFICTX *ctx, void *priv);
char *mw_getsymval(SMFICTX *ctx, char *name);
int mw_replacebody(SMFICTX *ctx, const unsigned char *buf, size_t len);
int mw_chgheader(SMFICTX *ctx, const char *name, int idx, const char *value);
int mw_addheader(SMFICTX *ctx, const char *name, const char *value);
int mw_setreply(SMFICTX *ctx, const char *rcode, const char *xcode,
                const char *msg);

#endif
