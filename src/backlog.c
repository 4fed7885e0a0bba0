/*-------------------------------------------------------------------------
 *
 * backlog.c
 *		Whether a database has outbox rows left to its worker (a backlog),
 *		which decides whether a committing backend may send its own row.
 *
 * The worker sends rows in outbox order.  A committing backend that sent
 * its own row while older rows still waited for the worker would put a
 * newer state into Redis before an older one; the versions then refuse
 * the older one -- unless Redis lost the newer one's marker meanwhile (a
 * restart without persistence, a failover), or the newer one was a
 * pattern deletion (TRUNCATE) that could not leave a marker for keys that
 * did not exist yet, or a delete whose tombstone expired before the older
 * write was replayed.  So while a database has a backlog, its committing
 * backends leave their rows to the worker too, and every state of a key
 * reaches Redis in commit order, whatever Redis lost in between.
 *
 * The state is two counters per database in shared memory: "set", bumped
 * by every backend that leaves a row to the worker, and "cleared", which
 * the worker moves up to a value of "set" it read once it has seen every
 * row delivered.  A backlog is pending while they differ, and also while
 * the database has no entry (after a start or crash restart, until a
 * worker or backend has seen the outbox empty; or when the table is full).
 *
 * Races.  A backend that leaves its row to the worker at PRE_COMMIT bumps
 * "set" before it inserts the row, holding the database's backlog lock in
 * share mode until its transaction ends.  To clear, the worker takes that
 * lock in exclusive mode -- so every backend that bumped "set" up to the
 * value it reads has ended, and its row is committed or gone -- reads
 * "set", lets go, and then reads the outbox under a fresh snapshot.  A
 * backend that finds only after commit that its row stays (Redis did not
 * take it) bumps "set" while it still holds the row's lock: the worker
 * waits for that lock before it counts the row delivered.  A backend that
 * reads no backlog at PRE_COMMIT inserted its row before any later bump:
 * a row left to the worker afterwards comes after it in the outbox.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/lock.h"
#include "storage/shmem.h"
#include "storage/spin.h"

#include "backlog.h"
#include "pending.h"

/* Databases whose backlog is tracked; the others always have one. */
#define CB_BACKLOG_DATABASES 64

/* field4 of the advisory lock tag of a database's backlog */
#define CB_BACKLOG_LOCK_FIELD4 0xCB04

typedef struct CbBacklogEntry
{
	Oid			dboid;			/* InvalidOid: free */
	uint64		set;
	uint64		cleared;
} CbBacklogEntry;

typedef struct CbBacklogShared
{
	slock_t		mutex;
	uint64		overflow;		/* bumps of databases without an entry */
	CbBacklogEntry entries[CB_BACKLOG_DATABASES];
} CbBacklogShared;

static CbBacklogShared *backlog = NULL;

/* Asks for the table (from the shmem_request_hook). */
void
CbBacklogShmemRequest(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(CbBacklogShared)));
}

/* Attaches to the table; it starts empty: every database has a backlog. */
void
CbBacklogShmemStartup(void)
{
	bool		found;

	backlog = ShmemInitStruct("cachebridge backlog", sizeof(CbBacklogShared), &found);
	if (!found)
	{
		memset(backlog, 0, sizeof(*backlog));
		SpinLockInit(&backlog->mutex);
	}
}

/* The entry of this database, or NULL; caller holds the mutex. */
static CbBacklogEntry *
CbBacklogFind(void)
{
	for (int i = 0; i < CB_BACKLOG_DATABASES; i++)
		if (backlog->entries[i].dboid == MyDatabaseId)
			return &backlog->entries[i];
	return NULL;
}

/* A new entry for this database, or NULL if full; caller holds the mutex. */
static CbBacklogEntry *
CbBacklogCreate(uint64 set)
{
	for (int i = 0; i < CB_BACKLOG_DATABASES; i++)
		if (backlog->entries[i].dboid == InvalidOid)
		{
			backlog->entries[i].dboid = MyDatabaseId;
			backlog->entries[i].set = set;
			backlog->entries[i].cleared = 0;
			return &backlog->entries[i];
		}
	return NULL;
}

