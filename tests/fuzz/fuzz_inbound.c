/*
 * fuzz_inbound -- libFuzzer target for the inbound message path of lib/
 * (issue 13): inb_rcpt, inb_header, inb_eoh, inb_body and inb_eom, that is
 * the S/MIME type checks, base64 decoding, the streaming CMS decryption
 * (cms_dec), the multipart/signed split, opaque signed-data, smime_verify
 * against ca_file and the database, the new entity and the stamp.
 *
 * Input: a message file, split as `smime-milter -t` splits it
 * (milter/offline.c linked in: offline_split, offline_header_parse,
 * offline_body).  The envelope recipients are the To and Cc addresses
 * (andi@banjarkota.go.id when there are none).  Each input runs on two
 * snapshots built once from the fuzz environment (tests/fuzz/mkenv.sh:
 * andi's PKCS#12 RSA key, ec's EC key, sekda's PEM key, ca_file, a SQLite
 * database; FUZZ_EOM_CONF names its m.conf, else one is made in a temp
 * directory), with authserv_id = "mx.banjarkota.go.id":
 *   0: the defaults;
 *   1: inbound_unwrap_opaque, inbound_subject_tag, on_bad_signature =
 *      reject and max_memory_body = 4096 (bodies spill to temp files).
 * The seeds come from tests/fuzz/mkseeds-inbound.sh, for that very
 * environment (its keys are made anew each time).
 *
 * Checks beyond the sanitizers' (abort on violation):
 *   - inb_eom returns 0: it may fail only on local trouble (memory, disk,
 *     the writer), none of which happens here, so a -1 is a bug;
 *   - nothing is written unless result->body_replaced; no chunk over 64
 *     KiB; a written body has CRLF line ends (no bare LF); decrypted
 *     implies body_replaced, unless rejected (then nothing is written);
 *   - the edits are well formed: names non-empty printable without ":",
 *     deletes with an index >= 1 and no value, adds with a value that
 *     has no CR and no LF other than a fold ("\n" before a space or tab);
 *     exactly one Authentication-Results is added and it claims our
 *     authserv-id; the forged ones deleted are exactly those of the input
 *     that claim it, highest index first;
 *   - a tagged Subject replaces the old one (delete 1 first) and is the
 *     tag, a space and the old value;
 *   - result->smime is pass, fail, neutral, temperror, permerror or none;
 *     result->action is one of inbound.h's or NULL;
 *   - decrypted only when every envelope recipient (as inb_rcpt kept it)
 *     has a decryption key in the snapshot and, when OpenSSL's
 *     d2i_CMS_bio reads the body, a certificate of it is named in a
 *     RecipientInfo; the body changes without decryption only where
 *     unwrapping is on (snapshot 1); result->reject only there, on fail.
 * FUZZ_INBOUND_KNOWN=subject-cr accepts a bare CR in the tagged Subject,
 * an open bug (tests/fuzz/KNOWN), so that a run can find others.
 * FUZZ_INBOUND_REPORT=1 prints one line per snapshot (what
 * tests/milter/fuzz-inbound.sh checks); FUZZ_INBOUND_DUMP=1 the edits and
 * the new body.  tests/lib/fuzz_replay_inbound runs this file without
 * libFuzzer (make check, SANITIZE=1).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "authres.h"
#include "inbound.h"
#include "inbound_int.h" /* the recipients as inb_rcpt kept them */
#include "mime.h"
#include "offline.h"
#include "snapshot.h"
#include "util.h"

#define AUTHSERV "mx.banjarkota.go.id"
#define MAXHDR   20000 /* header fields fed, as fuzz_eom */
#define MAXRCPT  16

static struct snapshot *snaps[2];
static int forged_idx[MAXHDR];
/* FUZZ_INBOUND_KNOWN=subject-cr: the tagged Subject may repeat a bare CR
 * of the old one (tests/fuzz/KNOWN), so that fuzzing can go on. */
static int known_subject_cr;

/* The settings of each snapshot, over the environment's m.conf. */
static const char *const settings[2][6] = {
	{ "authserv_id = \"" AUTHSERV "\";", NULL },
	{ "authserv_id = \"" AUTHSERV "\";", "inbound_unwrap_opaque = true;",
	  "inbound_subject_tag = true;", "on_bad_signature = \"reject\";",
	  "max_memory_body = 4096;", NULL },
};

static void die(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_inbound: %s%s%s\n", what, detail ? ": " : "",
	        detail ? detail : "");
	abort();
}

