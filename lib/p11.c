/* p11 -- modules, tokens, sessions and logins (see p11.h, p11_int.h). */

#include "p11_int.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

p11_report_fn p11_reporter;

#define PIN_MAX      256
#define MAX_SESSIONS 256

/* ---- CKR names --------------------------------------------------------- */

const char *p11_ckr_name(CK_RV rv)
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
int p11_ckr_is_device(CK_RV rv)
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

void p11_report(int is_error, const char *fmt, ...)
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

__thread char p11_last_err[P11_ERR_MAX];
__thread CK_RV p11_last_rv;

const char *p11_last_error(void)
{
	return p11_last_err;
}

/* ---- modules (process-wide) -------------------------------------------- */

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

struct p11_module *p11_module_get(const char *path, char *err, size_t errlen)
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

void p11_module_put(struct p11_module *m)
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
void p11_module_reinit(struct p11_module *m, unsigned seen_gen)
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

/* ---- tokens and sessions ------------------------------------------------ */

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

/* Also frees a token that p11_token_for() built only in part. */
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
		p11_module_put(t->mod);
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

const char *p11_tname(const struct p11_token *t)
{
	return t->label ? t->label : t->serial ? t->serial : "(any)";
}

static int str_same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

/* A space-padded PKCS#11 text field as a C string. */
void p11_padded(char *out, const CK_UTF8CHAR *in, size_t n)
{
	while (n > 0 && (in[n - 1] == ' ' || in[n - 1] == '\0'))
		n--;
	memcpy(out, in, n);
	out[n] = '\0';
}

int p11_token_matches(const struct p11_token *t, const CK_TOKEN_INFO *ti)
{
	const struct {
		const CK_UTF8CHAR *have;
		size_t len;
		const char *want; /* NULL: any */
	} f[] = {
		{ ti->label, sizeof(ti->label), t->label },
		{ ti->manufacturerID, sizeof(ti->manufacturerID),
		  t->manufacturer },
		{ ti->serialNumber, sizeof(ti->serialNumber), t->serial },
		{ ti->model, sizeof(ti->model), t->model },
	};
	char buf[40];

	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		if (f[i].want == NULL)
			continue;
		p11_padded(buf, f[i].have, f[i].len);
		if (strcmp(buf, f[i].want) != 0)
			return 0;
	}
	return 1;
}

/* Mark t down (caller holds t->mu) and say so once. */
void p11_token_down(struct p11_token *t, const char *why)
{
	snprintf(t->why, sizeof(t->why), "%s", why);
	if (t->state == TOK_DOWN)
		return;
	t->state = TOK_DOWN;
	t->down_since = t->last_try = time(NULL);
	p11_report(1,
	           "PKCS#11 token \"%s\" unavailable (%s): mail to be signed "
	           "with "
	           "its keys gets the on_error action until the token returns; "
	           "retrying every %d s",
	           p11_tname(t), why, t->ctx->retry);
}

/*
 * Slot, a first session and the login for the module's current generation.
 * Caller holds the module read lock and t->mu.  Returns 0, or -1 with err
 * (the token is then down or its login failed).
 */
