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
 * numeric order, the epoch first), then ":<xid>" in a marker.
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
#include "executor/spi.h"
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

	/* the 1.3 library before ALTER EXTENSION cachebridge UPDATE */
	if (!OidIsValid(get_relname_relid("epoch", CbExtensionSchema())))
	{
		*gen = 1;
		return false;
	}
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