/* 1 when line sets the key of one of the lines of set. */
static int overridden(const char *line, const char *const *set)
{
	for (; *set; set++) {
		size_t k = strcspn(*set, " =");
		if (strncmp(line, *set, k) == 0 && strchr(" =:", line[k]))
			return 1;
	}
	return 0;
}

/* base with the settings set, written to path. */
static void conf_derive(const char *base, const char *const *set,
                        const char *path)
{
	char line[4096], tmp[4200];
	FILE *in = fopen(base, "r"), *out;

	snprintf(tmp, sizeof(tmp), "%s.%ld", path, (long)getpid());
	if (in == NULL || (out = fopen(tmp, "w")) == NULL)
		die("cannot derive a configuration from", base);
	while (fgets(line, sizeof(line), in))
		if (!overridden(line, set))
			fputs(line, out);
	for (; *set; set++)
		fprintf(out, "%s\n", *set);
	fclose(in);
	if (fclose(out) != 0 || rename(tmp, path) != 0)
		die("cannot write", path);
}

/* The environment's m.conf: FUZZ_EOM_CONF, or one made by mkenv.sh. */
static const char *env_conf(void)
{
	static char conf[512];
	char cmd[1024], dir[] = "/tmp/fuzz-inbound.XXXXXX";
	const char *c = getenv("FUZZ_EOM_CONF");
	const char *top = getenv("TOP");

	if (c)
		return c;
	if (mkdtemp(dir) == NULL)
		die("mkdtemp", NULL);
	snprintf(cmd, sizeof(cmd), "sh %s/tests/fuzz/mkenv.sh %s",
	         top ? top : ".", dir);
	if (system(cmd) != 0)
		die("failed", cmd);
	snprintf(conf, sizeof(conf), "%s/m.conf", dir);
	return conf;
}

/* A key that really decrypts for addr, or the target fuzzes nothing. */
static void need_key(const struct snapshot *s, const char *addr)
{
	const struct decrypt_key *dk;
	size_t n = snapshot_decrypt_keys(s, addr, &dk);

	for (size_t i = 0; i < n; i++)
		if (dk[i].key)
			return;
	die("no decryption key in the snapshot for", addr);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[8192], warn[8192], path[600];
	const char *base = env_conf();
	const char *known = getenv("FUZZ_INBOUND_KNOWN");

	(void)argc;
	(void)argv;
	known_subject_cr = known && strstr(known, "subject-cr") != NULL;
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s.inbound-%d.conf", base, i);
		conf_derive(base, settings[i], path);
		if (snapshot_build(path, 0, &snaps[i], err, sizeof(err), warn,
		                   sizeof(warn)) != 0)
			die(path, err);
		need_key(snaps[i], "andi@banjarkota.go.id");
		need_key(snaps[i], "ec@banjarkota.go.id");
	}
	return 0;
}

/* The new body: counted, checked per chunk, kept for the dump. */
struct out {
	size_t calls, len;
	int cr; /* the last octet written was CR */
	FILE *dump;
};

static int out_write(void *arg, const unsigned char *p, size_t n)
{
	struct out *o = arg;

	if (n > 65536)
		die("a chunk over 64 KiB", NULL);
	for (size_t i = 0; i < n; i++)
		if (p[i] == '\n' && !(i > 0 ? p[i - 1] == '\r' : o->cr))
			die("bare LF in the new body", NULL);
	if (n > 0)
		o->cr = p[n - 1] == '\r';
	o->calls++;
	o->len += n;
	if (o->dump)
		fwrite(p, 1, n, o->dump);
	return 0;
}

/* What the header split saw. */
struct hdrs {
	struct inb *inb;
	int pass; /* 0: the recipients, 1: inb_header */
	size_t n; /* fields fed */
	char *rcpt[MAXRCPT];
	size_t nrcpt;
	int nar;     /* Authentication-Results fields */
	int *forged; /* the indexes of those that claim our id */
	size_t nforged;
	char *subject; /* the first Subject's value */
	char *cte;     /* the first Content-Transfer-Encoding's */
	int oom;
};

static void rcpt_add(void *arg, const char *addr)
{
	struct hdrs *h = arg;

	if (h->nrcpt < MAXRCPT && (h->rcpt[h->nrcpt] = strdup(addr)))
		h->nrcpt++;
}

