/*-------------------------------------------------------------------------
 *
 * worker.c
 *		Background workers that drain cachebridge.outbox: a launcher, and
 *		one worker per database that has outbox rows.
 *
 * A background worker connects to one database, so cachebridge runs one
 * worker per database with work to do, started on demand: a backend that
 * commits an outbox row wakes its database's worker, registering it if
 * none runs, and so does COMMIT PREPARED.  A worker exits when its outbox
 * has stayed empty for a while, so it does not hold a connection (or a
 * worker slot) for an idle database, whatever prepared transactions it
 * has; and it steps aside for statements that need its database without
 * other sessions (DROP, CREATE DATABASE ... TEMPLATE, RENAME).  After a start or crash restart, the
 * launcher starts a worker for every database once, so rows left by a
 * crash are delivered.
 *
 * Backends acknowledge the rows they delivered themselves through a ring
 * in shared memory; the worker deletes those rows.  A lost
 * acknowledgement (the ring was full) only means a second, harmless,
 * versioned delivery.
 *
 * A worker connects as the bootstrap superuser (a background worker must
 * connect as someone before it can look the extension up), then fixes the
 * settings that a database or role setting could have chosen for it (as
 * autovacuum does: search_path first) and runs each pass as the extension's
 * owner through CbElevate(), with schema-qualified statements only.
 *
 * Shape of the loops as in pg_prewarm's autoprewarm: signal handlers,
 * BackgroundWorkerUnblockSignals, WaitLatch with WL_EXIT_ON_PM_DEATH,
 * ProcessConfigFile on SIGHUP.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include <dlfcn.h>

#include "backlog.h"
#include "cachebridge.h"
#include "delivery.h"
#include "elevate.h"
#include "outbox.h"
#include "redis.h"

#define CB_MAX_WORKERS 32
#define CB_ACK_RING 1024

/* How long a worker woken by an acknowledgement waits for more (ms). */
#define CB_ACK_LINGER_MS 20

/* Rows a worker delivers per transaction. */
#define CB_DRAIN_BATCH 500

/*
 * How long an empty outbox keeps its worker alive (ms): short enough that
 * DROP DATABASE, which waits 5 s for other sessions to leave, succeeds.
 */
#define CB_IDLE_EXIT_MS 2000

typedef struct CbWorkerSlot
{
	Oid			dboid;			/* InvalidOid: slot free */
	bool		pending;		/* work announced since the worker looked */
	bool		dropping;		/* asked to leave the database (CbWorkerStepAside) */
	pid_t		pid;			/* 0 until the worker runs */
	Latch	   *latch;
	int			nacks;
	int64		acks[CB_ACK_RING];
} CbWorkerSlot;

typedef struct CbWorkerShared
{
	slock_t		mutex;
	CbWorkerSlot slots[CB_MAX_WORKERS];
} CbWorkerShared;

static CbWorkerShared *workers = NULL;
static CbWorkerSlot *my_slot = NULL;

PGDLLEXPORT void CbLauncherMain(Datum arg);
PGDLLEXPORT void CbWorkerMain(Datum arg);

/* Asks for the worker slots (from the shmem_request_hook). */
void
CbWorkerShmemRequest(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(CbWorkerShared)));
}

/* Attaches to the worker slots. */
void
CbWorkerShmemStartup(void)
{
	bool		found;

	workers = ShmemInitStruct("cachebridge workers", sizeof(CbWorkerShared), &found);
	if (!found)
	{
		memset(workers, 0, sizeof(*workers));
		SpinLockInit(&workers->mutex);
	}
}

/* The slot of dboid; caller holds the mutex. */
static CbWorkerSlot *
CbFindSlot(Oid dboid)
{
	for (int i = 0; i < CB_MAX_WORKERS; i++)
		if (workers->slots[i].dboid == dboid)
			return &workers->slots[i];
	return NULL;
}

/*
 * The library the workers load: the file this code was loaded from, so that
 * a server preloading a build by path (a benchmark comparing two builds) runs
 * that build in its workers too, not whatever "$libdir/cachebridge" is.
 */
