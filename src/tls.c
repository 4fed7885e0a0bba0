/*-------------------------------------------------------------------------
 *
 * tls.c
 *		TLS sessions to Redis (rediss://) with OpenSSL, the library
 *		PostgreSQL itself links.
 *
 * This file owns the client context of the process (one SSL_CTX, built
 * on the first TLS connection from cachebridge.tls_ca_file, tls_cert_file
 * and tls_key_file, and built anew when a setting changes on reload or one
 * of the files changes on disk) and the TLS steps on a socket that the
 * connection layer (redis.c) owns and waits on: handshake, read, write and
 * shutdown, each non-blocking, saying which socket event it waits for.
 *
 * The server's certificate is always verified against the CA bundle (the
 * system store when tls_ca_file is empty), and so is its name: the host
 * name of cachebridge.redis_url, or its IP address, must be in the
 * certificate's subjectAltName.  A host name is also sent as SNI.
 *
 * The backend may have initialised OpenSSL for its own client connection
 * (ssl = on); the error queue is per thread and shared with it, so every
 * step clears it first and reads what it left.  Nothing here raises an
 * ERROR: failures come back as a reason, which names files but never
 * shows their content.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "storage/latch.h"

#include "tls.h"

/* The settings (cachebridge.c defines them). */
char	   *cb_tls_ca_file = NULL;
char	   *cb_tls_cert_file = NULL;
char	   *cb_tls_key_file = NULL;

/* Bumped whenever a setting changes: TLS connections are then reopened. */
static uint64 tls_generation = 1;

/* What a file was when the context was built, to notice it was replaced. */
typedef struct CbFileStamp
{
	dev_t		dev;
	ino_t		ino;
	off_t		size;
	struct timespec mtime;
} CbFileStamp;

/* The client context and what it was built from. */
static SSL_CTX *tls_ctx = NULL;
static uint64 ctx_generation = 0;
static CbFileStamp ctx_stamps[3];

/* GUC assign hook of the three settings. */
void
CbTlsSettingAssignHook(const char *newval, void *extra)
{
	tls_generation++;
}

/* The generation of the TLS settings, which a TLS connection was opened in. */
uint64
CbTlsGeneration(void)
{
	return tls_generation;
}

/* Stamps path (or an empty stamp for no file or one that cannot be read). */
static void
CbStampFile(const char *path, CbFileStamp *stamp)
{
	struct stat st;

	memset(stamp, 0, sizeof(*stamp));
	if (path == NULL || path[0] == '\0' || stat(path, &st) < 0)
		return;
	stamp->dev = st.st_dev;
	stamp->ino = st.st_ino;
	stamp->size = st.st_size;
	stamp->mtime = st.st_mtim;
}

/*
 * Writes the reason of the last OpenSSL failure after prefix, as in
 * "Could not load ...: no start line."  OpenSSL's reasons name what went
 * wrong, never the content of a file.
 */
static void
CbTlsLibraryReason(char *errbuf, size_t errlen, const char *prefix)
{
	unsigned long e = ERR_get_error();
	const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;
	char		code[128];

	if (e != 0 && reason == NULL)
	{
		ERR_error_string_n(e, code, sizeof(code));
		reason = code;
	}
	snprintf(errbuf, errlen, "%s: %s.", prefix,
			 reason != NULL ? reason : "unknown TLS library error");
	ERR_clear_error();
}

/*
 * The server of the session being opened asked for a client certificate
 * and none is configured.  In TLS 1.3 the server refuses it only after
 * the client's handshake is done, often by closing the connection before
 * its alert can be read, so later failures of the session say this.
 */
static bool cert_asked_for = false;

/* OpenSSL's call when the server asks for a certificate and none is set. */
static int
CbClientCertAsked(SSL *ssl, X509 **x509, EVP_PKEY **pkey)
{
	cert_asked_for = true;
	return 0;					/* none: go on without */
}

/* Never asks for a key's passphrase: there is no one to type it. */
static int
CbNoPassphrase(char *buf, int size, int rwflag, void *userdata)
{
	return 0;
}

/*
 * Checks that the client key file can be opened and, like libpq asks of
 * its key file, that no one but its owner (or also root's group, for a
 * file owned by root) can read it.
 */
static bool
CbCheckKeyFile(const char *path, char *errbuf, size_t errlen)
{
	struct stat st;

	if (stat(path, &st) < 0 || access(path, R_OK) < 0)
	{
		snprintf(errbuf, errlen,
				 "Could not read cachebridge.tls_key_file \"%s\": %s.",
				 path, strerror(errno));
		return false;
	}
	if (!S_ISREG(st.st_mode))
	{
		snprintf(errbuf, errlen,
				 "cachebridge.tls_key_file \"%s\" is not a regular file.", path);
		return false;
	}
	if ((st.st_uid != 0 && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) ||
		(st.st_uid == 0 && (st.st_mode & (S_IWGRP | S_IXGRP | S_IRWXO)) != 0))
	{
		snprintf(errbuf, errlen,
				 "cachebridge.tls_key_file \"%s\" has group or world access; permissions should be u=rw (0600) or less, or u=rw,g=r (0640) for a file owned by root.",
				 path);
		return false;
	}
	return true;
}

