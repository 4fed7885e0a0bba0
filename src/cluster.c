/*-------------------------------------------------------------------------
 *
 * cluster.c
 *		The Redis Cluster client under the transport: the slot map, one
 *		connection per master, and pipelines split by slot.
 *
 * redis.c finds out on connecting to a seed that the target is a Redis
 * Cluster (INFO cluster) and hands the seed's CLUSTER SLOTS here; from
 * then on every pipeline of the process comes through CbClusterExecute.
 * Pipelines arrive RESP-encoded (outbox rows hold them so), so each
 * command is parsed and routed by the slot of its key, as the Redis Cluster
 * specification asks of a client:
 *
 *   - a command goes to the master that owns the slot of its first key;
 *     commands without a key (SCAN, PING) to the master pinned by
 *     CbClusterPinMaster (pattern deletion scans each in turn), or any;
 *   - a script of cachebridge's (scripts.c) takes a key and its version
 *     marker, which on a cluster must hash like the key: the marker name
 *     is rewritten to CbAppendClusterVersionKey's, so that plans and
 *     outbox rows stay the same whatever the target;
 *   - the write script (up to 500 keys, each with a marker and arguments
 *     of its own), the delete scripts (pairs of key and marker), and DEL,
 *     UNLINK, EXISTS and TOUCH of several keys are split into one call per
 *     slot by one routine (CbSplitBySlot, told where each command's keys
 *     and their arguments are); their integer replies are added up again;
 *   - but the keys of two or more slots of one master in a call of the write
 *     script go to that master as one call of CB_SCRIPT_WRITE_NODE, which
 *     may reach keys of several slots of its node (a call per slot costs
 *     Redis more than its dozen keys do); a node that refuses such a call
 *     (the map was stale, it is a replica now, the cluster is down, it
 *     cannot load the script) gets it again, split per slot, in the next round
 *     (CbSplitRefusedNodeCalls), and those calls follow redirections;
 *   - the parts for each master form one pipeline, and all of them are
 *     written before any reply is awaited (CbRunJobs), so a pipeline costs
 *     one round trip in parallel whatever the number of masters;
 *   - MOVED updates the map and resends the command to the named node;
 *     ASK resends it there once, after ASKING; a redirection is followed
 *     up to CB_MAX_REDIRECTS times, then its reply stands (retryable, like
 *     TRYAGAIN and CLUSTERDOWN, per reply.c);
 *   - replies are handed to the caller in the order of its commands, so
 *     the layers above see one ordered list whatever the topology.  When a
 *     master cannot be reached, the replies before its first command are
 *     handed over and the call fails: what it covers stays pending, and
 *     what other masters applied is applied again later, idempotently.
 *
 * The map is refreshed (CLUSTER SLOTS from any node known, then the seeds)
 * after a MOVED, after a node could not be reached, and when the target
 * settings change.  cachebridge.cluster_nodes() shows the map and each
 * node's errors as the calling process sees them.  Each node's connection
 * loads the scripts, so a
 * promoted replica has them too (and a NOSCRIPT closes every connection,
 * see delivery.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "cluster.h"
#include "key_slot.h"
#include "reply.h"
#include "resp.h"
#include "scripts.h"
#include "stats.h"

/* Most nodes known at once, masters and others. */
#define CB_MAX_NODES 64

/* How long a node that failed a round trip is asked for the map last. */
#define CB_NODE_FAILED_MS 10000

/* Redirections (MOVED, ASK) followed for one command. */
#define CB_MAX_REDIRECTS 5

/* A node of the cluster, as this process knows it. */
typedef struct CbNode
{
	char		host[256];
	int			port;
	CbRedisConn *conn;
	bool		master;			/* owns slots in the current map */
	int64		errors;			/* round trips that failed */
	char		last_error[256];
	TimestampTz last_error_at;
} CbNode;

static CbNode *nodes[CB_MAX_NODES];
static int	nnodes = 0;

/* The slot map: the index in nodes of each slot's master, -1 if none. */
static int16 slot_owner[CB_CLUSTER_SLOTS];
static bool map_loaded = false;
static bool map_stale = false;
static uint64 map_generation = 0;	/* of the target settings */

/* The node that commands without a key go to, or -1. */
static int	pinned_node = -1;

/*
 * Calls of the write script are gathered per master (CB_SCRIPT_WRITE_NODE)
 * unless a node answered such a call NOSCRIPT less than
 * CB_NODE_CALLS_PAUSE_MS ago: a Redis before 7.0 cannot load the script
 * (and a flushed script cache is loaded again on reconnecting).
 */
#define CB_NODE_CALLS_PAUSE_MS 60000
static TimestampTz node_calls_paused_at = 0;

/* One command, or one slot's share of a command, on its way. */
typedef struct CbPart
{
	int			command;		/* index of the caller's command */
	int			node;			/* where it goes next */
	bool		asking;			/* after an ASK: send ASKING first */
	bool		encoded;		/* bytes in the route's own buffer, else the caller's */
	size_t		offset;
	size_t		len;
	redisReply *reply;
	bool		failed;			/* its node could not be reached */
	bool		publish;		/* a PUBLISH: sent after every other part */
	int			redirects;
	int		   *key_places;		/* a write script call's part: per key, its
								 * place (from 1) in the caller's call */
	int			nkeys;
	int			next;			/* the command's next part, or -1 */
	bool		retired;		/* a node call sent again per slot */
	bool		node_call;		/* CB_SCRIPT_WRITE_NODE: keys of many slots */
	size_t		src_offset;		/* a node call: the caller's command */
	size_t		src_len;
} CbPart;

/* A pipeline split into parts. */
typedef struct CbRoute
{
	const char *buf;			/* the caller's commands */
	CbPipeline	encoded;		/* commands made here (split, rewritten) */
	CbPart	   *parts;
	int			nparts;
	int			maxparts;
	int		   *first_part;		/* per command: its first part (-1: none) */
	int		   *last_part;		/* and its last (parts are linked by next) */
	int		   *nparts_of;		/* and how many */
	bool	   *summed;			/* its parts' integer replies add up */
} CbRoute;

/* What a node's share of a round trip needs to file its replies. */
typedef struct CbNodeShare
{
	CbRoute    *route;
	CbPipeline	pipeline;
	int		   *part_at;		/* per command sent: its part, -1 for ASKING */
	int			nsent;
	int			maxsent;
} CbNodeShare;

/* One parsed command. */
typedef struct CbCommand
{
	int			argc;
	const char **argv;
	size_t	   *argl;
} CbCommand;

