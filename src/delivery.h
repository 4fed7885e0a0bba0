/*-------------------------------------------------------------------------
 *
 * delivery.h
 *		Turning a transaction's effects into Redis commands, and getting
 *		them there: delivery modes, the outbox, the circuit breaker.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CACHEBRIDGE_DELIVERY_H
#define CACHEBRIDGE_DELIVERY_H

#include "access/transam.h"
#include "access/xlogdefs.h"
#include "datatype/timestamp.h"
#include "nodes/pg_list.h"

#include "queue.h"
#include "redis.h"
#include "version.h"

typedef enum CbDeliveryMode
{
	CB_DELIVERY_SYNC,			/* committing backend only; failures are warnings */
	CB_DELIVERY_DURABLE,		/* outbox row, committing backend, worker retries */
	CB_DELIVERY_ASYNC			/* outbox row, worker only */
} CbDeliveryMode;

/*
 * What a delivery came to, from the verdicts of reply.c on every reply.
 * Only CB_DELIVERED and CB_REJECTED are done with: the others leave the
 * effects pending (CB_CORRUPT ones dead, as they can never be sent).
 */
typedef enum CbDeliveryResult
{
	CB_DELIVERED,				/* every effect applied (or refused as older) */
	CB_REJECTED,				/* the rest applied, some permanently rejected */
	CB_RETRYABLE,				/* Redis answered, but refused some for now */
	CB_UNREACHABLE,				/* Redis could not be reached: try again */
	CB_CORRUPT					/* the encoded effects do not parse */
} CbDeliveryResult;

/* True if a delivery left effects to be sent again. */
#define CbDeliveryPending(r) ((r) == CB_RETRYABLE || (r) == CB_UNREACHABLE)

/*
 * A transaction's effects encoded as "steps": pipelines of versioned
 * EVALSHA commands, and pattern invalidations between them.  The blob is
 * what the outbox stores and what the worker replays.
 */
/* A key by reference. */
typedef struct CbKeyRef
{
	const char *data;
	size_t		len;
} CbKeyRef;

/* A stream entry of the plan, by reference to the queue. */
typedef struct CbPlanEvent
{
	CbKeyRef	stream;
	const char *fields;			/* nfields pairs of (uint32 length, bytes) */
	size_t		len;			/* bytes of fields */
	int			nfields;
	int			maxlen;			/* 0 for none */
	int			order;			/* position in the transaction */
} CbPlanEvent;

typedef struct CbPlan
{
	StringInfoData blob;		/* a bytea: varlena header, then the steps */
	CbPipeline	pipeline;		/* step being built */
	int			pipeline_effects;
	CbKeyRef   *dels;			/* keys of batched deletions */
	int			ndels;
	int			maxdels;
	StringInfoData scratch;
	CbKeyRef   *pubs;			/* "channel\0key" of pending PUBLISHes */
	int			npubs;
	int			maxpubs;
	CbPlanEvent *events;		/* stream entries, sent last */
	int			nevents;
	int			maxevents;
	char		marker[64];		/* "<version>:<xid>" (version.c) */
	CbEpoch		epoch;
	XLogRecPtr	version;		/* WAL position part of the version */
	FullTransactionId fxid;
	TimestampTz committed_at;
	int			neffects;
	int			nentries;		/* stream entries among the effects */
} CbPlan;

extern int	cb_delivery;
extern int	cb_tombstone_ttl;
extern int	cb_retry_interval;
extern int	cb_delivery_timeout;

extern void CbPlanBegin(CbPlan *plan);
extern void CbPlanAdd(CbPlan *plan, CbEffectOp op, const char *key,
					  size_t keylen, const char *payload, size_t len,
					  int nfields, int ttl);
extern bytea *CbPlanEnd(CbPlan *plan);
extern void CbLockStreams(const CbKeyRef *streams, int n);

extern CbDeliveryResult CbDeliverBlob(const char *blob, size_t len,
									  bool skip_events, bool stored,
									  int *failed, char *detail,
									  size_t detaillen);

extern bool CbBlobAppendPipelines(const char *blob, size_t len, StringInfo cmds,
								  int *ncommands, int *neffects);
extern CbDeliveryResult CbDeliverCommands(const char *cmds, size_t len,
										  int ncommands, int neffects,
										  bool *rejected, int *failed,
										  char *detail, size_t detaillen);

extern void CbDeliveryPreCommit(CbPlan *plan, bytea *effects, bool prepare);
extern void CbDeliveryCommit(void);
extern void CbDeliveryReset(void);

extern bool CbOutboxRowFree(int64 id);
extern bool CbOutboxRowWait(int64 id);
extern void CbDeliveryCountError(CbDeliveryResult result, const char *detail);
extern bool CbBreakerIsOpen(void);
extern void CbBreakerTrip(void);
extern void CbBreakerReset(void);
extern void CbDeliveryShmemRequest(void);
extern void CbDeliveryShmemStartup(void);

#endif							/* CACHEBRIDGE_DELIVERY_H */
