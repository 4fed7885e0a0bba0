/*-------------------------------------------------------------------------
 *
 * stats.c
 *		The counters behind the cachebridge.stats view.
 *
 * When cachebridge is in shared_preload_libraries the counters live in
 * shared memory and cover the whole cluster; otherwise each backend keeps
 * its own and the view shows only the calling session's.  Updating a
 * counter is a lock-free atomic add, safe after commit; the last error is
 * copied under a spinlock.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "funcapi.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "stats.h"

typedef struct CbStatsData
{
	pg_atomic_uint64 counters[CB_STAT_NCOUNTERS];
	slock_t		mutex;			/* protects the fields below */
	char		last_error[512];
	TimestampTz last_error_at;	/* 0 if none */
	TimestampTz reset_at;
} CbStatsData;

static CbStatsData *stats = NULL;
static CbStatsData local_stats;
static bool stats_shared = false;

PG_FUNCTION_INFO_V1(cachebridge_stats);
PG_FUNCTION_INFO_V1(cachebridge_stats_reset);

/* Sets every counter to zero and notes the time. */
static void
CbStatsInit(CbStatsData *s)
{
	for (int i = 0; i < CB_STAT_NCOUNTERS; i++)
		pg_atomic_init_u64(&s->counters[i], 0);
	SpinLockInit(&s->mutex);
	s->last_error[0] = '\0';
	s->last_error_at = 0;
	s->reset_at = GetCurrentTimestamp();
}

/* Returns the counters in use, setting up the backend-local ones if need be. */
static CbStatsData *
CbStats(void)
{
	if (stats == NULL)
	{
		CbStatsInit(&local_stats);
		stats = &local_stats;
	}
	return stats;
}

/* Asks for the shared memory (from the shmem_request_hook). */
void
CbStatsShmemRequest(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(CbStatsData)));
}

/* Attaches to (and the first time initialises) the shared counters. */
void
CbStatsShmemStartup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	stats = ShmemInitStruct("cachebridge stats", sizeof(CbStatsData), &found);
	if (!found)
		CbStatsInit(stats);
	LWLockRelease(AddinShmemInitLock);
	stats_shared = true;
}

/* Adds n to a counter. */
void
CbStatsAdd(CbStatCounter counter, uint64 n)
{
	pg_atomic_fetch_add_u64(&CbStats()->counters[counter], n);
}

/* Counts one completed pipeline. */
void
CbStatsCountRoundTrip(void)
{
	CbStatsAdd(CB_STAT_ROUND_TRIPS, 1);
}

/* Counts a failed pipeline and remembers why; never fails. */
void
CbStatsRecordError(const char *server, const char *detail)
{
	CbStatsAdd(CB_STAT_ERRORS, 1);
	CbStatsSetLastError(server, detail);
}

/*
 * Remembers the last error: a failure to reach server, or an error reply
 * of Redis to an effect.  Never fails.
 */
void
CbStatsSetLastError(const char *server, const char *detail)
{
	CbStatsData *s = CbStats();
	TimestampTz now = GetCurrentTimestamp();

	SpinLockAcquire(&s->mutex);
	snprintf(s->last_error, sizeof(s->last_error), "%s: %s", server, detail);
	s->last_error_at = now;
	SpinLockRelease(&s->mutex);
}

/* SQL: the row behind the cachebridge.stats view. */
Datum
cachebridge_stats(PG_FUNCTION_ARGS)
{
	CbStatsData *s = CbStats();
	TupleDesc	tupdesc;
	Datum		values[CB_STAT_NCOUNTERS + 5];
	bool		nulls[CB_STAT_NCOUNTERS + 5] = {0};
	char		last_error[512];
	TimestampTz last_error_at;
	TimestampTz reset_at;
	uint64		c[CB_STAT_NCOUNTERS];
	int			i = 0;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	for (int k = 0; k < CB_STAT_NCOUNTERS; k++)
		c[k] = pg_atomic_read_u64(&s->counters[k]);
	SpinLockAcquire(&s->mutex);
	memcpy(last_error, s->last_error, sizeof(last_error));
	last_error_at = s->last_error_at;
	reset_at = s->reset_at;
	SpinLockRelease(&s->mutex);

	values[i++] = Int64GetDatum((int64) c[CB_STAT_QUEUED]);
	values[i++] = Int64GetDatum((int64) c[CB_STAT_DELIVERED]);
	values[i++] = Int64GetDatum((int64) c[CB_STAT_FAILED]);
	values[i++] = Int64GetDatum((int64) c[CB_STAT_RETRIED]);
	/* in flight: handed to delivery and not yet delivered or failed */
	values[i++] = Int64GetDatum((int64) (c[CB_STAT_QUEUED] -
										 Min(c[CB_STAT_QUEUED],
											 c[CB_STAT_DELIVERED] + c[CB_STAT_FAILED])));
	values[i++] = Int64GetDatum((int64) c[CB_STAT_ROUND_TRIPS]);
	values[i++] = Int64GetDatum((int64) c[CB_STAT_ERRORS]);
	values[i++] = Int64GetDatum((int64) c[CB_STAT_CACHE_HITS]);
	values[i++] = Int64GetDatum((int64) c[CB_STAT_CACHE_MISSES]);
	values[i++] = Int64GetDatum((int64) c[CB_STAT_NULL_KEYS]);
	values[i++] = Int64GetDatum((int64) c[CB_STAT_DEGRADED]);
	values[i++] = Int64GetDatum((int64) c[CB_STAT_REFUSED_KEYS]);
	if (last_error_at != 0)
	{
		values[i++] = CStringGetTextDatum(last_error);
		values[i++] = TimestampTzGetDatum(last_error_at);
	}
	else
	{
		nulls[i++] = true;
		nulls[i++] = true;
	}
	values[i++] = TimestampTzGetDatum(reset_at);
	values[i++] = BoolGetDatum(stats_shared);
	Assert(i == tupdesc->natts);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* SQL: sets every counter to zero. */
Datum
cachebridge_stats_reset(PG_FUNCTION_ARGS)
{
	CbStatsData *s = CbStats();
	TimestampTz now = GetCurrentTimestamp();

	for (int k = 0; k < CB_STAT_NCOUNTERS; k++)
		pg_atomic_write_u64(&s->counters[k], 0);
	SpinLockAcquire(&s->mutex);
	s->last_error[0] = '\0';
	s->last_error_at = 0;
	s->reset_at = now;
	SpinLockRelease(&s->mutex);
	PG_RETURN_VOID();
}
