/*-------------------------------------------------------------------------
 *
 * cachebridge.c
 *		Module entry point: settings (GUCs), shared memory, and the hooks
 *		(ProcessUtility, emit_log) through which cachebridge watches the
 *		statements that concern it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "access/xact.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "executor/executor.h"
#include "storage/ipc.h"
#include "tcop/utility.h"
#include "storage/lwlock.h"
#include "utils/acl.h"
#include "utils/elog.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "backlog.h"
#include "breaker.h"
#include "cache.h"
#include "delivery.h"
#include "elevate.h"
#include "keys.h"
#include "mailbox.h"
#include "namespace.h"
#include "pending.h"
#include "queue.h"
#include "redis.h"
#include "scripts.h"
#include "stats.h"
#include "tls.h"

PG_MODULE_MAGIC;

/* GUC variables */
char	   *cb_redis_url = NULL;
char	   *cb_redis_password_file = NULL;
int			cb_connect_timeout = 1000;
int			cb_command_timeout = 2000;

/* Saved hook values */
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static emit_log_hook_type prev_emit_log_hook = NULL;
static ExecutorStart_hook_type prev_ExecutorStart = NULL;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;

void		_PG_init(void);

static void CbWarnUnprotectedPassword(void);

/* Requests shared memory for every part that keeps state there. */
static void
CbShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	CbStatsShmemRequest();
	CbBreakerShmemRequest();
	CbBacklogShmemRequest();
	CbMailboxShmemRequest();
}

/* Attaches to the shared memory requested by CbShmemRequest. */
static void
CbShmemStartup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	CbStatsShmemStartup();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	CbBreakerShmemStartup();
	CbBacklogShmemStartup();
	CbMailboxShmemStartup();
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Log hook: PostgreSQL logs "parameter ... changed to ..." with the new
 * value when the configuration is reloaded; for cachebridge.redis_url that
 * value may hold a password, so the line is rewritten without it.  Any
 * other message about cachebridge.redis_url is logged without the
 * statement that caused it.
 */
