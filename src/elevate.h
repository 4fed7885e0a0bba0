/*-------------------------------------------------------------------------
 *
 * elevate.h
 *		Running code as another role, out of reach of the caller's
 *		settings.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CACHEBRIDGE_ELEVATE_H
#define CACHEBRIDGE_ELEVATE_H

/* The only search_path under which cachebridge runs elevated statements. */
#define CB_SAFE_SEARCH_PATH "pg_catalog, pg_temp"

/* What CbElevate() changed, for CbElevateEnd() to restore. */
typedef struct CbElevation
{
	Oid			saved_userid;
	int			saved_sec_context;
	int			guc_nestlevel;
} CbElevation;

extern uint64 CbCatalogGeneration(void);
extern Oid	CbExtensionOwner(void);
extern bool CbExtensionSchemaOk(Oid *nspid);
extern Oid	CbExtensionSchema(void);
extern void CbElevate(Oid role, CbElevation *elevation);
extern void CbElevateEnd(const CbElevation *elevation);

#endif							/* CACHEBRIDGE_ELEVATE_H */
