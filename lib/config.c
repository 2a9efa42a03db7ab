/* config -- table-driven libconfig loader (see config.h). */
#include "config.h"
#include "config_int.h"
#include "hdrprot.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libconfig.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Names of the actions, by value. */
static const char *const action_names[] = { [ACTION_TEMPFAIL] = "tempfail",
	                                    [ACTION_ACCEPT] = "accept",
	                                    [ACTION_REJECT] = "reject" };

const char *action_name(enum action a)
{
	return a == ACTION_ACCEPT || a == ACTION_REJECT ? action_names[a]
	                                                : "tempfail";
}

/* The index of s (any case) among the n names, or -1. */
int config_name_index(const char *s, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		if (str_ieq(s, names[i]))
			return i;
	return -1;
}

static int facility_known(const char *s)
{
	static const char *const names[] = { "mail",   "daemon", "user",
		                             "local0", "local1", "local2",
		                             "local3", "local4", "local5",
		                             "local6", "local7" };

	return config_name_index(s, names,
	                         (int)(sizeof(names) / sizeof(names[0]))) >= 0;
}

static int action_parse(const char *s, enum action *out)
{
	int i = config_name_index(s, action_names, 3);

	if (i < 0)
		return -1;
	*out = (enum action)i;
	return 0;
}

int cidr_parse(const char *s, struct cidr *out)
{
	char buf[INET6_ADDRSTRLEN + 8];
	char *slash, *end;
	long bits;

	if (s == NULL || strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (slash)
		*slash++ = '\0';
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, buf, out->addr) == 1) {
		out->family = AF_INET;
		out->bits = 32;
	} else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
		out->family = AF_INET6;
		out->bits = 128;
	} else
		return -1;
	if (slash) {
		errno = 0;
		bits = strtol(slash, &end, 10);
		if (*slash == '\0' || *end || bits < 0 || bits > out->bits)
			return -1;
		out->bits = (int)bits;
	}
	return 0;
}

int config_signing_domain(const struct config *cfg, const char *domain)
{
	for (size_t i = 0; i < cfg->ndomains; i++)
		if (strcasecmp(cfg->domains[i], domain) == 0)
			return 1;
	return 0;
}

void config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < config_nkeys; i++) {
		const struct keydef *k = &config_keys[i];
		if (k->type == K_STR || k->type == K_DIGEST ||
		    k->type == K_TAG || k->type == K_AUTHSERV)
			free(*(char **)((char *)cfg + k->off));
	}
	for (size_t i = 0; i < cfg->ndomains; i++)
		free(cfg->domains[i]);
	free(cfg->domains);
	for (size_t i = 0; i < cfg->nprotected_headers; i++)
		free(cfg->protected_headers[i]);
	free(cfg->protected_headers);
	for (size_t i = 0; i < cfg->ncrl_urls; i++)
		free(cfg->crl_urls[i]);
	free(cfg->crl_urls);
	for (size_t i = 0; i < cfg->npkcs11_tokens; i++) {
		free(cfg->pkcs11_token[i]);
		free(cfg->pkcs11_pin_file[i]);
	}
	free(cfg->pkcs11_token);
	free(cfg->pkcs11_pin_file);
	config_rules_free(cfg->encrypt, cfg->nencrypt);
	free(cfg->alert_days);
	free(cfg->internal);
	free(cfg->path);
	free(cfg);
}

/* libconfig's type of s, 0 for a key left out. */
static int ktype(config_setting_t *s)
{
	return s ? config_setting_type(s) : 0;
}

/* An error about key k at file:line, and return -1. */
#define BAD(...)                                                         \
	do {                                                             \
		adderr(err, errlen, "%s:%d: %s: ", file, line, k->name); \
		snprintf(err + strlen(err), errlen - strlen(err),        \
		         __VA_ARGS__);                                   \
		return -1;                                               \
	} while (0)