/* ---------------------------------------------------------------------
 * Nodes and the slot map
 * ---------------------------------------------------------------------
 */

/* Forgets every node and the map (the target changed). */
static void
CbClusterReset(void)
{
	for (int i = 0; i < nnodes; i++)
	{
		CbConnFree(nodes[i]->conn);
		pfree(nodes[i]);
		nodes[i] = NULL;
	}
	nnodes = 0;
	map_loaded = false;
	map_stale = false;
	pinned_node = -1;
	map_generation = CbRedisTargetGeneration();
}

/* Resets everything if the target settings changed since the map was made. */
static void
CbClusterCheckTarget(void)
{
	if (map_generation != CbRedisTargetGeneration())
		CbClusterReset();
}

/*
 * The index of node host:port, added if new.  When the table is full, a
 * node that owns no slots makes room.
 */
static int
CbNodeFor(const char *host, int port)
{
	int			i;
	CbNode	   *node;

	for (i = 0; i < nnodes; i++)
		if (nodes[i]->port == port && strcmp(nodes[i]->host, host) == 0)
			return i;
	if (nnodes == CB_MAX_NODES)
	{
		for (i = 0; i < nnodes; i++)
			if (!nodes[i]->master && i != pinned_node)
				break;
		if (i == nnodes)
			i = nnodes - 1;		/* cannot happen: 16384 slots, 64 masters */
		CbConnFree(nodes[i]->conn);
		pfree(nodes[i]);
	}
	else
		i = nnodes++;
	node = MemoryContextAllocZero(TopMemoryContext, sizeof(CbNode));
	strlcpy(node->host, host, sizeof(node->host));
	node->port = port;
	node->conn = CbConnCreate(host, port);
	nodes[i] = node;
	return i;
}

/*
 * Loads the slot map from a CLUSTER SLOTS reply got from via_host: each
 * entry is [first slot, last slot, [host, port, id], replicas...].  A
 * master announced without an address ("" or "?") is via_host.
 */
void
CbClusterLoadSlots(const redisReply *slots, const char *via_host)
{
	CbClusterCheckTarget();
	for (int s = 0; s < CB_CLUSTER_SLOTS; s++)
		slot_owner[s] = -1;
	for (int i = 0; i < nnodes; i++)
		nodes[i]->master = false;

	for (size_t e = 0; e < slots->elements; e++)
	{
		const redisReply *entry = slots->element[e];
		const redisReply *master;
		const char *host;
		int			node;
		long long	first;
		long long	last;

		if (entry->type != REDIS_REPLY_ARRAY || entry->elements < 3 ||
			entry->element[0]->type != REDIS_REPLY_INTEGER ||
			entry->element[1]->type != REDIS_REPLY_INTEGER ||
			entry->element[2]->type != REDIS_REPLY_ARRAY ||
			entry->element[2]->elements < 2 ||
			entry->element[2]->element[0]->type != REDIS_REPLY_STRING ||
			entry->element[2]->element[1]->type != REDIS_REPLY_INTEGER)
			continue;
		first = entry->element[0]->integer;
		last = entry->element[1]->integer;
		if (first < 0 || last >= CB_CLUSTER_SLOTS || first > last)
			continue;
		master = entry->element[2];
		host = master->element[0]->str;
		if (host[0] == '\0' || strcmp(host, "?") == 0)
			host = via_host;
		node = CbNodeFor(host, (int) master->element[1]->integer);
		nodes[node]->master = true;
		for (long long s = first; s <= last; s++)
			slot_owner[s] = node;
	}
	map_loaded = true;
	map_stale = false;
}

/* Keeps the reply of CLUSTER SLOTS. */
static bool
CbKeepSlotsReply(int index, redisReply *reply, void *arg)
{
	if (reply->type != REDIS_REPLY_ARRAY)
		return false;
	*(redisReply **) arg = reply;
	return true;
}

/* Counts a failed round trip of node. */
static void
CbNodeFailed(int node, const CbRedisError *err)
{
	nodes[node]->errors++;
	snprintf(nodes[node]->last_error, sizeof(nodes[node]->last_error), "%s",
			 err->detail);
	nodes[node]->last_error_at = GetCurrentTimestamp();
	map_stale = true;
}

/*
 * Asks for the slot map anew: CLUSTER SLOTS of the masters known, then of
 * the other nodes known, then of the seeds, until one answers.  False,
 * with err filled, if none does.
 */
static bool
CbClusterRefresh(CbRedisError *err)
{
	const CbRedisTarget *target = CbRedisCurrentTarget();
	int			candidates[CB_MAX_NODES];
	int			ncandidates = 0;

	CbClusterCheckTarget();

	/*
	 * Masters first, then the other nodes known, and last those that just
	 * failed: a master that does not answer would cost a connect_timeout
	 * on every refresh while its replica takes over.
	 */
	for (int pass = 0; pass < 3; pass++)
		for (int i = 0; i < nnodes; i++)
		{
			bool		failed = nodes[i]->last_error_at != 0 &&
			!TimestampDifferenceExceeds(nodes[i]->last_error_at,
										GetCurrentTimestamp(),
										CB_NODE_FAILED_MS);

			if (pass == 2 ? failed : (!failed && nodes[i]->master == (pass == 0)))
				candidates[ncandidates++] = i;
		}
	if (target != NULL)
	{
		for (int i = 0; i < target->nseeds && ncandidates < CB_MAX_NODES; i++)
		{
			int			node = CbNodeFor(target->seeds[i].host,
										 target->seeds[i].port);
			bool		listed = false;

			for (int j = 0; j < ncandidates; j++)
				listed |= (candidates[j] == node);
			if (!listed)
				candidates[ncandidates++] = node;
		}
	}

	for (int i = 0; i < ncandidates; i++)
	{
		CbPipeline	p;
		redisReply *slots = NULL;
		CbConnJob	job = {0};

		CbPipelineInit(&p);
		CbPipelineBegin(&p, 2, NULL, 0);
		CbPipelineArgStr(&p, "CLUSTER");
		CbPipelineArgStr(&p, "SLOTS");
		job.conn = nodes[candidates[i]]->conn;
		job.buf = p.buf.data;
		job.len = p.buf.len;
		job.ncommands = 1;
		job.callback = CbKeepSlotsReply;
		job.arg = &slots;
		CbRunJobs(&job, 1);
		pfree(p.buf.data);
		if (!job.ok)
		{
			CbNodeFailed(candidates[i], &job.err);
			memcpy(err, &job.err, sizeof(*err));
			continue;
		}
		if (slots == NULL)
			continue;			/* not (or no longer) a cluster node */
		CbClusterLoadSlots(slots, nodes[candidates[i]]->host);
		freeReplyObject(slots);
		return true;
	}
	if (err->failure == CB_REDIS_OK)
	{
		err->failure = CB_REDIS_CONNECT;
		snprintf(err->server, sizeof(err->server), "%s",
				 target ? target->display : "(none)");
		snprintf(err->detail, sizeof(err->detail),
				 "No node of the Redis Cluster answered CLUSTER SLOTS.");
	}
	return false;
}

