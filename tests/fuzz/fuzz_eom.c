/*
 * fuzz_eom -- libFuzzer target for the whole message path of the offline
 * `smime-milter -t` mode: headers split the way -t splits them, msg_header,
 * msg_eoh, the body with bare LF made CRLF in chunks, msg_eom (scan, rewrite,
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

struct buf {
	unsigned char *p;
	size_t len, cap;
};

static int buf_write(void *arg, const unsigned char *p, size_t n)
{
	struct buf *b = arg;

	if (n > 65536)
		abort();
	if (b->len + n > b->cap) {
		size_t nc = (b->len + n) * 2 + 64;
		unsigned char *np = realloc(b->p, nc);
		if (np == NULL)
			return -1;
		b->p = np;
		b->cap = nc;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

static int is_header_line(const unsigned char *p, const unsigned char *end)
{
	const unsigned char *q = p;

	while (q < end && *q != ':' && *q > 32 && *q < 127)
		q++;
	return q > p && q < end && *q == ':';
}

#define MAXHDR 20000

static void check_signed(const struct buf *out, const struct msg_edit *edits,
                         size_t nedits)
{
	const char *ct = NULL;
	size_t col = 0;
	BIO *in, *bcont = NULL;
	CMS_ContentInfo *cms;
	struct buf whole = { 0 };

	if (getenv("FUZZ_EOM_DUMP"))
		fwrite(out->p, 1, out->len, stderr); /* for a human */
	for (size_t i = 0; i < out->len; i++) {
		unsigned char c = out->p[i];
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
	buf_write(&whole, (const unsigned char *)"MIME-Version: 1.0\r\n", 19);
	buf_write(&whole, (const unsigned char *)"Content-Type: ", 14);
	buf_write(&whole, (const unsigned char *)ct, strlen(ct));
	buf_write(&whole, (const unsigned char *)"\r\n\r\n", 4);
	for (size_t off = 0; off < out->len; off += 65536)
		buf_write(&whole, out->p + off,
		          out->len - off < 65536 ? out->len - off : 65536);
	in = BIO_new_mem_buf(whole.p, (int)whole.len);
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
	free(whole.p);
	ERR_clear_error();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const unsigned char *p = data, *end = data + size, *body;
	char err[1024];
	const char *reason;
	struct msg *m = msg_new(snap);
	struct buf out = { 0 };
	const struct msg_edit *edits;
	size_t nedits, nh = 0;
	enum msg_verdict v;
	int rc;

	if (m == NULL)
		return 0;
	msg_set_signing_time(m, 1795000000);
	msg_envfrom(m, "<andi@banjarkota.go.id>");
	/* headers, split like an MTA (and smime-milter -t) */
	body = p;
	if (is_header_line(p, end)) {
		while (p < end) {
			const unsigned char *start = p, *nl, *colon, *vp;
			char *name, *value, *w;
			if (*p == '\n' ||
			    (*p == '\r' && p + 1 < end && p[1] == '\n')) {
				p += *p == '\r' ? 2 : 1;
				break;
			}
			if (!is_header_line(p, end))
				break;
			do {
				nl = memchr(p, '\n', (size_t)(end - p));
				p = nl ? nl + 1 : end;
			} while (p < end && (*p == ' ' || *p == '\t'));
			colon = memchr(start, ':', (size_t)(p - start));
			name = strndup((const char *)start,
			               (size_t)(colon - start));
			vp = colon + 1;
			while (vp < p && (*vp == ' ' || *vp == '\t'))
				vp++;
			value = malloc((size_t)(p - vp) + 1);
			for (w = value; vp < p; vp++)
				if (*vp != '\r' || vp + 1 >= p || vp[1] != '\n')
					*w++ = (char)*vp;
			while (w > value && (w[-1] == '\n' || w[-1] == '\r'))
				w--;
			*w = '\0';
			rc = nh++ < MAXHDR ? msg_header(m, name, value, err,
			                                sizeof(err))
			                   : 0;
			free(name);
			free(value);
			if (rc != 0)
				goto done;
		}
		body = p;
	}
	v = msg_eoh(m, 1, &reason);
	if (v != MSG_SIGN)
		goto done;
	{
		unsigned char chunk[65536];
		size_t n = 0, bl = (size_t)(end - body);
		for (size_t i = 0; i < bl; i++) {
			if (body[i] == '\n' && (i == 0 || body[i - 1] != '\r'))
				chunk[n++] = '\r';
			chunk[n++] = body[i];
			if (n >= sizeof(chunk) - 2) {
				if (msg_body(m, chunk, n, err, sizeof(err)) !=
				    0)
					goto done;
				n = 0;
			}
		}
		if (n > 0 && msg_body(m, chunk, n, err, sizeof(err)) != 0)
			goto done;
	}
	rc = msg_eom(m, buf_write, &out, &edits, &nedits, err, sizeof(err));
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
	free(out.p);
	return 0;
}
