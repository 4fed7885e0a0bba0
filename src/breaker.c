/*-------------------------------------------------------------------------
 *
 * breaker.c
 *		The circuit breaker: whether Redis is known to be unreachable (or
 *		refusing effects for now), shared by every backend and worker.
 *
 * The first delivery that Redis does not take opens it, after which
 * committing backends in durable and async modes leave their effects to
 * the worker without waiting on Redis, and in sync mode count them failed
 * at once, until the worker (or, in sync mode, a backend probing after
 * cachebridge.retry_interval) reaches Redis again.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "funcapi.h"
#include "port/atomics.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "breaker.h"

typedef struct CbBreakerShared
{
	pg_atomic_uint32 breaker_open;
	slock_t		mutex;			/* protects the fields below */
	TimestampTz opened_at;
	TimestampTz last_success;	/* last delivery the worker completed */
} CbBreakerShared;

/* cachebridge.retry_interval, in ms */
int			cb_retry_interval = 1000;

static CbBreakerShared *shared = NULL;
static CbBreakerShared local_shared;

/* The breaker state in use: shared, or this backend's own. */
static CbBreakerShared *
CbShared(void)
{
	if (shared == NULL)
	{
		pg_atomic_init_u32(&local_shared.breaker_open, 0);
		SpinLockInit(&local_shared.mutex);
		shared = &local_shared;
	}
	return shared;
}

/* Asks for the shared breaker (from the shmem_request_hook). */
void
CbBreakerShmemRequest(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(CbBreakerShared)));
}

/* Attaches to the shared breaker. */
void
CbBreakerShmemStartup(void)
{
	bool		found;

	shared = ShmemInitStruct("cachebridge breaker", sizeof(CbBreakerShared), &found);
	if (!found)
	{
		memset(shared, 0, sizeof(*shared));
		pg_atomic_init_u32(&shared->breaker_open, 0);
		SpinLockInit(&shared->mutex);
	}
}

/* True while Redis is known to be unreachable. */
bool
CbBreakerIsOpen(void)
{
	return pg_atomic_read_u32(&CbShared()->breaker_open) != 0;
}

/* Opens the breaker: Redis could not be reached. */
void
CbBreakerTrip(void)
{
	CbBreakerShared *s = CbShared();
	TimestampTz now = GetCurrentTimestamp();

	if (pg_atomic_exchange_u32(&s->breaker_open, 1) == 0)
	{
		SpinLockAcquire(&s->mutex);
		s->opened_at = now;
		SpinLockRelease(&s->mutex);
	}
}

/* Closes the breaker: Redis answered. */
void
CbBreakerReset(void)
{
	CbBreakerShared *s = CbShared();
	TimestampTz now = GetCurrentTimestamp();

	pg_atomic_write_u32(&s->breaker_open, 0);
	SpinLockAcquire(&s->mutex);
	s->last_success = now;
	SpinLockRelease(&s->mutex);
}

/*
 * In sync mode nobody else probes Redis: a committing backend tries again
 * once cachebridge.retry_interval has passed since the breaker opened.
 */
bool
CbBreakerAllowsProbe(void)
{
	CbBreakerShared *s = CbShared();
	TimestampTz opened;

	SpinLockAcquire(&s->mutex);
	opened = s->opened_at;
	SpinLockRelease(&s->mutex);
	return TimestampDifferenceExceeds(opened, GetCurrentTimestamp(), cb_retry_interval);
}

PG_FUNCTION_INFO_V1(cachebridge_delivery_status);
Datum
cachebridge_delivery_status(PG_FUNCTION_ARGS)
{
	CbBreakerShared *s = CbShared();
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {0};
	TimestampTz opened;
	TimestampTz success;
	bool		open = CbBreakerIsOpen();

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	SpinLockAcquire(&s->mutex);
	opened = s->opened_at;
	success = s->last_success;
	SpinLockRelease(&s->mutex);

	values[0] = CStringGetTextDatum(open ? "open" : "closed");
	values[1] = TimestampTzGetDatum(opened);
	nulls[1] = !open;
	values[2] = TimestampTzGetDatum(success);
	nulls[2] = (success == 0);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
