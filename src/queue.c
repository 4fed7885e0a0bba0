/*-------------------------------------------------------------------------
 *
 * queue.c
 *		The pending-effects queue and the transaction callbacks that send
 *		it to Redis after commit.
 *
 * Triggers queue effects (SET, hash replace, DEL, pattern invalidation)
 * here instead of calling Redis.  The queue is a hash table keyed by Redis
 * key, so a key changed many times costs one effect: the last one.  Each
 * entry keeps a stack of versions, one per subtransaction level that
 * changed it; a level's versions are dropped when it rolls back (ROLLBACK
 * TO SAVEPOINT, a PL/pgSQL exception block) and merged into the parent
 * when it is released.  Only the levels that changed something are
 * visited at subtransaction end.
 *
 * A bulk statement queues one entry per row, so an entry is kept small:
 * its first version lives in the entry itself (only a key changed again
 * in a subtransaction allocates another), keys and the payloads of first
 * versions are carved out of large blocks rather than allocated one by
 * one, and the top level's entries are not listed (no subtransaction ends
 * there).  A DEL of a 10-byte key costs about 120 bytes (220 in 1.3).
 *
 * At PRE_COMMIT the surviving effects are sorted by the order they were
 * made and handed to delivery.c, which encodes them (and, in durable and
 * async modes, writes them to the outbox in this transaction); the queue
 * is freed right away.  After COMMIT (or PREPARE) delivery.c sends them,
 * with interrupts held and any ERROR turned into a WARNING, since the
 * transaction can no longer abort.  An aborted transaction sends nothing.
 *
 * Memory is bounded by cachebridge.max_pending_memory: a trigger whose
 * next effect would pass it degrades, for the rest of the transaction, to
 * one pattern invalidation of its templates (counted and logged), so no
 * effect is dropped.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "delivery.h"
#include "copies.h"
#include "key_slot.h"
#include "queue.h"
#include "redis.h"
#include "version.h"

/* One version of the effect on a key, made at one subtransaction level. */
typedef struct CbEffect
{
	struct CbEffect *older;		/* version of an enclosing level, or NULL */
	uint64		seq;			/* when it was made, for ordering */
	char	   *payload;		/* SET value, or CB_OP_HASH fields */
	uint32		len;			/* bytes of payload (a datum is below 1GB) */
	int			level;			/* transaction nest level that made it */
	int			ttl;			/* seconds, or 0 for none */
	uint16		nfields;		/* CB_OP_HASH: field/value pairs in payload
								 * (one per column at most) */
	uint8		op;				/* a CbEffectOp */
	bool		carved;			/* payload is in the block store: never freed */
} CbEffect;

/* What a queue key names. */
typedef enum CbQueueKeyKind
{
	CB_QK_KEY,					/* a Redis key (SET, hash, DEL) */
	CB_QK_PATTERN,				/* a glob pattern */
	CB_QK_NOTIFY,				/* "channel\0key" of a PUBLISH */
	CB_QK_EVENT					/* a stream entry: stream name, then serial */
} CbQueueKeyKind;

/*
 * Bytes after the stream's name in the key of a stream entry: a serial
 * that makes every entry distinct (in the key itself, so that the keys of
 * the million rows of a bulk change do not each carry a field for it).
 */
#define CB_EVENT_SERIAL_LEN sizeof(uint64)

/* Hash key, by reference. */
typedef struct CbQueueKey
{
	const char *data;
	uint32		len;
	CbQueueKeyKind kind;
} CbQueueKey;

typedef struct CbQueueEntry
{
	CbQueueKey	key;			/* must be first */
	CbEffect   *top;			/* newest version: first, or a later level's */
	CbEffect	first;			/* the version of the lowest level */
} CbQueueEntry;

/* An entry and when its newest version was made, for the sort at commit. */
typedef struct CbQueueOrder
{
	uint64		seq;
	CbQueueEntry *entry;
} CbQueueOrder;

/*
 * Bytes of the blocks of the store that keys and first payloads are carved
 * from: the first block is small, each next one twice the last, up to the
 * largest, so that a small transaction (or a small max_pending_memory)
 * does not pay for a large block.
 */
