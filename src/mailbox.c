/*-------------------------------------------------------------------------
 *
 * mailbox.c
 *		The worker slots in shared memory, one per database with a worker:
 *		how backends start and wake a database's worker and hand it the
 *		rows they delivered themselves, and how the worker takes them.
 *
 * Backends acknowledge the rows they delivered themselves through a ring
 * in the slot; the worker deletes those rows.  A lost acknowledgement (the
 * ring was full) only means a second, harmless, versioned delivery.  A
 * statement that needs its database without other sessions (DROP, CREATE
 * DATABASE ... TEMPLATE, RENAME) asks the worker to step aside.
 *
 * Nothing here reads the outbox or talks to Redis: worker.c runs the
 * worker, pending.c asks whether a row was acknowledged.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <dlfcn.h>
#include <signal.h>

#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/shmem.h"
#include "storage/spin.h"

#include "mailbox.h"

#define CB_MAX_WORKERS 32

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
static CbWorkerSlot *my_slot = NULL;	/* the worker's own slot */

/* Asks for the worker slots (from the shmem_request_hook). */
void
CbMailboxShmemRequest(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(CbWorkerShared)));
}

/* Attaches to the worker slots. */
void
CbMailboxShmemStartup(void)
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

/*
 * Exit callback of a worker: leave the slot to the worker's restart.  (An
 * idle exit has freed it already.)
 */
static void
CbMailboxDetach(int code, Datum arg)
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
void
CbMailboxAttach(Oid dboid)
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
	before_shmem_exit(CbMailboxDetach, (Datum) 0);
}

/*
 * Leaves the slot, unless work was announced or acknowledgements came in
 * meanwhile; true if it did (the worker then exits: from here on, a
 * backend's wake registers a new worker).
 */
bool
CbMailboxLeaveIfIdle(void)
{
	bool		idle;

	SpinLockAcquire(&workers->mutex);
	idle = !my_slot->pending && my_slot->nacks == 0;
	if (idle)
	{
		my_slot->dboid = InvalidOid;
		my_slot->pid = 0;
		my_slot->latch = NULL;
		my_slot = NULL;
	}
	SpinLockRelease(&workers->mutex);
	return idle;
}

/*
 * Takes what backends left for the worker: whether work was announced
 * (returned in *announced, and cleared), and the acknowledged row ids
 * (copied to acks, of CB_ACK_RING entries; returns how many).
 */
int
CbMailboxTake(bool *announced, int64 *acks)
{
	int			nacks;

	SpinLockAcquire(&workers->mutex);
	*announced = my_slot->pending;
	my_slot->pending = false;
	nacks = my_slot->nacks;
	memcpy(acks, my_slot->acks, sizeof(int64) * nacks);
	my_slot->nacks = 0;
	SpinLockRelease(&workers->mutex);
	return nacks;
}

/*
 * True if only acknowledgements wait, and not many: the worker may let
 * more gather before it deletes them (see CbWorkerLinger).
 */
bool
CbMailboxOnlyAcks(void)
{
	bool		only;

	SpinLockAcquire(&workers->mutex);
	only = !my_slot->pending && !my_slot->dropping &&
		my_slot->nacks > 0 && my_slot->nacks < CB_ACK_RING / 2;
	SpinLockRelease(&workers->mutex);
	return only;
}
