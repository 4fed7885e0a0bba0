/*-------------------------------------------------------------------------
 *
 * cluster_nodes.c
 *		cachebridge.cluster_nodes(): the Redis Cluster as the calling
 *		session knows it, a companion of cachebridge.stats.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "cluster.h"
#include "redis.h"

PG_FUNCTION_INFO_V1(cluster_nodes);

/*
 * cluster_nodes() returns setof record
 *		The nodes of the Redis Cluster as this session knows them: address,
 *		whether it is a master of the current map and its slot ranges,
 *		whether this session has a connection open to it, and the round
 *		trips that failed on it with the last error.  The map is refreshed
 *		first if it is stale; no row on a single Redis.  Never raises an
 *		ERROR for an unreachable Redis: it shows what is known.
 */
Datum
cluster_nodes(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	CbClusterNodeInfo *infos;
	CbRedisError err;
	bool		is_cluster = false;
	int			n;

	InitMaterializedSRF(fcinfo, 0);
	if (!CbRedisIsCluster(&is_cluster, &err) || !is_cluster)
		PG_RETURN_VOID();
	(void) CbClusterMasters(&err);
	n = CbClusterNodeInfos(&infos);
	for (int i = 0; i < n; i++)
	{
		Datum		values[7];
		bool		nulls[7] = {0};

		values[0] = CStringGetTextDatum(infos[i].address);
		values[1] = CStringGetTextDatum(infos[i].master ? "master" : "other");
		values[2] = CStringGetTextDatum(infos[i].slots);
		values[3] = BoolGetDatum(infos[i].connected);
		values[4] = Int64GetDatum(infos[i].errors);
		if (infos[i].last_error != NULL)
		{
			values[5] = CStringGetTextDatum(infos[i].last_error);
			values[6] = TimestampTzGetDatum(infos[i].last_error_at);
		}
		else
			nulls[5] = nulls[6] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_VOID();
}