/* Builds a client context from the settings; NULL with a reason on failure. */
static SSL_CTX *
CbTlsBuildContext(char *errbuf, size_t errlen)
{
	SSL_CTX    *ctx;
	bool		with_cert = cb_tls_cert_file != NULL && cb_tls_cert_file[0] != '\0';
	bool		with_key = cb_tls_key_file != NULL && cb_tls_key_file[0] != '\0';
	char		prefix[MAXPGPATH + 64];

	if (OPENSSL_init_ssl(0, NULL) != 1)
	{
		CbTlsLibraryReason(errbuf, errlen, "Could not initialize OpenSSL");
		return NULL;
	}
	if (with_cert != with_key)
	{
		snprintf(errbuf, errlen,
				 "cachebridge.tls_cert_file and cachebridge.tls_key_file must be set together.");
		return NULL;
	}
	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL)
	{
		CbTlsLibraryReason(errbuf, errlen, "Could not create a TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_default_passwd_cb(ctx, CbNoPassphrase);
	SSL_CTX_set_client_cert_cb(ctx, CbClientCertAsked);
	/* writes go straight from the caller's buffer, which moves as it drains */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
					 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

	if (cb_tls_ca_file != NULL && cb_tls_ca_file[0] != '\0')
	{
		if (SSL_CTX_load_verify_locations(ctx, cb_tls_ca_file, NULL) != 1)
		{
			snprintf(prefix, sizeof(prefix),
					 "Could not load cachebridge.tls_ca_file \"%s\"", cb_tls_ca_file);
			if (access(cb_tls_ca_file, R_OK) < 0)
				snprintf(errbuf, errlen, "%s: %s.", prefix, strerror(errno));
			else
				CbTlsLibraryReason(errbuf, errlen, prefix);
			SSL_CTX_free(ctx);
			return NULL;
		}
	}
	else if (SSL_CTX_set_default_verify_paths(ctx) != 1)
	{
		CbTlsLibraryReason(errbuf, errlen, "Could not load the system's CA certificates");
		SSL_CTX_free(ctx);
		return NULL;
	}

	if (with_cert)
	{
		if (SSL_CTX_use_certificate_chain_file(ctx, cb_tls_cert_file) != 1)
		{
			snprintf(prefix, sizeof(prefix),
					 "Could not load cachebridge.tls_cert_file \"%s\"", cb_tls_cert_file);
			if (access(cb_tls_cert_file, R_OK) < 0)
				snprintf(errbuf, errlen, "%s: %s.", prefix, strerror(errno));
			else
				CbTlsLibraryReason(errbuf, errlen, prefix);
			SSL_CTX_free(ctx);
			return NULL;
		}
		if (!CbCheckKeyFile(cb_tls_key_file, errbuf, errlen))
		{
			SSL_CTX_free(ctx);
			return NULL;
		}
		if (SSL_CTX_use_PrivateKey_file(ctx, cb_tls_key_file, SSL_FILETYPE_PEM) != 1 ||
			SSL_CTX_check_private_key(ctx) != 1)
		{
			snprintf(prefix, sizeof(prefix),
					 "Could not load cachebridge.tls_key_file \"%s\"", cb_tls_key_file);
			CbTlsLibraryReason(errbuf, errlen, prefix);
			SSL_CTX_free(ctx);
			return NULL;
		}
	}
	return ctx;
}

/*
 * The client context, built anew if a setting or one of its files changed
 * since it was built; NULL with a reason if it cannot be built.
 */
static SSL_CTX *
CbTlsContext(char *errbuf, size_t errlen)
{
	CbFileStamp stamps[3];

	CbStampFile(cb_tls_ca_file, &stamps[0]);
	CbStampFile(cb_tls_cert_file, &stamps[1]);
	CbStampFile(cb_tls_key_file, &stamps[2]);
	if (tls_ctx != NULL && ctx_generation == tls_generation &&
		memcmp(stamps, ctx_stamps, sizeof(stamps)) == 0)
		return tls_ctx;

	/* sessions still open hold their own reference to the old context */
	if (tls_ctx != NULL)
		SSL_CTX_free(tls_ctx);
	tls_ctx = CbTlsBuildContext(errbuf, errlen);
	ctx_generation = tls_generation;
	memcpy(ctx_stamps, stamps, sizeof(stamps));
	return tls_ctx;
}

/*
 * Starts a TLS client session on the connected socket fd to host, which
 * the server's certificate must name (by DNS name, or by IP address when
 * host is one).  The handshake is then run by CbTlsHandshake.
 */
SSL *
CbTlsOpen(int fd, const char *host, char *errbuf, size_t errlen)
{
	SSL_CTX    *ctx = CbTlsContext(errbuf, errlen);
	SSL		   *ssl;
	bool		is_ip;
	ASN1_OCTET_STRING *ip;

	if (ctx == NULL)
		return NULL;
	ERR_clear_error();
	ssl = SSL_new(ctx);
	if (ssl == NULL || SSL_set_fd(ssl, fd) != 1)
	{
		CbTlsLibraryReason(errbuf, errlen, "Could not start a TLS session");
		if (ssl != NULL)
			SSL_free(ssl);
		return NULL;
	}

	cert_asked_for = false;
	ip = a2i_IPADDRESS(host);
	is_ip = (ip != NULL);
	if (ip != NULL)
		ASN1_OCTET_STRING_free(ip);
	if (is_ip
		? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) != 1
		: (SSL_set1_host(ssl, host) != 1 ||
		   SSL_set_tlsext_host_name(ssl, host) != 1))
	{
		CbTlsLibraryReason(errbuf, errlen, "Could not set the name to verify");
		SSL_free(ssl);
		return NULL;
	}
	/* a host name must match exactly, not as a wildcard for part of a label */
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	return ssl;
}

