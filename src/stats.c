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
 * Delivery lag -- from a transaction's commit to Redis acknowledging its
 * effects -- is kept per source (the committing backend, the worker) as a
 * ring of the last CB_LAG_WINDOW samples: recording one is two atomic
 * operations per delivery, no lock; the percentiles are computed by
 * whoever reads the view.
 *
 * Like pg_stat_statements', the shared counters survive a clean restart:
 * the postmaster writes them to pg_stat/cachebridge.stat when it shuts
 * down and reads (then removes) that file when it starts; after a crash
 * there is no file and they start from zero.  Lag samples are not kept.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "stats.h"

/* Lag samples kept per source. */
#define CB_LAG_WINDOW 1024

/* The last CB_LAG_WINDOW lags of one source, in microseconds. */
typedef struct CbLagWindow
{
	pg_atomic_uint64 recorded;	/* samples ever recorded; next slot */
	pg_atomic_uint64 samples[CB_LAG_WINDOW];
} CbLagWindow;

typedef struct CbStatsData
{
	pg_atomic_uint64 counters[CB_STAT_NCOUNTERS];
	CbLagWindow lag[CB_LAG_NSOURCES];
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
PG_FUNCTION_INFO_V1(cachebridge_delivery_lag);

/* Where the postmaster keeps the counters across a clean restart. */
#define CB_STATS_FILE PGSTAT_STAT_PERMANENT_DIRECTORY "/cachebridge.stat"
#define CB_STATS_FILE_MAGIC 0x43425354	/* "CBST" */

/* What the file holds: this header, then the counters and the last error. */
typedef struct CbStatsFileHeader
{
	uint32		magic;
	uint32		ncounters;		/* CB_STAT_NCOUNTERS of the writer */
	TimestampTz reset_at;
	TimestampTz last_error_at;
	char		last_error[512];
} CbStatsFileHeader;

/* Empties the lag windows. */
static void
CbLagInit(CbStatsData *s)
{
	for (int src = 0; src < CB_LAG_NSOURCES; src++)
	{
		pg_atomic_init_u64(&s->lag[src].recorded, 0);
		for (int i = 0; i < CB_LAG_WINDOW; i++)
			pg_atomic_init_u64(&s->lag[src].samples[i], 0);
	}
}

/* Sets every counter to zero and notes the time. */
static void
CbStatsInit(CbStatsData *s)
{
	for (int i = 0; i < CB_STAT_NCOUNTERS; i++)
		pg_atomic_init_u64(&s->counters[i], 0);
	CbLagInit(s);
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

/*
 * Loads the counters a clean shutdown saved, and removes the file so that
 * a crash before the next clean shutdown starts from zero.  A file that is
 * missing, short or of another layout is ignored (with a LOG line).
 */
static void
CbStatsLoad(CbStatsData *s)
{
	FILE	   *file = AllocateFile(CB_STATS_FILE, PG_BINARY_R);
	CbStatsFileHeader header;
	uint64		counters[CB_STAT_NCOUNTERS];

	if (file == NULL)
	{
		if (errno != ENOENT)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not read file \"%s\": %m", CB_STATS_FILE)));
		return;
	}
	if (fread(&header, sizeof(header), 1, file) == 1 &&
		header.magic == CB_STATS_FILE_MAGIC &&
		header.ncounters == CB_STAT_NCOUNTERS &&
		fread(counters, sizeof(counters), 1, file) == 1)
	{
		for (int i = 0; i < CB_STAT_NCOUNTERS; i++)
			pg_atomic_write_u64(&s->counters[i], counters[i]);
		s->reset_at = header.reset_at;
		s->last_error_at = header.last_error_at;
		memcpy(s->last_error, header.last_error, sizeof(s->last_error));
		s->last_error[sizeof(s->last_error) - 1] = '\0';
	}
	else
		ereport(LOG,
				(errmsg("ignoring cachebridge statistics file \"%s\": it is not of this version",
						CB_STATS_FILE)));
	FreeFile(file);
	unlink(CB_STATS_FILE);
}

/*
 * on_shmem_exit callback of the postmaster: saves the counters at a clean
 * shutdown (code 0), not after a crash.  Written to a temporary file and
 * renamed, so a file is whole or absent.
 */
