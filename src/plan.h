/*-------------------------------------------------------------------------
 *
 * plan.h
 *		The plan codec: a transaction's effects encoded as versioned Redis
 *		commands (the blob the outbox stores), and read back.  Pure.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CACHEBRIDGE_PLAN_H
#define CACHEBRIDGE_PLAN_H

#include "access/transam.h"
#include "access/xlogdefs.h"
#include "datatype/timestamp.h"
#include "lib/stringinfo.h"

#include "resp.h"
#include "scripts.h"
#include "version.h"

/* What an effect does to its key (or, for a pattern, to every match). */
typedef enum CbEffectOp
{
	CB_OP_SET,					/* SET key value [EX ttl] */
	CB_OP_HASH,					/* replace the hash at key by fields [EXPIRE] */
	CB_OP_DEL,					/* DEL key */
	CB_OP_PATTERN,				/* SCAN + UNLINK every key matching a glob */
	CB_OP_XADD,					/* append an entry to the stream at key */
	CB_OP_PUBLISH				/* PUBLISH a key (or pattern) on a channel */
} CbEffectOp;

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
/* A write or deletion of the plan, by reference to the queue. */
typedef struct CbPlanWrite
{
	CbKeyRef	key;
	const char *payload;		/* SET value, or nfields pairs of (uint32 length, bytes) */
	size_t		len;			/* bytes of payload */
	int			nfields;
	int			ttl;			/* seconds, or 0 for none */
	CbEffectOp	op;				/* CB_OP_SET, CB_OP_HASH or CB_OP_DEL */
} CbPlanWrite;

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
	CbPlanWrite *writes;		/* batched writes and deletions: one call's */
	int			nwrites;
	size_t		write_bytes;	/* bytes of their values */
	int			maxwrites;
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

/* One step of an encoded plan, as CbBlobNextStep reads it. */
typedef struct CbBlobStep
{
	char		kind;			/* 'P', 'E' (pipelines) or 'S' (pattern) */
	uint32		neffects;		/* pipelines: effects and commands */
	uint32		ncommands;
	const char *data;
	uint32		len;
} CbBlobStep;


/* A stream append's version, "<version>:<chunk>" (see CbPlanFlushEvents). */
#define CB_XADD_ID_LEN (CB_VERSION_LEN + 9)

/* The last append of a stream seen in a delivery (CbChainStreamAppends). */
typedef struct CbStreamLink
{
	const char *stream;			/* points into the commands sent */
	long		len;
	const char *source;			/* the source database, likewise */
	long		sourcelen;
	char		last[CB_XADD_ID_LEN];
} CbStreamLink;

typedef struct CbStreamChain
{
	CbStreamLink *links;
	int			nlinks;
} CbStreamChain;

/* Magic at the start of an encoded plan. */
#define CB_BLOB_MAGIC "CBX2"

/* cachebridge.tombstone_ttl, in seconds */
extern int	cb_tombstone_ttl;

/* writing */
extern void CbPlanBegin(CbPlan *plan);
extern void CbPlanReserve(CbPlan *plan, size_t bytes);
extern void CbPlanAdd(CbPlan *plan, CbEffectOp op, const char *key,
					  size_t keylen, const char *payload, size_t len,
					  int nfields, int ttl);
extern bytea *CbPlanEnd(CbPlan *plan);
extern int	CbEncodeWriteCall(CbPipeline *p, StringInfo scratch, CbScript script,
							  const char *version, const CbPlanWrite *writes,
							  int n);

/* reading */
extern bool CbBlobStart(const char *blob, size_t len, size_t *pos);
extern bool CbBlobNextStep(const char *blob, size_t len, size_t *pos,
						   bool check, CbBlobStep *step);
extern bool CbBlobPattern(const CbBlobStep *step, const char **pattern,
						  uint32 *patlen, char *marker, size_t markerlen);
extern bool CbBlobAppendPipelines(const char *blob, size_t len, StringInfo cmds,
								  int *ncommands, int *neffects);
extern void CbPlanDescribeKey(const char *cmds, size_t len, int index,
							  int place, StringInfo out);

/* replaying */
extern char *CbChainStreamAppends(const char *cmds, size_t len, int ncommands,
								  CbStreamChain *chain);
extern int	CbPlanRestamp(const char *blob, size_t len, const CbEpoch *to,
						  char *out);

#endif							/* CACHEBRIDGE_PLAN_H */
