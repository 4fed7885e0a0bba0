/*-------------------------------------------------------------------------
 *
 * redis.h
 *		The transport: pipelines executed on the target (a single Redis or
 *		a Redis Cluster), pattern deletion, and the errors of both.
 *
 * Every call into Redis goes through a CbPipeline: commands are appended
 * (each with the key that routes it), then sent in one write -- per master
 * of a Redis Cluster, all at once -- and their replies read back in order.
 * Execution never throws: it reports failure through CbRedisError so that
 * callers running after commit can turn it into a WARNING, while SQL
 * functions turn it into an ERROR with CbRedisReportError().  The
 * connection settings and deadlines are conn.h's.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CACHEBRIDGE_REDIS_H
#define CACHEBRIDGE_REDIS_H

#include "conn.h"

extern bool CbPipelineExecute(CbPipeline *p, CbReplyCallback callback,
							  void *arg, CbRedisError *err);
extern bool CbExecuteBuffer(const char *buf, size_t len, int ncommands,
							CbReplyCallback callback, void *arg,
							CbRedisError *err);
/* Commands sent by CbExecuteBufferSend, their replies still to be read. */
typedef struct CbSentBuffer
{
	CbConnJob	job;			/* on a single Redis */
	bool		done;			/* every reply read, or failed */
	bool		ok;
	CbRedisError err;
} CbSentBuffer;

extern void CbExecuteBufferSend(CbSentBuffer *sent, const char *buf, size_t len,
								int ncommands, CbReplyCallback callback,
								void *arg);
extern bool CbExecuteBufferWait(CbSentBuffer *sent, CbRedisError *err);
extern redisReply *CbRedisCommand(CbPipeline *p);
extern void CbRedisReportError(const CbRedisError *err) pg_attribute_noreturn();
extern void CbRedisCheckReply(const redisReply *reply, const char *command);
extern bool CbRedisUnlinkMatching(const char *match, size_t matchlen,
								  const char *marker, int tombstone_ttl,
								  int64 *count, char **error_reply,
								  CbRedisError *err);
extern void CbRedisDisconnect(void);
extern bool CbRedisIsCluster(bool *is_cluster, CbRedisError *err);

#endif							/* CACHEBRIDGE_REDIS_H */
