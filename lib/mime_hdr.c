/*
 * mime_hdr.c -- Content-Type and Content-Transfer-Encoding values (RFC 2045,
 * 2046, 2231 comments and quoting).
 */
#include "mime_int.h"

#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Content-Type and Content-Transfer-Encoding */

static int is_tok(int c)
{
	return c > 32 && c != 127 && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

/* Skip folding whitespace and (nested) comments. */
static const char *skip_cfws(const char *p)
{
	for (;;) {
		int depth = 0;

		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
			p++;
		if (*p != '(')
			return p;
		while (*p) {
			if (*p == '\\') {
				if (p[1])
					p++;
			} else if (*p == '(') {
				depth++;
			} else if (*p == ')' && --depth == 0) {
				p++;
				break;
			}
			p++;
		}
	}
}

/* Skip to the next ';' outside quotes and comments. */
static const char *skip_junk(const char *p)
{
	while (*p && *p != ';') {
		if (*p == '"') {
			p++;
			while (*p && *p != '"') {
				if (*p == '\\' && p[1])
					p++;
				p++;
			}
			if (*p)
				p++;
		} else if (*p == '(') {
			p = skip_cfws(p);
		} else {
			p++;
		}
	}
	return p;
}

static const char *take_token(const char *p, char *dst, size_t dsz, int lc)
{
	size_t n = 0;

	while (is_tok((unsigned char)*p)) {
		if (n + 1 < dsz)
			dst[n++] = (char)(lc ? lower((unsigned char)*p) : *p);
		p++;
	}
	dst[n] = '\0';
	return p;
}

static const char *take_value(const char *p, char *dst, size_t dsz)
{
	size_t n = 0;

	if (*p == '"') {
		p++;
		while (*p && *p != '"') {
			if (*p == '\\' && p[1])
				p++;
			if (*p != '\r' && *p != '\n' && n + 1 < dsz)
				dst[n++] = *p;
			p++;
		}
		if (*p == '"')
			p++;
	} else {
		while (*p && *p != ';' && *p != '(' && *p != '"' &&
		       (unsigned char)*p > ' ') {
			if (n + 1 < dsz)
				dst[n++] = *p;
			p++;
		}
	}
	dst[n] = '\0';
	return p;
}

static char *param_slot(struct mime_ct *ct, const char *attr, size_t *dsz)
{
	static const struct {
		const char *name;
		size_t off, size;
	} slots[] = {
		{ "boundary", offsetof(struct mime_ct, boundary),
		  sizeof(((struct mime_ct *)0)->boundary) },
		{ "charset", offsetof(struct mime_ct, charset),
		  sizeof(((struct mime_ct *)0)->charset) },
		{ "protocol", offsetof(struct mime_ct, protocol),
		  sizeof(((struct mime_ct *)0)->protocol) },
		{ "smime-type", offsetof(struct mime_ct, smime_type),
		  sizeof(((struct mime_ct *)0)->smime_type) },
		{ "name", offsetof(struct mime_ct, name),
		  sizeof(((struct mime_ct *)0)->name) },
	};

	for (size_t i = 0; i < sizeof(slots) / sizeof(slots[0]); i++) {
		char *dst = (char *)ct + slots[i].off;
		if (strcmp(attr, slots[i].name) == 0 && dst[0] == '\0') {
			*dsz = slots[i].size;
			return dst;
		}
	}
	return NULL;
}

int mime_ct_parse(const char *value, struct mime_ct *out)
{
	const char *p, *q;

	memset(out, 0, sizeof(*out));
	if (value == NULL)
		goto dflt;
	p = skip_cfws(value);
	q = take_token(p, out->type, sizeof(out->type), 1);
	if (q == p)
		goto dflt;
	p = skip_cfws(q);
	if (*p != '/')
		goto dflt;
	p = skip_cfws(p + 1);
	q = take_token(p, out->subtype, sizeof(out->subtype), 1);
	if (q == p)
		goto dflt;
	p = q;
	for (;;) {
		char attr[32], dummy[1];
		char *dst;
		size_t dsz = 0;

		p = skip_cfws(p);
		if (*p == '\0')
			break;
		if (*p != ';') {
			p = skip_junk(p);
			continue;
		}
		p = skip_cfws(p + 1);
		q = take_token(p, attr, sizeof(attr), 1);
		if (q == p)
			continue;
		p = skip_cfws(q);
		if (*p != '=')
			continue;
		p = skip_cfws(p + 1);
		dst = param_slot(out, attr, &dsz);
		if (dst == NULL) {
			dst = dummy;
			dsz = sizeof(dummy);
		}
		p = take_value(p, dst, dsz);
	}
	return 0;
dflt:
	memset(out, 0, sizeof(*out));
	strcpy(out->type, "text");
	strcpy(out->subtype, "plain");
	strcpy(out->charset, "us-ascii");
	return 0;
}

enum mime_cte mime_cte_parse(const char *value)
{
	char tok[24];
	const char *p, *q;

	if (value == NULL)
		return MIME_CTE_7BIT;
	p = skip_cfws(value);
	q = take_token(p, tok, sizeof(tok), 1);
	if (q == p)
		return *p ? MIME_CTE_OTHER : MIME_CTE_7BIT;
	if ((size_t)(q - p) >= sizeof(tok))
		return MIME_CTE_OTHER;
	if (strcmp(tok, "7bit") == 0)
		return MIME_CTE_7BIT;
	if (strcmp(tok, "8bit") == 0)
		return MIME_CTE_8BIT;
	if (strcmp(tok, "binary") == 0)
		return MIME_CTE_BINARY;
	if (strcmp(tok, "quoted-printable") == 0)
		return MIME_CTE_QP;
	if (strcmp(tok, "base64") == 0)
		return MIME_CTE_BASE64;
	return MIME_CTE_OTHER;
}
