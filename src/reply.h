/*-------------------------------------------------------------------------
 *
 * reply.h
 *		What a Redis reply to an effect means: the one place that decides
 *		whether an error reply is worth retrying.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CACHEBRIDGE_REPLY_H
#define CACHEBRIDGE_REPLY_H

#include <hiredis/hiredis.h>

typedef enum CbVerdict
{
	CB_VERDICT_APPLIED,			/* applied, or refused as older: done */
	CB_VERDICT_RETRYABLE,		/* an operator or the cluster can fix it: keep it */
	CB_VERDICT_PERMANENT		/* no retry can change it: dead */
} CbVerdict;

extern CbVerdict CbErrorVerdict(const char *text, size_t textlen);
extern CbVerdict CbReplyVerdict(const redisReply *reply);
extern bool CbReplyHasCode(const redisReply *reply, const char *code);
extern bool CbReplyRedirect(const redisReply *reply, bool *ask, int *slot,
							char *host, size_t hostlen, int *port);
extern bool CbReplyClusterEnabled(const redisReply *reply);
extern int	CbReplyRejectedKey(const redisReply *reply);
extern redisReply *CbReplyRenumberRejectedKey(const redisReply *reply,
											  int place);

#endif							/* CACHEBRIDGE_REPLY_H */
