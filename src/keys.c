/*-------------------------------------------------------------------------
 *
 * keys.c
 *		The key naming rules of cache-aside calls: the session's
 *		cachebridge.key_prefix, and the keys cachebridge refuses.
 *
 * Every key a cache-aside call writes, reads or deletes starts with the
 * session's cachebridge.key_prefix, and CbAppendKey() is the one place that
 * applies it; a trigger's keys start with its table's prefix instead (see
 * namespace.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/guc.h"

#include "keys.h"
#include "namespace.h"
#include "scripts.h"

#define CB_MAX_PREFIX_LEN 512

/* cachebridge.key_prefix */
char	   *cb_key_prefix = NULL;

/* GUC check hook of cachebridge.key_prefix. */
bool
CbKeyPrefixCheckHook(char **newval, void **extra, GucSource source)
{
	if (*newval != NULL && strlen(*newval) > CB_MAX_PREFIX_LEN)
	{
		GUC_check_errdetail("The prefix is %zu bytes long; the limit is %d.",
							strlen(*newval), CB_MAX_PREFIX_LEN);
		return false;
	}
	if (!CbNoteServerKeyPrefix(*newval, source))
	{
		GUC_check_errcode(ERRCODE_OUT_OF_MEMORY);
		GUC_check_errmsg("out of memory");
		return false;
	}
	return true;
}

/*
 * Raises an ERROR for a key of a cache-aside call that cachebridge refuses
 * to use: an empty one, or one whose full name (after the session's
 * cachebridge.key_prefix) is that of a version marker.
 */
void
CbCheckKey(const char *key, size_t len)
{
	StringInfoData full;

	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("Redis key must not be empty")));
	initStringInfo(&full);
	CbAppendKey(&full, key, len);
	if (CbIsMarkerName(full.data, full.len))
		ereport(ERROR,
				(errcode(ERRCODE_RESERVED_NAME),
				 errmsg("Redis key \"%s\" is reserved for a cachebridge version marker",
						full.data),
				 CbHasVersionSuffix(full.data, full.len)
				 ? errdetail("Keys ending in \"%s\" hold the versions of other keys.",
							 CB_VERSION_SUFFIX)
				 : errdetail("Keys holding \"%s}\" are the names of version markers on a Redis Cluster.",
							 CB_VERSION_SUFFIX),
				 CbHasVersionSuffix(full.data, full.len)
				 ? errhint("Use a key that does not end in \"%s\".", CB_VERSION_SUFFIX)
				 : errhint("Use a key that does not hold \"%s}\".", CB_VERSION_SUFFIX)));
	pfree(full.data);
}

/* Appends cachebridge.key_prefix and then key to buf. */
void
CbAppendKey(StringInfo buf, const char *key, size_t len)
{
	if (cb_key_prefix != NULL)
		appendStringInfoString(buf, cb_key_prefix);
	appendBinaryStringInfo(buf, key, len);
}

/* Appends s to buf with Redis glob metacharacters escaped. */
void
CbAppendGlobEscaped(StringInfo buf, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
	{
		if (strchr("*?[]\\", s[i]) != NULL && s[i] != '\0')
			appendStringInfoChar(buf, '\\');
		appendStringInfoChar(buf, s[i]);
	}
}
