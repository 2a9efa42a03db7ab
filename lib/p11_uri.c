/* p11_uri -- RFC 7512 PKCS#11 URIs: parse and make (see p11.h). */

#include "p11.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

/* Percent-decode s[0..n) into a new buffer (NUL-terminated too). */
static unsigned char *pct_decode(const char *s, size_t n, size_t *outlen)
{
	unsigned char *out = malloc(n + 1);
	size_t o = 0;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			int h, l;
			if (i + 2 >= n) {
				free(out);
				return NULL;
			}
			h = OPENSSL_hexchar2int((unsigned char)s[i + 1]);
			l = OPENSSL_hexchar2int((unsigned char)s[i + 2]);
			if (h < 0 || l < 0) {
				free(out);
				return NULL;
			}
			out[o++] = (unsigned char)(h * 16 + l);
			i += 2;
		} else {
			out[o++] = (unsigned char)s[i];
		}
	}
	out[o] = '\0';
	*outlen = o;
	return out;
}

static int set_text(char **field, const unsigned char *v, size_t len)
{
	if (memchr(v, '\0', len))
		return -1;
	free(*field);
	*field = strndup((const char *)v, len);
	return *field ? 0 : -1;
}

void p11_uri_clear(struct p11_uri *u)
{
	char *text[] = { u->token,  u->manufacturer, u->serial,     u->model,
		         u->object, u->pin_source,   u->module_path };

	for (size_t i = 0; i < sizeof(text) / sizeof(text[0]); i++)
		free(text[i]);
	free(u->id);
	memset(u, 0, sizeof(*u));
	u->slot_id = -1;
}

static int uri_attr(struct p11_uri *u, const char *name, size_t nlen,
                    const unsigned char *v, size_t vlen, int query, char *err,
                    size_t errlen)
{
#define IS(s) (nlen == strlen(s) && memcmp(name, s, nlen) == 0)
	if (!query) {
		if (IS("token"))
			return set_text(&u->token, v, vlen);
		if (IS("manufacturer"))
			return set_text(&u->manufacturer, v, vlen);
		if (IS("serial"))
			return set_text(&u->serial, v, vlen);
		if (IS("model"))
			return set_text(&u->model, v, vlen);
		if (IS("object"))
			return set_text(&u->object, v, vlen);
		if (IS("id")) {
			free(u->id);
			u->id = malloc(vlen ? vlen : 1);
			if (u->id == NULL)
				return -1;
			memcpy(u->id, v, vlen);
			u->idlen = vlen;
			return 0;
		}
		if (IS("type")) {
			if (vlen == 7 && memcmp(v, "private", 7) == 0)
				u->type = P11_PRIVATE;
			else if (vlen == 6 && memcmp(v, "public", 6) == 0)
				u->type = P11_PUBLIC;
			else if (vlen == 4 && memcmp(v, "cert", 4) == 0)
				u->type = P11_CERT;
			else
				return seterr(err, errlen,
				              "type=%.*s: only private, public "
				              "or cert",
				              (int)vlen, (const char *)v);
			return 0;
		}
		if (IS("slot-id")) {
			char *end;
			long id = strtol((const char *)v, &end, 10);
			if (vlen == 0 || *end || id < 0)
				return seterr(err, errlen,
				              "slot-id=%.*s is not "
				              "a number",
				              (int)vlen, (const char *)v);
			u->slot_id = id;
			return 0;
		}
		if (IS("library-manufacturer") || IS("library-description") ||
		    IS("library-version") || IS("slot-description") ||
		    IS("slot-manufacturer") ||
		    (nlen > 2 && name[0] == 'x' && name[1] == '-'))
			return 0; /* accepted, not used to select */
	} else {
		if (IS("pin-source")) {
			const char *s = (const char *)v;
			if (vlen > 5 && memcmp(s, "file:", 5) == 0) {
				s += 5;
				vlen -= 5;
				/* file:///path and file:/path */
				if (vlen > 2 && memcmp(s, "//", 2) == 0) {
					s += 2;
					vlen -= 2;
				}
			}
			if (vlen == 0 || s[0] != '/')
				return seterr(err, errlen,
				              "pin-source must be "
				              "file:/ABSOLUTE"
				              "/PATH");
			return set_text(&u->pin_source,
			                (const unsigned char *)s, vlen);
		}
		if (IS("pin-value"))
			return seterr(err, errlen,
			              "pin-value is refused: a PIN in a URI "
			              "ends "
			              "up in the database and in logs; use "
			              "pin-source=file:PATH or a pin_file in "
			              "pkcs11_tokens");
		if (IS("module-path"))
			return set_text(&u->module_path, v, vlen);
		if (IS("module-name") ||
		    (nlen > 2 && name[0] == 'x' && name[1] == '-'))
			return 0;
	}
	return seterr(err, errlen, "unknown attribute \"%.*s\"", (int)nlen,
	              name);
#undef IS
}

