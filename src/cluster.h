/*-------------------------------------------------------------------------
 *
 * cluster.h
 *		The Redis Cluster client under the transport: slot map, one
 *		connection per master, pipelines split by slot and sent in parallel.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CACHEBRIDGE_CLUSTER_H
#define CACHEBRIDGE_CLUSTER_H

#include "conn.h"

/* What cluster_nodes() shows of one node this process knows. */
typedef struct CbClusterNodeInfo
{
	const char *address;		/* "host:port" */
	bool		master;			/* owns slots in the current map */
	char	   *slots;			/* its slot ranges, "0-5460 ..." (palloc'd) */
	bool		connected;
	int64		errors;			/* failed round trips */
	const char *last_error;		/* or NULL */
	TimestampTz last_error_at;
} CbClusterNodeInfo;

extern void CbClusterLoadSlots(const redisReply *slots, const char *via_host);
extern bool CbClusterExecute(const char *buf, size_t len, int ncommands,
							 CbReplyCallback callback, void *arg,
							 CbRedisError *err);
extern int	CbClusterMasters(CbRedisError *err);
extern void CbClusterPinMaster(int master);
extern void CbClusterDisconnect(void);
extern int	CbClusterNodeInfos(CbClusterNodeInfo **infos);

#endif							/* CACHEBRIDGE_CLUSTER_H */