#define CB_CARVE_FIRST_BLOCK 1024
#define CB_CARVE_BLOCK (64 * 1024)

int			cb_max_pending_memory = 131072;

static MemoryContext queue_cxt = NULL;	/* reset at end of transaction */
static HTAB *queue = NULL;		/* NULL while nothing is queued */
static List **touched = NULL;	/* per nest level: entries with a version there */
static int	ntouched = 0;
static uint64 queue_seq = 0;
static char *carve_next = NULL;	/* free space of the current block */
static size_t carve_left = 0;
static size_t carve_block = 0;	/* size of the current block */
static bool planned = false;	/* the queue became a plan at PRE_COMMIT */
static bool closed = false;		/* PRE_COMMIT (or PRE_PREPARE) has passed */

/* Where writes and deletions go instead of the queue (CbQueueDivert). */
static CbCopies *diverted = NULL;

/* CbQueueOrderSort: sorts CbQueueOrder by seq, comparisons inlined. */
#define ST_SORT CbQueueOrderSort
#define ST_ELEMENT_TYPE CbQueueOrder
#define ST_COMPARE(a, b) (((a)->seq > (b)->seq) - ((a)->seq < (b)->seq))
#define ST_SCOPE static
#define ST_DEFINE
#include "lib/sort_template.h"

/*
 * A bulk change's effects in the order of their keys' Redis Cluster slots
 * (see CbQueueSortBySlot): segment counts the pattern deletions before the
 * effect, slot is its key's (16384 for a pattern, after its segment's
 * keys), place its place in the order they were made.
 */
typedef struct CbSlotOrder
{
	uint32		segment;
	uint32		slot;
	uint32		place;
	CbQueueEntry *entry;
} CbSlotOrder;

/* Effects sorted by slot only from this many on. */
#define CB_SLOT_SORT_MIN 500

#define ST_SORT CbSlotOrderSort
#define ST_ELEMENT_TYPE CbSlotOrder
#define ST_COMPARE(a, b) \
	((a)->segment != (b)->segment ? ((a)->segment > (b)->segment) - ((a)->segment < (b)->segment) : \
	 (a)->slot != (b)->slot ? ((a)->slot > (b)->slot) - ((a)->slot < (b)->slot) : \
	 ((a)->place > (b)->place) - ((a)->place < (b)->place))
#define ST_SCOPE static
#define ST_DEFINE
#include "lib/sort_template.h"

/* Hash function of CbQueueKey. */
static uint32
CbQueueKeyHash(const void *key, Size keysize)
{
	const CbQueueKey *k = (const CbQueueKey *) key;

	return hash_bytes((const unsigned char *) k->data, (int) k->len) ^
		(uint32) k->kind;
}

/* Equality of CbQueueKey (0 when equal). */
static int
CbQueueKeyMatch(const void *key1, const void *key2, Size keysize)
{
	const CbQueueKey *a = (const CbQueueKey *) key1;
	const CbQueueKey *b = (const CbQueueKey *) key2;

	if (a->len != b->len || a->kind != b->kind)
		return 1;
	return memcmp(a->data, b->data, a->len);
}

/* Frees the queue and everything it holds. */
static void
CbQueueFree(void)
{
	if (queue_cxt != NULL)
		MemoryContextReset(queue_cxt);
	queue = NULL;
	touched = NULL;
	ntouched = 0;
	carve_next = NULL;
	carve_left = 0;
	carve_block = 0;
}

/* Forgets everything queued; called at the end of every transaction. */
static void
CbQueueReset(void)
{
	CbQueueFree();
	planned = false;
	CbOrderReset();
	CbDeliveryReset();
}

/*
 * Remembers that entry has a version at level, for the end of that
 * subtransaction.  The top level (1) has none, so its entries -- all of
 * them, in a bulk statement outside any savepoint -- are not listed.
 */
