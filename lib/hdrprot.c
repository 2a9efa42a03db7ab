/* hdrprot -- the header section of the Cryptographic Payload's root part
 * (RFC 9788; see hdrprot.h). */
#include "hdrprot.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

static const char *const protected_names[] = {
	"From",       "To",       "Cc",          "Subject",    "Date",
	"Message-ID", "Reply-To", "In-Reply-To", "References",
};

int hdrprot_is_protected(const char *name, char *const *extra, size_t nextra)
{
	if (name == NULL)
		return 0;
	for (size_t i = 0;
	     i < sizeof(protected_names) / sizeof(protected_names[0]); i++)
		if (strcasecmp(name, protected_names[i]) == 0)
			return 1;
	for (size_t i = 0; i < nextra; i++)
		if (extra[i] && strcasecmp(name, extra[i]) == 0)
			return 1;
	return 0;
}

const char *hdrprot_name_refused(const char *name)
{
	if (name == NULL || *name == '\0')
		return "an empty field name";
	for (const char *p = name; *p; p++)
		if ((unsigned char)*p < 33 || (unsigned char)*p > 126 ||
		    *p == ':')
			return "not a header field name (printable ASCII "
			       "without ':' or space)";
	if (str_iprefix(name, "Content-") ||
	    strcasecmp(name, "MIME-Version") == 0)
		return "a structural field (Content-*, MIME-Version) describes "
		       "the part, it cannot be copied into it";
	if (strcasecmp(name, "Bcc") == 0)
		return "Bcc must not be copied where every recipient reads it";
	if (strcasecmp(name, "HP-Outer") == 0)
		return "HP-Outer is written by header protection itself";
	return NULL;
}

int hdrprot_ct_has_hp(const char *value)
{
	const char *p = value ? value : "";
	int depth = 0, quoted = 0;

	for (; *p; p++) {
		if (quoted) {
			if (*p == '\\' && p[1])
				p++;
			else if (*p == '"')
				quoted = 0;
		} else if (depth > 0) {
			if (*p == '\\' && p[1])
				p++;
			else if (*p == '(')
				depth++;
			else if (*p == ')')
				depth--;
		} else if (*p == '"') {
			quoted = 1;
		} else if (*p == '(') {
			depth = 1;
		} else if (*p == ';') {
			const char *q = p + 1;
			while (*q == ' ' || *q == '\t' || *q == '\r' ||
			       *q == '\n')
				q++;
			if (strncasecmp(q, "hp", 2) == 0) {
				q += 2;
				while (*q == ' ' || *q == '\t')
					q++;
				if (*q == '=')
					return 1;
			}
		}
	}
	return 0;
}

/* A new string into hp->own; NULL when out of memory. */
static char *own(struct hdrprot *hp, char *s)
{
	if (s == NULL)
		return NULL;
	hp->own[hp->nown++] = s;
	return s;
}

/* value without the blanks and line ends at its end, then `; hp="X"`. */
static char *ct_with_hp(const char *value, int cipher)
{
	const char *v = value ? value : "";
	size_t len = strlen(v);
	char *s;

	while (len > 0 && strchr(" \t\r\n;", v[len - 1]) != NULL)
		len--;
	s = malloc(len + 16);
	if (s != NULL)
		snprintf(s, len + 16, "%.*s; hp=\"%s\"", (int)len, v,
		         cipher ? "cipher" : "clear");
	return s;
}

/* "Name: value" for HP-Outer, the value's leading blanks dropped. */
static char *outer_value(const struct mime_header *f)
{
	const char *v = f->value ? f->value : "";
	size_t len;
	char *s;

	while (*v == ' ' || *v == '\t')
		v++;
	len = strlen(f->name) + strlen(v) + 3;
	s = malloc(len);
	if (s != NULL)
		snprintf(s, len, "%s: %s", f->name, v);
	return s;
}

/* 0 when a line of name: value would be over 900 octets with no blank to
 * fold it at (the rewriter refuses such a line; the field then stays
 * unprotected rather than the message unsigned). */
static int foldable(const struct mime_header *f)
{
	size_t run = strlen(f->name) + 1;

	for (const char *p = f->value ? f->value : ""; *p; p++) {
		if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
			run = 0;
		else if (++run > 900)
			return 0;
	}
	return 1;
}

/* Fields whose syntax an RFC 2047 encoded word over the whole value would
 * break (addresses, identifiers, a date): with 8-bit octets they are not
 * copied.  Subject and the protected_headers fields are text. */
static int structured(const char *name)
{
	static const char *const names[] = { "From",        "To",
		                             "Cc",          "Date",
		                             "Message-ID",  "Reply-To",
		                             "In-Reply-To", "References" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(name, names[i]) == 0)
			return 1;
	return 0;
}

static int has_8bit(const char *v)
{
	for (; v && *v; v++)
		if ((unsigned char)*v >= 0x80)
			return 1;
	return 0;
}