/* Refreshes the map if it is missing or stale; false with err if that failed. */
static bool
CbClusterEnsureMap(CbRedisError *err)
{
	CbClusterCheckTarget();
	if (map_loaded && !map_stale)
		return true;
	/* a stale map is still better than none: use it if no node answers */
	return CbClusterRefresh(err) || map_loaded;
}

/* Where commands without a key go: the pinned node, or slot 0's master. */
static int
CbAnyNode(void)
{
	if (pinned_node >= 0)
		return pinned_node;
	for (int s = 0; s < CB_CLUSTER_SLOTS; s++)
		if (slot_owner[s] >= 0)
			return slot_owner[s];
	return 0;
}

/* The node that owns slot, or any when no master owns it. */
static int
CbNodeOfSlot(int slot)
{
	return slot_owner[slot] >= 0 ? slot_owner[slot] : CbAnyNode();
}

/* The node that owns the slot of key, or any when no master owns it. */
static int
CbNodeOfKey(const char *key, size_t len, int *slot)
{
	*slot = CbKeySlot(key, len);
	return CbNodeOfSlot(*slot);
}

/*
 * The number of masters, refreshing the map if need be (for pattern
 * deletion, which scans each); -1 with err filled if none is known.
 */
int
CbClusterMasters(CbRedisError *err)
{
	int			n = 0;

	memset(err, 0, sizeof(*err));
	if (!CbClusterEnsureMap(err))
		return -1;
	for (int i = 0; i < nnodes; i++)
		n += nodes[i]->master;
	return n;
}

/*
 * Sends the commands without a key (SCAN) to the master-th master (in the
 * order of the node table), or, for -1, to any again.
 */
void
CbClusterPinMaster(int master)
{
	pinned_node = -1;
	for (int i = 0; i < nnodes && master >= 0; i++)
		if (nodes[i]->master && master-- == 0)
			pinned_node = i;
}

/* Closes every node's connection; the map stays. */
void
CbClusterDisconnect(void)
{
	for (int i = 0; i < nnodes; i++)
		CbConnClose(nodes[i]->conn);
}

/* ---------------------------------------------------------------------
 * Splitting a pipeline
 * ---------------------------------------------------------------------
 */

/*
 * Parses the command at *pos of buf into *cmd (arguments point into buf)
 * and moves *pos past it; false if it is malformed.
 */
static bool
CbParseCommand(const char *buf, size_t len, size_t *pos, CbCommand *cmd)
{
	const char *data;
	long		argc;

	if (!CbRespNext(buf, len, pos, '*', &data, &argc) || argc < 1 ||
		argc > (long) len)
		return false;
	cmd->argc = (int) argc;
	/* freed with the route's memory context if the command is malformed */
	cmd->argv = palloc(sizeof(char *) * argc);
	cmd->argl = palloc(sizeof(size_t) * argc);
	for (int i = 0; i < argc; i++)
	{
		long		n;

		if (!CbRespNext(buf, len, pos, '$', &data, &n))
			return false;
		cmd->argv[i] = data;
		cmd->argl[i] = n;
	}
	return true;
}

/* The non-negative decimal number data[0..len), or -1. */
static int
CbParseCount(const char *data, size_t len)
{
	int			n = 0;

	if (len == 0 || len > 9)
		return -1;
	for (size_t i = 0; i < len; i++)
	{
		if (data[i] < '0' || data[i] > '9')
			return -1;
		n = n * 10 + (data[i] - '0');
	}
	return n;
}

/* True if argument i of cmd is word, in any case. */
static bool
CbArgIs(const CbCommand *cmd, int i, const char *word)
{
	return i < cmd->argc && cmd->argl[i] == strlen(word) &&
		pg_strncasecmp(cmd->argv[i], word, cmd->argl[i]) == 0;
}

/* Commands that address a server rather than a key. */
static const char *const node_commands[] = {
	"SCAN", "PING", "SCRIPT", "INFO", "CLIENT", "DBSIZE", "FLUSHDB",
	"FLUSHALL", "CLUSTER", "AUTH", "SELECT", "ECHO", "TIME", "CONFIG",
	"DEBUG", "ASKING", "READONLY", "RANDOMKEY", "WAIT", "KEYS", NULL
};

/* Commands of several keys whose integer replies add up. */
static const char *const summed_commands[] = {
	"DEL", "UNLINK", "EXISTS", "TOUCH", NULL
};

/* True if argument 0 of cmd is one of words. */
static bool
CbCommandIn(const CbCommand *cmd, const char *const *words)
{
	for (int i = 0; words[i] != NULL; i++)
		if (CbArgIs(cmd, 0, words[i]))
			return true;
	return false;
}

/* Adds a part of command to route; its bytes are set by the caller. */
static CbPart *
CbAddPart(CbRoute *route, int command, int node)
{
	CbPart	   *part;

	if (route->nparts == route->maxparts)
	{
		route->maxparts *= 2;
		route->parts = repalloc(route->parts, sizeof(CbPart) * route->maxparts);
	}
	part = &route->parts[route->nparts];
	memset(part, 0, sizeof(*part));
	part->command = command;
	part->node = node;
	part->next = -1;
	if (route->nparts_of[command]++ == 0)
		route->first_part[command] = route->nparts;
	else
		route->parts[route->last_part[command]].next = route->nparts;
	route->last_part[command] = route->nparts++;
	return part;
}

/* Marks the bytes encoded since offset as part's. */
static void
CbEndEncodedPart(CbRoute *route, CbPart *part, size_t offset)
{
	part->encoded = true;
	part->offset = offset;
	part->len = route->encoded.buf.len - offset;
}

/*
 * Appends argument i of cmd, or for a marker argument the name of the
 * marker of key on a cluster (which hashes like key), to the route's
 * buffer.  A marker argument that is not key's marker name is kept.
 */
