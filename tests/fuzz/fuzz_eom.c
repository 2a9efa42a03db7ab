/*
 * fuzz_eom -- libFuzzer target for the whole message path of the offline
 * `smime-milter -t` mode: headers split and the body chunked (bare LF made
 * CRLF) by milter/offline.c itself, the -t code linked in rather than a
 * copy; then msg_header, msg_eoh, msg_body and msg_eom (scan, rewrite,
 * digest, CMS signature, the multipart/signed body and header edits).
 *
 * The snapshot is built once in LLVMFuzzerInitialize from FUZZ_EOM_CONF, or
 * when that is unset, from a fresh PKI and configuration that
 * tests/fuzz/mkenv.sh makes in a temp directory (needs admin/smimectl
 * built, TOP or the current directory at the top of the tree).
 *
 * Checks beyond the sanitizers' (abort on violation):
 *   - when msg_eom fails after writing part of a body, msg_error_action
 *     no longer allows "accept" (no half-replaced body is ever delivered;
 *     lib/message.h promises it);
 *   - a signed result has no bare LF, no line over 998 octets, a Content-Type edit, and its signature
 *     verifies: OpenSSL's S/MIME parser reads the result (new Content-Type +
 *     body) and CMS_verify accepts it (signer chain not checked here; the
 *     shell invariant test tests/milter/fuzz-invariant.sh does that, plus
 *     the decoded content).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>

#include "message.h"
#include "offline.h"
#include "snapshot.h"

static struct snapshot *snap;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[8192], warn[8192], cmd[1024], dir[] = "/tmp/fuzz-eom.XXXXXX";
	static char conf[512];
	const char *c = getenv("FUZZ_EOM_CONF");
	const char *top = getenv("TOP");

	if (c == NULL) {
		if (mkdtemp(dir) == NULL) {
			perror("mkdtemp");
			exit(1);
		}
		snprintf(cmd, sizeof(cmd), "sh %s/tests/fuzz/mkenv.sh %s",
		         top ? top : ".", dir);
		if (system(cmd) != 0) {
			fprintf(stderr, "fuzz_eom: %s failed\n", cmd);
			exit(1);
		}
		snprintf(conf, sizeof(conf), "%s/m.conf", dir);
		c = conf;
	}
	if (snapshot_build(c, 0, &snap, err, sizeof(err), warn, sizeof(warn)) !=
	    0) {
		fprintf(stderr, "fuzz_eom: snapshot_build %s: %s\n", c, err);
		exit(1);
	}
	if (snap->nusable == 0) {
		fprintf(stderr, "fuzz_eom: no usable signer in %s\n", c);
		exit(1);
	}
	return 0;
}

/* The body msg_eom writes, kept in a memory stream; a chunk over 64 KiB
 * breaks msg_eom's promise and aborts. */
struct buf {
	FILE *f;
	char *p;
	size_t len;
};

static int buf_write(void *arg, const unsigned char *p, size_t n)
{
	struct buf *b = arg;

	if (n > 65536)
		abort();
	return fwrite(p, 1, n, b->f) == n ? 0 : -1;
}

#define MAXHDR 20000

/* Each header field the -t split finds goes to msg_header (the first
 * MAXHDR of them); an error there ends the message. */
struct hdr_feed {
	struct msg *m;
	size_t n;
	char err[1024];
};

static int feed_header(void *arg, const char *start, const char *end)
{
	struct hdr_feed *f = arg;
	char *name, *value;
	int rc;

	if (f->n++ >= MAXHDR)
		return 0;
	if (offline_header_parse(start, end, &name, &value) != 0)
		return -1;
	rc = msg_header(f->m, name, value, f->err, sizeof(f->err));
	free(name);
	free(value);
	return rc;
}

static void check_signed(const struct buf *out, const struct msg_edit *edits,
                         size_t nedits)
{
	const char *ct = NULL;
	size_t col = 0;
	BIO *in, *bcont = NULL;
	CMS_ContentInfo *cms;

	if (getenv("FUZZ_EOM_DUMP"))
		fwrite(out->p, 1, out->len, stderr); /* for a human */
	for (size_t i = 0; i < out->len; i++) {
		unsigned char c = (unsigned char)out->p[i];
		if (c == '\n' && (i == 0 || out->p[i - 1] != '\r'))
			abort(); /* bare LF */
		col = c == '\n' ? 0 : col + 1;
		if (col > 1000)
			abort(); /* line over 998 octets + CRLF */
	}
	for (size_t i = 0; i < nedits; i++)
		if (edits[i].op == EDIT_ADD &&
		    strcasecmp(edits[i].name, "Content-Type") == 0)
			ct = edits[i].value;
	if (ct == NULL || strncmp(ct, "multipart/signed", 16) != 0)
		abort();
	in = BIO_new(BIO_s_mem());
	if (in == NULL ||
	    BIO_puts(in, "MIME-Version: 1.0\r\nContent-Type: ") < 0 ||
	    BIO_puts(in, ct) < 0 || BIO_puts(in, "\r\n\r\n") < 0 ||
	    BIO_write(in, out->p, (int)out->len) != (int)out->len)
		abort();
	cms = SMIME_read_CMS(in, &bcont);
	if (cms == NULL || bcont == NULL) {
		fprintf(stderr, "fuzz_eom: OpenSSL cannot parse the result\n");
		ERR_print_errors_fp(stderr);
		abort();
	}
	if (CMS_verify(cms, NULL, NULL, bcont, NULL,
	               CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY) != 1) {
		fprintf(stderr, "fuzz_eom: signature does not verify\n");
		ERR_print_errors_fp(stderr);
		abort();
	}
	CMS_ContentInfo_free(cms);
	BIO_free(bcont);
	BIO_free(in);
	ERR_clear_error();
}

static int feed_body(void *arg, unsigned char *buf, size_t n)
{
	char err[1024];

	return msg_body(arg, buf, n, err, sizeof(err));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[1024];
	const char *reason;
	struct msg *m = msg_new(snap);
	struct buf out = { 0 };
	const struct msg_edit *edits;
	struct hdr_feed feed;
	size_t nedits, off;
	enum msg_verdict v;
	int rc;

	if (m == NULL)
		return 0;
	out.f = open_memstream(&out.p, &out.len);
	if (out.f == NULL) {
		msg_free(m);
		return 0;
	}
	msg_set_signing_time(m, 1795000000);
	msg_envfrom(m, "<andi@banjarkota.go.id>");
	/* headers, split by smime-milter -t's own code */
	memset(&feed, 0, sizeof(feed));
	feed.m = m;
	off = offline_split((const char *)data, size, feed_header, &feed);
	if (off == (size_t)-1)
		goto done;
	v = msg_eoh(m, 1, &reason);
	if (v != MSG_SIGN)
		goto done;
	if (offline_body((const char *)data + off, size - off, feed_body, m) !=
	    0)
		goto done;
	rc = msg_eom(m, buf_write, &out, &edits, &nedits, err, sizeof(err));
	fflush(out.f);
	if (rc != 0) {
		if (out.len != 0 &&
		    msg_error_action(m, ACTION_ACCEPT, NULL) == ACTION_ACCEPT) {
			fprintf(stderr,
			        "fuzz_eom: eom failed (%s) after "
			        "writing %zu bytes, and accept would "
			        "still apply\n",
			        err, out.len);
			abort();
		}
	} else {
		check_signed(&out, edits, nedits);
	}
done:
	msg_free(m);
	fclose(out.f);
	free(out.p);
	return 0;
}
