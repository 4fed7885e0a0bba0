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
 * This file also owns the fixed output settings that columns are rendered
 * under -- in keys, and (through the trigger) in cached values and stream
 * entries -- so that every session writes the same bytes.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/bytea.h"
#include "utils/datetime.h"
#include "utils/float.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"

#include "keys.h"
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

/* True while CbOutputSettingsFix is in force. */
static bool output_fixed = false;

/*
 * True if values of type typid can hold money, whose text output follows
 * lc_monetary: money itself, or an array, range, multirange, domain or
 * composite with money inside.
 */
bool
CbTypeHasMoney(Oid typid)
{
	Oid			base;
	char		typtype;

	check_stack_depth();		/* a composite can nest others deeply */
	base = getBaseType(typid);
	if (base == CASHOID)
		return true;
	if (OidIsValid(get_element_type(base)))
		return CbTypeHasMoney(get_element_type(base));
	typtype = get_typtype(base);
	if (typtype == TYPTYPE_RANGE)
		return CbTypeHasMoney(get_range_subtype(base));
	if (typtype == TYPTYPE_MULTIRANGE)
		return CbTypeHasMoney(get_multirange_range(base));
	if (typtype == TYPTYPE_COMPOSITE)
	{
		TupleDesc	desc = lookup_rowtype_tupdesc(base, -1);
		bool		found = false;

		for (int a = 0; a < desc->natts && !found; a++)
			if (!TupleDescAttr(desc, a)->attisdropped)
				found = CbTypeHasMoney(TupleDescAttr(desc, a)->atttypid);
		ReleaseTupleDesc(desc);
		return found;
	}
	return false;
}

/*
 * Puts the fixed output settings in force, saving the session's into
 * *saved: keys, cached values and stream entries are rendered under them,
 * so that they do not depend on the writing session.  ISO dates (YMD),
 * TimeZone UTC, IntervalStyle postgres, extra_float_digits 1 (the shortest
 * text that reads back exactly), bytea_output hex; and, when the rendered
 * columns can hold money (monetary), lc_monetary C.
 *
 * All but lc_monetary are plain variables that output functions read, so
 * they are swapped directly rather than through the GUC machinery: a GUC
 * nest level with six settings set and restored costs microseconds per
 * row, the swap nanoseconds.  lc_monetary is read through the locale
 * machinery and is set as a GUC, only for tables that have money.  The
 * caller restores with CbOutputSettingsRestore, also when an error
 * escapes (PG_TRY): nothing in between may leave the fixed values behind.
 */
void
CbOutputSettingsFix(CbOutputSettings *saved, bool monetary)
{
	static pg_tz *utc = NULL;

	if (utc == NULL)
	{
		utc = pg_tzset("UTC");
		if (utc == NULL)
			elog(ERROR, "could not load time zone \"UTC\"");
	}
	saved->was_fixed = output_fixed;
	output_fixed = true;
	saved->datestyle = DateStyle;
	saved->dateorder = DateOrder;
	saved->intervalstyle = IntervalStyle;
	saved->extra_float_digits = extra_float_digits;
	saved->bytea_output = bytea_output;
	saved->timezone = session_timezone;
	saved->guc_level = 0;
	if (monetary)
	{
		saved->guc_level = NewGUCNestLevel();
		(void) set_config_option("lc_monetary", "C", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	}
	DateStyle = USE_ISO_DATES;
	DateOrder = DATEORDER_YMD;
	IntervalStyle = INTSTYLE_POSTGRES;
	extra_float_digits = 1;
	bytea_output = BYTEA_OUTPUT_HEX;
	session_timezone = utc;
}

/*
 * Puts the session's output settings back.  After an ERROR (failed),
 * lc_monetary is left to the abort of the (sub)transaction, which undoes
 * its nest level.
 */
void
CbOutputSettingsRestore(const CbOutputSettings *saved, bool failed)
{
	DateStyle = saved->datestyle;
	DateOrder = saved->dateorder;
	IntervalStyle = saved->intervalstyle;
	extra_float_digits = saved->extra_float_digits;
	bytea_output = saved->bytea_output;
	session_timezone = saved->timezone;
	output_fixed = saved->was_fixed;
	if (saved->guc_level > 0 && !failed)
		AtEOXact_GUC(true, saved->guc_level);
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
 * template") for an unknown column or a malformed template.  With desc
 * NULL, column names are not resolved: such a template can only tell
 * which columns it names (CbTemplateNamesColumn), as a table change needs
 * to know before it is made.
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
			for (int a = 0; desc != NULL && a < desc->natts; a++)
			{
				Form_pg_attribute att = TupleDescAttr(desc, a);

				if (!att->attisdropped && strcmp(NameStr(att->attname), colname) == 0)
				{
					attnum = att->attnum;
					break;
				}
			}
			if (desc != NULL && attnum == InvalidAttrNumber)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_COLUMN),
						 errmsg("column \"%s\" of %s \"%s\" does not exist in table \"%s\"",
								colname, kind, source, relname),
						 errcontext("trigger \"%s\" on table \"%s\"", trigname, relname)));

			CbAddLiteral(&segs, lit.data, lit.len);
			resetStringInfo(&lit);
			seg = palloc0(sizeof(CbTemplateSegment));
			seg->attnum = attnum;
			seg->colname = colname;
			segs = lappend(segs, seg);
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

/* True if the template names the column (as written, before resolving). */
bool
CbTemplateNamesColumn(const CbTemplate *tmpl, const char *colname)
{
	for (int i = 0; i < tmpl->nsegments; i++)
		if (tmpl->segments[i].colname != NULL &&
			strcmp(tmpl->segments[i].colname, colname) == 0)
			return true;
	return false;
}

/*
 * Appends prefix and then the key of tuple to buf.  Returns false, leaving
 * buf undefined, if a column of the key is NULL.  outfuncs is indexed by
 * attnum - 1.  Rendered under the fixed output settings: a caller that
 * renders much of a row (the trigger) puts them in force itself, once for
 * all of it (CbOutputSettingsFix); for any other caller, this does.
 */
bool
CbTemplateRender(const CbTemplate *tmpl, const char *prefix, HeapTuple tuple,
				 TupleDesc desc, FmgrInfo *outfuncs, StringInfo buf)
{
	CbOutputSettings saved;
	bool		complete;

	if (output_fixed)
		return CbTemplateRenderSegments(tmpl, prefix, tuple, desc, outfuncs, buf);
	CbOutputSettingsFix(&saved, false);
	PG_TRY();
	{
		complete = CbTemplateRenderSegments(tmpl, prefix, tuple, desc, outfuncs, buf);
	}
	PG_CATCH();
	{
		CbOutputSettingsRestore(&saved, true);
		PG_RE_THROW();
	}
	PG_END_TRY();
	CbOutputSettingsRestore(&saved, false);
	return complete;
}

/* CbTemplateRender, with the fixed output settings in force. */
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
