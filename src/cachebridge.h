/*-------------------------------------------------------------------------
 *
 * cachebridge.h
 *		Settings shared by every part of cachebridge, and key naming.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CACHEBRIDGE_H
#define CACHEBRIDGE_H

#include "lib/stringinfo.h"

/* cachebridge.key_prefix */
extern char *cb_key_prefix;

/* true when loaded through shared_preload_libraries */
extern bool cb_preloaded;

/* trigger.c: the rights to make triggers on a relation, or an ERROR */
extern char *CbCheckTriggerRights(Oid relid);

/* refresh.c: true while cachebridge.refresh() fires publish triggers */
extern bool cb_refresh_snapshot;

extern void CbAppendKey(StringInfo buf, const char *key, size_t len);
extern void CbAppendGlobEscaped(StringInfo buf, const char *s, size_t len);
extern void CbCheckKey(const char *key, size_t len);

#endif							/* CACHEBRIDGE_H */