static void
CbSetLibraryName(BackgroundWorker *worker)
{
	Dl_info		info;

	if (dladdr((void *) CbSetLibraryName, &info) != 0 && info.dli_fname != NULL &&
		strlen(info.dli_fname) < BGW_MAXLEN && is_absolute_path(info.dli_fname))
		strlcpy(worker->bgw_library_name, info.dli_fname, BGW_MAXLEN);
	else
		strlcpy(worker->bgw_library_name, "cachebridge", BGW_MAXLEN);
}

/* Registers the worker of a database; false if there is no room. */
static bool
CbRegisterWorker(Oid dboid)
{
	BackgroundWorker worker = {0};
	BackgroundWorkerHandle *handle;

	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 1;
	CbSetLibraryName(&worker);
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "CbWorkerMain");
	snprintf(worker.bgw_name, BGW_MAXLEN, "cachebridge worker for database %u", dboid);
	snprintf(worker.bgw_type, BGW_MAXLEN, "cachebridge worker");
	worker.bgw_main_arg = ObjectIdGetDatum(dboid);
	return RegisterDynamicBackgroundWorker(&worker, &handle);
}

/*
 * Signals the worker of dboid, starting it if none runs: with ack 0,
 * announces work for its drain; otherwise hands it outbox row ack, which
 * the committing backend delivered itself, to delete (or, if its ring is
 * full, announces work: the drain then sends the row again, harmlessly).
 * Safe after commit: raises no ERROR.  Returns false if no worker could be
 * started.
 */
static bool
CbWorkerSignal(Oid dboid, int64 ack)
{
	CbWorkerSlot *slot;
	Latch	   *latch = NULL;
	bool		start = false;

	if (workers == NULL)
		return false;
	SpinLockAcquire(&workers->mutex);
	slot = CbFindSlot(dboid);
	if (slot == NULL && (slot = CbFindSlot(InvalidOid)) != NULL)
	{
		slot->dboid = dboid;
		slot->pid = 0;
		slot->latch = NULL;
		slot->nacks = 0;
		slot->dropping = false;
		start = true;
	}
	if (slot != NULL)
	{
		/*
		 * Acknowledgements only need deleting, which can wait: wake the
		 * worker for the first (it then lingers to gather more, see
		 * CbWorkerMain) and when the ring is half full.
		 */
		if (ack != 0 && slot->nacks < CB_ACK_RING)
		{
			slot->acks[slot->nacks++] = ack;
			if (slot->nacks == 1 || slot->nacks == CB_ACK_RING / 2)
				latch = slot->latch;
		}
		else
		{
			slot->pending = true;
			latch = slot->latch;
		}
	}
	SpinLockRelease(&workers->mutex);

	if (slot == NULL)
		return false;
	if (latch != NULL)
		SetLatch(latch);
	if (start && !CbRegisterWorker(dboid))
	{
		SpinLockAcquire(&workers->mutex);
		if (slot->dboid == dboid && slot->pid == 0)
			slot->dboid = InvalidOid;
		SpinLockRelease(&workers->mutex);
		return false;
	}
	return true;
}

/* Announces work for the worker of dboid, starting it if none runs. */
bool
CbWorkerWake(Oid dboid)
{
	return CbWorkerSignal(dboid, 0);
}

/* A failure to start a worker, for a committing backend: a WARNING. */
static void
CbWorkerWarnNoSlot(void)
{
	ereport(WARNING,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 errmsg("could not start the cachebridge worker for this database"),
			 errdetail("The effects stay in cachebridge.outbox until a worker runs."),
			 errhint("Raise max_worker_processes.")));
}

/* CbWorkerWake for a committing backend: a failure is a WARNING. */
void
CbWorkerNotify(Oid dboid)
{
	if (workers != NULL && !CbWorkerWake(dboid))
		CbWorkerWarnNoSlot();
}

/*
 * Records that the committing backend delivered outbox row id itself.  The
 * worker only deletes it: no drain of the outbox for a row that needs none.
 */