static int each_header(void *arg, const char *start, const char *end)
{
	struct hdrs *h = arg;
	char *name, *value;
	int rc = 0;

	if (h->n++ >= MAXHDR)
		return 0;
	if (offline_header_parse(start, end, &name, &value) != 0)
		return -1;
	if (h->pass == 0) {
		if (strcasecmp(name, "To") == 0 || strcasecmp(name, "Cc") == 0)
			h->oom |= addr_list_each(value, rcpt_add, h) < 0;
	} else {
		if (strcasecmp(name, AUTHRES_FIELD) == 0) {
			h->nar++;
			if (authres_is_ours(value, AUTHSERV))
				h->forged[h->nforged++] = h->nar;
		}
		if (strcasecmp(name, "Subject") == 0 && h->subject == NULL &&
		    (h->subject = strdup(value)) == NULL)
			h->oom = 1;
		if (strcasecmp(name, "Content-Transfer-Encoding") == 0 &&
		    h->cte == NULL && (h->cte = strdup(value)) == NULL)
			h->oom = 1;
		rc = inb_header(h->inb, name, value);
	}
	free(name);
	free(value);
	return rc;
}

/* The body as inb_body got it (for check_named). */
static unsigned char *body;
static size_t body_len, body_cap;

static int each_chunk(void *arg, unsigned char *buf, size_t n)
{
	char err[512];

	if (body_len + n > body_cap) {
		size_t cap = (body_len + n) * 2;
		unsigned char *grown = realloc(body, cap);
		if (grown == NULL)
			die("out of memory", NULL);
		body = grown;
		body_cap = cap;
	}
	memcpy(body + body_len, buf, n);
	body_len += n;
	if (inb_body(arg, buf, n, err, sizeof(err)) != 0)
		die("inb_body", err);
	return 0;
}

static int in_set(const char *s, const char *const *set)
{
	for (; *set; set++)
		if (s && strcmp(s, *set) == 0)
			return 1;
	return 0;
}

/* A header name: printable, no colon, not empty. */
static void check_name(const char *name)
{
	if (name == NULL || *name == '\0')
		die("an edit without a name", NULL);
	for (const char *p = name; *p; p++)
		if (*p <= ' ' || *p >= 127 || *p == ':')
			die("an edit's name is not a field name", name);
}

/* A value for smfi_addheader: no CR, LF only as a fold; with allow_cr
 * a CR passes (a known open bug, see tests/fuzz/KNOWN). */
static void check_value(const char *name, const char *v, int allow_cr)
{
	if (v == NULL)
		die("an added field without a value", name);
	for (const char *p = v; *p; p++)
		if ((*p == '\r' && !allow_cr) ||
		    (*p == '\n' && p[1] != ' ' && p[1] != '\t'))
			die("bare CR or LF in the value of", name);
}

/* The tagged Subject: "TAG " and the old value, its leading blanks gone
 * and, as inbound.h promises for what goes to smfi_addheader, a CR of
 * CRLF dropped and any other CR, or LF that is no fold, made a space;
 * after the delete of the old one. */
static void check_subject(const struct hdrs *h, const struct msg_edit *e,
                          size_t i)
{
	const char *raw = h->subject ? h->subject : "";
	size_t vl = strlen(e[i].value), ol = 0;
	char *old = malloc(strlen(raw) + 1);

	if (old == NULL)
		die("out of memory", NULL);
	if (h->subject &&
	    (i == 0 || e[i - 1].op != EDIT_DELETE ||
	     strcasecmp(e[i - 1].name, "Subject") != 0 || e[i - 1].index != 1))
		die("a tagged Subject added beside the old one", NULL);
	raw += strspn(raw, " \t");
	for (const char *p = raw; *p; p++) {
		if (*p == '\r' && p[1] == '\n')
			continue;
		old[ol++] = *p == '\r' || (*p == '\n' && p[1] != ' ' &&
		                           p[1] != '\t')
		                    ? ' '
		                    : *p;
	}
	old[ol] = '\0';
	if (vl < ol + 2 || strcmp(e[i].value + vl - ol, old) != 0 ||
	    e[i].value[vl - ol - 1] != ' ')
		die("the tagged Subject is not TAG + the old Subject",
		    e[i].value);
	free(old);
}

