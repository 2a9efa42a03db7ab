/* milter -- shared state of the daemon (glue only; decisions live in lib/). */
#ifndef MILTER_MILTER_H
#define MILTER_MILTER_H

#include <libmilter/mfapi.h>

#include "snapshot.h"

/* The callbacks table. */
extern struct smfiDesc milter_desc;

/* Current snapshot: take a reference (never NULL after start-up). */
struct snapshot *milter_snapshot(void);

/* Swap in a new snapshot (takes over the caller's reference). */
void milter_set_snapshot(struct snapshot *s);

/* Connections in progress (for a graceful SIGTERM). */
int milter_active(void);

/* Fixed signing time for the offline mode (0 = now). */
extern time_t milter_signing_time;

#endif
