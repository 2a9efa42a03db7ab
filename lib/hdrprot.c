/* hdrprot -- the header section of the Cryptographic Payload's root part
 * (RFC 9788; see hdrprot.h). */
#include "hdrprot.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

int hdrprot_build(const struct mime_header *ch, size_t nch,
                  const char *default_ct, const struct mime_header *prot,
                  size_t nprot, int cipher, struct hdrprot *out)
{
	size_t cap = nch + 1 + nprot * 2;
	int have_ct = 0;

	memset(out, 0, sizeof(*out));
	out->h = calloc(cap, sizeof(*out->h));
	out->own = calloc(nprot + 1, sizeof(*out->own));
	if (out->h == NULL || out->own == NULL)
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
		if ((d->value = own(out, ct_with_hp(default_ct, cipher))) ==
		    NULL)
			goto oom;
	}
	for (size_t i = 0; i < nprot; i++)
		if (foldable(&prot[i]))
			out->h[out->n++] = prot[i];
	for (size_t i = 0; cipher && i < nprot; i++) {
		struct mime_header *d;
		if (!foldable(&prot[i]))
			continue;
		d = &out->h[out->n++];
		d->name = "HP-Outer";
		if ((d->value = own(out, outer_value(&prot[i]))) == NULL)
			goto oom;
	}
	return 0;
oom:
	hdrprot_free(out);
	return -1;
}

void hdrprot_free(struct hdrprot *hp)
{
	if (hp == NULL)
		return;
	for (size_t i = 0; i < hp->nown; i++)
		free(hp->own[i]);
	free(hp->own);
	free(hp->h);
	memset(hp, 0, sizeof(*hp));
}