/* A string, a digest name or an action. */
static int store_string(struct config *cfg, const struct keydef *k,
                        config_setting_t *s, const char *file, int line,
                        char *err, size_t errlen)
{
	const char *str;

	if (s && ktype(s) != CONFIG_TYPE_STRING)
		BAD("must be a string (%s)", k->help);
	str = s ? config_setting_get_string(s) : k->def;
	if (k->type == K_STR) {
		if (s && *str == '\0')
			BAD("must not be empty");
		if (strcmp(k->name, "socket") == 0 &&
		    strncmp(str, "inet:", 5) != 0 &&
		    strncmp(str, "inet6:", 6) != 0 &&
		    strncmp(str, "unix:", 5) != 0 &&
		    strncmp(str, "local:", 6) != 0)
			BAD("'%s' must start with inet:, inet6:, unix: "
			    "or local:",
			    str);
		if (strcmp(k->name, "socket_mode") == 0 &&
		    (strspn(str, "01234567") != strlen(str) ||
		     strlen(str) > 4 || strtol(str, NULL, 8) > 0777))
			BAD("'%s' is not an octal mode such as "
			    "\"0660\"",
			    str);
		if (strcmp(k->name, "encrypt_cipher") == 0 &&
		    !str_ieq(str, "aes-256-cbc") &&
		    !str_ieq(str, "aes-128-cbc") &&
		    !str_ieq(str, "aes-256-gcm") &&
		    !str_ieq(str, "aes-128-gcm"))
			BAD("unknown cipher '%s' (%s)", str, k->help);
		if (strcmp(k->name, "encrypt_rsa_padding") == 0 &&
		    !str_ieq(str, "pkcs1") && !str_ieq(str, "oaep"))
			BAD("unknown padding '%s' (%s)", str, k->help);
		if (strcmp(k->name, "on_timestamp_failure") == 0 &&
		    !str_ieq(str, "sign") && !str_ieq(str, "tempfail"))
			BAD("unknown action '%s' (%s)", str, k->help);
		if (strcmp(k->name, "syslog_facility") == 0 &&
		    !facility_known(str))
			BAD("unknown facility '%s' (mail, daemon, "
			    "user, "
			    "local0 ... local7)",
			    str);
		*(char **)((char *)cfg + k->off) =
		        strncmp(k->name, "encrypt_", 8) == 0
		                ? str_lower(xstrdup(str))
		                : xstrdup(str);
	} else if (k->type == K_DIGEST) {
		if (!str_ieq(str, "sha256") && !str_ieq(str, "sha384") &&
		    !str_ieq(str, "sha512"))
			BAD("unknown digest '%s' (%s)", str, k->help);
		*(char **)((char *)cfg + k->off) = str_lower(xstrdup(str));
	} else if (action_parse(str, (enum action *)((char *)cfg + k->off)) ||
	           (strcmp(k->name, "on_bad_signature") == 0 &&
	            str_ieq(str, "tempfail")))
		BAD("unknown action '%s' (%s)", str, k->help);
	return 0;
}

/*
 * 1 when s is an authserv-id we write without quotes (RFC 8601 section
 * 2.5: a value, here a token of RFC 2045): printable ASCII without space
 * and tspecials, so no CR, LF or ';' either, at most 255 characters.
 */
int config_authserv_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > 255)
		return 0;
	for (; *s; s++)
		if (*s <= ' ' || *s >= 127 || strchr("()<>@,;:\\\"/[]?=", *s))
			return 0;
	return 1;
}

/* authserv_id: the setting, or the host name at load time. */
static int store_authserv(struct config *cfg, const struct keydef *k,
                          config_setting_t *s, const char *file, int line,
                          char *err, size_t errlen)
{
	char host[256] = "";
	const char *str = host;

	if (s && ktype(s) != CONFIG_TYPE_STRING)
		BAD("must be a string (%s)", k->help);
	if (s)
		str = config_setting_get_string(s);
	else if (gethostname(host, sizeof(host) - 1) != 0)
		host[0] = '\0';
	if (!config_authserv_valid(str)) {
		if (s)
			BAD("'%s' is not a valid authserv-id (no spaces, "
			    "CR, LF, ';' or other special characters: %s)",
			    str, k->help);
		adderr(err, errlen,
		       "%s: authserv_id: the host name '%s' is not a valid "
		       "authserv-id; set authserv_id (%s)",
		       file, host, k->help);
		return -1;
	}
	*(char **)((char *)cfg + k->off) = xstrdup(str);
	return 0;
}

