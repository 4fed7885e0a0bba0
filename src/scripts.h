/*-------------------------------------------------------------------------
 *
 * scripts.h
 *		The Lua scripts cachebridge runs inside Redis: versioned apply of
 *		trigger effects, cache-aside fills that never overwrite a newer
 *		trigger write, and stream appends that are never made twice.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CACHEBRIDGE_SCRIPTS_H
#define CACHEBRIDGE_SCRIPTS_H

#include "resp.h"

typedef enum CbScript
{
	CB_SCRIPT_WRITE,			/* write or delete many keys, each if newer */
	CB_SCRIPT_DELETE_FOUND,		/* the same for cached values a SCAN found */
	CB_SCRIPT_FILL,				/* cache-aside SET unless a newer write is there */
	CB_SCRIPT_FLOOR,			/* raise a pattern deletion's floor */
	CB_SCRIPT_XADD,				/* append stream entries, unless already there */
	CB_NSCRIPTS
} CbScript;

/* Suffix of the key that holds a key's version marker. */
#define CB_VERSION_SUFFIX "#cbv"

extern const char *CbScriptSha(CbScript script);
extern void CbAppendScriptLoads(CbPipeline *p);
extern void CbAppendVersionKey(StringInfo buf, const char *key, size_t len);
extern void CbAppendFloorKey(StringInfo buf, const char *match, size_t len);
extern bool CbIsMarkerName(const char *name, size_t len);
extern int	CbScriptVersionArg(const char *sha, size_t len, long nkeys);

#endif							/* CACHEBRIDGE_SCRIPTS_H */