void
CbOutboxAcknowledge(Oid dboid, int64 id)
{
	if (workers != NULL && !CbWorkerSignal(dboid, id))
		CbWorkerWarnNoSlot();
}

/*
 * True if a backend acknowledged outbox row id since this worker last
 * took the acknowledgements.
 */
bool
CbWorkerAcknowledged(int64 id)
{
	return CbOutboxAcknowledged(MyDatabaseId, id);
}

/*
 * True if the committing backend delivered outbox row id of database dboid
 * and its worker has not taken the acknowledgement yet: the row is only
 * waiting to be deleted.
 */
bool
CbOutboxAcknowledged(Oid dboid, int64 id)
{
	CbWorkerSlot *slot;
	bool		found = false;

	if (workers == NULL)
		return false;
	SpinLockAcquire(&workers->mutex);
	slot = CbFindSlot(dboid);
	for (int i = 0; slot != NULL && i < slot->nacks && !found; i++)
		found = (slot->acks[i] == id);
	SpinLockRelease(&workers->mutex);
	return found;
}

/*
 * A statement that needs the database without other sessions (DROP,
 * CREATE DATABASE from it, RENAME) is about to run: ask the database's
 * worker to leave, and not to come back until CbWorkerComeBack.  From the
 * ProcessUtility hook, for a role that may run the statement.
 */
void
CbWorkerStepAside(Oid dboid)
{
	CbWorkerSlot *slot;
	pid_t		pid = 0;

	if (workers == NULL)
		return;
	SpinLockAcquire(&workers->mutex);
	slot = CbFindSlot(dboid);
	if (slot != NULL)
	{
		slot->dropping = true;
		pid = slot->pid;
	}
	SpinLockRelease(&workers->mutex);
	if (pid != 0)
		kill(pid, SIGTERM);
}

/*
 * The statement announced by CbWorkerStepAside is over, or failed: the
 * database stays, so its worker may come back, and is started again for
 * the rows its outbox may hold.  Also called while an error propagates:
 * raises none.
 */
void
CbWorkerComeBack(Oid dboid)
{
	CbWorkerSlot *slot;

	if (workers == NULL)
		return;
	SpinLockAcquire(&workers->mutex);
	slot = CbFindSlot(dboid);
	if (slot != NULL)
		slot->dropping = false;
	SpinLockRelease(&workers->mutex);
	(void) CbWorkerWake(dboid);
}

/* Registers the launcher (from _PG_init, when preloaded). */
void
CbWorkerRegisterLauncher(void)
{
	BackgroundWorker worker = {0};

	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	CbSetLibraryName(&worker);
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "CbLauncherMain");
	snprintf(worker.bgw_name, BGW_MAXLEN, "cachebridge launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "cachebridge launcher");
	RegisterBackgroundWorker(&worker);
}