/* A Subject tag: at most 64 bytes of one line; "" turns the tag off. */
static int store_tag(struct config *cfg, const struct keydef *k,
                     config_setting_t *s, const char *file, int line, char *err,
                     size_t errlen)
{
	const char *str;

	if (s && ktype(s) != CONFIG_TYPE_STRING)
		BAD("must be a string (%s)", k->help);
	str = s ? config_setting_get_string(s) : k->def;
	if (strpbrk(str, "\r\n") != NULL)
		BAD("must be one line (no CR or LF)");
	if (strlen(str) > 64)
		BAD("is %zu bytes long, at most 64", strlen(str));
	*(char **)((char *)cfg + k->off) = xstrdup(str);
	return 0;
}

/* An integer within k's range. */
static int store_int(struct config *cfg, const struct keydef *k,
                     config_setting_t *s, const char *file, int line, char *err,
                     size_t errlen)
{
	long long ival;

	if (s && ktype(s) != CONFIG_TYPE_INT && ktype(s) != CONFIG_TYPE_INT64)
		BAD("must be an integer (%s)", k->help);
	ival = s ? config_setting_get_int64(s) : atoll(k->def);
	if (ival < k->min || ival > k->max)
		BAD("%lld is out of range %lld..%lld", ival, k->min, k->max);
	*(long long *)((char *)cfg + k->off) = ival;
	return 0;
}

/* true or false. */
static int store_bool(struct config *cfg, const struct keydef *k,
                      config_setting_t *s, const char *file, int line,
                      char *err, size_t errlen)
{
	if (s && ktype(s) != CONFIG_TYPE_BOOL)
		BAD("must be true or false");
	*(int *)((char *)cfg + k->off) =
	        s ? config_setting_get_bool(s) : str_ieq(k->def, "true");
	return 0;
}

/* A list of non-empty strings, lower-cased. */
static int store_strlist(struct config *cfg, const struct keydef *k,
                         config_setting_t *s, const char *file, int line,
                         char *err, size_t errlen)
{
	int n;
	char **list;
	if (s == NULL) {
		if (k->min > 0) {
			adderr(err, errlen, "%s: %s: is required (%s)", file,
			       k->name, k->help);
			return -1;
		}
		return 0;
	}
	if (ktype(s) != CONFIG_TYPE_ARRAY && ktype(s) != CONFIG_TYPE_LIST)
		BAD("must be a list of strings, e.g. [ \"a\", \"b\" ]");
	n = config_setting_length(s);
	if (n < k->min)
		BAD("must hold at least %lld entr%s", k->min,
		    k->min == 1 ? "y" : "ies");
	list = calloc((size_t)n + 1, sizeof(char *));
	if (list == NULL)
		BAD("out of memory");
	*(char ***)((char *)cfg + k->off) = list;
	for (int i = 0; i < n; i++) {
		const char *v = config_setting_get_string_elem(s, i);
		if (v == NULL || *v == '\0')
			BAD("entry %d must be a non-empty string", i + 1);
		list[i] = k->type == K_URLLIST ? xstrdup(v)
		                               : str_lower(xstrdup(v));
		*(size_t *)((char *)cfg + k->cnt_off) = (size_t)i + 1;
	}
	return 0;
}

/* A list of integers within range, sorted descending, duplicates dropped. */
static int store_intlist(struct config *cfg, const struct keydef *k,
                         config_setting_t *s, const char *file, int line,
                         char *err, size_t errlen)
{
	long long vals[64];
	int n = 0;
	if (s == NULL) {
		char *end;
		const char *p = k->def;
		while (*p && n < 64) {
			vals[n++] = strtoll(p, &end, 10);
			p = end;
			while (*p == ' ')
				p++;
		}
	} else {
		if (ktype(s) != CONFIG_TYPE_ARRAY &&
		    ktype(s) != CONFIG_TYPE_LIST)
			BAD("must be a list of integers (%s)", k->help);
		n = config_setting_length(s);
		if (n > 64)
			BAD("at most 64 entries");
		for (int i = 0; i < n; i++) {
			config_setting_t *e =
			        config_setting_get_elem(s, (unsigned)i);
			int et = config_setting_type(e);
			if (et != CONFIG_TYPE_INT && et != CONFIG_TYPE_INT64)
				BAD("entry %d must be an integer", i + 1);
			vals[i] = config_setting_get_int64(e);
			if (vals[i] < k->min || vals[i] > k->max)
				BAD("entry %d: %lld is out of range "
				    "%lld..%lld",
				    i + 1, vals[i], k->min, k->max);
		}
	}
	/* descending, duplicates dropped */
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++)
			if (vals[j] > vals[i]) {
				long long t = vals[i];
				vals[i] = vals[j];
				vals[j] = t;
			}
	{
		long long *out = calloc((size_t)n + 1, sizeof(*out));
		size_t m = 0;
		if (out == NULL)
			BAD("out of memory");
		for (int i = 0; i < n; i++)
			if (m == 0 || out[m - 1] != vals[i])
				out[m++] = vals[i];
		*(long long **)((char *)cfg + k->off) = out;
		*(size_t *)((char *)cfg + k->cnt_off) = m;
	}
	return 0;
}

