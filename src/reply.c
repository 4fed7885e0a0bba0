/*-------------------------------------------------------------------------
 *
 * reply.c
 *		Classification of Redis replies to effects.
 *
 * Every deliverer -- the committing backend, the worker, pattern deletion
 * -- asks CbReplyVerdict what a reply means, so that no caller can count
 * an error reply as a delivery.  An error reply is retryable when it
 * describes the state of the server rather than of the effect: out of
 * memory, loading, busy with a script, a replica or a master that lost its
 * replicas, a failing disk, a cluster slot in motion or down, a flushed
 * script cache, and authentication or ACL refusals that an operator can
 * fix.  Such an effect stays pending, and its outbox row stays, until the
 * server takes it.  Any other error reply (WRONGTYPE on the key, a value
 * over proto-max-bulk-len, a script runtime error) would be given again
 * on every retry: the effect is dead.
 *
 * Redis 7 keeps the error code of a command that failed inside a script
 * ("OOM command not allowed ... script: ..."), so the first word of the
 * reply is the code wherever the error arose.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "reply.h"

/* Error codes that describe the server's state, not the effect's. */
static const char *const retryable_codes[] = {
	"OOM", "LOADING", "BUSY", "READONLY", "MASTERDOWN", "MISCONF",
	"TRYAGAIN", "CLUSTERDOWN", "MOVED", "ASK", "NOSCRIPT", "NOAUTH",
	"NOPERM", "WRONGPASS", "NOREPLICAS", "UNBLOCKED", NULL
};

/* Generic (ERR) errors an operator can fix. */
static const char *const retryable_err_texts[] = {
	"ERR max number of clients reached",
	"ERR unknown command",		/* a renamed or disabled command */
	"ERR This instance has cluster support disabled",
	NULL
};

/* True if text starts with code followed by a space or its end. */
static bool
CbErrorHasCode(const char *text, size_t textlen, const char *code)
{
	size_t		len = strlen(code);

	return textlen >= len && memcmp(text, code, len) == 0 &&
		(textlen == len || text[len] == ' ');
}

/* What an error reply with text means for the effect it answered. */
CbVerdict
CbErrorVerdict(const char *text, size_t textlen)
{
	for (int i = 0; retryable_codes[i] != NULL; i++)
		if (CbErrorHasCode(text, textlen, retryable_codes[i]))
			return CB_VERDICT_RETRYABLE;
	for (int i = 0; retryable_err_texts[i] != NULL; i++)
	{
		size_t		len = strlen(retryable_err_texts[i]);

		if (textlen >= len && memcmp(text, retryable_err_texts[i], len) == 0)
			return CB_VERDICT_RETRYABLE;
	}
	return CB_VERDICT_PERMANENT;
}

/*
 * True if reply is an error reply with code (such as "NOSCRIPT"): for the
 * callers that act on one code, so that codes are read only here.
 */
bool
CbReplyHasCode(const redisReply *reply, const char *code)
{
	return reply->type == REDIS_REPLY_ERROR &&
		CbErrorHasCode(reply->str, reply->len, code);
}

/* What reply, the answer to one effect's command, means for the effect. */
CbVerdict
CbReplyVerdict(const redisReply *reply)
{
	if (reply->type != REDIS_REPLY_ERROR)
		return CB_VERDICT_APPLIED;
	return CbErrorVerdict(reply->str, reply->len);
}

/*
 * True if reply is a Redis Cluster redirection, "MOVED <slot> <host>:<port>"
 * or "ASK <slot> <host>:<port>": then *ask says which, and *slot, host (of
 * hostlen bytes) and *port where the command is to go.  A redirection to a
 * node that does not know its own address (":6380") is none.
 */
bool
CbReplyRedirect(const redisReply *reply, bool *ask, int *slot,
				char *host, size_t hostlen, int *port)
{
	const char *colon;
	const char *addr;
	char	   *end;
	long		s;
	long		p;

	if (CbReplyHasCode(reply, "MOVED"))
		*ask = false;
	else if (CbReplyHasCode(reply, "ASK"))
		*ask = true;
	else
		return false;
	s = strtol(reply->str + (*ask ? 4 : 6), &end, 10);
	if (*end != ' ' || s < 0 || s >= 16384)
		return false;
	addr = end + 1;
	colon = strrchr(addr, ':');
	if (colon == NULL || colon == addr || colon - addr >= (long) hostlen)
		return false;
	p = strtol(colon + 1, &end, 10);
	if (*end != '\0' || p <= 0 || p > 65535)
		return false;
	memcpy(host, addr, colon - addr);
	host[colon - addr] = '\0';
	*slot = (int) s;
	*port = (int) p;
	return true;
}

/*
 * How the write script's WRONGTYPE answer ends: the place (from 1) of the
 * first key it rejected among the keys of the call (scripts.c).
 */
#define CB_REJECTED_AT " at key "

/* Where the place of a rejected key starts in reply's text, or NULL. */
static const char *
CbRejectedAt(const redisReply *reply)
{
	const char *at = NULL;
	const char *p = reply->str;

	if (!CbReplyHasCode(reply, "WRONGTYPE"))
		return NULL;
	while ((p = strstr(p, CB_REJECTED_AT)) != NULL)
		at = p++;
	return at;
}

/*
 * The place (from 1) among the keys of a call of the write script of the
 * first key the call rejected, as its WRONGTYPE answer names it, or 0 for
 * any other reply.
 */
int
CbReplyRejectedKey(const redisReply *reply)
{
	const char *at = CbRejectedAt(reply);
	const char *digits;
	char	   *end;
	long		place;

	if (at == NULL)
		return 0;
	digits = at + strlen(CB_REJECTED_AT);
	if (*digits < '1' || *digits > '9')
		return 0;
	errno = 0;
	place = strtol(digits, &end, 10);
	if (errno != 0 || end != reply->str + reply->len || place > INT_MAX)
		return 0;
	return (int) place;
}

/*
 * A new error reply: reply, a WRONGTYPE answer of the write script (see
 * CbReplyRejectedKey), naming its rejected key at place instead -- for a
 * call the cluster router split, whose parts hold the keys in another
 * order.  NULL if reply names no key, or out of memory.
 */
redisReply *
CbReplyRenumberRejectedKey(const redisReply *reply, int place)
{
	const char *at = CbRejectedAt(reply);
	redisReader *reader;
	char	   *text;
	void	   *copy = NULL;
	int			n;

	if (at == NULL || CbReplyRejectedKey(reply) == 0)
		return NULL;
	reader = redisReaderCreate();
	if (reader == NULL)
		return NULL;
	text = psprintf("-%.*s%s%d\r\n", (int) (at - reply->str), reply->str,
					CB_REJECTED_AT, place);
	n = strlen(text);
	if (redisReaderFeed(reader, text, n) != REDIS_OK ||
		redisReaderGetReply(reader, &copy) != REDIS_OK)
		copy = NULL;
	redisReaderFree(reader);
	pfree(text);
	return (redisReply *) copy;
}

/* True if reply, the answer to INFO cluster, says cluster mode is on. */
bool
CbReplyClusterEnabled(const redisReply *reply)
{
	return reply->type == REDIS_REPLY_STRING &&
		strstr(reply->str, "cluster_enabled:1") != NULL;
}
