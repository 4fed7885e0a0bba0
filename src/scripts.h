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
	CB_SCRIPT_COPY,				/* write a refresh's copies, unless a newer write
								 * is there; no marker written */
	CB_SCRIPT_WRITE_NODE,		/* CB_SCRIPT_WRITE for many slots of one
								 * cluster master */
	CB_SCRIPT_WRITE_ONE,		/* CB_SCRIPT_WRITE for one key, in fewer
								 * commands */
	CB_NSCRIPTS
} CbScript;

/* How a script's KEYS are laid out (for routing on a Redis Cluster). */
typedef enum CbScriptKeys
{
	CB_KEYS_OTHER,				/* one key, or not cachebridge's script */
	CB_KEYS_KEY_MARKER,			/* a key, then its marker */
	CB_KEYS_PAIRS,				/* pairs of key and marker, each on its own */
	CB_KEYS_WRITE				/* pairs as CB_KEYS_PAIRS; ARGV two shared, then
								 * per key: op, ttl and op's own (see
								 * CB_SCRIPT_WRITE) */
} CbScriptKeys;

/*
 * The "after" argument of CB_SCRIPT_XADD when no append comes before it in
 * the delivery: as wide as a chunk's version, so that a sender can write
 * one in its place (CbChainStreamAppends).
 */
#define CB_XADD_AFTER_NONE '-'

/* Suffix of the key that holds a key's version marker. */
#define CB_VERSION_SUFFIX "#cbv"

extern const char *CbScriptSha(CbScript script);
extern void CbAppendScriptLoads(CbPipeline *p);
extern CbScriptKeys CbScriptKeyLayout(const char *sha, size_t len);
extern void CbAppendVersionKey(StringInfo buf, const char *key, size_t len);
extern void CbAppendClusterVersionKey(StringInfo buf, const char *key, size_t len);
extern void CbAppendFloorKey(StringInfo buf, const char *match, size_t len);
extern void CbAppendPrefixFloorKey(StringInfo buf, const char *key, size_t n);
extern bool CbIsMarkerName(const char *name, size_t len);
extern bool CbHasVersionSuffix(const char *name, size_t len);
extern int	CbScriptVersionArg(const char *sha, size_t len, long nkeys);

#endif							/* CACHEBRIDGE_SCRIPTS_H */