/* pkcs11_tokens: groups of token and pin_file. */
static int store_tokenlist(struct config *cfg, const struct keydef *k,
                           config_setting_t *s, const char *file, int line,
                           char *err, size_t errlen)
{
	int n;
	if (s == NULL)
		return 0;
	if (ktype(s) != CONFIG_TYPE_LIST)
		BAD("must be a list of groups: %s", k->help);
	n = config_setting_length(s);
	cfg->pkcs11_token = calloc((size_t)n + 1, sizeof(char *));
	cfg->pkcs11_pin_file = calloc((size_t)n + 1, sizeof(char *));
	if (cfg->pkcs11_token == NULL || cfg->pkcs11_pin_file == NULL)
		BAD("out of memory");
	for (int i = 0; i < n; i++) {
		config_setting_t *g = config_setting_get_elem(s, (unsigned)i);
		const char *tok = NULL, *pin = NULL;
		int eline = config_setting_source_line(g);
		if (config_setting_type(g) != CONFIG_TYPE_GROUP)
			BAD("entry %d must be a group: %s", i + 1, k->help);
		for (int j = 0; j < config_setting_length(g); j++) {
			config_setting_t *m =
			        config_setting_get_elem(g, (unsigned)j);
			const char *mn = config_setting_name(m);
			if (strcmp(mn, "token") && strcmp(mn, "pin_file")) {
				line = config_setting_source_line(m);
				BAD("entry %d: unknown key '%s' "
				    "(token, "
				    "pin_file)",
				    i + 1, mn);
			}
		}
		if (!config_setting_lookup_string(g, "token", &tok) || !*tok ||
		    !config_setting_lookup_string(g, "pin_file", &pin) ||
		    !*pin) {
			line = eline;
			BAD("entry %d needs token and pin_file strings", i + 1);
		}
		for (int j = 0; j < i; j++)
			if (strcmp(cfg->pkcs11_token[j], tok) == 0) {
				line = eline;
				BAD("token \"%s\" is listed twice", tok);
			}
		if (pin[0] != '/') {
			line = eline;
			BAD("entry %d: pin_file must be an absolute "
			    "path",
			    i + 1);
		}
		cfg->pkcs11_token[i] = xstrdup(tok);
		cfg->pkcs11_pin_file[i] = xstrdup(pin);
		cfg->npkcs11_tokens = (size_t)i + 1;
	}
	return 0;
}

/* The encrypt rules. */
static int store_rulelist(struct config *cfg, const struct keydef *k,
                          config_setting_t *s, const char *file, int line,
                          char *err, size_t errlen)
{
	if (s == NULL)
		return 0;
	if (ktype(s) != CONFIG_TYPE_LIST)
		BAD("must be a list of groups: %s", k->help);
	if (config_rules_store(cfg, s, file, err, errlen) != 0)
		return -1;
	return 0;
}