/* The databases a worker may serve: every connectable non-template one. */
static List *
CbDatabaseList(void)
{
	List	   *dbs = NIL;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	StartTransactionCommand();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (db->datallowconn && !db->datistemplate)
		{
			MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

			dbs = lappend_oid(dbs, db->oid);
			MemoryContextSwitchTo(old);
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return dbs;
}

/*
 * Launcher: starts the worker of every database once (each exits at once
 * where there is nothing to do), then sleeps until shutdown.
 */
void
CbLauncherMain(Datum arg)
{
	List	   *todo;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("cachebridge launcher");

	todo = CbDatabaseList();
	for (;;)
	{
		/* start what there is room for; retry the rest a second later */
		while (todo != NIL && CbWorkerWake(linitial_oid(todo)))
			todo = list_delete_first(todo);

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 todo != NIL ? 1000 : 3600 * 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
	}
}

/*
 * Exit callback of a worker: leave the slot to the worker's restart.  (An
 * idle exit has freed it already.)
 */
static void
CbWorkerDetach(int code, Datum arg)
{
	if (my_slot == NULL)
		return;
	SpinLockAcquire(&workers->mutex);
	if (my_slot->pid == MyProcPid)
	{
		my_slot->pid = 0;
		my_slot->latch = NULL;
	}
	SpinLockRelease(&workers->mutex);
	my_slot = NULL;
}

/*
 * Takes the slot of dboid for this process.  Exits (code 0: not restarted)
 * if another worker already serves the database -- after a crash restart
 * the postmaster restarts the old worker while the launcher may start a
 * new one -- or if the database is being dropped.
 */
static void
CbWorkerAttach(Oid dboid)
{
	bool		duplicate = false;

	SpinLockAcquire(&workers->mutex);
	my_slot = CbFindSlot(dboid);
	if (my_slot != NULL && (my_slot->dropping ||
							(my_slot->pid != 0 && my_slot->pid != MyProcPid)))
	{
		if (my_slot->dropping)
			my_slot->dboid = InvalidOid;
		my_slot = NULL;
		duplicate = true;
	}
	else
	{
		if (my_slot == NULL && (my_slot = CbFindSlot(InvalidOid)) != NULL)
		{
			my_slot->dboid = dboid;
			my_slot->nacks = 0;
			my_slot->dropping = false;
		}
		if (my_slot != NULL)
		{
			my_slot->pid = MyProcPid;
			my_slot->latch = MyLatch;
		}
	}
	SpinLockRelease(&workers->mutex);
	if (duplicate)
		proc_exit(0);
	if (my_slot == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("no free cachebridge worker slot for database %u", dboid)));
	before_shmem_exit(CbWorkerDetach, (Datum) 0);
}

/* Exits because the outbox is idle, unless work was announced meanwhile. */
static void
CbWorkerExitIfIdle(void)
{
	bool		idle;

	SpinLockAcquire(&workers->mutex);
	idle = !my_slot->pending && my_slot->nacks == 0;
	if (idle)
	{
		/* from here on, a backend's wake registers a new worker */
		my_slot->dboid = InvalidOid;
		my_slot->pid = 0;
		my_slot->latch = NULL;
		my_slot = NULL;
	}
	SpinLockRelease(&workers->mutex);
	if (idle)
		proc_exit(0);			/* exit code 0: not restarted */
}

/*
 * One pass: delete what backends acknowledged, deliver what they did not.
 * The outbox is drained when a backend announced work for it, or when
 * force says so (the first pass, a pass after a nap that nothing cut short,
 * one after a full batch): a pass woken only by acknowledgements deletes
 * them and reads nothing, which is all that most commits need.  Returns
 * the rows handled; sets *unreachable, *idle (nothing was done and nothing
 * is left) and *absent (the database has no cachebridge).
 */
static int
CbWorkerPass(bool try_redis, bool force, bool *unreachable, bool *idle,
			 bool *absent)
{
	int64		acks[CB_ACK_RING];
	int			nacks;
	int			handled = 0;
	bool		drain;
	Oid			owner;
	CbElevation elevation;

	SpinLockAcquire(&workers->mutex);
	drain = try_redis && (force || my_slot->pending);
	my_slot->pending = false;
	nacks = my_slot->nacks;
	memcpy(acks, my_slot->acks, sizeof(int64) * nacks);
	my_slot->nacks = 0;
	SpinLockRelease(&workers->mutex);

	*unreachable = false;
	*idle = false;
	*absent = false;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	pgstat_report_activity(STATE_RUNNING, "cachebridge: delivering the outbox");

	owner = CbExtensionOwner();
	if (!OidIsValid(owner))
		*absent = true;			/* nothing to do in this database */
	else
	{
		CbElevate(owner, &elevation);
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		if (nacks > 0)
			CbOutboxDelete(acks, nacks);
		if (drain)
			handled = CbOutboxDrain(CB_DRAIN_BATCH, unreachable);
		/* all sent: backends may send their own rows again (backlog.c) */
		if (drain && !*unreachable && handled < CB_DRAIN_BATCH &&
			CbBacklogPending())
			(void) CbBacklogTryClear(true);
		*idle = nacks == 0 && handled == 0 && CbOutboxIdle();
		PopActiveSnapshot();
		SPI_finish();
		CbElevateEnd(&elevation);
	}
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	return handled;
}

