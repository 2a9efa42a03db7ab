/* mwrap -- smfi_* wrappers with an offline mode (see mwrap.h). */
#include "mwrap.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

void *mw_getpriv(SMFICTX *ctx)
{
	return mw_offline ? mw_offline->priv : smfi_getpriv(ctx);
}

int mw_setpriv(SMFICTX *ctx, void *priv)
{
	if (mw_offline) {
		mw_offline->priv = priv;
		return MI_SUCCESS;
	}
	return smfi_setpriv(ctx, priv);
}

char *mw_getsymval(SMFICTX *ctx, char *name)
{
	if (mw_offline) {
		if (strcmp(name, "i") == 0 || strcmp(name, "{i}") == 0)
			return (char *)mw_offline->queue_id;
		if (strcmp(name, "{auth_authen}") == 0)
			return (char *)mw_offline->auth_authen;
		return NULL;
	}
	return smfi_getsymval(ctx, name);
}

int mw_replacebody(SMFICTX *ctx, const unsigned char *buf, size_t len)
{
	if (mw_offline) {
		mw_offline->body_replaced = 1;
		return fwrite(buf, 1, len, mw_offline->body_out) == len
		               ? MI_SUCCESS
		               : MI_FAILURE;
	}
	return smfi_replacebody(ctx, (unsigned char *)buf, (int)len);
}

int mw_chgheader(SMFICTX *ctx, const char *name, int idx, const char *value)
{
	if (mw_offline) {
		int seen = 0;
		if (value != NULL)
			return MI_FAILURE; /* only deletion is needed */
		for (size_t i = 0; i < mw_offline->nhdrs; i++)
			if (strcasecmp(mw_offline->hdr_names[i], name) == 0 &&
			    ++seen == idx) {
				mw_offline->hdr_deleted[i] = 1;
				return MI_SUCCESS;
			}
		return MI_SUCCESS; /* like the MTA: deleting nothing is fine */
	}
	return smfi_chgheader(ctx, (char *)name, idx, (char *)value);
}

int mw_addheader(SMFICTX *ctx, const char *name, const char *value)
{
	if (mw_offline) {
		size_t n = mw_offline->nadds + 1;
		char **names =
		        realloc(mw_offline->add_names, n * sizeof(char *));
		char **values;
		if (names == NULL)
			return MI_FAILURE;
		mw_offline->add_names = names;
		values = realloc(mw_offline->add_values, n * sizeof(char *));
		if (values == NULL)
			return MI_FAILURE;
		mw_offline->add_values = values;
		names[n - 1] = strdup(name);
		values[n - 1] = strdup(value);
		mw_offline->nadds = n;
		return MI_SUCCESS;
	}
	return smfi_addheader(ctx, (char *)name, (char *)value);
}

int mw_setreply(SMFICTX *ctx, const char *rcode, const char *xcode,
                const char *msg)
{
	/* The MTA takes the text as a format: Sendmail expands it, Postfix
	 * turns %% into % and drops a lone %.  An address may hold a '%'
	 * (user%host@...), so each one is doubled; a CR or LF (libmilter
	 * refuses those) becomes a space. */
	char text[1024];
	size_t n = 0;

	for (const char *p = msg; *p && n + 3 < sizeof(text); p++) {
		if (*p == '%')
			text[n++] = '%';
		text[n++] = (*p == '\r' || *p == '\n') ? ' ' : *p;
	}
	text[n] = '\0';
	if (mw_offline) {
		snprintf(mw_offline->reply, sizeof(mw_offline->reply),
		         "%s %s %s", rcode, xcode, msg);
		return MI_SUCCESS;
	}
	return smfi_setreply(ctx, (char *)rcode, (char *)xcode, text);
}
