/*-------------------------------------------------------------------------
 *
 * conn.h
 *		Connections to Redis servers: the parsed target, one connection
 *		per server, and pipelines sent on several in one round trip.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CACHEBRIDGE_CONN_H
#define CACHEBRIDGE_CONN_H

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
/* Most seed nodes cachebridge.redis_url may name. */
#define CB_REDIS_MAX_SEEDS 8

typedef struct CbRedisSeed
{
	char		host[256];
	int			port;
} CbRedisSeed;

typedef struct CbRedisTarget
{
	char		host[256];		/* TCP host (the first seed's), or "" for a unix socket */
	int			port;
	int			nseeds;			/* host:port pairs named, 1 for a unix socket */
	CbRedisSeed seeds[CB_REDIS_MAX_SEEDS];	/* seeds[0] is host:port */
	bool		tls;			/* rediss:// */
	char		socket_path[108];	/* unix socket path, or "" */
	int			db;				/* SELECT'ed database */
	char		user[128];		/* ACL user */
	char		password[CB_REDIS_PASSWORD_MAX];	/* AUTH password */
	char		display[300];	/* "host:port[,host:port...]" or the socket path, never a secret */
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

/* A connection to one server; cluster.c keeps one per node. */
typedef struct CbRedisConn CbRedisConn;

/*
 * One connection's part of a parallel round trip (CbRunJobs): its
 * pipeline, where its replies go, and its outcome.
 */
typedef struct CbConnJob
{
	CbRedisConn *conn;
	const char *buf;			/* RESP-encoded commands */
	size_t		len;
	int			ncommands;
	CbReplyCallback callback;
	void	   *arg;
	bool		ok;				/* out: every reply handed over */
	int			nreplies;		/* out: replies handed over */
	CbRedisError err;			/* out: why not, if not ok */
	bool		started;		/* CbRunJobStart sent it */
	bool		reused;			/* on a connection of an earlier call */
} CbConnJob;

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
extern void CbRedisSetClientName(const char *role, const char *dbname);
extern void CbRedisInit(void);
extern uint64 CbRedisTargetGeneration(void);
extern const CbRedisTarget *CbRedisCurrentTarget(void);

extern CbRedisConn *CbConnCreate(const char *host, int port);
extern void CbConnFree(CbRedisConn *c);
extern void CbConnClose(CbRedisConn *c);
extern bool CbConnIsOpen(const CbRedisConn *c);
extern const char *CbConnName(const CbRedisConn *c);
extern void CbRunJobs(CbConnJob *jobs, int njobs);
extern void CbRunJobStart(CbConnJob *job);
extern void CbRunJobFinish(CbConnJob *job);
extern bool CbConnOpenSeed(CbRedisError *err, redisReply **slots,
						   char *via_host, size_t via_len);
extern CbRedisConn *CbConnSeed(void);
extern void CbConnRestoreLatch(void);

#endif							/* CACHEBRIDGE_CONN_H */