static void
CbEmitLogHook(ErrorData *edata)
{
	static const char url_param[] = "\"cachebridge.redis_url\"";

	if (edata->message_id != NULL && edata->message != NULL &&
		strcmp(edata->message_id, "parameter \"%s\" changed to \"%s\"") == 0 &&
		strstr(edata->message, url_param) != NULL)
	{
		CbRedisTarget target;
		char		reason[256];
		const char *start = strstr(edata->message, url_param) + sizeof(url_param);
		char	   *value = pstrdup(start);

		/* the value runs from after 'changed to "' to the closing quote */
		value = strchr(value, '"') ? strchr(value, '"') + 1 : value;
		if (strrchr(value, '"'))
			*strrchr(value, '"') = '\0';
		edata->message = MemoryContextStrdup(ErrorContext,
											 psprintf("parameter \"cachebridge.redis_url\" changed (now %s)",
													  CbParseRedisUrl(value, &target, reason, sizeof(reason))
													  ? target.display : "invalid"));
	}
	else if (edata->message != NULL && strstr(edata->message, url_param) != NULL)
	{
		/*
		 * A message about the setting (a value refused, a SET refused) may
		 * come from a statement that holds the URL, password included: the
		 * statement is left out of the log.
		 */
		edata->hide_stmt = true;
	}
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

static const struct config_enum_entry delivery_options[] = {
	{"sync", CB_DELIVERY_SYNC, false},
	{"durable", CB_DELIVERY_DURABLE, false},
	{"async", CB_DELIVERY_ASYNC, false},
	{NULL, 0, false}
};

/* GUC check hook of cachebridge.delivery: the outbox needs the worker. */
static bool
CbDeliveryCheckHook(int *newval, void **extra, GucSource source)
{
	if (*newval != CB_DELIVERY_SYNC && !cb_preloaded)
	{
		GUC_check_errdetail("Delivery modes durable and async need the cachebridge "
							"worker, which runs only when cachebridge is in "
							"shared_preload_libraries.");
		return false;
	}
	return true;
}

/* Runs a utility statement through the hooks installed before ours. */
static void
CbPrevProcessUtility(PlannedStmt *pstmt, const char *queryString,
					 bool readOnlyTree, ProcessUtilityContext context,
					 ParamListInfo params, QueryEnvironment *queryEnv,
					 DestReceiver *dest, QueryCompletion *qc)
{
	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
							params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

/*
 * The database whose worker must step aside for a statement: DROP
 * DATABASE, CREATE DATABASE of a template and ALTER DATABASE RENAME all
 * fail while another session, the worker's, is connected to it.  Only for
 * a role that may run the statement (the database's owner with CREATEDB
 * where PostgreSQL asks for it, or a superuser), so that no one else can
 * stop a worker with a statement PostgreSQL then refuses.
 */
static Oid
CbDatabaseToLeave(Node *stmt)
{
	const char *dbname = NULL;
	bool		needs_createdb = true;
	Oid			dboid;

	if (IsA(stmt, DropdbStmt))
	{
		dbname = ((DropdbStmt *) stmt)->dbname;
		needs_createdb = false;
	}
	else if (IsA(stmt, CreatedbStmt))
	{
		ListCell   *lc;

		dbname = "template1";
		foreach(lc, ((CreatedbStmt *) stmt)->options)
		{
			DefElem    *opt = lfirst_node(DefElem, lc);

			if (strcmp(opt->defname, "template") == 0 && opt->arg != NULL)
				dbname = defGetString(opt);
		}
	}
	else if (IsA(stmt, RenameStmt) &&
			 ((RenameStmt *) stmt)->renameType == OBJECT_DATABASE)
		dbname = ((RenameStmt *) stmt)->subname;
	if (dbname == NULL)
		return InvalidOid;
	dboid = get_database_oid(dbname, true);
	if (!OidIsValid(dboid) || !pg_database_ownercheck(dboid, GetUserId()) ||
		(needs_createdb && !have_createdb_privilege()))
		return InvalidOid;
	return dboid;
}

/*
 * Refuses DROP EXTENSION cachebridge while this database's outbox holds
 * committed effects not yet delivered: dropping it would discard them
 * without a word.
 */
static void
CbCheckDropExtension(Node *stmt)
{
	DropStmt   *drop = (DropStmt *) stmt;
	ListCell   *lc;
	int64		undelivered;

	Oid			nsp;

	/* (an extension in a schema another role controls may always go) */
	if (!IsA(stmt, DropStmt) || drop->removeType != OBJECT_EXTENSION ||
		!CbExtensionSchemaOk(&nsp))
		return;
	foreach(lc, drop->objects)
	{
		if (strcmp(strVal(lfirst(lc)), "cachebridge") != 0)
			continue;
		undelivered = CbPendingRows();
		if (undelivered > 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_IN_USE),
					 errmsg("cannot drop extension cachebridge while its outbox holds %lld undelivered transaction(s)",
							(long long) undelivered),
					 errdetail("Dropping it would discard committed cache effects that Redis has not received."),
					 errhint("Wait for them with SELECT cachebridge.wait_delivered(), or delete them from cachebridge.outbox to discard them.")));
	}
}

/*
 * ProcessUtility hook.  Refuses to drop the extension with undelivered
 * effects (CbCheckDropExtension).  Before a statement that needs a database without
 * other sessions, ask that database's worker to leave; after it, let the
 * worker come back (unless the database was dropped), and so also if the
 * statement fails.  After COMMIT PREPARED, wake this database's worker:
 * the prepared transaction's outbox row is now to be delivered, and
 * workers do not stay for prepared transactions that may never have any.
 * After SET TRANSACTION SNAPSHOT, tell the fills (cache.c) that this
 * transaction's snapshot may be older than the transaction.
 */
