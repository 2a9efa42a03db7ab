/* p11 -- private keys on PKCS#11 tokens (see p11.h). */

/* The RSA_METHOD / EC_KEY_METHOD hooks are the supported way in OpenSSL 3.0
 * to have a key whose private operation happens elsewhere (pkcs11-provider
 * is not in Debian 12).  They are marked deprecated; we use them knowingly. */
#define OPENSSL_SUPPRESS_DEPRECATED

#include "p11.h"
#include "util.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <p11-kit/pkcs11.h>

p11_report_fn p11_reporter;

#define PIN_MAX      256
#define MAX_SESSIONS 256

/* ---- CKR names --------------------------------------------------------- */

static const char *ckr_name(CK_RV rv)
{
	static __thread char buf[32];
	static const struct {
		CK_RV rv;
		const char *name;
	} names[] = {
#define N(x) { x, #x }
		N(CKR_OK),
		N(CKR_CANCEL),
		N(CKR_HOST_MEMORY),
		N(CKR_SLOT_ID_INVALID),
		N(CKR_GENERAL_ERROR),
		N(CKR_FUNCTION_FAILED),
		N(CKR_ARGUMENTS_BAD),
		N(CKR_ATTRIBUTE_TYPE_INVALID),
		N(CKR_ATTRIBUTE_VALUE_INVALID),
		N(CKR_DATA_INVALID),
		N(CKR_DATA_LEN_RANGE),
		N(CKR_DEVICE_ERROR),
		N(CKR_DEVICE_MEMORY),
		N(CKR_DEVICE_REMOVED),
		N(CKR_FUNCTION_CANCELED),
		N(CKR_FUNCTION_NOT_SUPPORTED),
		N(CKR_KEY_HANDLE_INVALID),
		N(CKR_KEY_SIZE_RANGE),
		N(CKR_KEY_TYPE_INCONSISTENT),
		N(CKR_KEY_FUNCTION_NOT_PERMITTED),
		N(CKR_MECHANISM_INVALID),
		N(CKR_MECHANISM_PARAM_INVALID),
		N(CKR_OBJECT_HANDLE_INVALID),
		N(CKR_OPERATION_ACTIVE),
		N(CKR_OPERATION_NOT_INITIALIZED),
		N(CKR_PIN_INCORRECT),
		N(CKR_PIN_INVALID),
		N(CKR_PIN_LEN_RANGE),
		N(CKR_PIN_EXPIRED),
		N(CKR_PIN_LOCKED),
		N(CKR_SESSION_CLOSED),
		N(CKR_SESSION_COUNT),
		N(CKR_SESSION_HANDLE_INVALID),
		N(CKR_TEMPLATE_INCOMPLETE),
		N(CKR_TEMPLATE_INCONSISTENT),
		N(CKR_TOKEN_NOT_PRESENT),
		N(CKR_TOKEN_NOT_RECOGNIZED),
		N(CKR_TOKEN_WRITE_PROTECTED),
		N(CKR_USER_ALREADY_LOGGED_IN),
		N(CKR_USER_NOT_LOGGED_IN),
		N(CKR_USER_PIN_NOT_INITIALIZED),
		N(CKR_USER_TYPE_INVALID),
		N(CKR_BUFFER_TOO_SMALL),
		N(CKR_CRYPTOKI_NOT_INITIALIZED),
		N(CKR_CRYPTOKI_ALREADY_INITIALIZED),
#undef N
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].rv == rv)
			return names[i].name;
	snprintf(buf, sizeof(buf), "CKR 0x%lx", (unsigned long)rv);
	return buf;
}

/* Errors after which the token (or our link to it) is not to be trusted
 * until the module has been initialized again. */
static int ckr_is_device(CK_RV rv)
{
	switch (rv) {
	case CKR_GENERAL_ERROR:
	case CKR_DEVICE_ERROR:
	case CKR_DEVICE_MEMORY:
	case CKR_DEVICE_REMOVED:
	case CKR_TOKEN_NOT_PRESENT:
	case CKR_TOKEN_NOT_RECOGNIZED:
	case CKR_SESSION_HANDLE_INVALID:
	case CKR_SESSION_CLOSED:
	case CKR_CRYPTOKI_NOT_INITIALIZED:
	case CKR_USER_NOT_LOGGED_IN:
	case CKR_SLOT_ID_INVALID:
		return 1;
	default:
		return 0;
	}
}

static int ckr_is_pin(CK_RV rv)
{
	return rv == CKR_PIN_INCORRECT || rv == CKR_PIN_INVALID ||
	       rv == CKR_PIN_LEN_RANGE || rv == CKR_PIN_EXPIRED ||
	       rv == CKR_PIN_LOCKED;
}

