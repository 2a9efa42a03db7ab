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

/* Connections open (for the log at stop). */
int milter_active(void);

/* Messages in flight: from MAIL to end of message or abort, counted only
 * for messages begun before milter_stop_begin. */
int milter_inflight(void);

/* From now on a new message is tempfailed ("shutting down") and not
 * counted in flight. */
void milter_stop_begin(void);

/* Fixed signing time for the offline mode (0 = now). */
extern time_t milter_signing_time;

#endif
