/*-------------------------------------------------------------------------
 *
 * template.c
 *		Key templates: '{column}' is replaced by the column's text output,
 *		'{{' and '}}' stand for literal braces.
 *
 * A template is parsed once, against the descriptor of the table its
 * trigger is on, into literal and column segments; rendering a row is then
 * a walk over the segments.  A NULL column yields no key at all (never a
 * key with an empty part).  Every rendered key and pattern starts with the
 * prefix the caller gives: the namespace of the trigger's table.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"

#include "cachebridge.h"
#include "template.h"

static bool CbTemplateRenderSegments(const CbTemplate *tmpl, const char *prefix,
									 HeapTuple tuple, TupleDesc desc,
									 FmgrInfo *outfuncs, StringInfo buf);

/* Raises the ERROR for a malformed template. */
static void
CbTemplateError(const char *kind, const char *source, const char *trigname,
				const char *relname, const char *problem)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid %s \"%s\" in trigger \"%s\" on table \"%s\"",
					kind, source, trigname, relname),
			 errdetail("%s", problem),
			 errhint("Write {column} for a column and {{ or }} for a literal brace.")));
}

/* True if the text output of type typid depends on session settings. */
static bool
CbOutputDependsOnSettings(Oid typid)
{
	Oid			base = getBaseType(typid);
	char		typtype = get_typtype(base);

	switch (base)
	{
		case DATEOID:
		case TIMEOID:
		case TIMETZOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
		case INTERVALOID:
		case FLOAT4OID:
		case FLOAT8OID:
		case BYTEAOID:
		case CASHOID:
			return true;
		default:
			break;
	}
	return OidIsValid(get_element_type(base)) ||
		typtype == TYPTYPE_RANGE || typtype == TYPTYPE_MULTIRANGE ||
		typtype == TYPTYPE_COMPOSITE;
}

/* Sets, at a new GUC nest level, the settings keys are rendered under. */
static int
CbFixOutputSettings(void)
{
	int			level = NewGUCNestLevel();
	static const char *const settings[][2] = {
		{"datestyle", "ISO, YMD"},
		{"intervalstyle", "postgres"},
		{"timezone", "UTC"},
		{"extra_float_digits", "1"},
		{"bytea_output", "hex"},
		{"lc_monetary", "C"},
	};

	for (int i = 0; i < lengthof(settings); i++)
		(void) set_config_option(settings[i][0], settings[i][1],
								 PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	return level;
}

/* Appends a literal segment of len bytes (len may be 0: nothing added). */
static void
CbAddLiteral(List **segs, const char *text, int len)
{
	CbTemplateSegment *seg;

	if (len == 0)
		return;
	seg = palloc0(sizeof(CbTemplateSegment));
	seg->attnum = InvalidAttrNumber;
	seg->literal = pnstrdup(text, len);
	seg->len = len;
	*segs = lappend(*segs, seg);
}

/*
 * Parses source into tmpl, resolving column names against desc.  Allocates
 * in the current memory context.  Raises an ERROR naming the trigger, the
 * table and what the template is for (kind: "key template", "stream name
 * template") for an unknown column or a malformed template.
 */
void
CbTemplateParse(CbTemplate *tmpl, const char *kind, const char *source,
				TupleDesc desc, const char *trigname, const char *relname)
{
	List	   *segs = NIL;
	StringInfoData lit;
	const char *p = source;
	ListCell   *lc;
	int			i = 0;

	tmpl->fixed_output = false;
	if (*source == '\0')
		CbTemplateError(kind, source, trigname, relname, "The template is empty.");

	initStringInfo(&lit);
	while (*p)
	{
		if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}'))
		{
			appendStringInfoChar(&lit, p[0]);
			p += 2;
		}
		else if (*p == '{')
		{
			const char *close = strchr(p + 1, '}');
			char	   *colname;
			AttrNumber	attnum = InvalidAttrNumber;
			CbTemplateSegment *seg;

			if (close == NULL)
				CbTemplateError(kind, source, trigname, relname,
								"A \"{\" is not closed by \"}\".");
			if (close == p + 1)
				CbTemplateError(kind, source, trigname, relname,
								"\"{}\" names no column.");
			colname = pnstrdup(p + 1, close - p - 1);
			if (strchr(colname, '{') != NULL)
				CbTemplateError(kind, source, trigname, relname,
								"A \"{\" is not closed by \"}\".");
			for (int a = 0; a < desc->natts; a++)
			{
				Form_pg_attribute att = TupleDescAttr(desc, a);

				if (!att->attisdropped && strcmp(NameStr(att->attname), colname) == 0)
				{
					attnum = att->attnum;
					break;
				}
			}
			if (attnum == InvalidAttrNumber)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_COLUMN),
						 errmsg("column \"%s\" of %s \"%s\" does not exist in table \"%s\"",
								colname, kind, source, relname),
						 errcontext("trigger \"%s\" on table \"%s\"", trigname, relname)));

			CbAddLiteral(&segs, lit.data, lit.len);
			resetStringInfo(&lit);
			seg = palloc0(sizeof(CbTemplateSegment));
			seg->attnum = attnum;
			segs = lappend(segs, seg);
			if (CbOutputDependsOnSettings(TupleDescAttr(desc, attnum - 1)->atttypid))
				tmpl->fixed_output = true;
			p = close + 1;
		}
		else if (*p == '}')
			CbTemplateError(kind, source, trigname, relname,
							"A \"}\" has no matching \"{\"; write \"}}\" for a literal brace.");
		else
			appendStringInfoChar(&lit, *p++);
	}
	CbAddLiteral(&segs, lit.data, lit.len);

	tmpl->source = pstrdup(source);
	tmpl->nsegments = list_length(segs);
	tmpl->segments = palloc(sizeof(CbTemplateSegment) * Max(1, tmpl->nsegments));
	foreach(lc, segs)
		tmpl->segments[i++] = *(CbTemplateSegment *) lfirst(lc);
}

