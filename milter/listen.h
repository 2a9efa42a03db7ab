/* listen -- reload across nodes: a thread LISTENs for `smimectl reload`'s
 * PostgreSQL NOTIFY and triggers the SIGUSR1 reload (listen.c). */
#ifndef MILTER_LISTEN_H
#define MILTER_LISTEN_H

/*
 * With database a postgresql:// URI, start the listener thread (call it
 * with SIGUSR1 blocked, as every thread of the daemon has it, so the main
 * thread's sigwait takes the reloads it triggers).  Nothing for an SQLite
 * path.  Returns 0, or -1 (logged) when the thread cannot start.
 */
int listen_start(const char *database);

/* Stop the listener (waits up to 3 s); fine when none runs. */
void listen_stop(void);

#endif
