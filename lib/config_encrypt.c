/*
 * config_encrypt -- the encrypt rules of the configuration: the mode names,
 * the recipient/sender patterns and the rule list (see config.h).
 */
#include "config.h"
#include "config_int.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

static const char *const enc_mode_names[] = { [ENC_NEVER] = "never",
	                                      [ENC_OPPORTUNISTIC] =
	                                              "opportunistic",
	                                      [ENC_REQUIRED] = "required" };

const char *enc_mode_name(enum enc_mode m)
{
	return m == ENC_OPPORTUNISTIC || m == ENC_REQUIRED ? enc_mode_names[m]
	                                                   : "never";
}

static int enc_mode_parse(const char *s, enum enc_mode *out)
{
	int i = config_name_index(s, enc_mode_names, 3);

	if (i < 0)
		return -1;
	*out = (enum enc_mode)i;
	return 0;
}

/* A pattern of the encrypt list is "*", "*.domain", "domain" or
 * "local@domain", without spaces or angle brackets. */
static int pattern_valid(const char *p)
{
	const char *at = strchr(p, '@');

	if (strcmp(p, "*") == 0)
		return 1;
	if (strpbrk(p, " \t<>,;\"()") != NULL)
		return 0;
	if (p[0] == '*')
		return p[1] == '.' && p[2] != '\0' &&
		       strchr(p + 1, '*') == NULL && at == NULL;
	if (strchr(p, '*'))
		return 0;
	if (at)
		return at != p && at[1] != '\0' && strchr(at + 1, '@') == NULL;
	return p[0] != '.' && p[0] != '\0';
}

/* One pattern list of an encrypt rule into *out / *n. */
static int patterns_store(config_setting_t *g, const char *name, int required,
                          int rule, char ***out, size_t *n, const char *file,
                          char *err, size_t errlen)
{
	config_setting_t *l = config_setting_get_member(g, name);
	int line = l ? config_setting_source_line(l)
	             : config_setting_source_line(g);
	int cnt;

	if (l == NULL) {
		if (!required)
			return 0;
		adderr(err, errlen, "%s:%d: encrypt: rule %d needs a %s list",
		       file, line, rule, name);
		return -1;
	}
	if (config_setting_type(l) != CONFIG_TYPE_ARRAY &&
	    config_setting_type(l) != CONFIG_TYPE_LIST) {
		adderr(err, errlen,
		       "%s:%d: encrypt: rule %d: %s must be a list of strings, "
		       "e.g. [ \"example.go.id\" ]",
		       file, line, rule, name);
		return -1;
	}
	cnt = config_setting_length(l);
	if (cnt == 0) {
		adderr(err, errlen, "%s:%d: encrypt: rule %d: %s is empty",
		       file, line, rule, name);
		return -1;
	}
	*out = calloc((size_t)cnt + 1, sizeof(char *));
	if (*out == NULL)
		return seterr(err, errlen, "out of memory");
	for (int i = 0; i < cnt; i++) {
		const char *v = config_setting_get_string_elem(l, i);
		if (v == NULL || !pattern_valid(v)) {
			adderr(err, errlen,
			       "%s:%d: encrypt: rule %d: %s entry %d '%s' is "
			       "not \"user@domain\", \"domain\", "
			       "\"*.domain\" or \"*\"",
			       file, line, rule, name, i + 1,
			       v ? v : "(not a string)");
			return -1;
		}
		(*out)[i] = str_lower(xstrdup(v));
		if ((*out)[i] == NULL)
			return seterr(err, errlen, "out of memory");
		*n = (size_t)i + 1;
	}
	return 0;
}

/* The encrypt list: groups with recipients, optional senders, and mode. */
int config_rules_store(struct config *cfg, config_setting_t *s,
                       const char *file, char *err, size_t errlen)
{
	int n = config_setting_length(s);

	cfg->encrypt = calloc((size_t)n + 1, sizeof(*cfg->encrypt));
	if (cfg->encrypt == NULL)
		return seterr(err, errlen, "out of memory");
	for (int i = 0; i < n; i++) {
		config_setting_t *g = config_setting_get_elem(s, (unsigned)i);
		struct encrypt_rule *r = &cfg->encrypt[i];
		int line = config_setting_source_line(g);
		const char *mode = NULL;

		cfg->nencrypt = (size_t)i + 1;
		r->line = line;
		if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
			adderr(err, errlen,
			       "%s:%d: encrypt: rule %d must be a group "
			       "{ recipients = [ ... ]; mode = \"...\"; }",
			       file, line, i + 1);
			return -1;
		}
		for (int j = 0; j < config_setting_length(g); j++) {
			config_setting_t *m =
			        config_setting_get_elem(g, (unsigned)j);
			const char *mn = config_setting_name(m);
			if (strcmp(mn, "recipients") && strcmp(mn, "senders") &&
			    strcmp(mn, "mode")) {
				adderr(err, errlen,
				       "%s:%d: encrypt: rule %d: unknown key "
				       "'%s' (recipients, senders, mode)",
				       file, config_setting_source_line(m),
				       i + 1, mn);
				return -1;
			}
		}
		if (!config_setting_lookup_string(g, "mode", &mode) ||
		    enc_mode_parse(mode, &r->mode) != 0) {
			adderr(err, errlen,
			       "%s:%d: encrypt: rule %d: mode must be "
			       "\"never\", \"opportunistic\" or "
			       "\"required\"%s%s%s",
			       file, line, i + 1, mode ? " (not '" : "",
			       mode ? mode : "", mode ? "')" : "");
			return -1;
		}
		if (patterns_store(g, "recipients", 1, i + 1, &r->recipients,
		                   &r->nrecipients, file, err, errlen) != 0 ||
		    patterns_store(g, "senders", 0, i + 1, &r->senders,
		                   &r->nsenders, file, err, errlen) != 0)
			return -1;
	}
	return 0;
}

void config_rules_free(struct encrypt_rule *rules, size_t n)
{
	for (size_t i = 0; rules && i < n; i++) {
		struct encrypt_rule *r = &rules[i];
		for (size_t j = 0; j < r->nrecipients; j++)
			free(r->recipients[j]);
		for (size_t j = 0; j < r->nsenders; j++)
			free(r->senders[j]);
		free(r->recipients);
		free(r->senders);
	}
	free(rules);
}