/*
 * Turns the result r of an SSL call into a step: what it waits for, or
 * the reason it failed (during the handshake if handshaking, when a
 * certificate that failed verification is the likely reason).
 */
static CbTlsStep
CbTlsResult(SSL *ssl, int r, bool handshaking, uint32 *wants,
			char *errbuf, size_t errlen)
{
	int			saved_errno = errno;
	int			e = SSL_get_error(ssl, r);
	long		verify;
	char		reason[512];

	switch (e)
	{
		case SSL_ERROR_WANT_READ:
			*wants = WL_SOCKET_READABLE;
			return CB_TLS_WAIT;
		case SSL_ERROR_WANT_WRITE:
			*wants = WL_SOCKET_WRITEABLE;
			return CB_TLS_WAIT;
		case SSL_ERROR_ZERO_RETURN:
			snprintf(errbuf, errlen, "The server closed the TLS session.");
			break;
		case SSL_ERROR_SYSCALL:
			if (ERR_peek_error() != 0)
				CbTlsLibraryReason(errbuf, errlen,
								   handshaking ? "TLS handshake failed" : "TLS error");
			else if (saved_errno != 0)
				snprintf(errbuf, errlen, "%s.", strerror(saved_errno));
			else
				snprintf(errbuf, errlen, "%s.",
						 handshaking
						 ? "The server closed the connection during the TLS handshake"
						 : "Server closed the connection");
			break;
		default:
			verify = SSL_get_verify_result(ssl);
			if (handshaking && verify != X509_V_OK)
			{
				snprintf(errbuf, errlen,
						 "TLS handshake failed: certificate verify failed: %s.",
						 X509_verify_cert_error_string(verify));
				ERR_clear_error();
			}
			else
				CbTlsLibraryReason(errbuf, errlen,
								   handshaking ? "TLS handshake failed" : "TLS error");
			break;
	}
	if (cert_asked_for)
	{
		snprintf(reason, sizeof(reason), "%s", errbuf);
		snprintf(errbuf, errlen,
				 "The server asked for a client certificate and cachebridge.tls_cert_file is not set: %s",
				 reason);
	}
	return CB_TLS_FAILED;
}

/* Runs the handshake as far as the socket allows. */
CbTlsStep
CbTlsHandshake(SSL *ssl, uint32 *wants, char *errbuf, size_t errlen)
{
	int			r;

	ERR_clear_error();
	errno = 0;
	r = SSL_connect(ssl);
	if (r == 1)
		return CB_TLS_DONE;
	return CbTlsResult(ssl, r, true, wants, errbuf, errlen);
}

/* Writes what it can of buf[0..len); *written says how much. */
CbTlsStep
CbTlsWrite(SSL *ssl, const char *buf, size_t len, size_t *written,
		   uint32 *wants, char *errbuf, size_t errlen)
{
	int			r;

	*written = 0;
	ERR_clear_error();
	errno = 0;
	r = SSL_write(ssl, buf, (int) Min(len, (size_t) INT_MAX));
	if (r > 0)
	{
		*written = r;
		return CB_TLS_DONE;
	}
	return CbTlsResult(ssl, r, false, wants, errbuf, errlen);
}

/*
 * Reads what has arrived, up to len bytes, into buf; *got says how much.
 * Call again until it waits: OpenSSL may hold decrypted data the socket
 * will not signal again.
 */
CbTlsStep
CbTlsRead(SSL *ssl, char *buf, size_t len, size_t *got, uint32 *wants,
		  char *errbuf, size_t errlen)
{
	int			r;

	*got = 0;
	ERR_clear_error();
	errno = 0;
	r = SSL_read(ssl, buf, (int) Min(len, (size_t) INT_MAX));
	if (r > 0)
	{
		*got = r;
		return CB_TLS_DONE;
	}
	return CbTlsResult(ssl, r, false, wants, errbuf, errlen);
}

/*
 * Ends the session: after a clean one, sends close_notify if the socket
 * takes it at once (never waits for the server's); the socket is the
 * caller's to close.
 */
void
CbTlsClose(SSL *ssl, bool clean)
{
	if (clean)
	{
		ERR_clear_error();
		(void) SSL_shutdown(ssl);
	}
	ERR_clear_error();
	SSL_free(ssl);
}
