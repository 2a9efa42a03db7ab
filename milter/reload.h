/* reload -- SIGUSR1 builds a new snapshot and swaps it in; the pidfile. */
#ifndef MILTER_RELOAD_H
#define MILTER_RELOAD_H

#include "snapshot.h"

/*
 * Build a new snapshot from conf_path and make it current; on failure the
 * previous one stays and the problems are logged (once while the same
 * problem repeats, as with a database that stays away).  Called for SIGUSR1.
 * Returns 0 or -1.
 */
int reload_snapshot(const char *conf_path);

/* Log the decryption keys of s that could not be loaded (one warning each;
 * they never stop a mailbox from signing).  Nothing when inbound
 * decryption is off. */
void reload_log_decrypt(const struct snapshot *s);

/* Write the daemon's pid to path.  Returns 0 or -1 (logged). */
int pidfile_write(const char *path);

#endif