static void
CbProcessUtility(PlannedStmt *pstmt, const char *queryString,
				 bool readOnlyTree, ProcessUtilityContext context,
				 ParamListInfo params, QueryEnvironment *queryEnv,
				 DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *stmt = pstmt->utilityStmt;
	Oid			dboid = CbDatabaseToLeave(stmt);

	CbCheckDropExtension(stmt);
	/* a utility (COPY ... TO, CALL, DO) runs with a snapshot too */
	if (IsTransactionState())
		CbCacheNoteQueryStart();

	if (!OidIsValid(dboid))
	{
		bool		commit_prepared = IsA(stmt, TransactionStmt) &&
			((TransactionStmt *) stmt)->kind == TRANS_STMT_COMMIT_PREPARED;

		/*
		 * The prepared transaction's row (if any) is left to the worker:
		 * a backlog before the commit, so that no backend sends a later
		 * row first, and after it, when the row is visible (backlog.c).
		 */
		if (commit_prepared)
			CbBacklogAddCommitted();
		CbPrevProcessUtility(pstmt, queryString, readOnlyTree, context,
							 params, queryEnv, dest, qc);
		if (commit_prepared)
		{
			CbBacklogAddCommitted();
			(void) CbWorkerWake(MyDatabaseId);
		}
		if (IsA(stmt, VariableSetStmt) &&
			((VariableSetStmt *) stmt)->kind == VAR_SET_MULTI &&
			strcmp(((VariableSetStmt *) stmt)->name, "TRANSACTION SNAPSHOT") == 0)
			CbCacheNoteSnapshotImport();
		return;
	}

	CbWorkerStepAside(dboid);
	PG_TRY();
	{
		CbPrevProcessUtility(pstmt, queryString, readOnlyTree, context,
							 params, queryEnv, dest, qc);
	}
	PG_CATCH();
	{
		CbWorkerComeBack(dboid);
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (!IsA(stmt, DropdbStmt))
		CbWorkerComeBack(dboid);
}

/*
 * ExecutorStart hook: a query's snapshot is taken; on a standby that lags,
 * the fills of its transaction count their age from the data it reads
 * (cache.c).
 */
static void
CbExecutorStart(QueryDesc *queryDesc, int eflags)
{
	CbCacheNoteQueryStart();
	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

/*
 * Loaded by a backend rather than preloaded, cachebridge.redis_url was a
 * placeholder setting until now, which PostgreSQL shows to every role:
 * a password in it was readable by anyone.  Say so, once per backend.
 */
static void
CbWarnUnprotectedPassword(void)
{
	CbRedisTarget target;
	char		reason[256];

	if (process_shared_preload_libraries_in_progress || cb_redis_url == NULL ||
		!CbParseRedisUrl(cb_redis_url, &target, reason, sizeof(reason)))
		return;
	if (target.password[0] != '\0')
		ereport(WARNING,
				(errcode(ERRCODE_WARNING),
				 errmsg("cachebridge.redis_url holds a password that every role could read"),
				 errdetail("cachebridge is not in shared_preload_libraries, so the setting is not protected before a session loads the library."),
				 errhint("Put the password in cachebridge.redis_password_file, or add cachebridge to shared_preload_libraries.")));
	explicit_bzero(&target, sizeof(target));
}

/* Module load: define the settings, install the hooks. */
void
_PG_init(void)
{
	cb_preloaded = process_shared_preload_libraries_in_progress;
	if (!cb_preloaded)
		CbCacheNoteLoad();

	DefineCustomStringVariable("cachebridge.redis_url",
							   "Redis server that cachebridge writes to.",
							   "redis://[[user]:password@]host[:port][/db] or "
							   "unix:///path/to/redis.sock[?db=N]. Only superusers "
							   "can see or set it, since it may hold a password; in "
							   "production, keep the password in "
							   "cachebridge.redis_password_file instead.",
							   &cb_redis_url,
							   "redis://127.0.0.1:6379/0",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   CbRedisUrlCheckHook,
							   CbRedisUrlAssignHook,
							   NULL);

	DefineCustomStringVariable("cachebridge.redis_password_file",
							   "File holding the password cachebridge authenticates to Redis with.",
							   "Its first line is sent with AUTH, with the user name of "
							   "cachebridge.redis_url if it has one, instead of a password "
							   "in the URL. It is read at every new connection, so a "
							   "rotated password is picked up, and must be accessible to "
							   "the server's operating system user only (mode 0600). "
							   "Empty: no password file.",
							   &cb_redis_password_file,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   NULL,
							   CbRedisPasswordFileAssignHook,
							   NULL);

	DefineCustomStringVariable("cachebridge.tls_ca_file",
							   "File of CA certificates that verify the Redis server's certificate.",
							   "Used with a rediss:// cachebridge.redis_url: the server's "
							   "certificate must be signed by one of them and name the "
							   "host (or IP address) of the URL. Empty: the system's CA "
							   "store.",
							   &cb_tls_ca_file,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   NULL,
							   CbTlsSettingAssignHook,
							   NULL);

	DefineCustomStringVariable("cachebridge.tls_cert_file",
							   "File of the client certificate cachebridge presents to Redis over TLS.",
							   "For a Redis server that asks for client certificates "
							   "(tls-auth-clients yes). Set together with "
							   "cachebridge.tls_key_file. Empty: no client certificate.",
							   &cb_tls_cert_file,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   NULL,
							   CbTlsSettingAssignHook,
							   NULL);

	DefineCustomStringVariable("cachebridge.tls_key_file",
							   "File of the private key of cachebridge.tls_cert_file.",
							   "An unencrypted PEM key that only the server's operating "
							   "system user may access (mode 0600, or 0640 if owned by "
							   "root). Empty: no client certificate.",
							   &cb_tls_key_file,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   NULL,
							   CbTlsSettingAssignHook,
							   NULL);

	CbDefiningSettings(true);
	DefineCustomStringVariable("cachebridge.key_prefix",
							   "Prefix of every Redis key cachebridge writes or deletes.",
							   "Keeps the keys of one database or application apart "
							   "from others sharing the Redis server. A session's value "
							   "governs its cache-aside calls; triggers use the value "
							   "configured for their table's owner.",
							   &cb_key_prefix,
							   "",
							   PGC_SUSET,
							   0,
							   CbKeyPrefixCheckHook,
							   NULL,
							   NULL);
	CbDefiningSettings(false);

	DefineCustomIntVariable("cachebridge.connect_timeout",
							"Longest wait for a connection to Redis.",
							"Only superusers can change it: a wait cut short opens "
							"the circuit breaker every session shares.",
							&cb_connect_timeout,
							1000,
							1,
							600000,
							PGC_SUSET,
							GUC_UNIT_MS,
							NULL,
							NULL,
							NULL);

	DefineCustomIntVariable("cachebridge.command_timeout",
							"Longest wait for Redis to accept commands or answer them.",
							"The wait restarts whenever Redis makes progress, so a "
							"long pipeline is not cut short while replies keep coming. "
							"Only superusers can change it: a wait cut short opens "
							"the circuit breaker every session shares.",
							&cb_command_timeout,
							2000,
							1,
							600000,
							PGC_SUSET,
							GUC_UNIT_MS,
							NULL,
							NULL,
							NULL);

	DefineCustomIntVariable("cachebridge.delivery_timeout",
							"Longest time a committing backend spends delivering its "
							"transaction's effects to Redis after commit.",
							"A total for the connection and every round trip, whatever "
							"progress Redis makes. What is not delivered by then stays "
							"in the outbox for the worker (durable) or is reported with "
							"a WARNING (sync). Only superusers can change it: a delivery "
							"cut short opens the circuit breaker every session shares.",
							&cb_delivery_timeout,
							5000,
							1,
							600000,
							PGC_SUSET,
							GUC_UNIT_MS,
							NULL,
							NULL,
							NULL);

	DefineCustomIntVariable("cachebridge.max_pending_memory",
							"Memory a transaction's pending cache effects may use.",
							"Past it, a cache trigger invalidates the pattern of its key "
							"template at commit instead of queueing one effect per "
							"key (counted and logged, no effect is lost); change "
							"events cannot degrade: passing it is an error. Only superusers "
							"can change it: a degraded trigger removes keys of every row "
							"of its table, which other sessions then miss.",
							&cb_max_pending_memory,
							131072,
							64,
							MAX_KILOBYTES,
							PGC_SUSET,
							GUC_UNIT_KB,
							NULL,
							NULL,
							NULL);

	DefineCustomEnumVariable("cachebridge.delivery",
							 "How committed cache effects reach Redis: sync, durable or async.",
							 "sync: the committing backend sends them after commit. "
							 "durable: they are also written to cachebridge.outbox in "
							 "the transaction, and the worker delivers what the backend "
							 "could not. async: only the worker delivers them. Only "
							 "superusers can change it, since in sync mode effects "
							 "Redis misses are lost for every reader of the cache.",
							 &cb_delivery,
							 cb_preloaded ? CB_DELIVERY_DURABLE : CB_DELIVERY_SYNC,
							 delivery_options,
							 PGC_SUSET,
							 0,
							 CbDeliveryCheckHook,
							 NULL,
							 NULL);

	DefineCustomIntVariable("cachebridge.tombstone_ttl",
							"How long a version marker is kept after its last write.",
							"A deleted key's marker (its tombstone) and a written key's "
							"expire that long after the write, or with the value if it "
							"lives longer; a cache-aside fill from a snapshot older than "
							"that is refused.",
							&cb_tombstone_ttl,
							300,
							1,
							86400 * 7,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL,
							NULL,
							NULL);

	DefineCustomIntVariable("cachebridge.retry_interval",
							"In sync mode, how long after Redis was found unreachable "
							"a committing backend tries it again.",
							"Until then, effects are counted failed at once rather "
							"than waiting on Redis.",
							&cb_retry_interval,
							1000,
							1,
							3600 * 1000,
							PGC_SUSET,
							GUC_UNIT_MS,
							NULL,
							NULL,
							NULL);

	MarkGUCPrefixReserved("cachebridge");
	CbWarnUnprotectedPassword();

	CbQueueInit();
	CbRedisInit();

	if (!process_shared_preload_libraries_in_progress)
		return;
	CbWorkerRegisterLauncher();

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = CbShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = CbShmemStartup;
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = CbEmitLogHook;
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = CbProcessUtility;
	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = CbExecutorStart;
}