int p11_uri_parse(const char *text, struct p11_uri *u, char *err, size_t errlen)
{
	const char *p, *end;
	int query = 0;

	memset(u, 0, sizeof(*u));
	u->slot_id = -1;
	if (text == NULL || strncmp(text, "pkcs11:", 7) != 0)
		return seterr(err, errlen,
		              "not a PKCS#11 URI (must start "
		              "with \"pkcs11:\")");
	p = text + 7;
	while (*p) {
		const char *eq, *sep = query ? "&" : ";?";
		unsigned char *v;
		size_t vlen, alen = strcspn(p, sep);
		char why[256];

		end = p + alen;
		eq = memchr(p, '=', alen);
		if (alen > 0) {
			if (eq == NULL || eq == p) {
				p11_uri_clear(u);
				return seterr(err, errlen,
				              "\"%.*s\" is not name=value",
				              (int)alen, p);
			}
			v = pct_decode(eq + 1, (size_t)(end - eq - 1), &vlen);
			if (v == NULL) {
				p11_uri_clear(u);
				return seterr(err, errlen,
				              "bad %%-escape in "
				              "\"%.*s\"",
				              (int)alen, p);
			}
			why[0] = '\0';
			if (uri_attr(u, p, (size_t)(eq - p), v, vlen, query,
			             why, sizeof(why)) != 0) {
				free(v);
				p11_uri_clear(u);
				return seterr(err, errlen, "%s",
				              why[0] ? why : "out of memory");
			}
			free(v);
		}
		if (*end == '?')
			query = 1;
		p = *end ? end + 1 : end;
	}
	return 0;
}

static void pct_append(char *out, size_t *o, const unsigned char *v, size_t n,
                       int all)
{
	static const char hexd[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		unsigned char c = v[i];
		if (!all && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		             (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		             c == '_' || c == '~' || c == '@' || c == '+')) {
			out[(*o)++] = (char)c;
		} else {
			out[(*o)++] = '%';
			out[(*o)++] = hexd[c >> 4];
			out[(*o)++] = hexd[c & 15];
		}
	}
}

char *p11_uri_make(const char *token, const unsigned char *id, size_t idlen,
                   const char *object)
{
	size_t n = 64 +
	           3 * (strlen(token) + idlen + (object ? strlen(object) : 0));
	char *out = malloc(n);
	size_t o = 0;

	if (out == NULL)
		return NULL;
	memcpy(out, "pkcs11:token=", 13);
	o = 13;
	pct_append(out, &o, (const unsigned char *)token, strlen(token), 0);
	if (id && idlen) {
		memcpy(out + o, ";id=", 4);
		o += 4;
		pct_append(out, &o, id, idlen, 1);
	}
	if (object) {
		memcpy(out + o, ";object=", 8);
		o += 8;
		pct_append(out, &o, (const unsigned char *)object,
		           strlen(object), 0);
	}
	memcpy(out + o, ";type=private", 14);
	return out;
}