/*
 * True if this database has rows left to its worker (or may have): a
 * committing backend must then leave its own row to the worker too.
 * Without shared memory (not preloaded) there is no worker and no outbox.
 */
bool
CbBacklogPending(void)
{
	CbBacklogEntry *e;
	bool		pending;

	if (backlog == NULL)
		return false;
	SpinLockAcquire(&backlog->mutex);
	e = CbBacklogFind();
	pending = (e == NULL || e->set != e->cleared);
	SpinLockRelease(&backlog->mutex);
	return pending;
}

/* Bumps this database's "set" counter. */
static void
CbBacklogBump(void)
{
	CbBacklogEntry *e;

	SpinLockAcquire(&backlog->mutex);
	e = CbBacklogFind();
	if (e == NULL)
		e = CbBacklogCreate(0);
	if (e != NULL)
		e->set++;
	else
		backlog->overflow++;
	SpinLockRelease(&backlog->mutex);
}

/* The tag of this database's backlog lock. */
static void
CbBacklogTag(LOCKTAG *tag)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, 0, 0, CB_BACKLOG_LOCK_FIELD4);
}

/*
 * At PRE_COMMIT, before the outbox row is inserted: this transaction
 * leaves its row to the worker.  Holds the backlog lock in share mode
 * until the transaction ends.
 */
void
CbBacklogAdd(void)
{
	LOCKTAG		tag;

	if (backlog == NULL)
		return;
	CbBacklogTag(&tag);
	(void) LockAcquire(&tag, ShareLock, false, false);
	CbBacklogBump();
}

/*
 * After commit, with the row's lock still held: the committed row stays
 * for the worker (Redis did not take it, or the backend did not try).
 * Raises no ERROR.
 */
void
CbBacklogAddCommitted(void)
{
	if (backlog != NULL)
		CbBacklogBump();
}

/*
 * Clears this database's backlog if every row of its outbox is delivered
 * (see the header comment).  The worker waits for the backlog lock and
 * for rows being sent; a backend (worker false) only settles an unknown
 * state -- the database has no entry yet -- and only if the lock is free
 * and the outbox holds no live row.  Returns true if there is no backlog
 * now.  Runs in a transaction, with a snapshot-free outbox read.
 */
bool
CbBacklogTryClear(bool worker)
{
	LOCKTAG		tag;
	CbBacklogEntry *e;
	bool		present;
	uint64		set = 0;
	uint64		overflow;

	if (backlog == NULL)
		return true;
	SpinLockAcquire(&backlog->mutex);
	e = CbBacklogFind();
	present = (e != NULL);
	SpinLockRelease(&backlog->mutex);
	if (!worker && present)
		return !CbBacklogPending();

	CbBacklogTag(&tag);
	if (LockAcquire(&tag, ExclusiveLock, false, !worker) == LOCKACQUIRE_NOT_AVAIL)
		return false;
	SpinLockAcquire(&backlog->mutex);
	e = CbBacklogFind();
	present = (e != NULL);
	if (present)
		set = e->set;
	overflow = backlog->overflow;
	SpinLockRelease(&backlog->mutex);
	LockRelease(&tag, ExclusiveLock, false);

	/* every backend that bumped up to "set" has ended: its row is visible */
	if (!CbPendingNone(worker))
		return false;

	SpinLockAcquire(&backlog->mutex);
	e = CbBacklogFind();
	if (present && e != NULL && e->cleared < set)
		e->cleared = set;
	else if (!present && e == NULL && backlog->overflow == overflow)
		(void) CbBacklogCreate(0);
	SpinLockRelease(&backlog->mutex);
	return !CbBacklogPending();
}
