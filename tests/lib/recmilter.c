/*
 * recmilter -- a recording milter for tests/e2e/milter-order.sh.
 *
 *   recmilter SOCKET DIR
 *
 * Listens on SOCKET (libmilter's "inet:PORT@HOST" or "unix:/path") and, for
 * every message, writes what the MTA handed to this milter into a file of
 * its own in DIR: each header field as "Name:value" with the value exactly
 * as received (SMFIP_HDR_LEADSPC: the leading space is kept), a line end
 * after each field, an empty line, then the body bytes as received.  The
 * file is DIR/rec.XXXXXX.eml (mkstemp), renamed from DIR/rec.XXXXXX when
 * the message ends, so a file with the .eml suffix is always complete.  An
 * aborted message leaves nothing.  Every message is accepted, nothing is
 * changed.  SIGTERM stops it (libmilter).  Links libmilter only, not lib/.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libmilter/mfapi.h>

static const char *rec_dir;

/* one message being recorded: the temporary file and its name */
struct rec {
	FILE *fp;
	char path[PATH_MAX];
};

/* rec_drop: closes and removes an unfinished recording, frees it */
static void rec_drop(SMFICTX *ctx)
{
	struct rec *r = smfi_getpriv(ctx);

	if (r == NULL)
		return;
	smfi_setpriv(ctx, NULL);
	if (r->fp != NULL) {
		fclose(r->fp);
		unlink(r->path);
	}
	free(r);
}

static sfsistat rec_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1,
                              unsigned long f2, unsigned long f3,
                              unsigned long *pf0, unsigned long *pf1,
                              unsigned long *pf2, unsigned long *pf3)
{
	*pf0 = 0; /* no modifications */
	*pf1 = f1 & SMFIP_HDR_LEADSPC;
	*pf2 = 0;
	*pf3 = 0;
	return SMFIS_CONTINUE;
}

static sfsistat rec_envfrom(SMFICTX *ctx, char **argv)
{
	struct rec *r;
	int fd;

	rec_drop(ctx);
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return SMFIS_TEMPFAIL;
	snprintf(r->path, sizeof(r->path), "%s/rec.XXXXXX", rec_dir);
	fd = mkstemp(r->path);
	if (fd < 0 || (r->fp = fdopen(fd, "w")) == NULL) {
		fprintf(stderr, "recmilter: %s: %s\n", r->path,
		        strerror(errno));
		if (fd >= 0) {
			close(fd);
			unlink(r->path);
		}
		free(r);
		return SMFIS_TEMPFAIL;
	}
	smfi_setpriv(ctx, r);
	return SMFIS_CONTINUE;
}

static sfsistat rec_header(SMFICTX *ctx, char *name, char *value)
{
	struct rec *r = smfi_getpriv(ctx);

	if (r != NULL)
		fprintf(r->fp, "%s:%s\r\n", name, value);
	return SMFIS_CONTINUE;
}

static sfsistat rec_eoh(SMFICTX *ctx)
{
	struct rec *r = smfi_getpriv(ctx);

	if (r != NULL)
		fputs("\r\n", r->fp);
	return SMFIS_CONTINUE;
}

static sfsistat rec_body(SMFICTX *ctx, unsigned char *chunk, size_t len)
{
	struct rec *r = smfi_getpriv(ctx);

	if (r != NULL && fwrite(chunk, 1, len, r->fp) != len)
		return SMFIS_TEMPFAIL;
	return SMFIS_CONTINUE;
}

static sfsistat rec_eom(SMFICTX *ctx)
{
	struct rec *r = smfi_getpriv(ctx);
	char done[PATH_MAX + 8];
	int bad;

	if (r == NULL)
		return SMFIS_ACCEPT;
	bad = fclose(r->fp) != 0;
	r->fp = NULL;
	snprintf(done, sizeof(done), "%s.eml", r->path);
	if (!bad)
		bad = rename(r->path, done) != 0;
	if (bad) {
		fprintf(stderr, "recmilter: %s: %s\n", done, strerror(errno));
		unlink(r->path);
	}
	smfi_setpriv(ctx, NULL);
	free(r);
	return bad ? SMFIS_TEMPFAIL : SMFIS_ACCEPT;
}

static sfsistat rec_abort(SMFICTX *ctx)
{
	rec_drop(ctx);
	return SMFIS_CONTINUE;
}

static sfsistat rec_close(SMFICTX *ctx)
{
	rec_drop(ctx);
	return SMFIS_CONTINUE;
}

int main(int argc, char **argv)
{
	struct smfiDesc desc = {
		.xxfi_name = "recmilter",
		.xxfi_version = SMFI_VERSION,
		.xxfi_flags = 0,
		.xxfi_envfrom = rec_envfrom,
		.xxfi_header = rec_header,
		.xxfi_eoh = rec_eoh,
		.xxfi_body = rec_body,
		.xxfi_eom = rec_eom,
		.xxfi_abort = rec_abort,
		.xxfi_close = rec_close,
		.xxfi_negotiate = rec_negotiate,
	};

	if (argc != 3) {
		fprintf(stderr, "usage: recmilter SOCKET DIR\n");
		return 2;
	}
	rec_dir = argv[2];
	if (smfi_setconn(argv[1]) == MI_FAILURE ||
	    smfi_register(desc) == MI_FAILURE ||
	    smfi_opensocket(1) == MI_FAILURE) {
		fprintf(stderr, "recmilter: cannot listen on %s\n", argv[1]);
		return 1;
	}
	return smfi_main() == MI_SUCCESS ? 0 : 1;
}
