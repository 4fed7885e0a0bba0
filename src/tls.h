/*-------------------------------------------------------------------------
 *
 * tls.h
 *		TLS sessions to Redis (rediss://) with OpenSSL: the per-process
 *		client context built from the cachebridge.tls_* settings, and
 *		non-blocking handshake, read, write and shutdown on a socket the
 *		connection layer (redis.c) owns.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CACHEBRIDGE_TLS_H
#define CACHEBRIDGE_TLS_H

#include <openssl/ssl.h>

/* GUC plumbing (cachebridge.c defines the settings). */
extern char *cb_tls_ca_file;
extern char *cb_tls_cert_file;
extern char *cb_tls_key_file;

extern void CbTlsSettingAssignHook(const char *newval, void *extra);
extern uint64 CbTlsGeneration(void);

/*
 * Results of a non-blocking step: done, or blocked until the socket is
 * ready for *wants (WL_SOCKET_READABLE / WL_SOCKET_WRITEABLE), or failed
 * with the reason in errbuf.
 */
typedef enum CbTlsStep
{
	CB_TLS_DONE,
	CB_TLS_WAIT,
	CB_TLS_FAILED
} CbTlsStep;

extern SSL *CbTlsOpen(int fd, const char *host, char *errbuf, size_t errlen);
extern CbTlsStep CbTlsHandshake(SSL *ssl, uint32 *wants,
								char *errbuf, size_t errlen);
extern CbTlsStep CbTlsWrite(SSL *ssl, const char *buf, size_t len,
							size_t *written, uint32 *wants,
							char *errbuf, size_t errlen);
extern CbTlsStep CbTlsRead(SSL *ssl, char *buf, size_t len, size_t *got,
						   uint32 *wants, char *errbuf, size_t errlen);
extern void CbTlsClose(SSL *ssl, bool clean);

#endif							/* CACHEBRIDGE_TLS_H */