static void check_edits(const struct hdrs *h, const struct msg_edit *e,
                        size_t n)
{
	size_t ar_added = 0, ar_deleted = 0;
	int subj;

	for (size_t i = 0; i < n; i++) {
		check_name(e[i].name);
		if (e[i].op == EDIT_DELETE) {
			if (e[i].index < 1 || e[i].value != NULL)
				die("a delete without an index", e[i].name);
			if (strcasecmp(e[i].name, AUTHRES_FIELD) != 0)
				continue;
			/* the forged ones, highest first */
			if (ar_deleted >= h->nforged ||
			    e[i].index !=
			            h->forged[h->nforged - 1 - ar_deleted])
				die("deleted an Authentication-Results that "
				    "was not forged",
				    NULL);
			ar_deleted++;
			continue;
		}
		if (e[i].op != EDIT_ADD)
			die("an edit of no known kind", e[i].name);
		subj = strcasecmp(e[i].name, "Subject") == 0;
		check_value(e[i].name, e[i].value, subj && known_subject_cr);
		if (strcasecmp(e[i].name, AUTHRES_FIELD) == 0) {
			ar_added++;
			if (!authres_is_ours(e[i].value, AUTHSERV))
				die("our stamp does not claim our authserv-id",
				    e[i].value);
		}
		if (subj)
			check_subject(h, e, i);
	}
	if (ar_added != 1)
		die("not exactly one Authentication-Results added", NULL);
	if (ar_deleted != h->nforged)
		die("a forged Authentication-Results stays", NULL);
}

/* 1 when a RecipientInfo of cms names cert (OpenSSL's reading). */
static int named(CMS_ContentInfo *cms, X509 *cert)
{
	STACK_OF(CMS_RecipientInfo) *ris = CMS_get0_RecipientInfos(cms);

	for (int r = 0; r < sk_CMS_RecipientInfo_num(ris); r++) {
		CMS_RecipientInfo *ri = sk_CMS_RecipientInfo_value(ris, r);
		STACK_OF(CMS_RecipientEncryptedKey) *reks;
		if (CMS_RecipientInfo_type(ri) == CMS_RECIPINFO_TRANS &&
		    CMS_RecipientInfo_ktri_cert_cmp(ri, cert) == 0)
			return 1;
		if (CMS_RecipientInfo_type(ri) != CMS_RECIPINFO_AGREE)
			continue;
		reks = CMS_RecipientInfo_kari_get0_reks(ri);
		for (int k = 0; k < sk_CMS_RecipientEncryptedKey_num(reks); k++)
			if (CMS_RecipientEncryptedKey_cert_cmp(
			            sk_CMS_RecipientEncryptedKey_value(reks, k),
			            cert) == 0)
				return 1;
	}
	return 0;
}

/* Who may read the plaintext: every envelope recipient has a key, and,
 * where OpenSSL's own parser reads the CMS of the body, a certificate of
 * it is named in a RecipientInfo (the sender encrypted to it). */
static void check_readers(const struct snapshot *s, const struct hdrs *h)
{
	const struct decrypt_key *dk;
	CMS_ContentInfo *cms = NULL;
	unsigned char *der = body;
	int dl = (int)body_len, fl = 0;
	EVP_ENCODE_CTX *x = NULL;
	BIO *m;

	for (size_t k = 0; k < h->inb->nrcpts; k++)
		if (snapshot_decrypt_keys(s, h->inb->rcpts[k], &dk) == 0)
			die("decrypted for a recipient without a key",
			    h->inb->rcpts[k]);
	if (mime_cte_parse(h->cte) == MIME_CTE_BASE64) {
		if ((der = malloc(body_len / 4 * 3 + 80)) == NULL ||
		    (x = EVP_ENCODE_CTX_new()) == NULL)
			die("out of memory", NULL);
		EVP_DecodeInit(x);
		if (EVP_DecodeUpdate(x, der, &dl, body, (int)body_len) < 0 ||
		    EVP_DecodeFinal(x, der + dl, &fl) < 0)
			dl = fl = 0;
		dl += fl;
	}
	if ((m = BIO_new_mem_buf(der, dl)) != NULL)
		cms = d2i_CMS_bio(m, NULL);
	for (size_t k = 0; cms && k < h->inb->nrcpts; k++) {
		const char *a = h->inb->rcpts[k];
		size_t n = snapshot_decrypt_keys(s, a, &dk), j;
		for (j = 0; j < n && !named(cms, dk[j].cert); j++)
			;
		if (j == n)
			die("decrypted, but no RecipientInfo names", a);
	}
	CMS_ContentInfo_free(cms);
	BIO_free(m);
	EVP_ENCODE_CTX_free(x);
	if (der != body)
		free(der);
	ERR_clear_error();
}

