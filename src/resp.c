/*-------------------------------------------------------------------------
 *
 * resp.c
 *		RESP, the Redis protocol, as cachebridge writes and reads commands:
 *		building pipelines of commands, and reading encoded commands back.
 *
 * Pure encoding: nothing here talks to Redis.  The transport (redis.c)
 * sends what is built here, the plan codec (plan.c) stores it, and the
 * scripts (scripts.c) load themselves through it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "resp.h"

/* Starts an empty pipeline in the current memory context. */
void
CbPipelineInit(CbPipeline *p)
{
	initStringInfo(&p->buf);
	p->ncommands = 0;
	p->args_left = 0;
}

/* Empties a pipeline, keeping its buffer. */
void
CbPipelineReset(CbPipeline *p)
{
	resetStringInfo(&p->buf);
	p->ncommands = 0;
	p->args_left = 0;
}

/*
 * Appends a RESP header such as "*3\r\n" or "$5\r\n" (without snprintf:
 * a large pipeline has one per argument).
 */
static void
CbAppendHeader(StringInfo buf, char kind, size_t n)
{
	char		tmp[24];
	int			i = sizeof(tmp);

	tmp[--i] = '\n';
	tmp[--i] = '\r';
	do
	{
		tmp[--i] = '0' + (n % 10);
		n /= 10;
	} while (n > 0);
	tmp[--i] = kind;
	appendBinaryStringInfo(buf, tmp + i, sizeof(tmp) - i);
}

/*
 * Starts a command of argc arguments.  routekey is the key that decides
 * which server of a Redis Cluster would receive it (NULL for commands that
 * address a server rather than a key); one server is all there is today.
 */
void
CbPipelineBegin(CbPipeline *p, int argc, const char *routekey, size_t routelen)
{
	Assert(p->args_left == 0);
	Assert(argc > 0);
	CbAppendHeader(&p->buf, '*', argc);
	p->args_left = argc;
	p->ncommands++;
}

/* Appends one binary-safe argument to the current command. */
void
CbPipelineArg(CbPipeline *p, const char *data, size_t len)
{
	Assert(p->args_left > 0);
	CbAppendHeader(&p->buf, '$', len);
	appendBinaryStringInfo(&p->buf, data, len);
	appendBinaryStringInfo(&p->buf, "\r\n", 2);
	p->args_left--;
}

/* Appends a NUL-terminated argument. */
void
CbPipelineArgStr(CbPipeline *p, const char *str)
{
	CbPipelineArg(p, str, strlen(str));
}

/* Appends an integer argument. */
void
CbPipelineArgInt(CbPipeline *p, int64 value)
{
	char		buf[32];

	snprintf(buf, sizeof(buf), INT64_FORMAT, value);
	CbPipelineArgStr(p, buf);
}

/*
 * Appends one command already RESP-encoded (cmd[0..len) is the whole
 * command), as the cluster router copies commands from a buffer into the
 * pipeline of the node that owns their slot.
 */
void
CbPipelineAppendRaw(CbPipeline *p, const char *cmd, size_t len)
{
	Assert(p->args_left == 0);
	appendBinaryStringInfo(&p->buf, cmd, len);
	p->ncommands++;
}

/*
 * Reads the RESP header of kind ('*' or '$') at *pos of encoded commands,
 * and for a bulk string its data; false if there is none.
 */
bool
CbRespNext(const char *buf, size_t len, size_t *pos, char kind,
		   const char **data, long *n)
{
	size_t		p = *pos + 1;

	if (*pos >= len || buf[*pos] != kind)
		return false;
	*n = 0;
	while (p < len && buf[p] >= '0' && buf[p] <= '9' && *n < 1L << 40)
		*n = *n * 10 + (buf[p++] - '0');
	if (p == *pos + 1 || p + 2 > len || buf[p] != '\r' || buf[p + 1] != '\n')
		return false;
	p += 2;
	*data = buf + p;
	if (kind == '$')
	{
		if ((size_t) *n + 2 > len - p ||
			buf[p + *n] != '\r' || buf[p + *n + 1] != '\n')
			return false;
		p += *n + 2;
	}
	*pos = p;
	return true;
}

/*
 * True if cmds holds exactly ncommands RESP-encoded commands: a step that
 * claims more or fewer would have Redis and the reader disagree on which
 * reply answers which command, or wait for replies that never come.
 */
bool
CbRespWellFormed(const char *cmds, size_t len, uint32 ncommands)
{
	size_t		pos = 0;
	const char *data;
	long		n;

	for (uint32 c = 0; c < ncommands; c++)
	{
		long		argc;

		if (!CbRespNext(cmds, len, &pos, '*', &data, &argc) || argc < 1)
			return false;
		for (long a = 0; a < argc; a++)
			if (!CbRespNext(cmds, len, &pos, '$', &data, &n))
				return false;
	}
	return pos == len;
}
