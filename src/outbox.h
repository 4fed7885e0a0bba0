/*-------------------------------------------------------------------------
 *
 * outbox.h
 *		The cachebridge.outbox table: store, claim, read, delete and mark
 *		rows.  Nothing here talks to Redis.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CACHEBRIDGE_OUTBOX_H
#define CACHEBRIDGE_OUTBOX_H

#include "access/genam.h"
#include "access/transam.h"
#include "access/xlogdefs.h"
#include "datatype/timestamp.h"
#include "executor/tuptable.h"
#include "utils/relcache.h"
#include "utils/snapshot.h"

/* A row as a worker pass reads it (CbOutboxFetch). */
typedef struct CbOutboxRow
{
	int64		id;
	const char *effects;		/* the encoded plan (plan.c) */
	size_t		len;
	int			neffects;
	bool		direct;			/* its committing backend meant to send it */
	TimestampTz created_at;
	FullTransactionId xid;		/* of the transaction that wrote it */
} CbOutboxRow;

/*
 * A scan of the outbox in id order, through its primary key, under a
 * fresh snapshot: what has committed by now.
 */
typedef struct CbOutboxScan
{
	Snapshot	snapshot;
	TupleTableSlot *slot;
	IndexScanDesc scan;
} CbOutboxScan;

/* cachebridge.outbox opened for reading through its primary key. */
typedef struct CbOutboxRel
{
	Relation	rel;
	Relation	pkey;
	AttrNumber	att_id;
	AttrNumber	att_dead;
} CbOutboxRel;


/* writing and claiming (the committing backend) */
extern int64 CbOutboxInsert(bytea **effects, int neffects,
							XLogRecPtr version, bool direct);
extern void CbOutboxClaim(int64 id);
extern void CbOutboxUnclaim(int64 id);
extern bool CbOutboxRowFree(int64 id);
extern bool CbOutboxRowWait(int64 id);

/* reading, deleting and marking (the worker; marking with SPI connected) */
extern int	CbOutboxFetch(int limit, int64 bytes, CbOutboxRow **rows);
extern void CbOutboxDelete(int64 *ids, int nids);
extern void CbOutboxMark(int64 id, const char *error, bool dead);
extern bool CbOutboxIdle(void);

/* scanning through the primary key, without SQL (pending.c) */
extern void CbOutboxOpen(CbOutboxRel *o);
extern void CbOutboxClose(CbOutboxRel *o);
extern int64 CbOutboxLastId(CbOutboxRel *o);
extern void CbOutboxScanBegin(CbOutboxScan *s, Relation rel, Relation pkey,
							  int64 upto);
extern bool CbOutboxScanNext(CbOutboxScan *s, const CbOutboxRel *o,
							 int64 *id, bool *dead);
extern void CbOutboxScanEnd(CbOutboxScan *s);

#endif							/* CACHEBRIDGE_OUTBOX_H */