static void check_result(int i, const struct inb_result *r, const struct out *o)
{
	static const char *const words[] = { "pass",      "fail",
		                             "neutral",   "temperror",
		                             "permerror", "none",
		                             NULL };
	static const char *const actions[] = { "decrypted", "verified",
		                               "verify-failed", "not-decrypted",
		                               NULL };

	if (r == NULL)
		die("inb_eom gave no result", NULL);
	if (!in_set(r->smime, words))
		die("result->smime is no RFC 7281 word",
		    r->smime ? r->smime : "NULL");
	if (r->action && !in_set(r->action, actions))
		die("result->action is none of inbound.h's", r->action);
	if (!r->body_replaced && (o->calls || o->len))
		die("wrote a body without body_replaced", NULL);
	if (r->decrypted && !r->body_replaced && !r->reject)
		die("decrypted but the body was not replaced", NULL);
	if (r->reject && r->body_replaced)
		die("rejected, yet a new body was written", NULL);
	if (i == 0 && r->body_replaced && !r->decrypted)
		die("body replaced, not decrypted, unwrap off", NULL);
	if (r->reject && (i == 0 || strcmp(r->smime, "fail") != 0))
		die("reject without on_bad_signature = reject and a fail",
		    r->smime);
	if (memchr(r->reason, '\0', sizeof(r->reason)) == NULL)
		die("result->reason is not terminated", NULL);
}

static void report(int i, const struct inb_result *r, const struct out *o,
                   const struct msg_edit *e, size_t n)
{
	size_t del = 0;

	for (size_t k = 0; k < n; k++)
		del += e[k].op == EDIT_DELETE &&
		       strcasecmp(e[k].name, AUTHRES_FIELD) == 0;
	fprintf(stderr,
	        "inbound %d: smime=%s action=%s decrypted=%d replaced=%d "
	        "reject=%d revoked_key=%d bytes=%zu edits=%zu ar_deleted=%zu "
	        "cipher=%s reason=%s\n",
	        i, r->smime, r->action ? r->action : "-", r->decrypted,
	        r->body_replaced, r->reject, r->revoked_key, o->len, n, del,
	        r->cipher[0] ? r->cipher : "-", r->reason);
	if (getenv("FUZZ_INBOUND_DUMP"))
		for (size_t k = 0; k < n; k++)
			fprintf(stderr, "  edit %s %s %d %s\n",
			        e[k].op == EDIT_ADD ? "add" : "delete",
			        e[k].name, e[k].index,
			        e[k].value ? e[k].value : "");
}

static void run(int i, const uint8_t *data, size_t size)
{
	struct hdrs h;
	struct out o = { 0 };
	const struct msg_edit *edits;
	const struct inb_result *res;
	const char *reason;
	char err[1024];
	size_t nedits, off;
	int rc;

	memset(&h, 0, sizeof(h));
	h.forged = forged_idx;
	if ((h.inb = inb_new(snaps[i])) == NULL)
		die("inb_new", NULL);
	/* RCPT TO first, as the MTA does, then the header fields */
	off = offline_split((const char *)data, size, each_header, &h);
	if (h.oom)
		die("out of memory in addr_list_each", NULL);
	for (size_t k = 0; k < h.nrcpt; k++)
		if (inb_rcpt(h.inb, h.rcpt[k]) != 0)
			die("inb_rcpt", NULL);
	if (h.nrcpt == 0 && inb_rcpt(h.inb, "<andi@banjarkota.go.id>") != 0)
		die("inb_rcpt", NULL);
	h.pass = 1;
	h.n = 0;
	if (off == (size_t)-1 ||
	    offline_split((const char *)data, size, each_header, &h) != off)
		goto done; /* a field offline_header_parse cannot take */
	if (inb_eoh(h.inb, 0, &reason) != INB_PROCESS)
		goto done;
	body_len = 0;
	offline_body((const char *)data + off, size - off, each_chunk, h.inb);
	o.dump = getenv("FUZZ_INBOUND_DUMP") ? stderr : NULL;
	rc = inb_eom(h.inb, out_write, &o, &edits, &nedits, &res, err,
	             sizeof(err));
	if (rc != 0)
		die("inb_eom failed on hostile input", err);
	check_result(i, res, &o);
	if (res->decrypted)
		check_readers(snaps[i], &h);
	check_edits(&h, edits, nedits);
	if (getenv("FUZZ_INBOUND_REPORT") || o.dump)
		report(i, res, &o, edits, nedits);
done:
	for (size_t k = 0; k < h.nrcpt; k++)
		free(h.rcpt[k]);
	free(h.subject);
	free(h.cte);
	inb_free(h.inb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	for (int i = 0; i < 2; i++)
		run(i, data, size);
	return 0;
}
