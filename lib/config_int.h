/*
 * config_int -- what the parts of the configuration loader share
 * (config.c: the key table and loader; config_encrypt.c: the encrypt rules).
 */
#ifndef SMIME_CONFIG_INT_H
#define SMIME_CONFIG_INT_H

#include <libconfig.h>
#include <stddef.h>

#include "config.h"

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
