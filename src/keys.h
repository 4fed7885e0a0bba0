/*-------------------------------------------------------------------------
 *
 * keys.h
 *		The key naming rules of cache-aside calls.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CACHEBRIDGE_KEYS_H
#define CACHEBRIDGE_KEYS_H

#include "lib/stringinfo.h"
#include "utils/guc.h"

/* cachebridge.key_prefix */
extern char *cb_key_prefix;

extern bool CbKeyPrefixCheckHook(char **newval, void **extra, GucSource source);
extern void CbCheckKey(const char *key, size_t len);
extern void CbAppendKey(StringInfo buf, const char *key, size_t len);
extern void CbAppendGlobEscaped(StringInfo buf, const char *s, size_t len);

#endif							/* CACHEBRIDGE_KEYS_H */
