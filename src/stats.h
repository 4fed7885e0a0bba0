/*-------------------------------------------------------------------------
 *
 * stats.h
 *		Counters of what cachebridge queued, delivered and failed, kept in
 *		shared memory when the library is preloaded, else per backend.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CACHEBRIDGE_STATS_H
#define CACHEBRIDGE_STATS_H

#include "datatype/timestamp.h"

typedef enum CbStatCounter
{
	CB_STAT_QUEUED,				/* effects handed to delivery at commit */
	CB_STAT_DELIVERED,			/* effects Redis acknowledged */
	CB_STAT_FAILED,				/* effects that could not be delivered */
	CB_STAT_RETRIED,			/* effects sent again after a failure */
	CB_STAT_ROUND_TRIPS,		/* pipelines that completed */
	CB_STAT_ERRORS,				/* pipelines that failed */
	CB_STAT_CACHE_HITS,			/* cachebridge.get found a value */
	CB_STAT_CACHE_MISSES,		/* cachebridge.get found nothing */
	CB_STAT_NULL_KEYS,			/* rows whose key had a NULL part */
	CB_STAT_DEGRADED,			/* triggers degraded to pattern invalidation */
	CB_STAT_REFUSED_KEYS,		/* trigger keys refused: marker names */
	CB_STAT_NCOUNTERS
} CbStatCounter;

/* Who delivered a transaction's effects, for the lag statistics. */
typedef enum CbLagSource
{
	CB_LAG_DIRECT,				/* the committing backend, after commit */
	CB_LAG_WORKER,				/* the worker, from the outbox */
	CB_LAG_NSOURCES
} CbLagSource;

extern void CbStatsShmemRequest(void);
extern void CbStatsShmemStartup(void);
extern void CbStatsAdd(CbStatCounter counter, uint64 n);
extern void CbStatsRecordLag(CbLagSource source, TimestampTz committed_at);
extern void CbStatsCountRoundTrip(void);
extern void CbStatsRecordError(const char *server, const char *detail);
extern void CbStatsSetLastError(const char *server, const char *detail);

#endif							/* CACHEBRIDGE_STATS_H */
