/* offline -- the -t mode through the real callbacks (see offline.h). */
#include "offline.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

#include "util.h"

struct offline_ctx *mw_offline;

static int read_file(const char *path, char **data, size_t *len)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	size_t cap = 65536, n;
	char *buf;

	if (f == NULL)
		return -1;
	buf = malloc(cap);
	*len = 0;
	while (buf && (n = fread(buf + *len, 1, cap - *len, f)) > 0) {
		*len += n;
		if (*len == cap) {
			char *nb = realloc(buf, cap * 2);
			if (nb == NULL) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
	}
	if (f != stdin)
		fclose(f);
	*data = buf;
	return buf ? 0 : -1;
}

/* Is this line a header field ("Name:" with printable name)? */
static int is_header_line(const char *p, const char *end)
{
	const char *q = p;

	while (q < end && *q != ':' && *q > 32 && *q < 127)
		q++;
	return q > p && q < end && *q == ':';
}

size_t offline_split(const char *data, size_t len,
                     int (*each)(void *arg, const char *start, const char *end),
                     void *arg)
{
	const char *p = data, *end = data + len;

	if (!is_header_line(p, end))
		return 0;
	while (p < end) {
		const char *start = p, *nl;
		if (*p == '\n' || (*p == '\r' && p + 1 < end && p[1] == '\n')) {
			p += *p == '\r' ? 2 : 1;
			break;
		}
		if (!is_header_line(p, end))
			break; /* body starts without a blank line */
		do {
			nl = memchr(p, '\n', (size_t)(end - p));
			p = nl ? nl + 1 : end;
		} while (p < end && (*p == ' ' || *p == '\t'));
		if (each(arg, start, p) != 0)
			return (size_t)-1;
	}
	return (size_t)(p - data);
}

int offline_header_parse(const char *start, const char *end, char **name,
                         char **value)
{
	const char *colon = memchr(start, ':', (size_t)(end - start));
	const char *p;
	char *w;

	if (colon == NULL)
		colon = end;
	p = colon < end ? colon + 1 : end;
	*name = strndup(start, (size_t)(colon - start));
	/* the value as Postfix hands it: leading space gone, folds kept */
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	*value = malloc((size_t)(end - p) + 1);
	if (*name == NULL || *value == NULL) {
		free(*name);
		free(*value);
		*name = *value = NULL;
		return -1;
	}
	for (w = *value; p < end; p++)
		if (*p != '\r' || p + 1 >= end || p[1] != '\n')
			*w++ = *p;
	while (w > *value && (w[-1] == '\n' || w[-1] == '\r'))
		w--;
	*w = '\0';
	return 0;
}

/* Make room for one more header in o. */
static int headers_grow(struct offline_ctx *o)
{
	size_t cap = o->caphdrs;
	void *p;

	if (o->nhdrs < cap)
		return 0;
	cap = cap ? cap * 2 : 16;
	if ((p = realloc(o->hdr_names, cap * sizeof(char *))) == NULL)
		return -1;
	o->hdr_names = p;
	if ((p = realloc(o->hdr_values, cap * sizeof(char *))) == NULL)
		return -1;
	o->hdr_values = p;
	if ((p = realloc(o->hdr_raw, cap * sizeof(char *))) == NULL)
		return -1;
	o->hdr_raw = p;
	if ((p = realloc(o->hdr_deleted, cap * sizeof(int))) == NULL)
		return -1;
	o->hdr_deleted = p;
	o->caphdrs = cap;
	return 0;
}

int offline_add_header(struct offline_ctx *o, const char *start,
                       const char *end)
{
	char *name, *value, *raw;

	if (headers_grow(o) != 0)
		return -1;
	if (offline_header_parse(start, end, &name, &value) != 0)
		return -1;
	if ((raw = strndup(start, (size_t)(end - start))) == NULL) {
		free(name);
		free(value);
		return -1;
	}
	o->hdr_names[o->nhdrs] = name;
	o->hdr_values[o->nhdrs] = value;
	o->hdr_raw[o->nhdrs] = raw;
	o->hdr_deleted[o->nhdrs] = 0;
	o->nhdrs++;
	return 0;
}