static void
CbEncodeMarker(CbRoute *route, const CbCommand *cmd, int keyarg, int i,
			   StringInfo scratch)
{
	resetStringInfo(scratch);
	CbAppendVersionKey(scratch, cmd->argv[keyarg], cmd->argl[keyarg]);
	if (scratch->len != cmd->argl[i] ||
		memcmp(scratch->data, cmd->argv[i], scratch->len) != 0)
	{
		CbPipelineArg(&route->encoded, cmd->argv[i], cmd->argl[i]);
		return;
	}
	resetStringInfo(scratch);
	CbAppendClusterVersionKey(scratch, cmd->argv[keyarg], cmd->argl[keyarg]);
	CbPipelineArg(&route->encoded, scratch->data, scratch->len);
}

/* A key of a command to split, by slot. */
typedef struct CbSlotKey
{
	int			slot;
	int			index;			/* its place among the command's keys */
} CbSlotKey;

/* qsort comparator: by slot, then by place in the command. */
static int
CbSlotKeyCompare(const void *a, const void *b)
{
	const CbSlotKey *x = a;
	const CbSlotKey *y = b;

	if (x->slot != y->slot)
		return x->slot < y->slot ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

/*
 * Where the keys of a command to split are, and what goes with each: the
 * nkeys keys from argument first on, every step-th argument being a key
 * followed by its step - 1 markers; countarg (or -1) the argument before
 * them that counts them (a script's numkeys); the arguments after them up
 * to shared_end, which every part gets; and, if span_at is set, each key's
 * own arguments after those (span_len[k] of them from span_at[k]).  With
 * places, each part keeps the places of its keys in the command (a write
 * script names a key it rejects by its place, see CbRenumberRejectedKey).
 */
typedef struct CbKeyLayout
{
	int			first;
	int			nkeys;
	int			step;
	int			countarg;
	int			shared_end;
	int		   *span_at;
	int		   *span_len;
	bool		places;
} CbKeyLayout;

/* How many of the n keys keys[k..n), in slot order, are of keys[k]'s slot. */
static int
CbSlotRun(const CbSlotKey *keys, int k, int n)
{
	int			m = 1;

	while (k + m < n && keys[k + m].slot == keys[k].slot)
		m++;
	return m;
}

/* Gives part the places in the caller's call of its n keys keys[0..n). */
static void
CbSetKeyPlaces(CbPart *part, const CbSlotKey *keys, int n)
{
	part->key_places = palloc(sizeof(int) * n);
	part->nkeys = n;
	for (int j = 0; j < n; j++)
		part->key_places[j] = keys[j].index + 1;
}

/* Appends the n keys keys[0..n) of cmd, each with its markers. */
static void
CbEncodeKeys(CbRoute *route, const CbCommand *cmd, const CbKeyLayout *kl,
			 const CbSlotKey *keys, int n, StringInfo scratch)
{
	for (int j = 0; j < n; j++)
	{
		int			keyarg = kl->first + keys[j].index * kl->step;

		CbPipelineArg(&route->encoded, cmd->argv[keyarg], cmd->argl[keyarg]);
		for (int a = 1; a < kl->step; a++)
			CbEncodeMarker(route, cmd, keyarg, keyarg + a, scratch);
	}
}

/* Appends the own arguments of the n keys keys[0..n) of cmd, if any. */
static void
CbEncodeKeyArgs(CbRoute *route, const CbCommand *cmd, const CbKeyLayout *kl,
				const CbSlotKey *keys, int n)
{
	for (int j = 0; kl->span_at != NULL && j < n; j++)
	{
		int			at = kl->span_at[keys[j].index];

		for (int a = at; a < at + kl->span_len[keys[j].index]; a++)
			CbPipelineArg(&route->encoded, cmd->argv[a], cmd->argl[a]);
	}
}

/*
 * Appends the part of cmd (its keys laid out as kl says) that holds the n
 * keys keys[0..n), all of one slot: the arguments before the keys (the key
 * count adjusted), its keys with their markers (the names of the cluster's
 * markers), the shared arguments, then the keys' own arguments, its keys
 * in their order in the command.
 */
static void
CbEmitSlotPart(CbRoute *route, int command, const CbCommand *cmd,
			   const CbKeyLayout *kl, const CbSlotKey *keys, int n,
			   StringInfo scratch)
{
	int			shared_from = kl->first + kl->nkeys * kl->step;
	int			nargs = kl->first + n * kl->step + kl->shared_end - shared_from;
	size_t		offset = route->encoded.buf.len;
	CbPart	   *part;

	for (int j = 0; kl->span_at != NULL && j < n; j++)
		nargs += kl->span_len[keys[j].index];
	part = CbAddPart(route, command, CbNodeOfSlot(keys[0].slot));
	if (kl->places)
		CbSetKeyPlaces(part, keys, n);
	CbPipelineBegin(&route->encoded, nargs, NULL, 0);
	for (int a = 0; a < kl->first; a++)
	{
		if (a == kl->countarg)
			CbPipelineArgInt(&route->encoded, n * kl->step);
		else
			CbPipelineArg(&route->encoded, cmd->argv[a], cmd->argl[a]);
	}
	CbEncodeKeys(route, cmd, kl, keys, n, scratch);
	for (int a = shared_from; a < kl->shared_end; a++)
		CbPipelineArg(&route->encoded, cmd->argv[a], cmd->argl[a]);
	CbEncodeKeyArgs(route, cmd, kl, keys, n);
	CbEndEncodedPart(route, part, offset);
}

/*
 * Appends one call of CB_SCRIPT_WRITE_NODE (scripts.c) for the n keys
 * keys[0..n) of cmd, a call of the write script laid out as kl, which
 * are of ngroups slots that node owns, in slot order: the shared
 * arguments, the number of slots and of keys of each, the keys with their
 * markers, their own arguments.  The part remembers the caller's command
 * (bytes start..end), to split it per slot if the node refuses the call.
 */
static void
CbEmitNodePart(CbRoute *route, int command, const CbCommand *cmd,
			   const CbKeyLayout *kl, const CbSlotKey *keys, int n,
			   int ngroups, int node, size_t start, size_t end,
			   StringInfo scratch)
{
	int			shared_from = kl->first + kl->nkeys * kl->step;
	int			nargs = 3 + (kl->shared_end - shared_from) + 1 + ngroups + n * kl->step;
	size_t		offset = route->encoded.buf.len;
	CbPart	   *part;

	for (int j = 0; j < n; j++)
		nargs += kl->span_len[keys[j].index];
	part = CbAddPart(route, command, node);
	part->node_call = true;
	part->src_offset = start;
	part->src_len = end - start;
	CbSetKeyPlaces(part, keys, n);
	CbPipelineBegin(&route->encoded, nargs, NULL, 0);
	CbPipelineArgStr(&route->encoded, "EVALSHA");
	CbPipelineArgStr(&route->encoded, CbScriptSha(CB_SCRIPT_WRITE_NODE));
	CbPipelineArgInt(&route->encoded, 0);
	for (int a = shared_from; a < kl->shared_end; a++)
		CbPipelineArg(&route->encoded, cmd->argv[a], cmd->argl[a]);
	CbPipelineArgInt(&route->encoded, ngroups);
	for (int j = 0, m; j < n; j += m)
	{
		m = CbSlotRun(keys, j, n);
		CbPipelineArgInt(&route->encoded, m);
	}
	CbEncodeKeys(route, cmd, kl, keys, n, scratch);
	CbEncodeKeyArgs(route, cmd, kl, keys, n);
	CbEndEncodedPart(route, part, offset);
}

/*
 * Splits a command whose keys (laid out as kl says) may be of many slots
 * into one command per slot (CbEmitSlotPart), its keys in their order in
 * the command.  With by_node (a call of the write script, bytes
 * start..end of the caller's), the keys of two or more slots of one
 * master go in one call of CB_SCRIPT_WRITE_NODE instead.  The parts'
 * integer replies add up to the command's.
 */
static void
CbSplitBySlot(CbRoute *route, int command, const CbCommand *cmd,
			  const CbKeyLayout *kl, bool by_node, size_t start, size_t end,
			  StringInfo scratch)
{
	CbSlotKey  *keys = palloc(sizeof(CbSlotKey) * kl->nkeys);

	/* the keys in slot order (and in their order within a slot) */
	for (int k = 0; k < kl->nkeys; k++)
	{
		int			keyarg = kl->first + k * kl->step;

		keys[k].slot = CbKeySlot(cmd->argv[keyarg], cmd->argl[keyarg]);
		keys[k].index = k;
	}
	qsort(keys, kl->nkeys, sizeof(CbSlotKey), CbSlotKeyCompare);

	for (int k = 0; k < kl->nkeys;)
	{
		int			n = CbSlotRun(keys, k, kl->nkeys);

		if (by_node)
		{
			/* the run of slots after this one that the same master owns */
			int			node = CbNodeOfSlot(keys[k].slot);
			int			run = n;
			int			groups = 1;

			while (k + run < kl->nkeys && CbNodeOfSlot(keys[k + run].slot) == node)
			{
				run += CbSlotRun(keys, k + run, kl->nkeys);
				groups++;
			}
			if (groups > 1)
			{
				CbEmitNodePart(route, command, cmd, kl, keys + k, run, groups,
							   node, start, end, scratch);
				k += run;
				continue;
			}
		}
		CbEmitSlotPart(route, command, cmd, kl, keys + k, n, scratch);
		k += n;
	}
	route->summed[command] = true;
	pfree(keys);
}

/*
 * The layout of a call of the write script (scripts.c, CB_SCRIPT_WRITE),
 * for CbSplitBySlot: KEYS are pairs of key and marker, ARGV two arguments
 * all keys share and then, per key, its op, its ttl and the op's own
 * arguments (a value for 'S', a count and that many for 'H', none for
 * 'D').  False if the arguments do not add up to that layout.
 */
static bool
CbWriteLayout(const CbCommand *cmd, int numkeys, CbKeyLayout *kl)
{
	int			a;

	kl->first = 3;
	kl->nkeys = numkeys / 2;
	kl->step = 2;
	kl->countarg = 2;
	kl->shared_end = 3 + numkeys + 2;
	kl->span_at = palloc(sizeof(int) * Max(kl->nkeys, 1));
	kl->span_len = palloc(sizeof(int) * Max(kl->nkeys, 1));
	kl->places = true;
	a = kl->shared_end;
	for (int k = 0; k < kl->nkeys; k++)
	{
		int			len = 2;

		if (a + 1 >= cmd->argc || cmd->argl[a] != 1)
			return false;
		if (cmd->argv[a][0] == 'S')
			len = 3;
		else if (cmd->argv[a][0] == 'H')
		{
			int			count;

			if (a + 2 >= cmd->argc ||
				(count = CbParseCount(cmd->argv[a + 2], cmd->argl[a + 2])) < 0)
				return false;
			len = 3 + count;
		}
		else if (cmd->argv[a][0] != 'D')
			return false;
		kl->span_at[k] = a;
		kl->span_len[k] = len;
		a += len;
		if (a > cmd->argc)
			return false;
	}
	return a == cmd->argc;
}

/* Routes command (cmd, the bytes buf[start..end)) into parts. */
static void
CbRouteCommand(CbRoute *route, int command, const CbCommand *cmd,
			   size_t start, size_t end, StringInfo scratch)
{
	CbPart	   *part;
	int			slot;

	if (CbArgIs(cmd, 0, "EVALSHA") || CbArgIs(cmd, 0, "EVAL"))
	{
		int			numkeys = 0;
		CbScriptKeys layout = CB_KEYS_OTHER;
		CbKeyLayout kl;

		if (cmd->argc >= 3)
			numkeys = CbParseCount(cmd->argv[2], cmd->argl[2]);
		if (numkeys <= 0 || 3 + numkeys > cmd->argc)
			goto any_node;
		if (CbArgIs(cmd, 0, "EVALSHA"))
			layout = CbScriptKeyLayout(cmd->argv[1], cmd->argl[1]);
		if (layout == CB_KEYS_WRITE && numkeys % 2 == 0 &&
			3 + numkeys + 2 <= cmd->argc && CbWriteLayout(cmd, numkeys, &kl))
		{
			/* the write script's calls, not the copy script's (same layout) */
			bool		by_node = cmd->argl[1] == 40 &&
				memcmp(cmd->argv[1], CbScriptSha(CB_SCRIPT_WRITE), 40) == 0 &&
				(node_calls_paused_at == 0 ||
				 TimestampDifferenceExceeds(node_calls_paused_at, GetCurrentTimestamp(),
											CB_NODE_CALLS_PAUSE_MS));

			CbSplitBySlot(route, command, cmd, &kl, by_node, start, end, scratch);
			return;
		}
		if (layout == CB_KEYS_PAIRS && numkeys % 2 == 0)
		{
			CbKeyLayout pairs = {3, numkeys / 2, 2, 2, cmd->argc, NULL, NULL, false};

			CbSplitBySlot(route, command, cmd, &pairs, false, 0, 0, scratch);
			return;
		}
		if (layout == CB_KEYS_KEY_MARKER && numkeys == 2)
		{
			size_t		offset = route->encoded.buf.len;

			part = CbAddPart(route, command,
							 CbNodeOfKey(cmd->argv[3], cmd->argl[3], &slot));
			CbPipelineBegin(&route->encoded, cmd->argc, NULL, 0);
			for (int a = 0; a < cmd->argc; a++)
			{
				if (a == 4)
					CbEncodeMarker(route, cmd, 3, 4, scratch);
				else
					CbPipelineArg(&route->encoded, cmd->argv[a], cmd->argl[a]);
			}
			CbEndEncodedPart(route, part, offset);
			return;
		}
		part = CbAddPart(route, command,
						 CbNodeOfKey(cmd->argv[3], cmd->argl[3], &slot));
	}
	else if (CbCommandIn(cmd, summed_commands) && cmd->argc > 2)
	{
		CbKeyLayout keys = {1, cmd->argc - 1, 1, -1, cmd->argc, NULL, NULL, false};

		CbSplitBySlot(route, command, cmd, &keys, false, 0, 0, scratch);
		return;
	}
	else if (cmd->argc >= 2 && !CbCommandIn(cmd, node_commands))
		part = CbAddPart(route, command,
						 CbNodeOfKey(cmd->argv[1], cmd->argl[1], &slot));
	else
	{
any_node:
		part = CbAddPart(route, command, CbAnyNode());
	}
	part->offset = start;
	part->len = end - start;
	/* notify=: announces the effects before it, so it waits for them */
	part->publish = CbArgIs(cmd, 0, "PUBLISH");
}

/*
 * Splits the ncommands commands of buf[0..len) into route's parts; false
 * if they are not ncommands well-formed commands.
 */
static bool
CbSplitPipeline(CbRoute *route, const char *buf, size_t len, int ncommands)
{
	size_t		pos = 0;
	StringInfoData scratch;

	route->buf = buf;
	route->maxparts = ncommands + 16;
	route->parts = palloc(sizeof(CbPart) * route->maxparts);
	route->nparts = 0;
	route->first_part = palloc(sizeof(int) * ncommands);
	route->last_part = palloc(sizeof(int) * ncommands);
	route->nparts_of = palloc0(sizeof(int) * ncommands);
	route->summed = palloc0(sizeof(bool) * ncommands);
	CbPipelineInit(&route->encoded);
	initStringInfo(&scratch);

	for (int i = 0; i < ncommands; i++)
	{
		size_t		start = pos;
		CbCommand	cmd;

		route->first_part[i] = -1;
		if (!CbParseCommand(buf, len, &pos, &cmd))
			return false;
		CbRouteCommand(route, i, &cmd, start, pos, &scratch);
		pfree(cmd.argv);
		pfree(cmd.argl);
	}
	pfree(scratch.data);
	return pos == len;
}

/* ---------------------------------------------------------------------
 * Sending and reassembling
 * ---------------------------------------------------------------------
 */

/* Files a reply of a node's share under its part (ASKING's is dropped). */
static bool
CbShareReply(int index, redisReply *reply, void *arg)
{
	CbNodeShare *share = (CbNodeShare *) arg;
	int			part = share->part_at[index];

	if (part < 0)
		return false;
	share->route->parts[part].reply = reply;
	return true;
}

/* Adds command index part to share's pipeline (and ASKING before it). */
static void
CbShareAdd(CbNodeShare *share, int part)
{
	CbRoute    *route = share->route;
	CbPart	   *p = &route->parts[part];
	const char *data = p->encoded ? route->encoded.buf.data : route->buf;

	if (share->nsent + 2 > share->maxsent)
	{
		share->maxsent = share->maxsent * 2 + 16;
		share->part_at = share->part_at
			? repalloc(share->part_at, sizeof(int) * share->maxsent)
			: palloc(sizeof(int) * share->maxsent);
	}
	if (p->asking)
	{
		CbPipelineBegin(&share->pipeline, 1, NULL, 0);
		CbPipelineArgStr(&share->pipeline, "ASKING");
		share->part_at[share->nsent++] = -1;
	}
	CbPipelineAppendRaw(&share->pipeline, data + p->offset, p->len);
	share->part_at[share->nsent++] = part;
}

/*
 * If reply is a redirection (MOVED or ASK, see CbReplyRedirect), the slot
 * and the node it names; *ask tells which.
 */
static bool
CbParseRedirect(const redisReply *reply, bool *ask, int *slot, int *node)
{
	char		host[256];
	int			port;

	if (reply == NULL ||
		!CbReplyRedirect(reply, ask, slot, host, sizeof(host), &port))
		return false;
	*node = CbNodeFor(host, port);
	return true;
}

/* An integer reply of value v, made as hiredis makes replies. */
static redisReply *
CbIntegerReply(long long v)
{
	redisReader *reader = redisReaderCreate();
	char		text[32];
	int			n = snprintf(text, sizeof(text), ":%lld\r\n", v);
	void	   *reply = NULL;

	if (reader == NULL)
		return NULL;
	if (redisReaderFeed(reader, text, n) != REDIS_OK ||
		redisReaderGetReply(reader, &reply) != REDIS_OK)
		reply = NULL;
	redisReaderFree(reader);
	return (redisReply *) reply;
}

/*
 * chosen, the error reply of one of parts[0..n) (the parts of a split
 * call), or, if it is a write script's answer naming the key it rejected
 * by its place in the part, a new reply naming the key's place in the
 * caller's call (see CbReplyRejectedKey).
 */
static redisReply *
CbRenumberRejectedKey(CbPart **parts, int n, redisReply *chosen)
{
	for (int j = 0; j < n; j++)
	{
		int			place;
		redisReply *renumbered;

		if (parts[j]->reply != chosen || parts[j]->key_places == NULL)
			continue;
		place = CbReplyRejectedKey(chosen);
		if (place < 1 || place > parts[j]->nkeys)
			return chosen;
		renumbered = CbReplyRenumberRejectedKey(chosen, parts[j]->key_places[place - 1]);
		return renumbered != NULL ? renumbered : chosen;
	}
	return chosen;
}

/*
 * The parts of command i that stand (not node calls sent again per slot),
 * in a palloc'd array; their number in *n.
 */
static CbPart **
CbPartsOf(CbRoute *route, int i, int *n)
{
	CbPart	  **parts = palloc(sizeof(CbPart *) * Max(route->nparts_of[i], 1));

	*n = 0;
	for (int p = route->first_part[i]; p >= 0; p = route->parts[p].next)
		if (!route->parts[p].retired)
			parts[(*n)++] = &route->parts[p];
	return parts;
}

/*
 * The one reply of command i, from the replies of its parts, which it
 * takes over: a part's own reply if it has one part; for a split command
 * an error of a part if any (a retryable one first: the effect then stays
 * pending as a whole), else the sum of their integers.
 */
static redisReply *
CbMergeReplies(CbRoute *route, int i)
{
	int			n;
	CbPart	  **parts = CbPartsOf(route, i, &n);
	redisReply *chosen = NULL;
	long long	sum = 0;
	bool		all_integers = true;

	/*
	 * A part's reply is the command's, unless it is a node call's error
	 * naming a key by its place in the node call (keys in slot order)
	 */
	if (n == 1 && (!parts[0]->node_call || parts[0]->reply->type != REDIS_REPLY_ERROR))
	{
		chosen = parts[0]->reply;
		parts[0]->reply = NULL;
		pfree(parts);
		return chosen;
	}
	for (int j = 0; j < n; j++)
	{
		redisReply *r = parts[j]->reply;

		if (r->type == REDIS_REPLY_INTEGER)
			sum += r->integer;
		else
			all_integers = false;
		if (r->type == REDIS_REPLY_ERROR &&
			(chosen == NULL || (CbReplyVerdict(r) == CB_VERDICT_RETRYABLE &&
								CbReplyVerdict(chosen) != CB_VERDICT_RETRYABLE)))
			chosen = r;
	}
	if (chosen == NULL)
		chosen = all_integers && route->summed[i] ? CbIntegerReply(sum) : NULL;
	if (chosen == NULL)
		chosen = parts[0]->reply;
	else
		chosen = CbRenumberRejectedKey(parts, n, chosen);
	for (int j = 0; j < n; j++)
	{
		if (parts[j]->reply != chosen)
			freeReplyObject(parts[j]->reply);
		parts[j]->reply = NULL;
	}
	pfree(parts);
	return chosen;
}

/*
 * True if reply, the answer to a node call, may owe to the node: anything
 * but the call's own answers (applied, or a key rejected for good) and the
 * refusals any node would give (Redis out of memory, busy, loading, unable
 * to persist), which stand as the call's reply.
 */
static bool
CbRefusedNodeCall(const redisReply *reply)
{
	static const char *const anywhere[] = {"OOM", "BUSY", "LOADING", "MISCONF"};

	if (reply->type != REDIS_REPLY_ERROR || CbReplyRejectedKey(reply) >= 1)
		return false;
	for (int i = 0; i < lengthof(anywhere); i++)
		if (CbReplyHasCode(reply, anywhere[i]))
			return false;
	return true;
}

/*
 * Sends again, one call per slot, every node call (CB_SCRIPT_WRITE_NODE)
 * that a node refused (CbRefusedNodeCall: the map was stale and the node
 * owns some key no more, or it is a replica now, or the cluster is down,
 * or it could not run the script): the per-slot calls get the redirections
 * the cluster specification describes.  What the refused call applied
 * before it stopped is applied again with the same version, changing
 * nothing.  Returns true if any part is to be sent.
 */
static bool
CbSplitRefusedNodeCalls(CbRoute *route, StringInfo scratch)
{
	bool		again = false;
	int			nparts = route->nparts;	/* not the parts added here */

	for (int i = 0; i < nparts; i++)
	{
		CbPart	   *p = &route->parts[i];
		CbCommand	cmd;
		CbKeyLayout kl;
		CbSlotKey  *keys;
		size_t		pos;
		int			nkeys;
		int			command;

		if (!p->node_call || p->retired || p->reply == NULL ||
			!CbRefusedNodeCall(p->reply))
			continue;
		if (CbReplyHasCode(p->reply, "NOSCRIPT"))
			node_calls_paused_at = GetCurrentTimestamp();
		else
			map_stale = true;

		/*
		 * The caller's command again (it was parsed and laid out once, so
		 * this cannot fail; if it did, the node's answer would stand), and
		 * this call's keys, in slot order.
		 */
		pos = p->src_offset;
		if (!CbParseCommand(route->buf, p->src_offset + p->src_len, &pos, &cmd) ||
			!CbWriteLayout(&cmd, CbParseCount(cmd.argv[2], cmd.argl[2]), &kl))
			continue;
		freeReplyObject(p->reply);
		p->reply = NULL;
		p->retired = true;
		nkeys = p->nkeys;
		command = p->command;
		keys = palloc(sizeof(CbSlotKey) * nkeys);
		for (int j = 0; j < nkeys; j++)
		{
			int			keyarg;

			keys[j].index = p->key_places[j] - 1;
			keyarg = kl.first + keys[j].index * kl.step;
			keys[j].slot = CbKeySlot(cmd.argv[keyarg], cmd.argl[keyarg]);
		}
		/* p may move as parts are added */
		for (int k = 0, n; k < nkeys; k += n)
		{
			n = CbSlotRun(keys, k, nkeys);
			CbEmitSlotPart(route, command, &cmd, &kl, keys + k, n, scratch);
		}
		pfree(keys);
		again = true;
	}
	return again;
}

/*
 * Sends every part that has no reply yet to its node, all nodes in one
 * parallel round trip: the PUBLISHes only if publishes, the other parts
 * only if not.  A node that cannot be reached fails its parts and fills
 * err (the first such).  Returns false if nothing was to be sent.
 */
static bool
CbSendRound(CbRoute *route, bool publishes, CbRedisError *err)
{
	CbNodeShare *shares = palloc0(sizeof(CbNodeShare) * nnodes);
	CbConnJob  *jobs = palloc0(sizeof(CbConnJob) * nnodes);
	int		   *job_node = palloc(sizeof(int) * nnodes);
	int			njobs = 0;

	for (int i = 0; i < route->nparts; i++)
	{
		CbPart	   *p = &route->parts[i];

		if (p->reply != NULL || p->failed || p->retired || p->publish != publishes)
			continue;
		if (shares[p->node].route == NULL)
		{
			shares[p->node].route = route;
			CbPipelineInit(&shares[p->node].pipeline);
		}
		CbShareAdd(&shares[p->node], i);
	}
	for (int n = 0; n < nnodes; n++)
	{
		if (shares[n].route == NULL)
			continue;
		jobs[njobs].conn = nodes[n]->conn;
		jobs[njobs].buf = shares[n].pipeline.buf.data;
		jobs[njobs].len = shares[n].pipeline.buf.len;
		jobs[njobs].ncommands = shares[n].pipeline.ncommands;
		jobs[njobs].callback = CbShareReply;
		jobs[njobs].arg = &shares[n];
		job_node[njobs++] = n;
	}
	if (njobs > 0)
		CbRunJobs(jobs, njobs);
	for (int j = 0; j < njobs; j++)
	{
		int			n = job_node[j];

		if (!jobs[j].ok)
		{
			CbNodeFailed(n, &jobs[j].err);
			if (err->failure == CB_REDIS_OK)
				memcpy(err, &jobs[j].err, sizeof(*err));
			for (int i = 0; i < route->nparts; i++)
				if (route->parts[i].node == n && route->parts[i].reply == NULL &&
					!route->parts[i].retired)
					route->parts[i].failed = true;
		}
		pfree(shares[n].pipeline.buf.data);
		if (shares[n].part_at)
			pfree(shares[n].part_at);
	}
	pfree(shares);
	pfree(jobs);
	pfree(job_node);
	return njobs > 0;
}

/*
 * Follows the redirections among the replies: MOVED moves the slot in the
 * map (and asks for a fresh map later), ASK sends the command there once.
 * Returns true if any part is to be sent again.
 */
static bool
CbFollowRedirects(CbRoute *route)
{
	bool		again = false;

	for (int i = 0; i < route->nparts; i++)
	{
		CbPart	   *p = &route->parts[i];
		bool		ask;
		int			slot;
		int			node;

		if (p->redirects >= CB_MAX_REDIRECTS ||
			!CbParseRedirect(p->reply, &ask, &slot, &node))
			continue;
		if (!ask)
		{
			slot_owner[slot] = node;
			nodes[node]->master = true;
			map_stale = true;
		}
		freeReplyObject(p->reply);
		p->reply = NULL;
		p->node = node;
		p->asking = ask;
		p->redirects++;
		again = true;
	}
	return again;
}

/*
 * Executes ncommands RESP-encoded commands on the cluster (see the file
 * header), handing each reply to callback in command order.  Returns false
 * with err filled if a master could not be reached; the replies before its
 * first command are handed over.
 */
bool
CbClusterExecute(const char *buf, size_t len, int ncommands,
				 CbReplyCallback callback, void *arg, CbRedisError *err)
{
	MemoryContext cxt;
	MemoryContext oldcxt;
	CbRoute		route;
	StringInfoData scratch;
	bool		ok = true;

	if (!CbClusterEnsureMap(err))
		return false;
	memset(err, 0, sizeof(*err));

	cxt = AllocSetContextCreate(CurrentMemoryContext, "cachebridge cluster pipeline",
								ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);
	memset(&route, 0, sizeof(route));
	if (!CbSplitPipeline(&route, buf, len, ncommands))
	{
		MemoryContextSwitchTo(oldcxt);
		MemoryContextDelete(cxt);
		err->failure = CB_REDIS_PROTOCOL;
		snprintf(err->server, sizeof(err->server), "%s",
				 CbRedisCurrentTarget()->display);
		snprintf(err->detail, sizeof(err->detail),
				 "The pipeline does not hold %d well-formed commands.", ncommands);
		return false;
	}
	/*
	 * The PUBLISHes of notify= go last, once every other part has its final
	 * reply: on one Redis a PUBLISH follows the effects it announces in the
	 * pipeline, but here they may be on other masters, or be redirected
	 * and sent again, and a subscriber re-reading a key must find it
	 * changed.  If a master could not be reached, they are not sent (the
	 * caller keeps the effects, PUBLISHes included, to send again).
	 */
	initStringInfo(&scratch);
	while (CbSendRound(&route, false, err))
	{
		/* redirections first: the per-slot calls then use the map they fix */
		bool		again = CbFollowRedirects(&route);

		if (!CbSplitRefusedNodeCalls(&route, &scratch) && !again)
			break;
	}
	if (err->failure == CB_REDIS_OK)
		while (CbSendRound(&route, true, err) && CbFollowRedirects(&route))
			;

	/* replies in command order, up to the first one that is missing */
	MemoryContextSwitchTo(oldcxt);
	for (int i = 0; i < ncommands && ok; i++)
	{
		redisReply *reply;

		for (int p = route.first_part[i]; p >= 0; p = route.parts[p].next)
			ok &= (route.parts[p].retired || route.parts[p].reply != NULL);
		if (!ok)
			break;
		reply = CbMergeReplies(&route, i);
		if (reply == NULL)
		{
			ok = false;
			break;
		}
		if (callback == NULL || !callback(i, reply, arg))
			freeReplyObject(reply);
	}
	for (int i = 0; i < route.nparts; i++)
		if (route.parts[i].reply != NULL)
			freeReplyObject(route.parts[i].reply);
	MemoryContextDelete(cxt);
	if (!ok && err->failure == CB_REDIS_OK)
	{
		err->failure = CB_REDIS_PROTOCOL;
		snprintf(err->server, sizeof(err->server), "%s",
				 CbRedisCurrentTarget()->display);
		snprintf(err->detail, sizeof(err->detail),
				 "A reply of the Redis Cluster could not be matched to its command.");
	}
	return ok;
}

/*
 * The nodes this process knows, for cachebridge.cluster_nodes(); returns
 * their number and a palloc'd array in *infos.
 */
int
CbClusterNodeInfos(CbClusterNodeInfo **infos)
{
	CbClusterNodeInfo *out = palloc0(sizeof(CbClusterNodeInfo) * Max(nnodes, 1));

	CbClusterCheckTarget();
	for (int i = 0; i < nnodes; i++)
	{
		StringInfoData ranges;

		initStringInfo(&ranges);
		for (int s = 0; s < CB_CLUSTER_SLOTS; s++)
		{
			int			e = s;

			if (slot_owner[s] != i)
				continue;
			while (e + 1 < CB_CLUSTER_SLOTS && slot_owner[e + 1] == i)
				e++;
			appendStringInfo(&ranges, ranges.len ? " %d-%d" : "%d-%d", s, e);
			s = e;
		}
		out[i].address = CbConnName(nodes[i]->conn);
		out[i].master = nodes[i]->master;
		out[i].slots = ranges.data;
		out[i].connected = CbConnIsOpen(nodes[i]->conn);
		out[i].errors = nodes[i]->errors;
		out[i].last_error = nodes[i]->last_error[0] ? nodes[i]->last_error : NULL;
		out[i].last_error_at = nodes[i]->last_error_at;
	}
	*infos = out;
	return nnodes;
}