/* internal_hosts: addresses and CIDR blocks. */
static int store_cidrlist(struct config *cfg, const struct keydef *k,
                          config_setting_t *s, const char *file, int line,
                          char *err, size_t errlen)
{
	static const char *defaults[] = { "127.0.0.0/8", "::1/128" };
	int n = s ? config_setting_length(s) : 2;
	if (s && ktype(s) != CONFIG_TYPE_ARRAY && ktype(s) != CONFIG_TYPE_LIST)
		BAD("must be a list of strings, e.g. [ \"127.0.0.0/8\" "
		    "]");
	cfg->internal = calloc((size_t)n + 1, sizeof(struct cidr));
	if (cfg->internal == NULL)
		BAD("out of memory");
	for (int i = 0; i < n; i++) {
		const char *v =
		        s ? config_setting_get_string_elem(s, i) : defaults[i];
		if (v == NULL || cidr_parse(v, &cfg->internal[i]) != 0)
			BAD("entry %d '%s' is not an address or CIDR "
			    "block",
			    i + 1, v ? v : "(not a string)");
		cfg->ninternal = (size_t)i + 1;
	}
	return 0;
}

typedef int (*store_fn)(struct config *cfg, const struct keydef *k,
                        config_setting_t *s, const char *file, int line,
                        char *err, size_t errlen);

/* Check and store key k's setting s (NULL: left out, the default
 * applies). */
static int key_store(struct config *cfg, const struct keydef *k,
                     config_setting_t *s, const char *file, int line, char *err,
                     size_t errlen)
{
	static const store_fn by_type[] = {
		[K_STR] = store_string,        [K_DIGEST] = store_string,
		[K_ACTION] = store_string,     [K_INT] = store_int,
		[K_BOOL] = store_bool,         [K_STRLIST] = store_strlist,
		[K_INTLIST] = store_intlist,   [K_TOKENLIST] = store_tokenlist,
		[K_RULELIST] = store_rulelist, [K_CIDRLIST] = store_cidrlist,
		[K_TAG] = store_tag,           [K_AUTHSERV] = store_authserv,
		[K_URLLIST] = store_strlist,
	};

	if (by_type[k->type](cfg, k, s, file, line, err, errlen) != 0)
		return -1;
	if (k->line_off)
		*(int *)((char *)cfg + k->line_off) = s ? line : 0;
	return 0;
}
#undef BAD

