/*-------------------------------------------------------------------------
 *
 * version.c
 *		What a version is, and the epoch that keeps versions growing across
 *		every history of the data.
 *
 * A version orders the committed states of a key.  A WAL position alone
 * does not: it goes backwards when a standby that lost the primary's last
 * transactions is promoted, after point-in-time recovery, and in another
 * cluster (a dump restored into a fresh initdb, pg_upgrade), and every
 * later write of a key whose marker came from the lost or older history
 * would be refused as older.  So a version is
 *
 *		V <generation: 8 hex> <timeline: 8 hex> <WAL position: 16 hex>
 *
 * compared as a string (fixed width, upper-case hex: string order is
 * numeric order, the epoch first; Redis' Lua compares with strcoll, and
 * digits and upper-case letters sort alike in the C locale and the usual
 * others), then ":<xid>" in a marker.
 *
 *	timeline	PostgreSQL's: a promotion and the end of a point-in-time
 *				recovery start a timeline above every one the archive knows,
 *				so the history that continues wins over the one left behind.
 *	generation	kept in the table cachebridge.epoch, with the system
 *				identifier of the cluster that last used it.  The table is
 *				an extension configuration table, so pg_dump carries its row
 *				and pg_upgrade its file; the first writer in a cluster whose
 *				system identifier differs from the recorded one adds one
 *				(in its own transaction, so the bump commits with the first
 *				versions that use it).  A new cluster starts a new timeline
 *				count and a new WAL, but not a lower generation.
 *
 * The 1.3 library serving a database whose extension is still at 1.2 (no
 * table yet) writes generation 0, below the first one recorded.
 *
 * Markers written by 1.2 ("<16 hex>:<xid>") start with a hex digit, which
 * sorts below "V": every 1.3 version is newer than every 1.2 version, so an
 * upgraded database's writes are applied and 1.2's outbox rows never undo
 * them.
 *
 * The generation is read once per backend (the system identifier cannot
 * change under a running server), so the commit path costs no catalog
 * lookup after a backend's first transaction with effects.  A standby reads
 * the generation its primary recorded and never writes it; its timeline is
 * the one it replays.
 *
 * An outbox row made in an older history and replayed in this one gets this
 * epoch in place of its own (plan.c, CbPlanRestamp).
 *
 * Not covered: DROP EXTENSION forgets the generation (a new CREATE
 * EXTENSION starts at 1 again), and a point-in-time recovery from an
 * archive that does not hold the newest timeline may choose a timeline the
 * abandoned history already used.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlogrecovery.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

#include "elevate.h"
#include "version.h"

static bool generation_known = false;
static uint32 generation;

/*
 * Reads the generation recorded in cachebridge.epoch into *gen; returns
 * false when there is none or it was recorded by another cluster, with *gen
 * the generation a writer here will record.  Runs with SPI connected.
 */
static bool
CbReadGeneration(int64 sysid, uint32 *gen)
{
	bool		isnull;
	int64		recorded;

	if (SPI_execute("SELECT generation, system_identifier FROM cachebridge.epoch",
					true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read cachebridge.epoch");
	if (SPI_processed == 0)
	{
		*gen = 1;
		return false;
	}
	*gen = (uint32) DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
												SPI_tuptable->tupdesc, 1, &isnull));
	recorded = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 2, &isnull));
	if (recorded == sysid)
		return true;
	*gen += 1;
	return false;
}

/*
 * Records this cluster's system identifier in cachebridge.epoch with the
 * next generation, unless a concurrent transaction just did.  Runs with SPI
 * connected.
 */