static void
CbStatsSave(int code, Datum arg)
{
	const char *tmp = CB_STATS_FILE ".tmp";
	CbStatsFileHeader header = {0};
	uint64		counters[CB_STAT_NCOUNTERS];
	FILE	   *file;

	if (code != 0 || stats == NULL)
		return;
	header.magic = CB_STATS_FILE_MAGIC;
	header.ncounters = CB_STAT_NCOUNTERS;
	SpinLockAcquire(&stats->mutex);
	header.reset_at = stats->reset_at;
	header.last_error_at = stats->last_error_at;
	memcpy(header.last_error, stats->last_error, sizeof(header.last_error));
	SpinLockRelease(&stats->mutex);
	for (int i = 0; i < CB_STAT_NCOUNTERS; i++)
		counters[i] = pg_atomic_read_u64(&stats->counters[i]);

	file = AllocateFile(tmp, PG_BINARY_W);
	if (file != NULL)
	{
		bool		written = fwrite(&header, sizeof(header), 1, file) == 1 &&
			fwrite(counters, sizeof(counters), 1, file) == 1;

		if (FreeFile(file) == 0 && written)
		{
			(void) durable_rename(tmp, CB_STATS_FILE, LOG);
			return;
		}
	}
	ereport(LOG,
			(errcode_for_file_access(),
			 errmsg("could not write file \"%s\": %m", tmp)));
	unlink(tmp);
}

/* Attaches to (and the first time initialises) the shared counters. */
void
CbStatsShmemStartup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	stats = ShmemInitStruct("cachebridge stats", sizeof(CbStatsData), &found);
	if (!found)
	{
		CbStatsInit(stats);
		/* the postmaster, at server start or after a crash */
		if (!IsUnderPostmaster)
			CbStatsLoad(stats);
	}
	LWLockRelease(AddinShmemInitLock);
	if (!IsUnderPostmaster)
		on_shmem_exit(CbStatsSave, (Datum) 0);
	stats_shared = true;
}

/* Adds n to a counter. */
void
CbStatsAdd(CbStatCounter counter, uint64 n)
{
	pg_atomic_fetch_add_u64(&CbStats()->counters[counter], n);
}

/*
 * Records the lag of a delivery from source: from committed_at, when the
 * transaction committed, to now, when Redis acknowledged its effects.
 */
void
CbStatsRecordLag(CbLagSource source, TimestampTz committed_at)
{
	CbLagWindow *w = &CbStats()->lag[source];
	TimestampTz now = GetCurrentTimestamp();
	uint64		slot;

	if (committed_at == 0)
		return;
	slot = pg_atomic_fetch_add_u64(&w->recorded, 1) % CB_LAG_WINDOW;
	pg_atomic_write_u64(&w->samples[slot],
						(uint64) Max(now - committed_at, 0));
}

/* Orders lag samples. */
static int
CbLagCompare(const void *a, const void *b)
{
	uint64		x = *(const uint64 *) a;
	uint64		y = *(const uint64 *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * The median and 99th percentile (nearest rank) of source's window, in
 * milliseconds, and how many samples it holds; false if none.
 */
static bool
CbLagPercentiles(CbLagSource source, double *p50, double *p99, int *n)
{
	CbLagWindow *w = &CbStats()->lag[source];
	uint64		samples[CB_LAG_WINDOW];
	uint64		recorded = pg_atomic_read_u64(&w->recorded);

	*n = (int) Min(recorded, CB_LAG_WINDOW);
	if (*n == 0)
		return false;
	for (int i = 0; i < *n; i++)
		samples[i] = pg_atomic_read_u64(&w->samples[i]);
	qsort(samples, *n, sizeof(uint64), CbLagCompare);
	*p50 = samples[(int) ceil(0.50 * *n) - 1] / 1000.0;
	*p99 = samples[(int) ceil(0.99 * *n) - 1] / 1000.0;
	return true;
}

/*
 * SQL: cachebridge.delivery_lag() -- per source, direct (the committing
 * backend) and worker, the median and 99th percentile of the lag of its
 * last CB_LAG_WINDOW deliveries, and how many those are (NULLs before the
 * first).
 */
Datum
cachebridge_delivery_lag(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[3 * CB_LAG_NSOURCES];
	bool		nulls[3 * CB_LAG_NSOURCES] = {0};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	for (int src = 0; src < CB_LAG_NSOURCES; src++)
	{
		double		p50;
		double		p99;
		int			n;

		if (CbLagPercentiles((CbLagSource) src, &p50, &p99, &n))
		{
			values[3 * src] = Float8GetDatum(p50);
			values[3 * src + 1] = Float8GetDatum(p99);
		}
		else
			nulls[3 * src] = nulls[3 * src + 1] = true;
		values[3 * src + 2] = Int32GetDatum(n);
	}
	Assert(tupdesc->natts == 3 * CB_LAG_NSOURCES);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
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
	CbLagInit(s);
	SpinLockAcquire(&s->mutex);
	s->last_error[0] = '\0';
	s->last_error_at = 0;
	s->reset_at = now;
	SpinLockRelease(&s->mutex);
	PG_RETURN_VOID();
}