void offline_ctx_free(struct offline_ctx *o)
{
	if (o == NULL)
		return;
	for (size_t i = 0; i < o->nhdrs; i++) {
		free(o->hdr_names[i]);
		free(o->hdr_values[i]);
		free(o->hdr_raw[i]);
	}
	for (size_t i = 0; i < o->nadds; i++) {
		free(o->add_names[i]);
		free(o->add_values[i]);
	}
	free(o->hdr_names);
	free(o->hdr_values);
	free(o->hdr_raw);
	free(o->hdr_deleted);
	free(o->add_names);
	free(o->add_values);
	memset(o, 0, sizeof(*o));
}

static int add_header_cb(void *arg, const char *start, const char *end)
{
	return offline_add_header(arg, start, end);
}

static void put_crlf_line(const char *s, size_t len)
{
	/* write a header with its line ends as CRLF */
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			fputc('\r', stdout);
		fputc(s[i], stdout);
	}
}

/* Envelope recipients from the To, Cc and Bcc headers. */
struct rcpt_list {
	char **v;
	size_t n, cap;
	int oom;
};

static void rcpt_add(void *arg, const char *addr)
{
	struct rcpt_list *l = arg;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 8;
		char **nv = realloc(l->v, cap * sizeof(*nv));
		if (nv == NULL) {
			l->oom = 1;
			return;
		}
		l->v = nv;
		l->cap = cap;
	}
	if ((l->v[l->n] = strdup(addr)) == NULL)
		l->oom = 1;
	else
		l->n++;
}

/* The envelope up to the end of headers: connect, MAIL, RCPT (counting
 * the refused ones like an MTA), each header, eoh. */
static sfsistat run_envelope(const struct smfiDesc *desc, struct offline_ctx *o,
                             const char *sender, char *const *rcpts,
                             size_t nrcpts)
{
	size_t accepted = 0;
	char *argv[2];
	sfsistat st = desc->xxfi_connect(NULL, "localhost", NULL);

	argv[0] = (char *)(sender ? sender : "<>");
	argv[1] = NULL;
	if (st == SMFIS_CONTINUE)
		st = desc->xxfi_envfrom(NULL, argv);
	for (size_t i = 0; st == SMFIS_CONTINUE && i < nrcpts; i++) {
		sfsistat r;
		argv[0] = rcpts[i];
		r = desc->xxfi_envrcpt(NULL, argv);
		if (r == SMFIS_CONTINUE) {
			accepted++;
		} else if (r == SMFIS_REJECT) {
			fprintf(stderr,
			        "smime-milter: recipient %s refused: %s\n",
			        rcpts[i], o->reply);
		} else {
			st = r;
		}
	}
	if (st == SMFIS_CONTINUE && nrcpts > 0 && accepted == 0) {
		/* an MTA would not take the message at all */
		fprintf(stderr, "smime-milter: every recipient was refused\n");
		st = SMFIS_REJECT;
		snprintf(o->reply, sizeof(o->reply), "no recipient left");
	}
	for (size_t i = 0; st == SMFIS_CONTINUE && i < o->nhdrs; i++)
		st = desc->xxfi_header(NULL, o->hdr_names[i], o->hdr_values[i]);
	if (st == SMFIS_CONTINUE)
		st = desc->xxfi_eoh(NULL);
	return st;
}

int offline_body(const char *body, size_t len,
                 int (*chunk)(void *arg, unsigned char *buf, size_t n),
                 void *arg)
{
	unsigned char buf[65536];
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		if (body[i] == '\n' && (i == 0 || body[i - 1] != '\r'))
			buf[n++] = '\r';
		buf[n++] = (unsigned char)body[i];
		if (n >= sizeof(buf) - 2) {
			if (chunk(arg, buf, n) != 0)
				return -1;
			n = 0;
		}
	}
	if (n > 0 && chunk(arg, buf, n) != 0)
		return -1;
	return 0;
}

/* offline_body's chunks to the body callback. */
struct body_feed {
	const struct smfiDesc *desc;
	sfsistat st;
};

static int body_chunk(void *arg, unsigned char *buf, size_t n)
{
	struct body_feed *f = arg;

	f->st = f->desc->xxfi_body(NULL, buf, n);
	return f->st == SMFIS_CONTINUE ? 0 : -1;
}

/* The body as an MTA sends it, then end of message. */
static sfsistat run_body(const struct smfiDesc *desc, const char *body,
                         size_t bodylen)
{
	struct body_feed f = { desc, SMFIS_CONTINUE };

	offline_body(body, bodylen, body_chunk, &f);
	if (f.st == SMFIS_CONTINUE)
		f.st = desc->xxfi_eom(NULL);
	return f.st;
}

