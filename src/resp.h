/*-------------------------------------------------------------------------
 *
 * resp.h
 *		RESP, the Redis protocol: building pipelines of commands and
 *		reading encoded commands back.  Pure encoding, no connection.
 *
 * Every command is appended with the key that routes it (so that a Redis
 * Cluster target can group commands by slot); a pipeline is then sent in
 * one write by the transport (redis.h).
 *
 *-------------------------------------------------------------------------
 */
#ifndef CACHEBRIDGE_RESP_H
#define CACHEBRIDGE_RESP_H

#include "lib/stringinfo.h"

/* Commands to be sent together. */
typedef struct CbPipeline
{
	StringInfoData buf;			/* RESP-encoded commands */
	int			ncommands;
	int			args_left;		/* arguments still owed to the last command */
} CbPipeline;

extern void CbPipelineInit(CbPipeline *p);
extern void CbPipelineReset(CbPipeline *p);
extern void CbPipelineBegin(CbPipeline *p, int argc,
							const char *routekey, size_t routelen);
extern void CbPipelineArg(CbPipeline *p, const char *data, size_t len);
extern void CbPipelineArgStr(CbPipeline *p, const char *str);
extern void CbPipelineArgInt(CbPipeline *p, int64 value);
extern void CbPipelineAppendRaw(CbPipeline *p, const char *cmd, size_t len);

extern bool CbRespNext(const char *buf, size_t len, size_t *pos, char kind,
					   const char **data, long *n);
extern bool CbRespWellFormed(const char *cmds, size_t len, uint32 ncommands);

#endif							/* CACHEBRIDGE_RESP_H */