/* A text value with 8-bit octets as RFC 2047 "B" encoded words of at most
 * 75 characters, folded between words: charset utf-8 when the octets are
 * UTF-8, else unknown-8bit (RFC 1428, as the rewriter labels such text).
 * Each word holds whole characters.  Keeps the signed entity 7-bit while a
 * reader decodes the same text.  NULL when out of memory. */
static char *encode_words(const char *value)
{
	char *u = malloc(strlen(value) + 1);
	const unsigned char *v = (const unsigned char *)u;
	size_t n = 0, at = 0, o = 0;
	const char *cs;
	char *out;
	int utf8;

	if (u == NULL)
		return NULL;
	for (const char *p = value; *p; p++) /* unfolded (RFC 5322 2.2.3) */
		if (*p != '\r' && *p != '\n')
			u[n++] = *p;
	u[n] = '\0';
	while (*v == ' ' || *v == '\t')
		v++;
	n = strlen((const char *)v);
	while (n > 0 && strchr(" \t\r\n", v[n - 1]) != NULL)
		n--;
	utf8 = utf8_valid(v, n);
	cs = utf8 ? "utf-8" : "unknown-8bit";
	/* per 45 octets: a word of 12 + strlen(cs) + 60 characters, "\n " */
	out = malloc((n / 45 + 1) * (16 + strlen(cs) + 60) + 1);
	if (out == NULL) {
		free(u);
		return NULL;
	}
	while (at < n) {
		size_t take = n - at > 45 ? 45 : n - at;
		if (utf8 && at + take < n)
			while (take > 1 && (v[at + take] & 0xc0) == 0x80)
				take--; /* do not split a character */
		if (at > 0) {
			memcpy(out + o, "\n ", 2);
			o += 2;
		}
		o += (size_t)sprintf(out + o, "=?%s?B?", cs);
		o += (size_t)EVP_EncodeBlock((unsigned char *)out + o, v + at,
		                             (int)take);
		memcpy(out + o, "?=", 2);
		o += 2;
		at += take;
	}
	out[o] = '\0';
	free(u);
	return out;
}

/* The value a protected field gets in the copy: its own (7-bit), an
 * encoded one (8-bit text), or NULL when it is left out (8-bit in a
 * structured field, a line that cannot be folded); *oom on failure. */
static const char *copy_value(struct hdrprot *hp, const struct mime_header *f,
                              int *oom)
{
	char *enc;

	if (!foldable(f))
		return NULL;
	if (!has_8bit(f->value))
		return f->value ? f->value : "";
	if (structured(f->name))
		return NULL;
	if ((enc = own(hp, encode_words(f->value))) == NULL)
		*oom = 1;
	return enc;
}

int hdrprot_build(const struct mime_header *ch, size_t nch,
                  const char *default_ct, const struct mime_header *prot,
                  size_t nprot, int cipher, struct hdrprot *out)
{
	size_t cap = nch + 1 + nprot * 2, nouter = 0;
	struct mime_header *outer = NULL; /* what HP-Outer records */
	int have_ct = 0, oom = 0;

	memset(out, 0, sizeof(*out));
	out->h = calloc(cap, sizeof(*out->h));
	/* the Content-Type, an encoded value and an HP-Outer per field */
	out->own = calloc(nprot * 2 + 1, sizeof(*out->own));
	outer = calloc(nprot + 1, sizeof(*outer));
	if (out->h == NULL || out->own == NULL || outer == NULL)
		goto oom;
	for (size_t i = 0; i < nch; i++) {
		struct mime_header *d = &out->h[out->n++];
		*d = ch[i];
		if (!have_ct && str_ieq(ch[i].name, "Content-Type")) {
			have_ct = 1;
			if ((d->value = own(out, ct_with_hp(ch[i].value,
			                                    cipher))) == NULL)
				goto oom;
		}
	}
	if (!have_ct) {
		struct mime_header *d = &out->h[out->n++];
		d->name = "Content-Type";
		if ((d->value = own(out,
		                    ct_with_hp(default_ct ? default_ct
		                                          : "text/plain; "
		                                            "charset=us-ascii",
		                               cipher))) == NULL)
			goto oom;
	}
	for (size_t i = 0; i < nprot; i++) {
		const char *v = copy_value(out, &prot[i], &oom);
		if (oom)
			goto oom;
		if (v == NULL)
			continue;
		out->h[out->n].name = prot[i].name;
		out->h[out->n++].value = v;
		if (cipher)
			outer[nouter++] =
			        (struct mime_header){ prot[i].name, v };
	}
	for (size_t i = 0; i < nouter; i++) {
		struct mime_header *d = &out->h[out->n++];
		d->name = "HP-Outer";
		if ((d->value = own(out, outer_value(&outer[i]))) == NULL)
			goto oom;
	}
	free(outer);
	return 0;
oom:
	free(outer);
	hdrprot_free(out);
	return -1;
}

void hdrprot_free(struct hdrprot *hp)
{
	if (hp == NULL)
		return;
	strv_free(hp->own, hp->nown);
	free(hp->h);
	memset(hp, 0, sizeof(*hp));
}
