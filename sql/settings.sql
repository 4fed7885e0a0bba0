--
-- Settings: validation, reserved prefix, and who may see or change them
--
\set VERBOSITY default

-- redis_url is validated when set, with the reason; the value is not echoed,
-- so a password in it never reaches the log
ALTER SYSTEM SET cachebridge.redis_url = 'http://example:6379';
ALTER SYSTEM SET cachebridge.redis_url = 'rediss://:s3cret@:6380';
ALTER SYSTEM SET cachebridge.redis_url = 'redis://:s3cret@127.0.0.1:99999/0';
ALTER SYSTEM SET cachebridge.redis_url = 'redis://:s3cret@127.0.0.1:6379/zero';
ALTER SYSTEM SET cachebridge.redis_url = 'redis://s3cret@127.0.0.1:6379';
ALTER SYSTEM SET cachebridge.redis_url = 'redis://:s3cret@:6379';
ALTER SYSTEM SET cachebridge.redis_url = 'redis://:bad%zzescape@host';
ALTER SYSTEM SET cachebridge.redis_url = 'redis://[::1:6379';
ALTER SYSTEM SET cachebridge.redis_url = 'unix://relative/redis.sock';
ALTER SYSTEM SET cachebridge.redis_url = 'unix:///tmp/redis.sock?database=1';
ALTER SYSTEM SET cachebridge.redis_url = '';
-- a password with an unencoded '/' would otherwise be taken apart into a
-- port or a database number, and quoted as one
ALTER SYSTEM SET cachebridge.redis_url = 'redis://default:6379/s3cret@h';
ALTER SYSTEM SET cachebridge.redis_url = 'redis://u:s3/cret@127.0.0.1:6379';
-- it is reloaded from the configuration, not set per session
SET cachebridge.redis_url = 'redis://127.0.0.1:6379';
-- and so are the TLS settings
SET cachebridge.tls_ca_file = '/tmp/ca.pem';
-- which superusers see described
SELECT name, context, short_desc <> '' AS described FROM pg_settings
 WHERE name LIKE 'cachebridge.tls%' ORDER BY name;

-- timeouts are in milliseconds, at least 1
SET cachebridge.connect_timeout = 0;
SET cachebridge.command_timeout = -1;
SET cachebridge.connect_timeout = '2s';
SHOW cachebridge.connect_timeout;
RESET cachebridge.connect_timeout;

-- the prefix is bounded
SELECT set_config('cachebridge.key_prefix', repeat('p', 513), false);

-- the cachebridge prefix is reserved
SET cachebridge.no_such_setting = 1;

-- an ordinary role can neither read redis_url (it may hold a password) nor
-- change key_prefix (it keeps applications apart) or a timeout (a tiny one
-- would open the circuit breaker every session shares)
CREATE ROLE cb_settings_user;
SET ROLE cb_settings_user;
SHOW cachebridge.redis_url;
SELECT count(*) FROM pg_settings WHERE name = 'cachebridge.redis_url';
SELECT current_setting('cachebridge.redis_url');
SHOW cachebridge.redis_password_file;
-- nor the TLS files, which say where the client key is
SHOW cachebridge.tls_key_file;
SELECT count(*) FROM pg_settings WHERE name LIKE 'cachebridge.tls%';
SET cachebridge.key_prefix = 'other:';
SHOW cachebridge.key_prefix;
SET cachebridge.command_timeout = 500;
RESET ROLE;
DROP ROLE cb_settings_user;
