/*-------------------------------------------------------------------------
 *
 * template.h
 *		Key templates such as 'user:{id}': parsed once per trigger, rendered
 *		per row, and turned into the glob pattern of every key they make.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CACHEBRIDGE_TEMPLATE_H
#define CACHEBRIDGE_TEMPLATE_H

#include "access/htup.h"
#include "access/tupdesc.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "pgtime.h"

/* One piece of a template: literal text, or a column. */
typedef struct CbTemplateSegment
{
	AttrNumber	attnum;			/* column, or InvalidAttrNumber for literal */
	char	   *colname;		/* column's name as written, NULL for literal */
	char	   *literal;
	int			len;
} CbTemplateSegment;

typedef struct CbTemplate
{
	char	   *source;			/* as written in the trigger */
	int			nsegments;
	CbTemplateSegment *segments;
} CbTemplate;

/*
 * The session's output settings, saved while rows are rendered under the
 * fixed ones (CbOutputSettingsFix / CbOutputSettingsRestore).
 */
typedef struct CbOutputSettings
{
	int			datestyle;
	int			dateorder;
	int			intervalstyle;
	int			extra_float_digits;
	int			bytea_output;
	pg_tz	   *timezone;
	int			guc_level;		/* > 0: lc_monetary was set at this level */
	bool		was_fixed;		/* the fixed settings were in force already */
} CbOutputSettings;

extern void CbTemplateParse(CbTemplate *tmpl, const char *kind,
							const char *source, TupleDesc desc,
							const char *trigname, const char *relname);
extern bool CbTemplateRender(const CbTemplate *tmpl, const char *prefix,
							 HeapTuple tuple, TupleDesc desc,
							 FmgrInfo *outfuncs, StringInfo buf);
extern bool CbTemplateNamesColumn(const CbTemplate *tmpl, const char *colname);
extern bool CbTypeHasMoney(Oid typid);
extern void CbOutputSettingsFix(CbOutputSettings *saved, bool monetary);
extern void CbOutputSettingsRestore(const CbOutputSettings *saved,
									 bool failed);
extern void CbTemplatePattern(const CbTemplate *tmpl, const char *prefix,
							  StringInfo buf);

#endif							/* CACHEBRIDGE_TEMPLATE_H */