static void
CbBumpGeneration(int64 sysid)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(sysid)};

	if (SPI_execute_with_args("INSERT INTO cachebridge.epoch AS e (generation, system_identifier) "
							  "VALUES (1, $1) ON CONFLICT (only_row) DO UPDATE "
							  "SET generation = e.generation OPERATOR(pg_catalog.+) 1, "
							  "system_identifier = $1 "
							  "WHERE e.system_identifier OPERATOR(pg_catalog.<>) $1",
							  1, types, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not record the cachebridge generation");
}

/* The generation of this database's versions (see the header comment). */
static uint32
CbGeneration(bool writer)
{
	int64		sysid = (int64) GetSystemIdentifier();
	CbElevation elevation;
	uint32		gen;
	bool		matched;

	if (generation_known)
		return generation;
	/*
	 * The 1.3 library before ALTER EXTENSION cachebridge UPDATE: below the
	 * first recorded generation, so that a dump taken before the first
	 * write after the update (no row yet) and restored elsewhere is not
	 * outranked by what this cluster wrote meanwhile.
	 */
	if (!OidIsValid(get_relname_relid("epoch", CbExtensionSchema())))
		return 0;

	CbElevate(CbExtensionOwner(), &elevation);
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	matched = CbReadGeneration(sysid, &gen);
	if (!matched && writer)
	{
		CbBumpGeneration(sysid);
		/* see the row as it is now: this bump, or a concurrent one */
		CommandCounterIncrement();
		PopActiveSnapshot();
		PushActiveSnapshot(GetLatestSnapshot());
		if (!CbReadGeneration(sysid, &gen))
			elog(ERROR, "could not record the cachebridge generation");
		matched = true;
	}
	PopActiveSnapshot();
	SPI_finish();
	CbElevateEnd(&elevation);

	/*
	 * A reader on a primary before its first writer gets what that writer
	 * will record, and asks again next time; a standby never records it.
	 */
	if (!matched && !RecoveryInProgress())
		return gen;
	generation = gen;
	generation_known = true;
	return gen;
}

/*
 * Sets *epoch to the epoch of the history this server writes (or, on a
 * standby, replays) and returns the WAL position there now: the insert
 * position, or on a standby the replay position.  writer says the caller's
 * transaction may record the generation (see the header comment).
 */
XLogRecPtr
CbCurrentEpoch(CbEpoch *epoch, bool writer)
{
	XLogRecPtr	lsn;

	if (RecoveryInProgress())
	{
		lsn = GetXLogReplayRecPtr(&epoch->timeline);
		writer = false;
	}
	else
	{
		lsn = GetXLogInsertRecPtr();
		epoch->timeline = GetWALInsertionTimeLine();
	}
	epoch->generation = CbGeneration(writer);
	return lsn;
}

/* Writes the epoch, CB_EPOCH_LEN characters and a NUL, to buf. */
void
CbFormatEpoch(char *buf, const CbEpoch *epoch)
{
	snprintf(buf, CB_EPOCH_LEN + 1, "V%08X%08X", epoch->generation, epoch->timeline);
}

/* Writes the version of lsn in epoch, CB_VERSION_LEN characters and a NUL. */
void
CbFormatVersion(char *buf, const CbEpoch *epoch, XLogRecPtr lsn)
{
	snprintf(buf, CB_VERSION_LEN + 1, "V%08X%08X%08X%08X",
			 epoch->generation, epoch->timeline, LSN_FORMAT_ARGS(lsn));
}

/* ---------------------------------------------------------------------
 * Commit order of keys no row lock orders
 * ---------------------------------------------------------------------
 *
 * A version is taken at PRE_COMMIT, before the commit record is written:
 * two transactions could take theirs in one order and commit in the other,
 * and the one that committed last would be refused as older.  For a key
 * rendered from columns that hold a unique index, that cannot happen: two
 * writers of the key change the same row, or insert or update to the same
 * unique value, and the second waits (row lock, unique check) until the
 * first has committed, so it takes its version after the first's commit.
 * A key of a template on other columns (user_orders:{user_id}) has no such
 * order: two transactions change different rows with the same key.  Such
 * keys are locked here, at PRE_COMMIT (or PRE_PREPARE) before the version
 * is taken, until the end of the transaction, which is after its commit
 * and its own delivery: the second writer of a key takes its version after
 * the first has committed.  A prepared transaction keeps the locks until
 * COMMIT PREPARED, so no writer of its keys commits between its PREPARE,
 * whose version its effects carry, and its COMMIT PREPARED: that version
 * orders it against every writer of those keys as its commit's would.
 *
 * One lock per key (by 64-bit hash of the rendered key; a collision only
 * orders two unrelated keys), in hash order so that two transactions
 * cannot deadlock on them, after a database-wide lock in share mode; a
 * transaction with more than CB_ORDER_LOCKS_MAX such keys takes that lock
 * in exclusive mode instead, as CbLockStreams does for streams.
 */

#define CB_ORDER_LOCKS_MAX 32
#define CB_ORDER_LOCK_FIELD4 0xCB10
#define CB_ORDER_ALL_LOCK_FIELD4 0xCB11

static uint64 order_hashes[CB_ORDER_LOCKS_MAX];
static int	norder = 0;
static bool order_all = false;

/* Records that the current transaction writes key, which no row lock orders. */
void
CbOrderKey(const char *key, size_t len)
{
	uint64		h;

	if (order_all)
		return;
	h = hash_bytes_extended((const unsigned char *) key, (int) len, 0);
	for (int i = 0; i < norder; i++)
		if (order_hashes[i] == h)
			return;
	if (norder == CB_ORDER_LOCKS_MAX)
		order_all = true;
	else
		order_hashes[norder++] = h;
}

/* Orders 64-bit hashes. */
static int
CbOrderHashCompare(const void *a, const void *b)
{
	uint64		ha = *(const uint64 *) a;
	uint64		hb = *(const uint64 *) b;

	return (ha > hb) - (ha < hb);
}

/*
 * Takes the locks of the keys CbOrderKey recorded; called at PRE_COMMIT or
 * PRE_PREPARE, before the version is taken.  They are released with the
 * transaction's other locks.
 */
void
CbOrderLock(void)
{
	LOCKTAG		tag;

	if (norder == 0 && !order_all)
		return;
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, 0, 0, CB_ORDER_ALL_LOCK_FIELD4);
	if (order_all)
	{
		(void) LockAcquire(&tag, ExclusiveLock, false, false);
		return;
	}
	(void) LockAcquire(&tag, ShareLock, false, false);
	qsort(order_hashes, norder, sizeof(uint64), CbOrderHashCompare);
	for (int i = 0; i < norder; i++)
	{
		SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) (order_hashes[i] >> 32),
							 (uint32) order_hashes[i], CB_ORDER_LOCK_FIELD4);
		(void) LockAcquire(&tag, ExclusiveLock, false, false);
	}
}

/* End of transaction: forget the recorded keys. */
void
CbOrderReset(void)
{
	norder = 0;
	order_all = false;
}