int p11_token_prepare(struct p11_token *t, char *err, size_t errlen)
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
		         t->mod->path, p11_ckr_name(t->mod->init_rv));
		goto down;
	}
	rv = f->C_GetSlotList(CK_TRUE, slots, &n);
	if (rv != CKR_OK) {
		snprintf(why, sizeof(why), "C_GetSlotList: %s",
		         p11_ckr_name(rv));
		goto down;
	}
	for (CK_ULONG i = 0; i < n && !found; i++) {
		if (t->slot_id >= 0 && (CK_SLOT_ID)t->slot_id != slots[i])
			continue;
		if (f->C_GetTokenInfo(slots[i], &ti) == CKR_OK &&
		    (ti.flags & CKF_TOKEN_INITIALIZED) &&
		    p11_token_matches(t, &ti)) {
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
		snprintf(why, sizeof(why), "C_OpenSession: %s",
		         p11_ckr_name(rv));
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
		         p11_tname(t));
		p11_report(1, "PKCS#11 %s", t->why);
		return seterr(err, errlen, "%s", t->why);
	} else
		rv = CKR_OK;
	if (ckr_is_pin(rv)) {
		f->C_CloseSession(s);
		t->state = TOK_LOGIN_FAILED;
		snprintf(t->why, sizeof(t->why),
		         "no login to token \"%s\" (its PIN was refused)",
		         p11_tname(t));
		/* said once; tokens lock after a few wrong PINs, so it is
		 * not tried again until the configuration is reloaded */
		p11_report(1,
		           "PKCS#11 token \"%s\": the PIN from %s was rejected "
		           "(%s); not tried again until reload",
		           p11_tname(t), t->pin_origin, p11_ckr_name(rv));
		return seterr(err, errlen, "%s", t->why);
	}
	if (rv != CKR_OK) {
		f->C_CloseSession(s);
		snprintf(why, sizeof(why), "C_Login: %s", p11_ckr_name(rv));
		goto down;
	}
	t->pool[t->nfree++] = s;
	t->nopen = 1;
	if (t->state == TOK_DOWN)
		p11_report(0,
		           "PKCS#11 token \"%s\" is back after %ld s; signing "
		           "resumes",
		           p11_tname(t), (long)(time(NULL) - t->down_since));
	t->state = TOK_OK;
	return 0;
down:
	p11_token_down(t, why);
	return seterr(err, errlen, "PKCS#11 token \"%s\": %s", p11_tname(t),
	              why);
}

/* A session from t's pool; caller holds t->mu (released while waiting).
 * Returns 0 or -1 with err. */
int p11_session_get(struct p11_token *t, CK_SESSION_HANDLE *s, char *err,
                    size_t errlen)
{
	CK_RV rv;

	for (;;) {
		if (t->state != TOK_OK)
			return seterr(err, errlen, "token \"%s\": %s",
			              p11_tname(t), t->why);
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
				         p11_ckr_name(rv));
				if (p11_ckr_is_device(rv))
					p11_token_down(t, why);
				return seterr(err, errlen, "token \"%s\": %s",
				              p11_tname(t), why);
			}
			/* the token's own limit: wait for one of ours */
		}
		pthread_cond_wait(&t->cv, &t->mu);
	}
}

void p11_session_put(struct p11_token *t, CK_SESSION_HANDLE s, unsigned gen)
{
	if (gen == t->gen && t->state == TOK_OK)
		t->pool[t->nfree++] = s;
	else if (gen == t->gen && t->nopen > 0) {
		t->mod->f->C_CloseSession(s);
		t->nopen--;
	}
	pthread_cond_signal(&t->cv);
}

int p11_get_attr(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
                 CK_ATTRIBUTE_TYPE type, unsigned char **val, CK_ULONG *len)
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
CK_RV p11_find_objects(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE s,
                       CK_OBJECT_CLASS cls, const unsigned char *id,
                       size_t idlen, const char *label, CK_OBJECT_HANDLE *out,
                       CK_ULONG max, CK_ULONG *n)
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

/* ---- contexts: tokens by URI -------------------------------------------- */

const char *p11_pin_file_for(struct p11_ctx *c, const char *label)
{
	for (size_t i = 0; label && i < c->npins; i++)
		if (strcmp(c->pin_tokens[i], label) == 0)
			return c->pin_files[i];
	return NULL;
}

/* The context's token for u (created on first use). */
struct p11_token *p11_token_for(struct p11_ctx *c, const struct p11_uri *u,
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
	pinf = u->pin_source ? u->pin_source : p11_pin_file_for(c, u->token);
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
	t->mod = p11_module_get(module, err, errlen);
	if (t->mod == NULL) {
		token_free(t);
		return NULL;
	}
	t->next = c->tokens;
	c->tokens = t;
	return t;
}