/*
 * Woken by the first acknowledgement of a batch (nothing else to do): let
 * more gather for CB_ACK_LINGER_MS, so that one pass deletes the rows of
 * many commits.  Announced work, a half-full ring or a signal end it early.
 * Nothing waits on it: wait_delivered() and DROP EXTENSION count a row
 * waiting here as delivered (CbOutboxAcknowledged).
 */
static void
CbWorkerLinger(void)
{
	bool		linger;

	SpinLockAcquire(&workers->mutex);
	linger = !my_slot->pending && !my_slot->dropping &&
		my_slot->nacks > 0 && my_slot->nacks < CB_ACK_RING / 2;
	SpinLockRelease(&workers->mutex);
	if (linger)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 CB_ACK_LINGER_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*
 * Overrides what ALTER DATABASE ... SET or ALTER ROLE ... SET chose for the
 * worker's session, as autovacuum does.  search_path: the worker's
 * statements resolve names in pg_catalog only.  No default meant for the
 * database's sessions may make the worker fail (read-only transactions, a
 * stricter isolation level, timeouts).  synchronous_commit: the worker's
 * transactions only delete delivered rows and mark failed ones; losing one
 * in a crash means a second, harmless, delivery, so they need not wait for
 * the WAL flush.
 */
static void
CbWorkerFixSettings(void)
{
	static const char *const settings[][2] = {
		{"search_path", CB_SAFE_SEARCH_PATH},
		{"default_transaction_read_only", "off"},
		{"default_transaction_isolation", "read committed"},
		{"statement_timeout", "0"},
		{"lock_timeout", "0"},
		{"idle_in_transaction_session_timeout", "0"},
		{"synchronous_commit", "off"},
	};

	for (int i = 0; i < lengthof(settings); i++)
		SetConfigOption(settings[i][0], settings[i][1],
						PGC_SUSET, PGC_S_OVERRIDE);
}

/* Names the worker's Redis connection after its database (CLIENT LIST). */
static void
CbWorkerNameConnection(Oid dboid)
{
	char	   *dbname;

	StartTransactionCommand();
	dbname = get_database_name(dboid);
	CbRedisSetClientName("worker", dbname != NULL ? dbname : "?");
	CommitTransactionCommand();
}

/*
 * Worker of one database: drains the outbox in commit order, backing off
 * while Redis is unreachable, and exits once the outbox stays idle.
 */
void
CbWorkerMain(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	long		backoff = 100;
	TimestampTz next_try = 0;
	TimestampTz idle_since = 0;
	bool		force = true;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	CbWorkerAttach(dboid);
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	CbWorkerFixSettings();
	pgstat_report_appname("cachebridge worker");
	CbWorkerNameConnection(dboid);

	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();
		bool		unreachable;
		bool		idle;
		bool		absent;
		int			handled;
		long		naptime;

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		handled = CbWorkerPass(now >= next_try, force, &unreachable, &idle,
							   &absent);
		if (absent)
			CbWorkerExitIfIdle();
		if (unreachable)
		{
			/* back off while Redis is down: 100 ms doubling up to 5 s */
			next_try = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), backoff);
			backoff = Min(backoff * 2, 5000);
		}
		else if (handled > 0)
			backoff = 100;

		if (!idle)
			idle_since = 0;
		else if (idle_since == 0)
			idle_since = now;
		else if (TimestampDifferenceExceeds(idle_since, now, CB_IDLE_EXIT_MS))
			CbWorkerExitIfIdle();

		naptime = (handled == CB_DRAIN_BATCH && !unreachable) ? 0 :
			unreachable ? backoff : 1000;
		force = true;
		if (naptime > 0)
		{
			int			rc = WaitLatch(MyLatch,
									   WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
									   naptime, PG_WAIT_EXTENSION);

			ResetLatch(MyLatch);
			force = (rc & WL_LATCH_SET) == 0;
			if (!force)
				CbWorkerLinger();
		}
		CHECK_FOR_INTERRUPTS();
	}
}
