/*-------------------------------------------------------------------------
 *
 * namespace.h
 *		The namespace (key prefix) a table's cachebridge triggers write
 *		into: the cachebridge.key_prefix configured for the table's owner.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CACHEBRIDGE_NAMESPACE_H
#define CACHEBRIDGE_NAMESPACE_H

#include "utils/guc.h"

extern char *CbRoleKeyPrefix(Oid roleid);
extern const char *CbServerKeyPrefix(void);
extern bool CbNoteServerKeyPrefix(const char *value, GucSource source);
extern void CbDefiningSettings(bool defining);

#endif							/* CACHEBRIDGE_NAMESPACE_H */