static void report(int is_error, const char *fmt, ...) PRINTFLIKE(2, 3);
static void report(int is_error, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	if (p11_reporter == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	p11_reporter(is_error, buf);
}

static __thread char last_err[512];

const char *p11_last_error(void)
{
	return last_err;
}

/* ---- RFC 7512 URIs ------------------------------------------------------ */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

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
			h = hexval((unsigned char)s[i + 1]);
			l = hexval((unsigned char)s[i + 2]);
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
	free(u->token);
	free(u->manufacturer);
	free(u->serial);
	free(u->model);
	free(u->object);
	free(u->id);
	free(u->pin_source);
	free(u->module_path);
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

/* ---- modules (process-wide) -------------------------------------------- */

struct p11_module {
	char *path;
	void *dl;
	CK_FUNCTION_LIST *f;
	int refs;
	/* read-held around every call on the module; write-held to
	 * finalize and initialize it again */
	pthread_rwlock_t rw;
	pthread_mutex_t mu; /* serializes reinitialization */
	unsigned gen;       /* bumped by each C_Initialize attempt */
	int ok;             /* the last C_Initialize succeeded */
	CK_RV init_rv;
	struct p11_module *next;
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct p11_module *reg;

static CK_RV module_initialize(struct p11_module *m)
{
	CK_C_INITIALIZE_ARGS args;
	CK_RV rv;

	memset(&args, 0, sizeof(args));
	args.flags = CKF_OS_LOCKING_OK;
	rv = m->f->C_Initialize(&args);
	if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED)
		rv = CKR_OK;
	m->gen++;
	m->ok = rv == CKR_OK;
	m->init_rv = rv;
	return rv;
}

static struct p11_module *module_get(const char *path, char *err, size_t errlen)
{
	struct p11_module *m;
	CK_C_GetFunctionList getfl;
	pthread_rwlockattr_t ra;

	pthread_mutex_lock(&reg_mu);
	for (m = reg; m; m = m->next)
		if (strcmp(m->path, path) == 0) {
			m->refs++;
			pthread_mutex_unlock(&reg_mu);
			return m;
		}
	m = calloc(1, sizeof(*m));
	if (m == NULL || (m->path = strdup(path)) == NULL) {
		free(m);
		pthread_mutex_unlock(&reg_mu);
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	m->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (m->dl == NULL) {
		seterr(err, errlen, "PKCS#11 module %s: %s", path, dlerror());
		goto fail;
	}
	*(void **)&getfl = dlsym(m->dl, "C_GetFunctionList");
	if (getfl == NULL || getfl(&m->f) != CKR_OK || m->f == NULL) {
		seterr(err, errlen,
		       "%s is not a PKCS#11 module (no "
		       "C_GetFunctionList)",
		       path);
		goto fail;
	}
	/* writers first: a reconnect must not starve behind signatures */
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(
	        &ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&m->rw, &ra);
	pthread_rwlockattr_destroy(&ra);
	pthread_mutex_init(&m->mu, NULL);
	module_initialize(m); /* a failure is kept: tokens will say so */
	m->refs = 1;
	m->next = reg;
	reg = m;
	pthread_mutex_unlock(&reg_mu);
	return m;
fail:
	if (m->dl)
		dlclose(m->dl);
	free(m->path);
	free(m);
	pthread_mutex_unlock(&reg_mu);
	return NULL;
}

static void module_put(struct p11_module *m)
{
	struct p11_module **pp;

	if (m == NULL)
		return;
	pthread_mutex_lock(&reg_mu);
	if (--m->refs > 0) {
		pthread_mutex_unlock(&reg_mu);
		return;
	}
	for (pp = &reg; *pp; pp = &(*pp)->next)
		if (*pp == m) {
			*pp = m->next;
			break;
		}
	pthread_mutex_unlock(&reg_mu);
	if (m->ok)
		m->f->C_Finalize(NULL);
	dlclose(m->dl);
	pthread_rwlock_destroy(&m->rw);
	pthread_mutex_destroy(&m->mu);
	free(m->path);
	free(m);
}

/* Finalize and initialize again, unless someone else did since seen_gen. */
static void module_reinit(struct p11_module *m, unsigned seen_gen)
{
	pthread_mutex_lock(&m->mu);
	pthread_rwlock_wrlock(&m->rw);
	if (m->gen == seen_gen) {
		if (m->ok)
			m->f->C_Finalize(NULL);
		module_initialize(m);
	}
	pthread_rwlock_unlock(&m->rw);
	pthread_mutex_unlock(&m->mu);
}

/* ---- tokens and keys ------------------------------------------------------ */

enum tok_state { TOK_NEW = 0, TOK_OK, TOK_DOWN, TOK_LOGIN_FAILED };

struct p11_token {
	struct p11_ctx *ctx;
	struct p11_module *mod;
	char *label, *manufacturer, *serial, *model;
	long slot_id;
	char *pin; /* kept for logging in again after a reconnect */
	size_t pinlen;
	char *pin_origin; /* the file, for messages (never the PIN) */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	enum tok_state state;
	unsigned gen; /* module generation of slot, sessions and login */
	CK_SLOT_ID slot;
	CK_SESSION_HANDLE *pool;
	int nfree, nopen;
	time_t down_since, last_try;
	char why[256]; /* why it is down / login failed */
	struct p11_token *next;
};

enum key_state { KEY_NEW = 0, KEY_FOUND, KEY_MISSING };

struct p11_key {
	struct p11_token *tok;
	char *uri;
	unsigned char *id;
	size_t idlen;
	char *object;
	EVP_PKEY *pub; /* what the key must match */
	CK_KEY_TYPE type;
	CK_OBJECT_HANDLE h;
	unsigned gen; /* token generation h belongs to */
	enum key_state state;
	int mismatch; /* the object is not the certificate's key */
	time_t last_try;
	char why[256];
	struct p11_key *next;
};

struct p11_ctx {
	char *module;
	char **pin_tokens, **pin_files;
	size_t npins;
	int sessions, retry;
	struct p11_token *tokens;
	struct p11_key *keys;
};

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

struct p11_ctx *p11_ctx_new(const struct p11_settings *set)
{
	struct p11_ctx *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->module = dup_or_null(set->module);
	c->sessions = set->sessions > 0 ? set->sessions : 8;
	if (c->sessions > MAX_SESSIONS)
		c->sessions = MAX_SESSIONS;
	c->retry = set->retry > 0 ? set->retry : 5;
	if (set->npins) {
		c->pin_tokens = calloc(set->npins, sizeof(char *));
		c->pin_files = calloc(set->npins, sizeof(char *));
		if (c->pin_tokens == NULL || c->pin_files == NULL) {
			p11_ctx_free(c);
			return NULL;
		}
		for (size_t i = 0; i < set->npins; i++) {
			c->pin_tokens[i] = strdup(set->pin_tokens[i]);
			c->pin_files[i] = strdup(set->pin_files[i]);
			c->npins = i + 1;
			if (!c->pin_tokens[i] || !c->pin_files[i]) {
				p11_ctx_free(c);
				return NULL;
			}
		}
	}
	return c;
}

/* Also frees a token that token_for() built only in part. */
static void token_free(struct p11_token *t)
{
	if (t->mod) {
		/* sessions of an older module generation died with
		 * C_Finalize */
		pthread_rwlock_rdlock(&t->mod->rw);
		if (t->gen == t->mod->gen && t->mod->ok)
			for (int i = 0; i < t->nfree; i++)
				t->mod->f->C_CloseSession(t->pool[i]);
		pthread_rwlock_unlock(&t->mod->rw);
		module_put(t->mod);
	}
	if (t->pin) {
		OPENSSL_cleanse(t->pin, t->pinlen);
		free(t->pin);
	}
	free(t->pin_origin);
	free(t->label);
	free(t->manufacturer);
	free(t->serial);
	free(t->model);
	free(t->pool);
	pthread_mutex_destroy(&t->mu);
	pthread_cond_destroy(&t->cv);
	free(t);
}

void p11_ctx_free(struct p11_ctx *c)
{
	if (c == NULL)
		return;
	while (c->keys) {
		struct p11_key *k = c->keys;
		c->keys = k->next;
		free(k->uri);
		free(k->id);
		free(k->object);
		EVP_PKEY_free(k->pub);
		free(k);
	}
	while (c->tokens) {
		struct p11_token *t = c->tokens;
		c->tokens = t->next;
		token_free(t);
	}
	for (size_t i = 0; i < c->npins; i++) {
		free(c->pin_tokens[i]);
		free(c->pin_files[i]);
	}
	free(c->pin_tokens);
	free(c->pin_files);
	free(c->module);
	free(c);
}

static const char *tname(const struct p11_token *t)
{
	return t->label ? t->label : t->serial ? t->serial : "(any)";
}

static int str_same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

/* A space-padded PKCS#11 text field as a C string. */
static void padded(char *out, const CK_UTF8CHAR *in, size_t n)
{
	while (n > 0 && (in[n - 1] == ' ' || in[n - 1] == '\0'))
		n--;
	memcpy(out, in, n);
	out[n] = '\0';
}

static int token_matches(const struct p11_token *t, const CK_TOKEN_INFO *ti)
{
	char buf[40];

	padded(buf, ti->label, sizeof(ti->label));
	if (t->label && strcmp(buf, t->label) != 0)
		return 0;
	padded(buf, ti->manufacturerID, sizeof(ti->manufacturerID));
	if (t->manufacturer && strcmp(buf, t->manufacturer) != 0)
		return 0;
	padded(buf, ti->serialNumber, sizeof(ti->serialNumber));
	if (t->serial && strcmp(buf, t->serial) != 0)
		return 0;
	padded(buf, ti->model, sizeof(ti->model));
	if (t->model && strcmp(buf, t->model) != 0)
		return 0;
	return 1;
}

/* Mark t down (caller holds t->mu) and say so once. */
static void token_down(struct p11_token *t, const char *why)
{
	snprintf(t->why, sizeof(t->why), "%s", why);
	if (t->state == TOK_DOWN)
		return;
	t->state = TOK_DOWN;
	t->down_since = t->last_try = time(NULL);
	report(1,
	       "PKCS#11 token \"%s\" unavailable (%s): mail to be signed with "
	       "its keys gets the on_error action until the token returns; "
	       "retrying every %d s",
	       tname(t), why, t->ctx->retry);
}

/*
 * Slot, a first session and the login for the module's current generation.
 * Caller holds the module read lock and t->mu.  Returns 0, or -1 with err
 * (the token is then down or its login failed).
 */
static int token_prepare(struct p11_token *t, char *err, size_t errlen)
{
	CK_FUNCTION_LIST *f = t->mod->f;
	CK_SLOT_ID slots[64];
	CK_ULONG n = 64;
	CK_TOKEN_INFO ti;
	CK_SESSION_HANDLE s;
	CK_RV rv;
	int found = 0;
	char why[256];

	if (t->state == TOK_LOGIN_FAILED)
		return seterr(err, errlen, "%s", t->why);
	if (t->gen == t->mod->gen && t->state == TOK_OK)
		return 0;
	if (t->gen == t->mod->gen) /* same generation, token was down */
		for (int i = 0; i < t->nfree; i++)
			f->C_CloseSession(t->pool[i]);
	t->nfree = t->nopen = 0;
	t->gen = t->mod->gen;
	if (!t->mod->ok) {
		snprintf(why, sizeof(why), "C_Initialize of %s: %s",
		         t->mod->path, ckr_name(t->mod->init_rv));
		goto down;
	}
	rv = f->C_GetSlotList(CK_TRUE, slots, &n);
	if (rv != CKR_OK) {
		snprintf(why, sizeof(why), "C_GetSlotList: %s", ckr_name(rv));
		goto down;
	}
	for (CK_ULONG i = 0; i < n && !found; i++) {
		if (t->slot_id >= 0 && (CK_SLOT_ID)t->slot_id != slots[i])
			continue;
		if (f->C_GetTokenInfo(slots[i], &ti) == CKR_OK &&
		    (ti.flags & CKF_TOKEN_INITIALIZED) &&
		    token_matches(t, &ti)) {
			t->slot = slots[i];
			found = 1;
		}
	}
	if (!found) {
		snprintf(why, sizeof(why), "no such token in %s", t->mod->path);
		goto down;
	}
	rv = f->C_OpenSession(t->slot, CKF_SERIAL_SESSION, NULL, NULL, &s);
	if (rv != CKR_OK) {
		snprintf(why, sizeof(why), "C_OpenSession: %s", ckr_name(rv));
		goto down;
	}
	if (t->pin) {
		rv = f->C_Login(s, CKU_USER, (CK_UTF8CHAR *)t->pin,
		                (CK_ULONG)t->pinlen);
		if (rv == CKR_USER_ALREADY_LOGGED_IN)
			rv = CKR_OK;
	} else if (ti.flags & CKF_LOGIN_REQUIRED) {
		f->C_CloseSession(s);
		t->state = TOK_LOGIN_FAILED;
		snprintf(t->why, sizeof(t->why),
		         "token \"%s\" needs a login and no PIN is configured "
		         "(pin-source=file:PATH in the URI, or a pin_file in "
		         "pkcs11_tokens)",
		         tname(t));
		report(1, "PKCS#11 %s", t->why);
		return seterr(err, errlen, "%s", t->why);
	} else
		rv = CKR_OK;
	if (ckr_is_pin(rv)) {
		f->C_CloseSession(s);
		t->state = TOK_LOGIN_FAILED;
		snprintf(t->why, sizeof(t->why),
		         "no login to token \"%s\" (its PIN was refused)",
		         tname(t));
		/* said once; tokens lock after a few wrong PINs, so it is
		 * not tried again until the configuration is reloaded */
		report(1,
		       "PKCS#11 token \"%s\": the PIN from %s was rejected "
		       "(%s); not tried again until reload",
		       tname(t), t->pin_origin, ckr_name(rv));
		return seterr(err, errlen, "%s", t->why);
	}
	if (rv != CKR_OK) {
		f->C_CloseSession(s);
		snprintf(why, sizeof(why), "C_Login: %s", ckr_name(rv));
		goto down;
	}
	t->pool[t->nfree++] = s;
	t->nopen = 1;
	if (t->state == TOK_DOWN)
		report(0,
		       "PKCS#11 token \"%s\" is back after %ld s; signing "
		       "resumes",
		       tname(t), (long)(time(NULL) - t->down_since));
	t->state = TOK_OK;
	return 0;
down:
	token_down(t, why);
	return seterr(err, errlen, "PKCS#11 token \"%s\": %s", tname(t), why);
}

/* A session from t's pool; caller holds t->mu (released while waiting).
 * Returns 0 or -1 with err. */
static int session_get(struct p11_token *t, CK_SESSION_HANDLE *s, char *err,
                       size_t errlen)
{
	CK_RV rv;

	for (;;) {
		if (t->state != TOK_OK)
			return seterr(err, errlen, "token \"%s\": %s", tname(t),
			              t->why);
		if (t->nfree > 0) {
			*s = t->pool[--t->nfree];
			return 0;
		}
		if (t->nopen < t->ctx->sessions) {
			rv = t->mod->f->C_OpenSession(t->slot,
			                              CKF_SERIAL_SESSION, NULL,
			                              NULL, s);
			if (rv == CKR_OK) {
				t->nopen++;
				return 0;
			}
			if (rv != CKR_SESSION_COUNT || t->nopen == 0) {
				char why[128];
				snprintf(why, sizeof(why), "C_OpenSession: %s",
				         ckr_name(rv));
				if (ckr_is_device(rv))
					token_down(t, why);
				return seterr(err, errlen, "token \"%s\": %s",
				              tname(t), why);
			}
			/* the token's own limit: wait for one of ours */
		}
		pthread_cond_wait(&t->cv, &t->mu);
	}
}

static void session_put(struct p11_token *t, CK_SESSION_HANDLE s, unsigned gen)
{
	if (gen == t->gen && t->state == TOK_OK)
		t->pool[t->nfree++] = s;
	else if (gen == t->gen && t->nopen > 0) {
		t->mod->f->C_CloseSession(s);
		t->nopen--;
	}
	pthread_cond_signal(&t->cv);
}

static int get_attr(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE s,
                    CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type,
                    unsigned char **val, CK_ULONG *len)
{
	CK_ATTRIBUTE a = { type, NULL, 0 };

	*val = NULL;
	if (f->C_GetAttributeValue(s, o, &a, 1) != CKR_OK ||
	    a.ulValueLen == (CK_ULONG)-1)
		return -1;
	a.pValue = malloc(a.ulValueLen ? a.ulValueLen : 1);
	if (a.pValue == NULL)
		return -1;
	if (f->C_GetAttributeValue(s, o, &a, 1) != CKR_OK) {
		free(a.pValue);
		return -1;
	}
	*val = a.pValue;
	*len = a.ulValueLen;
	return 0;
}

/* Objects of class cls with the key's id / label: up to max handles. */
static CK_RV find_objects(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE s,
                          CK_OBJECT_CLASS cls, const unsigned char *id,
                          size_t idlen, const char *label,
                          CK_OBJECT_HANDLE *out, CK_ULONG max, CK_ULONG *n)
{
	CK_ATTRIBUTE tmpl[3];
	CK_ULONG nt = 0;
	CK_RV rv;

	tmpl[nt++] = (CK_ATTRIBUTE){ CKA_CLASS, &cls, sizeof(cls) };
	if (id)
		tmpl[nt++] = (CK_ATTRIBUTE){ CKA_ID, (void *)id, idlen };
	if (label)
		tmpl[nt++] = (CK_ATTRIBUTE){ CKA_LABEL, (void *)label,
			                     strlen(label) };
	*n = 0;
	rv = f->C_FindObjectsInit(s, tmpl, nt);
	if (rv != CKR_OK)
		return rv;
	rv = f->C_FindObjects(s, out, max, n);
	f->C_FindObjectsFinal(s);
	return rv;
}

static int key_sign_raw(struct p11_key *k, CK_SESSION_HANDLE s,
                        CK_MECHANISM_TYPE mech, const unsigned char *in,
                        size_t inlen, unsigned char *out, size_t *outlen,
                        CK_RV *rvp);

/* r||s of an ECDSA signature as DER ECDSA-Sig-Value, or NULL. */
static ECDSA_SIG *ecdsa_from_raw(const unsigned char *raw, size_t len)
{
	ECDSA_SIG *sig = ECDSA_SIG_new();
	BIGNUM *r, *s;

	if (sig == NULL || len == 0 || len % 2)
		goto fail;
	r = BN_bin2bn(raw, (int)(len / 2), NULL);
	s = BN_bin2bn(raw + len / 2, (int)(len / 2), NULL);
	if (r == NULL || s == NULL || !ECDSA_SIG_set0(sig, r, s)) {
		BN_free(r);
		BN_free(s);
		goto fail;
	}
	return sig;
fail:
	ECDSA_SIG_free(sig);
	return NULL;
}

/* Does the object h on the token hold the private half of k->pub?  RSA:
 * the modulus is compared; EC: a test signature is verified. */
static int key_check_pub(struct p11_key *k, CK_SESSION_HANDLE s,
                         CK_OBJECT_HANDLE h, char *why, size_t whylen)
{
	CK_FUNCTION_LIST *f = k->tok->mod->f;
	unsigned char *mod = NULL;
	CK_ULONG mlen = 0;
	BIGNUM *n = NULL, *want = NULL;
	int ok = 0;

	if (k->type == CKK_RSA) {
		if (!EVP_PKEY_is_a(k->pub, "RSA")) {
			snprintf(why, whylen,
			         "is an RSA key, the certificate's "
			         "is not");
			return 0;
		}
		if (get_attr(f, s, h, CKA_MODULUS, &mod, &mlen) == 0 &&
		    (n = BN_bin2bn(mod, (int)mlen, NULL)) != NULL &&
		    EVP_PKEY_get_bn_param(k->pub, OSSL_PKEY_PARAM_RSA_N, &want))
			ok = BN_cmp(n, want) == 0;
		else
			ok = -1;
		free(mod);
		BN_free(n);
		BN_free(want);
	} else if (k->type == CKK_EC) {
		unsigned char dg[32], raw[160], *der = NULL;
		size_t rawlen = sizeof(raw);
		EVP_PKEY_CTX *pc = NULL;
		ECDSA_SIG *sig;
		CK_RV rv;
		int dlen;

		if (!EVP_PKEY_is_a(k->pub, "EC")) {
			snprintf(why, whylen,
			         "is an EC key, the certificate's "
			         "is not");
			return 0;
		}
		k->h = h;
		if (RAND_bytes(dg, sizeof(dg)) != 1 ||
		    key_sign_raw(k, s, CKM_ECDSA, dg, sizeof(dg), raw, &rawlen,
		                 &rv) != 0) {
			snprintf(why, whylen, "test signature failed");
			return 0;
		}
		sig = ecdsa_from_raw(raw, rawlen);
		dlen = sig ? i2d_ECDSA_SIG(sig, &der) : -1;
		pc = EVP_PKEY_CTX_new(k->pub, NULL);
		ok = dlen > 0 && pc && EVP_PKEY_verify_init(pc) == 1 &&
		     EVP_PKEY_verify(pc, der, (size_t)dlen, dg, sizeof(dg)) ==
		             1;
		EVP_PKEY_CTX_free(pc);
		ECDSA_SIG_free(sig);
		OPENSSL_free(der);
		ERR_clear_error();
	} else {
		snprintf(why, whylen, "key type %lu is neither RSA nor EC",
		         (unsigned long)k->type);
		return 0;
	}
	if (ok == 0)
		snprintf(why, whylen, "is not the key of the certificate");
	else if (ok < 0)
		snprintf(why, whylen, "public part cannot be read");
	return ok == 1;
}

/*
 * Find k's object for the token's current generation.  Caller holds the
 * module read lock and t->mu, token prepared.  Returns 0; 1 when the key
 * is not (or no longer) there, or does not match (k->why says which);
 * -1 on a token error (err).
 */
static int key_resolve(struct p11_key *k, char *err, size_t errlen)
{
	struct p11_token *t = k->tok;
	CK_FUNCTION_LIST *f = t->mod->f;
	CK_OBJECT_HANDLE h[2];
	CK_ULONG n = 0;
	CK_SESSION_HANDLE s;
	unsigned char *val;
	CK_ULONG len;
	CK_RV rv;
	char why[256];
	int rc = 1;

	if (k->gen == t->gen && k->state == KEY_FOUND)
		return 0;
	if (session_get(t, &s, err, errlen) != 0)
		return -1;
	rv = find_objects(f, s, CKO_PRIVATE_KEY, k->id, k->idlen, k->object, h,
	                  2, &n);
	if (rv != CKR_OK) {
		snprintf(why, sizeof(why), "C_FindObjects: %s", ckr_name(rv));
		if (ckr_is_device(rv)) {
			session_put(t, s, t->gen);
			token_down(t, why);
			return seterr(err, errlen, "token \"%s\": %s", tname(t),
			              why);
		}
		snprintf(k->why, sizeof(k->why), "%s", why);
		goto out;
	}
	if (n == 0) {
		/* the key, or the whole token?  SoftHSM2, for one, keeps the
		 * slot but fails C_GetTokenInfo when its store went away */
		CK_TOKEN_INFO ti;
		rv = f->C_GetTokenInfo(t->slot, &ti);
		if (rv != CKR_OK || !token_matches(t, &ti)) {
			snprintf(why, sizeof(why), "C_GetTokenInfo: %s",
			         rv != CKR_OK ? ckr_name(rv)
			                      : "another token in the slot");
			session_put(t, s, t->gen);
			token_down(t, why);
			return seterr(err, errlen, "token \"%s\": %s", tname(t),
			              why);
		}
		snprintf(k->why, sizeof(k->why),
		         "PKCS#11 key %s not found on token \"%s\"", k->uri,
		         tname(t));
		goto out;
	}
	if (n > 1) {
		snprintf(k->why, sizeof(k->why),
		         "PKCS#11 URI %s names more than one private key on "
		         "token \"%s\" (add id= or object=)",
		         k->uri, tname(t));
		goto out;
	}
	if (get_attr(f, s, h[0], CKA_KEY_TYPE, &val, &len) != 0 ||
	    len != sizeof(CK_KEY_TYPE)) {
		free(val);
		snprintf(k->why, sizeof(k->why), "PKCS#11 key %s: no key type",
		         k->uri);
		goto out;
	}
	memcpy(&k->type, val, sizeof(k->type));
	free(val);
	if (k->id == NULL && get_attr(f, s, h[0], CKA_ID, &val, &len) == 0) {
		k->id = val;
		k->idlen = len;
	}
	if (!key_check_pub(k, s, h[0], why, sizeof(why))) {
		snprintf(k->why, sizeof(k->why), "PKCS#11 key %s %s", k->uri,
		         why);
		k->mismatch = 1;
		goto out;
	}
	k->mismatch = 0;
	k->h = h[0];
	k->gen = t->gen;
	if (k->state == KEY_MISSING)
		report(0, "PKCS#11 key %s found again on token \"%s\"", k->uri,
		       tname(t));
	k->state = KEY_FOUND;
	rc = 0;
out:
	session_put(t, s, t->gen);
	if (rc == 1) {
		if (k->state != KEY_MISSING)
			report(1, "%s", k->why);
		k->state = KEY_MISSING;
		k->last_try = time(NULL);
		seterr(err, errlen, "%s", k->why);
	}
	return rc;
}

/* One C_SignInit + C_Sign on session s. */
static int key_sign_raw(struct p11_key *k, CK_SESSION_HANDLE s,
                        CK_MECHANISM_TYPE mech, const unsigned char *in,
                        size_t inlen, unsigned char *out, size_t *outlen,
                        CK_RV *rvp)
{
	CK_FUNCTION_LIST *f = k->tok->mod->f;
	CK_MECHANISM m = { mech, NULL, 0 };
	CK_ULONG olen = *outlen;
	CK_RV rv;

	rv = f->C_SignInit(s, &m, k->h);
	if (rv == CKR_OK)
		rv = f->C_Sign(s, (CK_BYTE *)in, (CK_ULONG)inlen, out, &olen);
	*rvp = rv;
	if (rv != CKR_OK)
		return -1;
	*outlen = olen;
	return 0;
}

int p11_key_ready(struct p11_key *k, char *err, size_t errlen)
{
	struct p11_token *t = k->tok;
	struct p11_module *m = t->mod;
	time_t now = time(NULL);
	unsigned gen;
	int rc;

	pthread_mutex_lock(&t->mu);
	if (t->state == TOK_LOGIN_FAILED) {
		seterr(err, errlen, "%s", t->why);
		pthread_mutex_unlock(&t->mu);
		return 0;
	}
	if (t->state == TOK_DOWN) {
		if (now - t->last_try < t->ctx->retry) {
			seterr(err, errlen,
			       "PKCS#11 token \"%s\" down since %ld s (%s); "
			       "next "
			       "attempt within %d s",
			       tname(t), (long)(now - t->down_since), t->why,
			       t->ctx->retry);
			pthread_mutex_unlock(&t->mu);
			return 0;
		}
		t->last_try = now;
		pthread_mutex_unlock(&t->mu);
		/* this caller reconnects; the others fail fast meanwhile */
		pthread_mutex_lock(&m->mu);
		gen = m->gen;
		pthread_mutex_unlock(&m->mu);
		module_reinit(m, gen);
		pthread_mutex_lock(&t->mu);
	} else if (k->state == KEY_MISSING) {
		if (now - k->last_try < t->ctx->retry) {
			seterr(err, errlen, "%s", k->why);
			pthread_mutex_unlock(&t->mu);
			return 0;
		}
		k->last_try = now;
	} else if (t->state == TOK_OK && k->state == KEY_FOUND &&
	           t->gen == m->gen && k->gen == t->gen) {
		pthread_mutex_unlock(&t->mu);
		return 1;
	}
	pthread_mutex_unlock(&t->mu);
	pthread_rwlock_rdlock(&m->rw);
	pthread_mutex_lock(&t->mu);
	rc = token_prepare(t, err, errlen);
	if (rc == 0)
		rc = key_resolve(k, err, errlen);
	pthread_mutex_unlock(&t->mu);
	pthread_rwlock_unlock(&m->rw);
	return rc == 0;
}

/* Sign on the token with up to one retry (a stale object handle after a
 * reconnect by another context).  Fills last_err on failure. */
static int key_sign(struct p11_key *k, CK_MECHANISM_TYPE mech,
                    const unsigned char *in, size_t inlen, unsigned char *out,
                    size_t *outlen)
{
	struct p11_token *t = k->tok;
	struct p11_module *m = t->mod;
	CK_SESSION_HANDLE s;
	CK_RV rv = CKR_OK;
	unsigned gen;
	size_t cap = *outlen;
	char why[256];
	int rc = -1;

	last_err[0] = '\0';
	for (int attempt = 0; attempt < 2; attempt++) {
		if (!p11_key_ready(k, last_err, sizeof(last_err)))
			return -1;
		pthread_rwlock_rdlock(&m->rw);
		pthread_mutex_lock(&t->mu);
		if (token_prepare(t, last_err, sizeof(last_err)) != 0 ||
		    key_resolve(k, last_err, sizeof(last_err)) != 0 ||
		    session_get(t, &s, last_err, sizeof(last_err)) != 0) {
			pthread_mutex_unlock(&t->mu);
			pthread_rwlock_unlock(&m->rw);
			return -1;
		}
		gen = t->gen;
		pthread_mutex_unlock(&t->mu);

		*outlen = cap;
		rc = key_sign_raw(k, s, mech, in, inlen, out, outlen, &rv);

		pthread_mutex_lock(&t->mu);
		if (rc == 0) {
			session_put(t, s, gen);
		} else if (rv == CKR_KEY_HANDLE_INVALID ||
		           rv == CKR_OBJECT_HANDLE_INVALID) {
			session_put(t, s, gen);
			k->gen = 0; /* look for it again */
		} else if (ckr_is_device(rv)) {
			if (gen == t->gen && t->nopen > 0)
				t->nopen--; /* not back into the pool */
			snprintf(why, sizeof(why), "C_Sign: %s", ckr_name(rv));
			if (gen == t->gen)
				token_down(t, why);
			pthread_cond_signal(&t->cv);
		} else {
			session_put(t, s, gen);
		}
		pthread_mutex_unlock(&t->mu);
		pthread_rwlock_unlock(&m->rw);
		if (rc == 0)
			return 0;
		snprintf(last_err, sizeof(last_err),
		         "PKCS#11 signature with %s on token \"%s\": %s",
		         k->uri, tname(t), ckr_name(rv));
		if (k->gen != 0)
			break; /* only a stale handle is worth a second try */
	}
	return -1;
}

/* ---- EVP_PKEY wrappers -------------------------------------------------- */

static RSA_METHOD *rsa_meth;
static EC_KEY_METHOD *ec_meth;
static int rsa_idx = -1, ec_idx = -1;

static int rsa_priv_enc(int flen, const unsigned char *from, unsigned char *to,
                        RSA *rsa, int padding)
{
	struct p11_key *k = RSA_get_ex_data(rsa, rsa_idx);
	CK_MECHANISM_TYPE mech;
	size_t outlen = (size_t)RSA_size(rsa);

	if (k == NULL)
		return -1;
	if (padding == RSA_PKCS1_PADDING)
		mech = CKM_RSA_PKCS;
	else if (padding == RSA_NO_PADDING)
		mech = CKM_RSA_X_509;
	else {
		snprintf(last_err, sizeof(last_err),
		         "RSA padding %d is not supported on PKCS#11 keys",
		         padding);
		return -1;
	}
	if (key_sign(k, mech, from, (size_t)flen, to, &outlen) != 0)
		return -1;
	return (int)outlen;
}

static int rsa_priv_dec(int flen, const unsigned char *from, unsigned char *to,
                        RSA *rsa, int padding)
{
	snprintf(last_err, sizeof(last_err),
	         "decryption with PKCS#11 keys is not supported");
	return -1;
}

static ECDSA_SIG *ec_sign_sig(const unsigned char *dgst, int dlen,
                              const BIGNUM *kinv, const BIGNUM *r, EC_KEY *ec)
{
	struct p11_key *k = EC_KEY_get_ex_data(ec, ec_idx);
	unsigned char raw[160];
	size_t rawlen = sizeof(raw);

	if (k == NULL ||
	    key_sign(k, CKM_ECDSA, dgst, (size_t)dlen, raw, &rawlen) != 0)
		return NULL;
	return ecdsa_from_raw(raw, rawlen);
}

static int ec_sign(int type, const unsigned char *dgst, int dlen,
                   unsigned char *sig, unsigned int *siglen, const BIGNUM *kinv,
                   const BIGNUM *r, EC_KEY *ec)
{
	ECDSA_SIG *s = ec_sign_sig(dgst, dlen, kinv, r, ec);
	unsigned char *p = sig;
	int len;

	if (s == NULL)
		return 0;
	len = i2d_ECDSA_SIG(s, &p);
	ECDSA_SIG_free(s);
	if (len <= 0)
		return 0;
	*siglen = (unsigned int)len;
	return 1;
}

static void methods_init(void)
{
	int (*sign_setup)(EC_KEY *, BN_CTX *, BIGNUM **, BIGNUM **) = NULL;

	rsa_meth = RSA_meth_dup(RSA_PKCS1_OpenSSL());
	if (rsa_meth) {
		RSA_meth_set1_name(rsa_meth, "smime-milter PKCS#11");
		RSA_meth_set_priv_enc(rsa_meth, rsa_priv_enc);
		RSA_meth_set_priv_dec(rsa_meth, rsa_priv_dec);
	}
	ec_meth = EC_KEY_METHOD_new(EC_KEY_OpenSSL());
	if (ec_meth) {
		EC_KEY_METHOD_get_sign((EC_KEY_METHOD *)EC_KEY_OpenSSL(), NULL,
		                       &sign_setup, NULL);
		EC_KEY_METHOD_set_sign(ec_meth, ec_sign, sign_setup,
		                       ec_sign_sig);
	}
	rsa_idx = RSA_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	ec_idx = EC_KEY_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* An EVP_PKEY with pub's public part whose private operations go to k. */
static EVP_PKEY *wrap_key(struct p11_key *k, EVP_PKEY *pub)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	EVP_PKEY *out = EVP_PKEY_new();

	pthread_once(&once, methods_init);
	if (out == NULL || rsa_meth == NULL || ec_meth == NULL)
		goto fail;
	if (EVP_PKEY_is_a(pub, "RSA")) {
		const RSA *r = EVP_PKEY_get0_RSA(pub);
		RSA *d = r ? RSAPublicKey_dup(r) : NULL;
		if (d == NULL || !RSA_set_method(d, rsa_meth) ||
		    !RSA_set_ex_data(d, rsa_idx, k) ||
		    !EVP_PKEY_assign_RSA(out, d)) {
			RSA_free(d);
			goto fail;
		}
	} else if (EVP_PKEY_is_a(pub, "EC")) {
		const EC_KEY *e = EVP_PKEY_get0_EC_KEY(pub);
		EC_KEY *d = e ? EC_KEY_dup(e) : NULL;
		if (d == NULL || !EC_KEY_set_method(d, ec_meth) ||
		    !EC_KEY_set_ex_data(d, ec_idx, k) ||
		    !EVP_PKEY_assign_EC_KEY(out, d)) {
			EC_KEY_free(d);
			goto fail;
		}
	} else
		goto fail;
	return out;
fail:
	ERR_clear_error();
	EVP_PKEY_free(out);
	return NULL;
}

/* ---- contexts: tokens and keys by URI ------------------------------------ */

static const char *pin_file_for(struct p11_ctx *c, const char *label)
{
	for (size_t i = 0; label && i < c->npins; i++)
		if (strcmp(c->pin_tokens[i], label) == 0)
			return c->pin_files[i];
	return NULL;
}

/* The context's token for u (created on first use). */
static struct p11_token *token_for(struct p11_ctx *c, const struct p11_uri *u,
                                   char *err, size_t errlen)
{
	const char *module = u->module_path ? u->module_path : c->module;
	const char *pinf;
	struct p11_token *t;
	char pin[PIN_MAX];
	int plen;

	if (module == NULL)
		return seterr(err, errlen,
		              "no PKCS#11 module: set "
		              "pkcs11_module in the configuration"),
		       NULL;
	if (!u->token && !u->serial && u->slot_id < 0)
		return seterr(err, errlen,
		              "the URI names no token (token= or "
		              "serial=)"),
		       NULL;
	for (t = c->tokens; t; t = t->next)
		if (strcmp(t->mod->path, module) == 0 &&
		    str_same(t->label, u->token) &&
		    str_same(t->serial, u->serial) &&
		    str_same(t->manufacturer, u->manufacturer) &&
		    str_same(t->model, u->model) && t->slot_id == u->slot_id)
			return t;
	pinf = u->pin_source ? u->pin_source : pin_file_for(c, u->token);
	plen = 0;
	if (pinf) {
		plen = secret_read_file(pinf, pin, sizeof(pin), err, errlen);
		if (plen < 0)
			return NULL;
	}
	t = calloc(1, sizeof(*t));
	if (t == NULL) {
		OPENSSL_cleanse(pin, sizeof(pin));
		return seterr(err, errlen, "out of memory"), NULL;
	}
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->cv, NULL);
	t->ctx = c;
	t->slot_id = u->slot_id;
	t->label = dup_or_null(u->token);
	t->serial = dup_or_null(u->serial);
	t->manufacturer = dup_or_null(u->manufacturer);
	t->model = dup_or_null(u->model);
	t->pool = calloc((size_t)c->sessions, sizeof(CK_SESSION_HANDLE));
	if (pinf) {
		t->pin = malloc((size_t)plen + 1);
		t->pin_origin = strdup(pinf);
		if (t->pin)
			memcpy(t->pin, pin, (size_t)plen + 1);
		t->pinlen = (size_t)plen;
	}
	OPENSSL_cleanse(pin, sizeof(pin));
	/* a label lost to a failed strdup would match any token */
	if (t->pool == NULL || (u->token && !t->label) ||
	    (u->serial && !t->serial) ||
	    (u->manufacturer && !t->manufacturer) || (u->model && !t->model) ||
	    (pinf && (!t->pin || !t->pin_origin))) {
		token_free(t);
		return seterr(err, errlen, "out of memory"), NULL;
	}
	t->mod = module_get(module, err, errlen);
	if (t->mod == NULL) {
		token_free(t);
		return NULL;
	}
	t->next = c->tokens;
	c->tokens = t;
	return t;
}

static struct p11_key *key_new(struct p11_ctx *c, const char *uri,
                               struct p11_uri *u, EVP_PKEY *pub, char *err,
                               size_t errlen)
{
	struct p11_token *t;
	struct p11_key *k;

	if (u->type != P11_ANY && u->type != P11_PRIVATE)
		return seterr(err, errlen, "%s: type must be private", uri),
		       NULL;
	if (u->id == NULL && u->object == NULL)
		return seterr(err, errlen,
		              "%s names no key (give id= or "
		              "object=)",
		              uri),
		       NULL;
	t = token_for(c, u, err, errlen);
	if (t == NULL)
		return NULL;
	k = calloc(1, sizeof(*k));
	if (k == NULL || (k->uri = strdup(uri)) == NULL) {
		free(k);
		return seterr(err, errlen, "out of memory"), NULL;
	}
	k->tok = t;
	k->id = u->id;
	k->idlen = u->idlen;
	k->object = u->object;
	u->id = NULL;
	u->object = NULL;
	k->pub = pub;
	EVP_PKEY_up_ref(pub);
	k->next = c->keys;
	c->keys = k;
	return k;
}

static int ctx_key(struct p11_ctx *c, const char *uri, EVP_PKEY *pub,
                   EVP_PKEY **out, struct p11_key **keyp, char *err,
                   size_t errlen)
{
	struct p11_uri u;
	struct p11_key *k;
	char why[512];

	*out = NULL;
	if (keyp)
		*keyp = NULL;
	if (pub == NULL)
		return seterr(err, errlen, "no public key to check %s against",
		              uri);
	if (p11_uri_parse(uri, &u, why, sizeof(why)) != 0)
		return seterr(err, errlen, "%s: %s", uri, why);
	k = key_new(c, uri, &u, pub, err, errlen);
	p11_uri_clear(&u);
	if (k == NULL)
		return -1;
	*out = wrap_key(k, pub);
	if (*out == NULL)
		return seterr(err, errlen, "%s: neither an RSA nor an EC key",
		              uri);
	if (keyp)
		*keyp = k;
	if (p11_key_ready(k, err, errlen))
		return 0;
	/* a key of another certificate is a mistake, not an outage */
	if (k->state == KEY_MISSING && k->mismatch) {
		EVP_PKEY_free(*out);
		*out = NULL;
		if (keyp)
			*keyp = NULL;
		return -1;
	}
	return 1;
}

int p11_ctx_key(struct p11_ctx *c, const char *uri, X509 *cert, EVP_PKEY **out,
                struct p11_key **keyp, char *err, size_t errlen)
{
	return ctx_key(c, uri, cert ? X509_get0_pubkey(cert) : NULL, out, keyp,
	               err, errlen);
}

int p11_ctx_key_pub(struct p11_ctx *c, const char *uri, EVP_PKEY *pub,
                    EVP_PKEY **out, char *err, size_t errlen)
{
	return ctx_key(c, uri, pub, out, NULL, err, errlen);
}

/* ---- smimectl: certificates, key generation, listing ----------------- */

/* A prepared token for uri with one session taken from it (module read
 * lock and t->mu held on success: release with ctl_end). */
static int ctl_begin(struct p11_ctx *c, const struct p11_uri *u,
                     struct p11_token **tp, CK_SESSION_HANDLE *s, char *err,
                     size_t errlen)
{
	struct p11_token *t = token_for(c, u, err, errlen);

	if (t == NULL)
		return -1;
	pthread_rwlock_rdlock(&t->mod->rw);
	pthread_mutex_lock(&t->mu);
	if (token_prepare(t, err, errlen) != 0 ||
	    session_get(t, s, err, errlen) != 0) {
		pthread_mutex_unlock(&t->mu);
		pthread_rwlock_unlock(&t->mod->rw);
		return -1;
	}
	*tp = t;
	return 0;
}

static void ctl_end(struct p11_token *t, CK_SESSION_HANDLE s)
{
	session_put(t, s, t->gen);
	pthread_mutex_unlock(&t->mu);
	pthread_rwlock_unlock(&t->mod->rw);
}

int p11_ctx_key_cert(struct p11_ctx *c, const char *uri, X509 **cert, char *err,
                     size_t errlen)
{
	struct p11_uri u;
	struct p11_token *t;
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE h[2];
	CK_ULONG n;
	unsigned char *id = NULL, *der = NULL;
	const unsigned char *p;
	CK_ULONG idlen = 0, dlen = 0;
	CK_RV rv;
	char why[512];
	int rc = -1;

	*cert = NULL;
	if (p11_uri_parse(uri, &u, why, sizeof(why)) != 0)
		return seterr(err, errlen, "%s: %s", uri, why);
	if (!u.id && !u.object) {
		p11_uri_clear(&u);
		return seterr(err, errlen,
		              "%s names no key (give id= or "
		              "object=)",
		              uri);
	}
	if (ctl_begin(c, &u, &t, &s, err, errlen) != 0) {
		p11_uri_clear(&u);
		return -1;
	}
	rv = find_objects(t->mod->f, s, CKO_PRIVATE_KEY, u.id, u.idlen,
	                  u.object, h, 2, &n);
	if (rv != CKR_OK || n != 1) {
		seterr(err, errlen, "%s: %s", uri,
		       rv != CKR_OK ? ckr_name(rv)
		       : n == 0     ? "no such private key on the token"
		                    : "more than one private key matches");
		goto out;
	}
	if (get_attr(t->mod->f, s, h[0], CKA_ID, &id, &idlen) != 0 ||
	    idlen == 0) {
		seterr(err, errlen,
		       "%s: the key has no CKA_ID to find its "
		       "certificate by (give --cert)",
		       uri);
		goto out;
	}
	rv = find_objects(t->mod->f, s, CKO_CERTIFICATE, id, idlen, NULL, h, 2,
	                  &n);
	if (rv != CKR_OK || n == 0) {
		seterr(err, errlen,
		       "%s: no certificate object with the key's "
		       "CKA_ID on token \"%s\" (give --cert)",
		       uri, tname(t));
		goto out;
	}
	if (get_attr(t->mod->f, s, h[0], CKA_VALUE, &der, &dlen) != 0) {
		seterr(err, errlen, "%s: certificate object has no value", uri);
		goto out;
	}
	p = der;
	*cert = d2i_X509(NULL, &p, (long)dlen);
	if (*cert == NULL) {
		ERR_clear_error();
		seterr(err, errlen, "%s: certificate object does not parse",
		       uri);
		goto out;
	}
	rc = 0;
out:
	ctl_end(t, s);
	free(id);
	free(der);
	p11_uri_clear(&u);
	return rc;
}

/* The public key of object h (RSA modulus/exponent or EC point). */
static EVP_PKEY *public_of(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE s,
                           CK_OBJECT_HANDLE h, int ec)
{
	OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *pc = NULL;
	EVP_PKEY *pk = NULL;
	unsigned char *a = NULL, *e = NULL;
	CK_ULONG alen = 0, elen = 0;
	BIGNUM *n = NULL, *ex = NULL;
	ASN1_OCTET_STRING *os = NULL;

	if (b == NULL)
		return NULL;
	if (!ec) {
		if (get_attr(f, s, h, CKA_MODULUS, &a, &alen) != 0 ||
		    get_attr(f, s, h, CKA_PUBLIC_EXPONENT, &e, &elen) != 0)
			goto out;
		n = BN_bin2bn(a, (int)alen, NULL);
		ex = BN_bin2bn(e, (int)elen, NULL);
		if (!n || !ex || !OSSL_PARAM_BLD_push_BN(b, "n", n) ||
		    !OSSL_PARAM_BLD_push_BN(b, "e", ex))
			goto out;
	} else {
		const unsigned char *p;
		if (get_attr(f, s, h, CKA_EC_POINT, &a, &alen) != 0)
			goto out;
		p = a; /* DER OCTET STRING around the point, usually */
		os = d2i_ASN1_OCTET_STRING(NULL, &p, (long)alen);
		if (!OSSL_PARAM_BLD_push_utf8_string(b, "group", "prime256v1",
		                                     0) ||
		    !OSSL_PARAM_BLD_push_octet_string(
		            b, "pub", os ? ASN1_STRING_get0_data(os) : a,
		            os ? (size_t)ASN1_STRING_length(os) : alen))
			goto out;
	}
	params = OSSL_PARAM_BLD_to_param(b);
	pc = EVP_PKEY_CTX_new_from_name(NULL, ec ? "EC" : "RSA", NULL);
	if (params == NULL || pc == NULL || EVP_PKEY_fromdata_init(pc) != 1 ||
	    EVP_PKEY_fromdata(pc, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1)
		pk = NULL;
out:
	ERR_clear_error();
	ASN1_OCTET_STRING_free(os);
	EVP_PKEY_CTX_free(pc);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(b);
	BN_free(n);
	BN_free(ex);
	free(a);
	free(e);
	return pk;
}

int p11_keygen(struct p11_ctx *c, const char *uri, const char *label,
               const char *type, EVP_PKEY **pub, char **newuri, char *err,
               size_t errlen)
{
	static const unsigned char p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48,
		                              0xce, 0x3d, 0x03, 0x01, 0x07 };
	static const unsigned char exp65537[] = { 0x01, 0x00, 0x01 };
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ULONG bits = strcmp(type, "rsa3072") == 0 ? 3072 : 2048;
	int ec = strcmp(type, "ec-p256") == 0;
	CK_MECHANISM mech = { ec ? CKM_EC_KEY_PAIR_GEN
		                 : CKM_RSA_PKCS_KEY_PAIR_GEN,
		              NULL, 0 };
	unsigned char id[16];
	CK_ATTRIBUTE pubt[8], privt[12];
	CK_ULONG np = 0, nq = 0;
	CK_OBJECT_HANDLE hpub, hpriv;
	struct p11_uri u;
	struct p11_token *t;
	CK_SESSION_HANDLE s, rws;
	CK_RV rv;
	char why[512];
	int rc = -1;

	*pub = NULL;
	*newuri = NULL;
	if (p11_uri_parse(uri, &u, why, sizeof(why)) != 0)
		return seterr(err, errlen, "%s: %s", uri, why);
	if (RAND_bytes(id, sizeof(id)) != 1) {
		p11_uri_clear(&u);
		return seterr(err, errlen, "no randomness for CKA_ID");
	}
	if (ctl_begin(c, &u, &t, &s, err, errlen) != 0) {
		p11_uri_clear(&u);
		return -1;
	}
	/* creating objects needs a read-write session (the login is shared) */
	rv = t->mod->f->C_OpenSession(t->slot,
	                              CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
	                              NULL, &rws);
	if (rv != CKR_OK) {
		seterr(err, errlen, "token \"%s\": read-write session: %s",
		       tname(t), ckr_name(rv));
		ctl_end(t, s);
		p11_uri_clear(&u);
		return -1;
	}
	session_put(t, s, t->gen);
	s = rws;
#define A(arr, n, t, v, l) arr[n++] = (CK_ATTRIBUTE){ t, (void *)(v), l }
	A(pubt, np, CKA_TOKEN, &yes, sizeof(yes));
	A(pubt, np, CKA_VERIFY, &yes, sizeof(yes));
	A(pubt, np, CKA_ID, id, sizeof(id));
	A(pubt, np, CKA_LABEL, label, strlen(label));
	if (ec) {
		A(pubt, np, CKA_EC_PARAMS, p256, sizeof(p256));
	} else {
		A(pubt, np, CKA_MODULUS_BITS, &bits, sizeof(bits));
		A(pubt, np, CKA_PUBLIC_EXPONENT, exp65537, sizeof(exp65537));
	}
	A(privt, nq, CKA_TOKEN, &yes, sizeof(yes));
	A(privt, nq, CKA_PRIVATE, &yes, sizeof(yes));
	A(privt, nq, CKA_SENSITIVE, &yes, sizeof(yes));
	A(privt, nq, CKA_EXTRACTABLE, &no, sizeof(no));
	A(privt, nq, CKA_SIGN, &yes, sizeof(yes));
	/* signing only: the milter never decrypts or unwraps */
	A(privt, nq, CKA_DECRYPT, &no, sizeof(no));
	A(privt, nq, CKA_UNWRAP, &no, sizeof(no));
	A(privt, nq, CKA_DERIVE, &no, sizeof(no));
	A(privt, nq, CKA_ID, id, sizeof(id));
	A(privt, nq, CKA_LABEL, label, strlen(label));
#undef A
	{
		CK_OBJECT_HANDLE h;
		CK_ULONG n = 0;
		if (find_objects(t->mod->f, s, CKO_PRIVATE_KEY, NULL, 0, label,
		                 &h, 1, &n) == CKR_OK &&
		    n > 0) {
			seterr(err, errlen,
			       "token \"%s\" already holds a private "
			       "key labelled \"%s\" (choose another object= in "
			       "the URI)",
			       tname(t), label);
			goto out;
		}
	}
	rv = t->mod->f->C_GenerateKeyPair(s, &mech, pubt, np, privt, nq, &hpub,
	                                  &hpriv);
	if (rv != CKR_OK) {
		seterr(err, errlen, "key generation on token \"%s\" failed: %s",
		       tname(t), ckr_name(rv));
		goto out;
	}
	*pub = public_of(t->mod->f, s, hpub, ec);
	if (*pub == NULL) {
		seterr(err, errlen,
		       "cannot read the new public key from token "
		       "\"%s\"",
		       tname(t));
		t->mod->f->C_DestroyObject(s, hpriv);
		t->mod->f->C_DestroyObject(s, hpub);
		goto out;
	}
	*newuri = p11_uri_make(t->label ? t->label : "", id, sizeof(id), label);
	rc = *newuri ? 0 : seterr(err, errlen, "out of memory");
out:
	t->mod->f->C_CloseSession(rws);
	pthread_mutex_unlock(&t->mu);
	pthread_rwlock_unlock(&t->mod->rw);
	p11_uri_clear(&u);
	return rc;
}

static void print_id(FILE *f, const unsigned char *id, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%02x", id[i]);
	if (n == 0)
		fputs("-", f);
}

static void list_objects(struct p11_token *t, CK_SESSION_HANDLE s, FILE *out)
{
	static const struct {
		CK_OBJECT_CLASS cls;
		const char *name;
	} classes[] = { { CKO_PRIVATE_KEY, "private key" },
		        { CKO_PUBLIC_KEY, "public key " },
		        { CKO_CERTIFICATE, "certificate" } };
	CK_FUNCTION_LIST *f = t->mod->f;

	for (size_t ci = 0; ci < sizeof(classes) / sizeof(classes[0]); ci++) {
		CK_OBJECT_HANDLE h[256];
		CK_ULONG n = 0;

		if (find_objects(f, s, classes[ci].cls, NULL, 0, NULL, h, 256,
		                 &n) != CKR_OK)
			continue;
		for (CK_ULONG i = 0; i < n; i++) {
			unsigned char *id = NULL, *lab = NULL, *v = NULL;
			CK_ULONG idlen = 0, llen = 0, vlen = 0;
			char *label;

			get_attr(f, s, h[i], CKA_ID, &id, &idlen);
			get_attr(f, s, h[i], CKA_LABEL, &lab, &llen);
			label = lab ? strndup((char *)lab, llen) : NULL;
			fprintf(out, "  %s  id=", classes[ci].name);
			print_id(out, id, idlen);
			fprintf(out, "  label=\"%s\"", label ? label : "");
			if (classes[ci].cls == CKO_PRIVATE_KEY) {
				CK_KEY_TYPE kt = 0;
				char *uri;
				if (get_attr(f, s, h[i], CKA_KEY_TYPE, &v,
				             &vlen) == 0 &&
				    vlen == sizeof(kt))
					memcpy(&kt, v, sizeof(kt));
				free(v);
				v = NULL;
				if (kt == CKK_RSA &&
				    get_attr(f, s, h[i], CKA_MODULUS, &v,
				             &vlen) == 0)
					fprintf(out, "  rsa%lu",
					        (unsigned long)vlen * 8);
				else
					fprintf(out, "  %s",
					        kt == CKK_EC ? "ec" : "other");
				uri = p11_uri_make(t->label ? t->label : "", id,
				                   idlen, label);
				fprintf(out, "\n      %s", uri ? uri : "");
				free(uri);
			} else if (classes[ci].cls == CKO_CERTIFICATE &&
			           get_attr(f, s, h[i], CKA_VALUE, &v, &vlen) ==
			                   0) {
				const unsigned char *p = v;
				X509 *x = d2i_X509(NULL, &p, (long)vlen);
				if (x) {
					char *sub = X509_NAME_oneline(
					        X509_get_subject_name(x), NULL,
					        0);
					fprintf(out, "\n      subject %s", sub);
					OPENSSL_free(sub);
					X509_free(x);
				}
				ERR_clear_error();
			}
			fputc('\n', out);
			free(v);
			free(id);
			free(lab);
			free(label);
		}
	}
}

int p11_list(struct p11_ctx *c, const char *module, void *fp, char *err,
             size_t errlen)
{
	FILE *out = fp;
	struct p11_module *m;
	CK_SLOT_ID slots[64];
	CK_ULONG n = 64;
	CK_RV rv;

	if (module == NULL)
		return seterr(err, errlen,
		              "no PKCS#11 module: set "
		              "pkcs11_module in the configuration");
	m = module_get(module, err, errlen);
	if (m == NULL)
		return -1;
	if (!m->ok) {
		seterr(err, errlen, "C_Initialize of %s: %s", module,
		       ckr_name(m->init_rv));
		module_put(m);
		return -1;
	}
	rv = m->f->C_GetSlotList(CK_TRUE, slots, &n);
	if (rv != CKR_OK) {
		module_put(m);
		return seterr(err, errlen, "C_GetSlotList: %s", ckr_name(rv));
	}
	fprintf(out, "module %s: %lu slot%s with a token\n", module,
	        (unsigned long)n, n == 1 ? "" : "s");
	for (CK_ULONG i = 0; i < n; i++) {
		CK_TOKEN_INFO ti;
		struct p11_uri u;
		struct p11_token *t;
		CK_SESSION_HANDLE s;
		char label[40], manu[40], model[20], serial[20], e[512];

		if (m->f->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
			continue;
		padded(label, ti.label, sizeof(ti.label));
		padded(manu, ti.manufacturerID, sizeof(ti.manufacturerID));
		padded(model, ti.model, sizeof(ti.model));
		padded(serial, ti.serialNumber, sizeof(ti.serialNumber));
		fprintf(out, "slot %lu: token \"%s\" (%s, %s, serial %s)%s\n",
		        (unsigned long)slots[i], label, manu, model, serial,
		        (ti.flags & CKF_TOKEN_INITIALIZED)
		                ? ""
		                : " not initialized");
		if (!(ti.flags & CKF_TOKEN_INITIALIZED))
			continue;
		memset(&u, 0, sizeof(u));
		u.slot_id = (long)slots[i];
		u.token = label;
		u.module_path = (char *)module;
		if (pin_file_for(c, label) == NULL &&
		    (ti.flags & CKF_LOGIN_REQUIRED)) {
			fprintf(out,
			        "  (no pin_file for this token in "
			        "pkcs11_tokens: private keys not listed)\n");
			/* public objects only, in a session of our own */
			if (m->f->C_OpenSession(slots[i], CKF_SERIAL_SESSION,
			                        NULL, NULL, &s) == CKR_OK) {
				struct p11_token tmp;
				memset(&tmp, 0, sizeof(tmp));
				tmp.mod = m;
				tmp.label = label;
				list_objects(&tmp, s, out);
				m->f->C_CloseSession(s);
			}
			continue;
		}
		if (ctl_begin(c, &u, &t, &s, e, sizeof(e)) != 0) {
			fprintf(out, "  cannot log in: %s\n", e);
			continue;
		}
		list_objects(t, s, out);
		ctl_end(t, s);
	}
	module_put(m);
	return 0;
}
