/*-------------------------------------------------------------------------
 *
 * redis.h
 *		The Redis connection layer: target parsing, one lazily opened
 *		connection per backend, and pipelined command execution.
 *
 * Every call into Redis goes through a CbPipeline: commands are appended
 * (each with the key that routes it, so a Redis Cluster target can later
 * group them by slot), then sent in one write and their replies read back
 * in order.  Execution never throws: it reports failure through CbRedisError
 * so that callers running after commit can turn it into a WARNING, while SQL
 * functions turn it into an ERROR with CbRedisReportError().
 *
 *-------------------------------------------------------------------------
 */
#ifndef CACHEBRIDGE_REDIS_H
#define CACHEBRIDGE_REDIS_H

#include "lib/stringinfo.h"
#include "utils/guc.h"

#include "resp.h"

#include <hiredis/hiredis.h>

/* Longest AUTH password accepted, with its terminating NUL. */
#define CB_REDIS_PASSWORD_MAX 512

/*
 * A parsed cachebridge.redis_url.  Fixed-size, so that it can be the
 * malloc'd "extra" of the GUC; an empty string means "not given".
 */
typedef struct CbRedisTarget
{
	char		host[256];		/* TCP host, or "" for a unix socket */
	int			port;
	bool		tls;			/* rediss:// */
	char		socket_path[108];	/* unix socket path, or "" */
	int			db;				/* SELECT'ed database */
	char		user[128];		/* ACL user */
	char		password[CB_REDIS_PASSWORD_MAX];	/* AUTH password */
	char		display[300];	/* "host:port" or the socket path, never a secret */
} CbRedisTarget;

/* Why a pipeline failed. */
typedef enum CbRedisFailure
{
	CB_REDIS_OK = 0,
	CB_REDIS_CONNECT,			/* could not connect, authenticate or select */
	CB_REDIS_IO,				/* connection lost while talking */
	CB_REDIS_TIMEOUT,			/* no progress within command_timeout */
	CB_REDIS_PROTOCOL			/* unparseable reply */
} CbRedisFailure;

typedef struct CbRedisError
{
	CbRedisFailure failure;
	char		server[256];	/* which server, for the message */
	char		detail[512];	/* what happened, no secrets */
} CbRedisError;

/*
 * Called once per reply, in command order.  Returns true to keep the reply
 * (the callback then frees it with freeReplyObject), false to have it freed.
 */
typedef bool (*CbReplyCallback) (int index, redisReply *reply, void *arg);

/* GUC plumbing (cachebridge.c defines the variables). */
extern char *cb_redis_url;
extern char *cb_redis_password_file;
extern int	cb_connect_timeout;
extern int	cb_command_timeout;

extern bool CbParseRedisUrl(const char *url, CbRedisTarget *target,
							char *errbuf, size_t errlen);
extern bool CbRedisUrlCheckHook(char **newval, void **extra, GucSource source);
extern void CbRedisUrlAssignHook(const char *newval, void *extra);
extern void CbRedisPasswordFileAssignHook(const char *newval, void *extra);
extern const char *CbRedisServerName(void);
extern void CbRedisSetDeadline(int ms);
extern void CbRedisClearDeadline(void);
extern bool CbRedisPastDeadline(void);

extern bool CbPipelineExecute(CbPipeline *p, CbReplyCallback callback,
							  void *arg, CbRedisError *err);
extern bool CbExecuteBuffer(const char *buf, size_t len, int ncommands,
							CbReplyCallback callback, void *arg,
							CbRedisError *err);
extern redisReply *CbRedisCommand(CbPipeline *p);
extern void CbRedisReportError(const CbRedisError *err) pg_attribute_noreturn();
extern void CbRedisCheckReply(const redisReply *reply, const char *command);
extern bool CbRedisUnlinkMatching(const char *match, size_t matchlen,
								  const char *marker, int tombstone_ttl,
								  int64 *count, char **error_reply,
								  CbRedisError *err);
extern void CbRedisDisconnect(void);
extern void CbRedisSetClientName(const char *role, const char *dbname);
extern void CbRedisInit(void);

#endif							/* CACHEBRIDGE_REDIS_H */