static void
CbTouch(int level, CbQueueEntry *entry)
{
	MemoryContext oldcxt;

	if (level <= 1)
		return;
	if (level >= ntouched)
	{
		int			n = Max(8, level * 2);

		if (touched == NULL)
			touched = MemoryContextAllocZero(queue_cxt, n * sizeof(List *));
		else
		{
			touched = repalloc(touched, n * sizeof(List *));
			memset(touched + ntouched, 0, (n - ntouched) * sizeof(List *));
		}
		ntouched = n;
	}
	oldcxt = MemoryContextSwitchTo(queue_cxt);
	touched[level] = lappend(touched[level], entry);
	MemoryContextSwitchTo(oldcxt);
}

/*
 * Carves len bytes out of the current block of the queue's store, starting
 * a new block when it is full; a large request gets an allocation of its
 * own.  What is carved is never freed but with the whole queue: it holds
 * keys, and first payloads, which mostly live until commit.
 */
static char *
CbCarve(size_t len)
{
	char	   *p;

	if (len > CB_CARVE_BLOCK / 8)
		return MemoryContextAlloc(queue_cxt, len);
	if (len > carve_left)
	{
		carve_block = carve_block == 0 ? CB_CARVE_FIRST_BLOCK :
			Min(carve_block * 2, CB_CARVE_BLOCK);
		carve_next = MemoryContextAlloc(queue_cxt, carve_block);
		carve_left = carve_block;
	}
	p = carve_next;
	carve_next += len;
	carve_left -= len;
	return p;
}

/*
 * Gives back what CbCarve returned last (a key whose only version was
 * rolled back right away, as a failing row in a PL/pgSQL exception block
 * does), so that such rows do not fill the store.  Anything else stays.
 */
static void
CbUncarve(char *p, size_t len)
{
	if (len <= CB_CARVE_BLOCK / 8 && p + len == carve_next)
	{
		carve_next = p;
		carve_left += len;
	}
	else if (len > CB_CARVE_BLOCK / 8)
		pfree(p);
}

/* Frees a version's payload and takes it off the memory count. */
static void
CbEffectClear(CbEffect *v)
{
	if (v->payload != NULL && !v->carved)
		pfree(v->payload);
	else if (v->payload != NULL)
		CbUncarve(v->payload, v->len);
	v->payload = NULL;
	v->len = 0;
	v->carved = false;
}