/* key at line (0: its default) names a directory that must exist. */
static int check_dir(const char *path, const char *file, int line,
                     const char *key, char *err, size_t errlen)
{
	struct stat st;
	char where[64];

	if (line > 0)
		snprintf(where, sizeof(where), "%d: %s", line, key);
	else
		snprintf(where, sizeof(where), " %s (default)", key);
	if (stat(path, &st) != 0) {
		adderr(err, errlen, "%s:%s: %s: %s", file, where, path,
		       strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		adderr(err, errlen, "%s:%s: %s is not a directory", file, where,
		       path);
		return -1;
	}
	return 0;
}

int config_check_milter(const struct config *cfg, char *err, size_t errlen)
{
	if (err && errlen)
		err[0] = '\0';
	if (cfg == NULL)
		return seterr(err, errlen, "no configuration");
	return check_dir(cfg->temp_dir, cfg->path, cfg->line_temp_dir,
	                 "temp_dir", err, errlen);
}

/* timestamp_url: http or https, and a readable timestamp_ca_file. */
static int config_check_timestamp(const struct config *cfg, const char *file,
                                  char *err, size_t errlen)
{
	const char *u = cfg->timestamp_url;
	int rc = 0;

	if (u && strncasecmp(u, "http://", 7) != 0 &&
	    strncasecmp(u, "https://", 8) != 0) {
		adderr(err, errlen,
		       "%s:%d: timestamp_url: '%s' is not an http:// or "
		       "https:// URL",
		       file, cfg->line_timestamp_url, u);
		rc = -1;
	}
	if (u && cfg->timestamp_ca_file == NULL) {
		adderr(err, errlen,
		       "%s:%d: timestamp_url needs timestamp_ca_file (the "
		       "trust "
		       "bundle the TSA's tokens are checked against)",
		       file, cfg->line_timestamp_url);
		rc = -1;
	}
	if (cfg->timestamp_ca_file &&
	    access(cfg->timestamp_ca_file, R_OK) != 0) {
		adderr(err, errlen, "%s:%d: timestamp_ca_file: %s: %s", file,
		       cfg->line_timestamp_ca_file, cfg->timestamp_ca_file,
		       strerror(errno));
		rc = -1;
	}
	return rc;
}

/* node_name: the setting, or the host name; letters, digits and ".-_"
 * (it names a chain in verify's output and a Prometheus label). */
static int config_node_name(struct config *cfg, const char *file, char *err,
                            size_t errlen)
{
	char host[256] = "";
	const char *n = cfg->node_name;

	if (n == NULL && gethostname(host, sizeof(host) - 1) == 0)
		n = host;
	if (n == NULL || *n == '\0' || strlen(n) > 255 ||
	    strspn(n, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	              "0123456789.-_") != strlen(n)) {
		if (cfg->node_name)
			adderr(err, errlen,
			       "%s:%d: node_name: '%s' is not a node name "
			       "(1 to 255 letters, digits, '.', '-' or '_')",
			       file, cfg->line_node_name, n);
		else
			adderr(err, errlen,
			       "%s: node_name: the host name '%s' is not a "
			       "node name; set node_name (letters, digits, "
			       "'.', '-' or '_')",
			       file, host);
		return -1;
	}
	if (cfg->node_name == NULL && (cfg->node_name = xstrdup(n)) == NULL) {
		adderr(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

int config_load(const char *path, struct config **out, char *err, size_t errlen)
{
	config_t lc;
	config_setting_t *root, *s;
	struct config *cfg;
	int bad = 0, n;

	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	if (access(path, R_OK) != 0)
		return seterr(err, errlen, "%s: %s", path, strerror(errno));
	cfg = calloc(1, sizeof(*cfg));
	if (cfg == NULL)
		return seterr(err, errlen, "out of memory");
	cfg->path = xstrdup(path);
	config_init(&lc);
	if (config_read_file(&lc, path) != CONFIG_TRUE) {
		seterr(err, errlen, "%s:%d: %s",
		       config_error_file(&lc) ? config_error_file(&lc) : path,
		       config_error_line(&lc), config_error_text(&lc));
		config_destroy(&lc);
		config_free(cfg);
		return -1;
	}
	root = config_root_setting(&lc);
	/* unknown keys first, so a typo is named as such */
	n = config_setting_length(root);
	for (int i = 0; i < n; i++) {
		const char *name;
		size_t j;
		s = config_setting_get_elem(root, (unsigned)i);
		name = config_setting_name(s);
		for (j = 0; j < config_nkeys; j++)
			if (strcmp(config_keys[j].name, name) == 0)
				break;
		if (j == config_nkeys) {
			adderr(err, errlen, "%s:%d: unknown key '%s'", path,
			       config_setting_source_line(s), name);
			bad = 1;
		}
	}
	for (size_t j = 0; j < config_nkeys; j++) {
		s = config_setting_get_member(root, config_keys[j].name);
		if (key_store(cfg, &config_keys[j], s, path,
		              s ? config_setting_source_line(s) : 0, err,
		              errlen) != 0)
			bad = 1;
	}
	if (!bad) {
		if (cfg->harvest && cfg->ca_file == NULL) {
			adderr(err, errlen,
			       "%s: harvest = true needs ca_file (the trust "
			       "bundle that harvested certificates must chain "
			       "to)",
			       path);
			bad = 1;
		}
		if (cfg->harvest && !cfg->inbound_verify) {
			adderr(err, errlen,
			       "%s: harvest = true needs inbound_verify = true "
			       "(only the signer of a signature that verified "
			       "is harvested)",
			       path);
			bad = 1;
		}
		for (size_t i = 0; i < cfg->nprotected_headers; i++) {
			const char *why =
			        hdrprot_name_refused(cfg->protected_headers[i]);
			if (why != NULL) {
				adderr(err, errlen,
				       "%s:%d: protected_headers: '%s': %s",
				       path, cfg->line_protected_headers,
				       cfg->protected_headers[i], why);
				bad = 1;
			}
		}
		if (cfg->ca_file && access(cfg->ca_file, R_OK) != 0) {
			adderr(err, errlen, "%s:%d: ca_file: %s: %s", path,
			       cfg->line_ca_file, cfg->ca_file,
			       strerror(errno));
			bad = 1;
		}
		if (config_check_timestamp(cfg, path, err, errlen) != 0)
			bad = 1;
		if (config_node_name(cfg, path, err, errlen) != 0)
			bad = 1;
	}
	config_destroy(&lc);
	if (bad) {
		config_free(cfg);
		return -1;
	}
	*out = cfg;
	return 0;
}
