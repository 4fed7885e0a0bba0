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

/* One piece of a template: literal text, or a column. */
typedef struct CbTemplateSegment
{
	AttrNumber	attnum;			/* column, or InvalidAttrNumber for literal */
	char	   *literal;
	int			len;
} CbTemplateSegment;

typedef struct CbTemplate
{
	char	   *source;			/* as written in the trigger */
	int			nsegments;
	CbTemplateSegment *segments;
	bool		fixed_output;	/* a column's output depends on settings */
} CbTemplate;

extern void CbTemplateParse(CbTemplate *tmpl, const char *kind,
							const char *source, TupleDesc desc,
							const char *trigname, const char *relname);
extern bool CbTemplateRender(const CbTemplate *tmpl, const char *prefix,
							 HeapTuple tuple, TupleDesc desc,
							 FmgrInfo *outfuncs, StringInfo buf);
extern void CbTemplatePattern(const CbTemplate *tmpl, const char *prefix,
							  StringInfo buf);

#endif							/* CACHEBRIDGE_TEMPLATE_H */
