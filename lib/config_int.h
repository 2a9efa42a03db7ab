/*
 * config_int -- what the parts of the configuration loader share
 * (config.c: the loader; config_keys.c: the table of keys;
 * config_encrypt.c: the encrypt rules).
 */
#ifndef SMIME_CONFIG_INT_H
#define SMIME_CONFIG_INT_H

#include <libconfig.h>
#include <stddef.h>

#include "config.h"

enum ktype {
	K_STR,
	K_INT,
	K_BOOL,
	K_ACTION,
	K_STRLIST,
	K_INTLIST,
	K_CIDRLIST,
	K_DIGEST,
	K_TOKENLIST,
	K_RULELIST,
	K_TAG,      /* a Subject tag: one line of text, may be empty */
	K_AUTHSERV, /* an RFC 8601 authserv-id; default: the host name */
	K_URLLIST   /* a list of strings kept as written (URLs) */
};

struct keydef {
	const char *name;
	enum ktype type;
	const char *def; /* default as text (NULL: none) */
	long long min, max;
	size_t off;      /* offset into struct config */
	size_t line_off; /* offset of the line number field, or 0 */
	const char *help;
	size_t cnt_off; /* lists: offset of the element count */
};

#define OFF(f) offsetof(struct config, f)

/* Every key the file may set, with its type, default and limits
 * (config_keys.c), and how many there are. */
extern const struct keydef config_keys[];
extern const size_t config_nkeys;

/* The index of s (any case) among the n names, or -1. */
int config_name_index(const char *s, const char *const *names, int n);

/*
 * The encrypt list s (a libconfig list of groups with recipients, optional
 * senders, and mode) into cfg->encrypt / cfg->nencrypt.  Returns 0, or -1
 * with "file:line: ..." added to err.
 */
int config_rules_store(struct config *cfg, config_setting_t *s,
                       const char *file, char *err, size_t errlen);

/* Free n encrypt rules and the array; NULL is fine. */
void config_rules_free(struct encrypt_rule *rules, size_t n);

#endif