/* Were any headers changed? */
static int edited(const struct offline_ctx *o)
{
	for (size_t i = 0; i < o->nhdrs; i++)
		if (o->hdr_deleted[i])
			return 1;
	return o->nadds > 0;
}

/* offline_body's chunks to standard output. */
static int put_chunk(void *arg, unsigned char *buf, size_t n)
{
	(void)arg;
	return fwrite(buf, 1, n, stdout) == n ? 0 : -1;
}

/* The signed message: the headers left, the ones added, the new body. */
static void write_result(const struct offline_ctx *o, const char *body,
                         size_t bodylen)
{
	for (size_t i = 0; i < o->nhdrs; i++) {
		size_t l = strlen(o->hdr_raw[i]);
		if (o->hdr_deleted[i])
			continue;
		put_crlf_line(o->hdr_raw[i], l);
		/* input that ends inside its header block */
		if (l == 0 || o->hdr_raw[i][l - 1] != '\n')
			fputs("\r\n", stdout);
	}
	for (size_t i = 0; i < o->nadds; i++) {
		printf("%s: ", o->add_names[i]);
		put_crlf_line(o->add_values[i], strlen(o->add_values[i]));
		printf("\r\n");
	}
	printf("\r\n");
	if (body)
		fwrite(body, 1, bodylen, stdout);
}

int offline_sign(const struct smfiDesc *desc, const char *path,
                 const char *sender, char *const *rcpts, size_t nrcpts,
                 int inbound)
{
	struct rcpt_list hdr_rcpts = { NULL, 0, 0, 0 };
	struct offline_ctx o;
	char *data, *bodybuf = NULL;
	size_t len, off, bodybuf_len = 0;
	sfsistat st;
	int rc = EX_OK;

	if (read_file(path, &data, &len) != 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return EX_NOINPUT;
	}
	memset(&o, 0, sizeof(o));
	o.queue_id = "OFFLINE";
	o.inbound = inbound;
	o.body_out = open_memstream(&bodybuf, &bodybuf_len);
	off = offline_split(data, len, add_header_cb, &o);
	if (nrcpts == 0)
		for (size_t i = 0; i < o.nhdrs; i++)
			if (strcasecmp(o.hdr_names[i], "To") == 0 ||
			    strcasecmp(o.hdr_names[i], "Cc") == 0 ||
			    strcasecmp(o.hdr_names[i], "Bcc") == 0)
				addr_list_each(o.hdr_values[i], rcpt_add,
				               &hdr_rcpts);
	if (o.body_out == NULL || off == (size_t)-1 || hdr_rcpts.oom) {
		fprintf(stderr, "out of memory\n");
		rc = EX_OSERR;
		goto done;
	}
	mw_offline = &o;
	st = nrcpts ? run_envelope(desc, &o, sender, rcpts, nrcpts)
	            : run_envelope(desc, &o, sender, hdr_rcpts.v, hdr_rcpts.n);
	if (st == SMFIS_CONTINUE)
		st = run_body(desc, data + off, len - off);
	desc->xxfi_close(NULL);
	mw_offline = NULL;
	fflush(o.body_out);

	if (st == SMFIS_CONTINUE || st == SMFIS_ACCEPT) {
		if (o.body_replaced) {
			write_result(&o, bodybuf, bodybuf_len);
		} else if (edited(&o)) { /* only stamped (inbound) */
			write_result(&o, NULL, 0);
			offline_body(data + off, len - off, put_chunk, NULL);
		} else {
			fwrite(data, 1, len, stdout);
			fprintf(stderr, "smime-milter: message passed %s\n",
			        inbound ? "unchanged" : "unsigned");
		}
	} else {
		fprintf(stderr, "smime-milter: %s: %s\n",
		        st == SMFIS_REJECT ? "rejected" : "tempfailed",
		        o.reply);
		rc = st == SMFIS_REJECT ? EX_UNAVAILABLE : EX_TEMPFAIL;
	}
	fflush(stdout);
done:
	if (o.body_out)
		fclose(o.body_out);
	free(bodybuf);
	free(data);
	offline_ctx_free(&o);
	for (size_t i = 0; i < hdr_rcpts.n; i++)
		free(hdr_rcpts.v[i]);
	free(hdr_rcpts.v);
	return rc;
}
