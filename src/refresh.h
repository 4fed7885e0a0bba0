/*-------------------------------------------------------------------------
 *
 * refresh.h
 *		Firing a table's cachebridge row triggers on rows it already holds
 *		(refresh.c): for cachebridge.refresh(), and for the partition DDL
 *		that moves rows into or out of a partitioned table (partition.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef CB_REFRESH_H
#define CB_REFRESH_H

#include "commands/trigger.h"
#include "executor/tuptable.h"
#include "utils/rel.h"

/* A cachebridge row trigger, and how to call it. */
typedef struct CbRowTrigger
{
	Trigger    *trigger;
	FmgrInfo	flinfo;
	bool		publish;		/* cachebridge.publish() */
} CbRowTrigger;

/* What CbFiringRowTriggers left out, for the caller's messages. */
typedef struct CbRowTriggersSkipped
{
	bool		disabled;		/* does not fire in this session */
	bool		publish;		/* a publish trigger, not asked for */
} CbRowTriggersSkipped;

extern bool CbIsTriggerFunction(Oid funcoid, bool *publish);
extern CbRowTrigger *CbFiringRowTriggers(Relation rel, bool publish,
										 int *ntriggers,
										 CbRowTriggersSkipped *skipped);
extern void CbFireRowTriggers(Relation rel, CbRowTrigger *triggers,
							  int ntriggers, TriggerEvent event,
							  TupleTableSlot *slot);

#endif							/* CB_REFRESH_H */
