/*-------------------------------------------------------------------------
 *
 * ketama_libmemcached.c
 *		Test client: which server libmemcached's weighted ketama picks for
 *		each key.  Built and run by test/t/040_ring_clients.pl.
 *
 * Usage: ketama_libmemcached md5|fnv1a_64 NODE=WEIGHT ... < keys > nodes
 * Servers are added in argument order on the default port (11211), so the
 * continuum points are hashed from "NODE-i", as twemproxy does.  Reads one
 * key per line, prints the chosen server's name per line.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libmemcached/memcached.h>

/* Print a libmemcached failure and exit. */
static void
fail(memcached_st *memc, memcached_return_t rc, const char *what)
{
	fprintf(stderr, "ketama_libmemcached: %s: %s\n", what,
			memcached_strerror(memc, rc));
	exit(1);
}

int
main(int argc, char **argv)
{
	memcached_st *memc = memcached_create(NULL);
	memcached_return_t rc;
	char	   *line = NULL;
	size_t		cap = 0;
	ssize_t		len;

	if (argc < 3)
	{
		fprintf(stderr, "usage: %s md5|fnv1a_64 NODE=WEIGHT ...\n", argv[0]);
		return 2;
	}

	/* weighted ketama: MD5 points, MD5 key hash */
	rc = memcached_behavior_set(memc, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1);
	if (rc != MEMCACHED_SUCCESS)
		fail(memc, rc, "KETAMA_WEIGHTED");
	if (strcmp(argv[1], "fnv1a_64") == 0)
	{
		rc = memcached_behavior_set(memc, MEMCACHED_BEHAVIOR_HASH,
									MEMCACHED_HASH_FNV1A_64);
		if (rc != MEMCACHED_SUCCESS)
			fail(memc, rc, "HASH");
	}

	for (int i = 2; i < argc; i++)
	{
		char	   *eq = strrchr(argv[i], '=');

		if (eq == NULL)
		{
			fprintf(stderr, "ketama_libmemcached: \"%s\" is not NODE=WEIGHT\n", argv[i]);
			return 2;
		}
		*eq = '\0';
		rc = memcached_server_add_with_weight(memc, argv[i], 11211,
											  (uint32_t) atoi(eq + 1));
		if (rc != MEMCACHED_SUCCESS)
			fail(memc, rc, argv[i]);
	}

	while ((len = getline(&line, &cap, stdin)) >= 0)
	{
		uint32_t	idx;
		const memcached_instance_st *server;

		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		idx = memcached_generate_hash(memc, line, (size_t) len);
		server = memcached_server_instance_by_position(memc, idx);
		printf("%s\n", memcached_server_name(server));
	}

	free(line);
	memcached_free(memc);
	return 0;
}