/* Creates the queue of this transaction on first use. */
static void
CbQueueCreate(void)
{
	HASHCTL		ctl;

	if (queue_cxt == NULL)
		queue_cxt = AllocSetContextCreate(TopMemoryContext,
										  "cachebridge pending effects",
										  ALLOCSET_DEFAULT_SIZES);
	ctl.keysize = sizeof(CbQueueKey);
	ctl.entrysize = sizeof(CbQueueEntry);
	ctl.hash = CbQueueKeyHash;
	ctl.match = CbQueueKeyMatch;
	ctl.hcxt = queue_cxt;
	queue = hash_create("cachebridge pending effects", 1024, &ctl,
						HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
}

/*
 * True if adding incoming bytes would take the queue's memory, as the
 * allocator counts it, past cachebridge.max_pending_memory.
 */
bool
CbQueueFull(size_t incoming)
{
	return queue_cxt != NULL &&
		MemoryContextMemAllocated(queue_cxt, true) + incoming >
		(Size) cb_max_pending_memory * 1024;
}

/* True if the pattern is already queued (in any live version). */
bool
CbQueueHasPattern(const char *pattern, size_t len)
{
	CbQueueKey	key = {pattern, len, CB_QK_PATTERN};

	return queue != NULL && hash_search(queue, &key, HASH_FIND, NULL) != NULL;
}

/*
 * Queues an effect on key (or, for CB_OP_PATTERN, on every key matching
 * the glob in key), replacing what the current subtransaction queued for
 * it before.  payload is the SET value, or for CB_OP_HASH nfields pairs of
 * (uint32 length, bytes).
 */
void
CbQueueEffect(CbEffectOp op, const char *keydata, size_t keylen,
			  const char *payload, size_t len, int nfields, int ttl)
{
	int			level = GetCurrentTransactionNestLevel();
	CbQueueKey	key = {keydata, keylen, CB_QK_KEY};
	CbQueueEntry *entry;
	CbEffect   *v;
	bool		found;
	char	   *event_key = NULL;

	/*
	 * The transaction's effects became its plan at PRE_COMMIT: an effect
	 * queued after that (by another extension's pre-commit callback, or a
	 * trigger on the outbox) would never be sent.  The transaction can
	 * still abort here, so refuse rather than drop it.
	 */
	if (planned || closed)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot queue a cachebridge effect for key \"%.*s\" after the transaction's effects were planned",
						(int) Min(keylen, 200), keydata),
				 errdetail("The row change ran after the transaction's pre-commit processing, past the point where cachebridge collects the effects to deliver."),
				 errhint("Make the change before COMMIT, or in a deferred trigger, which runs before that point.")));

	if (diverted != NULL &&
		(op == CB_OP_SET || op == CB_OP_HASH || op == CB_OP_DEL))
	{
		CbCopiesAdd(diverted, op, keydata, keylen, payload, len, nfields, ttl);
		return;
	}

	if (op == CB_OP_PATTERN)
		key.kind = CB_QK_PATTERN;
	else if (op == CB_OP_PUBLISH)
		key.kind = CB_QK_NOTIFY;
	else if (op == CB_OP_XADD)
	{
		uint64		serial = queue_seq + 1;

		key.kind = CB_QK_EVENT;
		event_key = palloc(keylen + CB_EVENT_SERIAL_LEN);
		memcpy(event_key, keydata, keylen);
		memcpy(event_key + keylen, &serial, CB_EVENT_SERIAL_LEN);
		keydata = key.data = event_key;
		keylen = key.len = keylen + CB_EVENT_SERIAL_LEN;
	}
	if (nfields > PG_UINT16_MAX)
		elog(ERROR, "cachebridge effect with %d fields", nfields);
	if (queue == NULL)
		CbQueueCreate();

	entry = hash_search(queue, &key, HASH_ENTER, &found);
	if (!found)
	{
		char	   *data = CbCarve(keylen);

		memcpy(data, keydata, keylen);
		entry->key.data = data;
		v = &entry->first;
		memset(v, 0, sizeof(CbEffect));
		v->level = level;
		entry->top = v;
		CbTouch(level, entry);
	}
	else if (entry->top->level == level)
	{
		v = entry->top;
		CbEffectClear(v);
	}
	else
	{
		v = MemoryContextAllocZero(queue_cxt, sizeof(CbEffect));
		v->older = entry->top;
		v->level = level;
		entry->top = v;
		CbTouch(level, entry);
	}
	v->seq = ++queue_seq;
	v->op = op;
	v->ttl = ttl;
	v->nfields = nfields;
	v->len = len;
	if (len > 0)
	{
		/* a first payload stays until commit; one replaced may be freed */
		v->carved = !found;
		v->payload = v->carved ? CbCarve(len) : MemoryContextAlloc(queue_cxt, len);
		memcpy(v->payload, payload, len);
	}
	if (event_key != NULL)
		pfree(event_key);
}

/*
 * Sends the writes and deletions queued from now on (not patterns, stream
 * entries or PUBLISHes) to copies instead, as calls of the copy script; NULL
 * queues them again.  For a refresh batch only (refresh.c says why that is
 * safe there); it undoes this before it returns, and an abort does too.
 */
void
CbQueueDivert(CbCopies *copies)
{
	diverted = copies;
}