/*
 * Appends prefix and then the key of tuple to buf.  Returns false, leaving
 * buf undefined, if a column of the key is NULL.  outfuncs is indexed by
 * attnum - 1.
 */
bool
CbTemplateRender(const CbTemplate *tmpl, const char *prefix, HeapTuple tuple,
				 TupleDesc desc, FmgrInfo *outfuncs, StringInfo buf)
{
	int			level = tmpl->fixed_output ? CbFixOutputSettings() : 0;
	bool		complete;

	complete = CbTemplateRenderSegments(tmpl, prefix, tuple, desc, outfuncs, buf);

	if (tmpl->fixed_output)
		AtEOXact_GUC(true, level);
	return complete;
}

/* CbTemplateRender, under whatever settings are in force. */
static bool
CbTemplateRenderSegments(const CbTemplate *tmpl, const char *prefix,
						 HeapTuple tuple, TupleDesc desc, FmgrInfo *outfuncs,
						 StringInfo buf)
{
	appendStringInfoString(buf, prefix);
	for (int i = 0; i < tmpl->nsegments; i++)
	{
		const CbTemplateSegment *seg = &tmpl->segments[i];
		Datum		value;
		bool		isnull;
		char	   *text;

		if (seg->attnum == InvalidAttrNumber)
		{
			appendBinaryStringInfo(buf, seg->literal, seg->len);
			continue;
		}
		value = heap_getattr(tuple, seg->attnum, desc, &isnull);
		if (isnull)
			return false;
		text = OutputFunctionCall(&outfuncs[seg->attnum - 1], value);
		appendStringInfoString(buf, text);
		pfree(text);
	}
	return true;
}

/*
 * Appends to buf the Redis glob pattern matching every key the template
 * can produce under prefix: the prefix and literals escaped, each column a
 * '*'.
 */
void
CbTemplatePattern(const CbTemplate *tmpl, const char *prefix, StringInfo buf)
{
	CbAppendGlobEscaped(buf, prefix, strlen(prefix));
	for (int i = 0; i < tmpl->nsegments; i++)
	{
		const CbTemplateSegment *seg = &tmpl->segments[i];

		if (seg->attnum == InvalidAttrNumber)
			CbAppendGlobEscaped(buf, seg->literal, seg->len);
		else if (i == 0 || tmpl->segments[i - 1].attnum == InvalidAttrNumber)
			appendStringInfoChar(buf, '*');
	}
}
