/*-------------------------------------------------------------------------
 *
 * trigger.h
 *		The cachebridge trigger functions, as other parts use them.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CACHEBRIDGE_TRIGGER_H
#define CACHEBRIDGE_TRIGGER_H

#include "fmgr.h"

/*
 * Set while a refresh batch (refresh.c) fires the triggers: publish
 * triggers then append snapshot entries (op READ).
 */
extern bool cb_refresh_snapshot;

extern char *CbCheckTriggerRights(Oid relid);

/* the trigger functions */
extern PGDLLEXPORT Datum cachebridge_write_through(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum cachebridge_invalidate(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum cachebridge_publish(PG_FUNCTION_ARGS);

#endif							/* CACHEBRIDGE_TRIGGER_H */