/* Subtransaction end: merge level's versions into the parent, or drop them. */
static void
CbQueueSubXactEnd(int level, bool commit)
{
	ListCell   *lc;

	if (level >= ntouched || touched[level] == NIL)
		return;
	foreach(lc, touched[level])
	{
		CbQueueEntry *entry = (CbQueueEntry *) lfirst(lc);
		CbEffect   *v = entry->top;

		Assert(v != NULL && v->level == level);
		if (commit)
		{
			CbEffect   *older = v->older;

			if (older != NULL && older->level == level - 1)
			{
				/*
				 * The child's effect replaces what the parent queued: it
				 * moves into the parent's version (which may be the
				 * entry's first, which cannot be freed), listed already.
				 */
				CbEffectClear(older);
				older->seq = v->seq;
				older->payload = v->payload;
				older->len = v->len;
				older->ttl = v->ttl;
				older->nfields = v->nfields;
				older->op = v->op;
				older->carved = v->carved;
				entry->top = older;
				pfree(v);
			}
			else
			{
				v->level = level - 1;
				CbTouch(level - 1, entry);
			}
		}
		else
		{
			entry->top = v->older;
			CbEffectClear(v);
			if (v != &entry->first)
				pfree(v);
			if (entry->top == NULL)
			{
				char	   *data = (char *) entry->key.data;
				uint32		len = entry->key.len;

				hash_search(queue, &entry->key, HASH_REMOVE, NULL);
				CbUncarve(data, len);
			}
		}
	}
	list_free(touched[level]);
	touched[level] = NIL;
}

/*
 * Puts the effects of a bulk change, given in the order they were made, in
 * the order of their keys' Redis Cluster slots, each pattern deletion
 * keeping its place between what came before and after it.  Distinct keys
 * may go in any order (each key is there once, with its last effect, and a
 * stream's entries, all of one slot, keep their order), and the calls of
 * the write script, cut every few hundred keys, then hold few slots each:
 * a cluster router splits a call into one per slot (cluster.c), so a
 * 200,000-row change is about one call per slot and master instead of
 * about one per key.  On a single Redis it changes nothing but the order.
 */
static void
CbQueueSortBySlot(CbQueueOrder *entries, long n)
{
	CbSlotOrder *order = palloc(sizeof(CbSlotOrder) * n);
	uint32		segment = 0;

	for (long i = 0; i < n; i++)
	{
		CbQueueKey *k = &entries[i].entry->key;

		order[i].segment = segment;
		order[i].place = (uint32) i;
		order[i].entry = entries[i].entry;
		if (k->kind == CB_QK_PATTERN)
		{
			order[i].slot = 16384;
			segment++;
		}
		else
			order[i].slot = CbKeySlot(k->data, k->len -
									  (k->kind == CB_QK_EVENT ? CB_EVENT_SERIAL_LEN : 0));
	}
	CbSlotOrderSort(order, n);
	for (long i = 0; i < n; i++)
		entries[i].entry = order[i].entry;
	pfree(order);
}

/*
 * Hands the queue to delivery.c as a plan: effects in the order they were
 * made (a bulk change's by slot, see CbQueueSortBySlot).  Runs before commit (or PREPARE), where an ERROR still aborts the
 * transaction cleanly.
 */
static void
CbPlanDelivery(bool prepare)
{
	HASH_SEQ_STATUS seq;
	CbQueueEntry *entry;
	CbQueueOrder *entries;
	long		n = 0;
	/* the plan outlives the queue, which is freed as soon as it is built */
	MemoryContext oldcxt = MemoryContextSwitchTo(TopTransactionContext);
	CbPlan	   *plan = palloc(sizeof(CbPlan));
	bytea	   *effects;
	CbKeyRef   *streams;
	int			nstreams = 0;
	size_t		estimate = 0;	/* bytes of the encoded plan */

	entries = palloc(sizeof(CbQueueOrder) * Max(hash_get_num_entries(queue), 1));
	streams = palloc(sizeof(CbKeyRef) * Max(hash_get_num_entries(queue), 1));
	hash_seq_init(&seq, queue);
	while ((entry = hash_seq_search(&seq)) != NULL)
	{
		entries[n].seq = entry->top->seq;
		entries[n++].entry = entry;
		/* the key, its marker, the value and RESP around them, about */
		estimate += 2 * entry->key.len + entry->top->len +
			8 * entry->top->nfields + 48;
		if (entry->key.kind == CB_QK_EVENT)
		{
			streams[nstreams].data = entry->key.data;
			streams[nstreams++].len = entry->key.len - CB_EVENT_SERIAL_LEN;
		}
	}
	CbQueueOrderSort(entries, n);
	if (n >= CB_SLOT_SORT_MIN)
		CbQueueSortBySlot(entries, n);

	/* appends to a stream are serialised in commit order */
	if (nstreams > 0)
	{
		if (prepare)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot prepare a transaction that publishes change events"),
					 errdetail("The transaction changed rows of a table with a cachebridge.publish() trigger."),
					 errhint("Commit it without PREPARE TRANSACTION.")));
		CbLockStreams(streams, nstreams);
	}
	pfree(streams);

	/* keys that no row lock orders, before the version is taken */
	CbOrderLock();

	CbPlanBegin(plan);
	CbPlanReserve(plan, estimate);
	for (long i = 0; i < n; i++)
	{
		CbQueueKey *k = &entries[i].entry->key;
		CbEffect   *v = entries[i].entry->top;

		CbPlanAdd(plan, v->op, k->data,
				  k->len - (k->kind == CB_QK_EVENT ? CB_EVENT_SERIAL_LEN : 0),
				  v->payload, v->len, v->nfields, v->ttl);
	}
	effects = CbPlanEnd(plan);
	pfree(entries);
	MemoryContextSwitchTo(oldcxt);

	CbQueueFree();
	planned = true;
	CbDeliveryPreCommit(plan, effects, prepare);
}

/*
 * After commit (or PREPARE): deliver, with any ERROR that might still be
 * raised (out of memory) turned into a WARNING, since the transaction can
 * no longer abort, within cachebridge.delivery_timeout in all.
 */
static void
CbDeliverSafely(void)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	int			holdoff = InterruptHoldoffCount;

	HOLD_INTERRUPTS();
	/* cancel cannot interrupt it: it must end by itself */
	CbRedisSetDeadline(cb_delivery_timeout);
	PG_TRY();
	{
		CbDeliveryCommit();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		/* the ERROR path cleared the holdoff count: put it back */
		InterruptHoldoffCount = holdoff + 1;
		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		CbRedisDisconnect();
		ereport(WARNING,
				(errmsg("cachebridge could not deliver the effects of the committed transaction"),
				 errdetail_internal("%s", edata->message)));
		FreeErrorData(edata);
	}
	PG_END_TRY();
	CbRedisClearDeadline();
	RESUME_INTERRUPTS();
}

/* Plans at PRE_COMMIT, sends at COMMIT, drops on abort. */
static void
CbXactEvent(XactEvent event)
{
	if (queue == NULL && !planned)
		return;
	if (queue != NULL && hash_get_num_entries(queue) == 0)
	{
		/* everything queued was rolled back with its subtransactions */
		if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
			event == XACT_EVENT_PREPARE)
			CbQueueReset();
		return;
	}

	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			CbPlanDelivery(false);
			break;
		case XACT_EVENT_PRE_PREPARE:
			CbPlanDelivery(true);
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PREPARE:
			CbDeliverSafely();
			CbQueueReset();
			break;
		case XACT_EVENT_ABORT:
			CbQueueReset();
			break;
		default:
			break;
	}
}

/*
 * Transaction callback.  Also remembers whether PRE_COMMIT has passed,
 * with or without effects: callbacks registered before cachebridge's run
 * after it, and what they change is refused (CbQueueEffect).
 */
static void
CbXactCallback(XactEvent event, void *arg)
{
	CbXactEvent(event);
	if (event == XACT_EVENT_ABORT)
		diverted = NULL;
	if (event == XACT_EVENT_PRE_COMMIT || event == XACT_EVENT_PRE_PREPARE)
		closed = true;
	else if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
			 event == XACT_EVENT_PREPARE)
		closed = false;
}

/* Subtransaction callback. */
static void
CbSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
				  SubTransactionId parentSubid, void *arg)
{
	if (queue == NULL)
		return;
	if (event == SUBXACT_EVENT_COMMIT_SUB)
		CbQueueSubXactEnd(GetCurrentTransactionNestLevel(), true);
	else if (event == SUBXACT_EVENT_ABORT_SUB)
		CbQueueSubXactEnd(GetCurrentTransactionNestLevel(), false);
}

/* Registers the transaction callbacks; called once from _PG_init. */
void
CbQueueInit(void)
{
	RegisterXactCallback(CbXactCallback, NULL);
	RegisterSubXactCallback(CbSubXactCallback, NULL);
}
