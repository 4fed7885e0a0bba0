/*-------------------------------------------------------------------------
 *
 * scripts.c
 *		Lua scripts run by Redis, loaded on every connection (SCRIPT LOAD)
 *		and called by SHA1 (EVALSHA).
 *
 * Versioned apply.  Every key a trigger writes or deletes has a version
 * marker at key || '#cbv' holding "<version>:<xid>": the version of the
 * writing transaction (version.c: "V", its epoch -- generation and
 * timeline -- and its WAL position at commit, 33 upper-case characters of
 * fixed width, so that string order is version order, across promotions,
 * point-in-time recovery and restores into other clusters), and xid its
 * full transaction id.  A 1.2 marker ("<16 hex>:<xid>") starts with a
 * digit or A-F, below "V": it is older than every 1.3 version, and 1.2
 * versions still compare among themselves.  CB_LUA_VERSION is the one
 * definition of a marker's version; every script compares through it.  A
 * script applies an effect unless the marker is newer, so no retry, replay
 * or late reply can put an older value over a newer one; effects of the
 * same transaction (same version) apply in the order they were made, so a
 * TRUNCATE's pattern deletion removes what the transaction wrote before
 * it, and a replay of a transaction ends in the same state.  A delete
 * leaves the marker behind for cachebridge.tombstone_ttl seconds, so a
 * late older SET cannot bring the key back; the marker of a value with a
 * TTL expires with it, but no sooner than that.  On a Redis Cluster a
 * script may only touch keys of one slot, so there the marker has a name that
 * hashes like its key (CbAppendClusterVersionKey; the cluster router,
 * cluster.c, puts it in place of key || '#cbv').  Names ending in '#cbv',
 * or holding '#cbv}', are markers only: CbIsMarkerName() is the one test of
 * that, and no key may have such a name, so row data cannot produce or
 * overwrite a marker.
 *
 * Cache-aside fills (cachebridge.set) run the fill script with the
 * caller's snapshot and epoch: a marker whose transaction the snapshot does
 * not see means the value being filled is older than what a trigger wrote,
 * and the fill is refused -- unless the marker is of an older epoch and
 * names a transaction id the snapshot's history has not reached: then it
 * was written by a history this one replaced (a promoted standby's lost
 * transactions, the cluster a dump came from), and the fill wins.  A
 * standby fills with its primary's generation and the timeline it replays.
 * A marker that expired cannot refuse anything, so a fill also carries a
 * deadline in Redis' clock, when its snapshot becomes older than the
 * lifetime of markers that expire (cache.c): after it the fill is
 * refused, however late Redis gets to it.  A pattern deletion (TRUNCATE, a degraded trigger,
 * invalidate_pattern) leaves no marker for keys it did not find, so it
 * also raises a floor named after the pattern's literal start (see
 * CbAppendFloorKey) to its marker, for tombstone_ttl seconds; a fill is
 * refused as well if the floor of a beginning of its key names a
 * transaction the snapshot does not see: the row it read may be one the
 * deletion removed.
 *
 * Stream entries (cachebridge.publish) are appended by the xadd script,
 * one call per transaction and stream (or per chunk of a large one).  The
 * stream's marker is a hash with one field per source database
 * ("<system identifier>:<database oid>") holding the version of the last
 * chunk appended, "<version>:<chunk number>" in fixed width (a 1.2 field,
 * "<16 hex>:<chunk>", is below every 1.3 one, so a plain string comparison
 * serves).  A promoted standby or a point-in-time recovery appends under
 * the same field with a higher epoch; a restore into another cluster under
 * a field of its own.  A source's
 * chunks reach a stream in commit order (delivery.c serialises them), so a
 * chunk whose version is not above its source's field was appended
 * already, by a delivery whose reply was lost: it is skipped, and a retry
 * or replay never appends an entry twice.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/cryptohash.h"
#include "common/sha1.h"
#include "utils/memutils.h"

#include "key_slot.h"
#include "scripts.h"
#include "version.h"

/*
 * The one comparison of versions, prepended to every script that makes
 * one: the version of a marker (or of a marker argument) is what comes
 * before its first ':', and versions compare as strings (see the header
 * comment).  epoch(m) is a marker's epoch, "" for a 1.2 marker.
 */
#define CB_LUA_VERSION \
	"local function version(m) return string.match(m, '^[^:]*') end\n" \
	"local function epoch(m)\n" \
	"  if string.sub(m, 1, 1) ~= 'V' then return '' end\n" \
	"  return string.sub(m, 1, " CppAsString2(CB_EPOCH_LEN) ")\n" \
	"end\n"

/*
 * Parts of the write scripts (CB_SCRIPT_WRITE, CB_SCRIPT_WRITE_NODE):
 * the clock (now, at(), the marker lifetime and the tombstones' expiry),
 * the apply of key i (its key and marker named by the Lua expressions key
 * and marker, its op's arguments from ARGV[a] on, cur[i] its marker and
 * wrong[i] whether that is not a string) into the set, gone, hashes and
 * expire lists, and what ends the call: hashes, expiries, the reply.
 */
#define CB_LUA_WRITE_CLOCK \
	"local v = version(ARGV[1])\n" \
	"local t = redis.call('TIME')\n" \
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n" \
	"local function at(ttl) return string.format('%d', now + ttl * 1000) end\n" \
	"local life = tonumber(ARGV[2])\n" \
	"local tomb = at(life)\n"

#define CB_LUA_WRITE_KEY(key, marker) \
	"  local op, ttl, first, last = ARGV[a], tonumber(ARGV[a + 1]), a + 2, a + 2\n" \
	"  if op == 'H' then first = a + 3; last = first + tonumber(ARGV[a + 2]) end\n" \
	"  if op == 'D' then last = first end\n" \
	"  if op == 'S' then last = first + 1 end\n" \
	"  a = last\n" \
	"  local c = cur[i]\n" \
	"  if wrong[i] then\n" \
	"    failed = failed or i\n" \
	"  elseif not c or version(c) <= v then\n" \
	"    local key, m = " key ", " marker "\n" \
	"    set[#set + 1] = m\n" \
	"    set[#set + 1] = ARGV[1]\n" \
	"    if op == 'D' then\n" \
	"      gone[#gone + 1] = key\n" \
	"      expire[#expire + 1] = m\n" \
	"      expire[#expire + 1] = tomb\n" \
	"    else\n" \
	"      if op == 'S' then\n" \
	"        set[#set + 1] = key\n" \
	"        set[#set + 1] = ARGV[first]\n" \
	"      else\n" \
	"        hashes[#hashes + 1] = {key, first, last}\n" \
	"      end\n" \
	"      if ttl > 0 then\n" \
	"        expire[#expire + 1] = m\n" \
	"        expire[#expire + 1] = at(math.max(ttl, life))\n" \
	"        expire[#expire + 1] = key\n" \
	"        expire[#expire + 1] = at(ttl)\n" \
	"      end\n" \
	"    end\n" \
	"    applied = applied + 1\n" \
	"  end\n"

/* The reply that rejects a key of a write call, before the key's place. */
#define CB_LUA_REJECTED_AT \
	"WRONGTYPE Operation against a key holding the wrong kind of value (a version marker) at key "

#define CB_LUA_WRITE_FINISH \
	"for _, h in ipairs(hashes) do\n" \
	"  redis.call('DEL', h[1])\n" \
	"  if h[3] > h[2] then redis.call('HSET', h[1], unpack(ARGV, h[2], h[3] - 1)) end\n" \
	"end\n" \
	"for i = 1, #expire, 2 do redis.call('PEXPIREAT', expire[i], expire[i + 1]) end\n" \
	"if failed then return redis.error_reply('" CB_LUA_REJECTED_AT "' .. failed) end\n" \
	"return applied\n"


static const char *const script_source[CB_NSCRIPTS] = {
	/*
	 * CB_SCRIPT_WRITE: KEYS key1, marker1, key2, marker2...; ARGV marker,
	 * marker lifetime (tombstone_ttl), then per key its op and ttl (0 for
	 * none) and: for 'S' (set) the value, for 'H' (hash) the number of
	 * fields and values that follow and those, for 'D' (delete) nothing.  The versioned apply of a
	 * batch of one transaction's keys in one call, at a few Redis commands
	 * per key instead of a script call: one MGET reads every marker, each
	 * key not older than its marker is applied: one MSET writes the markers
	 * and plain values first (so that Redis refusing writes -- OOM -- stops
	 * the call before it changed anything), then one UNLINK removes the
	 * deleted keys, each hash is replaced, and PEXPIREAT sets the
	 * expiry of values with a TTL, of their markers (with the value, but
	 * no sooner than the marker lifetime: a fill from a snapshot older
	 * than that is refused, see CB_SCRIPT_FILL, so no marker that expires
	 * has to outlive it) and of tombstones, at an absolute time taken once
	 * (cheaper than SET ... EX, which Redis rewrites for replication).
	 * The marker of a value without a TTL never expires: an older effect
	 * may come after a newer one by any time (a sync session delivers
	 * itself past the outbox, whose retried rows come later), and only the
	 * marker refuses it.  The keys of a
	 * call are distinct (the queue keeps one effect per key), so the order
	 * among them does not matter.  A marker MGET shows as missing may also
	 * be a key of another type (changed behind cachebridge's back): EXISTS
	 * tells, in one command for all of them; such a key is left alone and
	 * the call answers WRONGTYPE once it has applied the others, naming
	 * the first such key by its place among the call's keys ("... at key
	 * 3", see CbReplyRejectedKey), so that effect is rejected for good
	 * while its neighbours are applied.  Any
	 * other error stops the call and is retried as a whole; what was
	 * applied is applied again with the same version, which changes nothing.
	 * Replies the number of keys applied.
	 */
	CB_LUA_VERSION
	"local n = #KEYS / 2\n"
	"local markers = {}\n"
	"for i = 1, n do markers[i] = KEYS[2 * i] end\n"
	"local cur = redis.call('MGET', unpack(markers))\n"
	"local nils = {}\n"
	"for i = 1, n do if not cur[i] then nils[#nils + 1] = markers[i] end end\n"
	"local wrong = {}\n"
	"if #nils > 0 and redis.call('EXISTS', unpack(nils)) > 0 then\n"
	"  for i = 1, n do\n"
	"    if not cur[i] and redis.call('TYPE', markers[i])['ok'] ~= 'none' then wrong[i] = true end\n"
	"  end\n"
	"end\n"
	CB_LUA_WRITE_CLOCK
	"local set, gone, hashes, expire = {}, {}, {}, {}\n"
	"local applied, failed = 0, false\n"
	"local a = 3\n"
	"for i = 1, n do\n"
	CB_LUA_WRITE_KEY("KEYS[2 * i - 1]", "KEYS[2 * i]")
	"end\n"
	"if #set > 0 then redis.call('MSET', unpack(set)) end\n"
	"if #gone > 0 then redis.call('UNLINK', unpack(gone)) end\n"
	CB_LUA_WRITE_FINISH,

	/*
	 * CB_SCRIPT_DELETE_FOUND: as the deletions of CB_SCRIPT_WRITE, for keys
	 * a pattern's SCAN found: only cached values (strings, hashes) are deleted, never a
	 * stream or anything else that shares the pattern, and a key whose
	 * marker cannot be read is left rather than failing the whole call
	 */
	CB_LUA_VERSION
	"local n = 0\n"
	"local v = version(ARGV[1])\n"
	"for i = 1, #KEYS, 2 do\n"
	"  local t = redis.call('TYPE', KEYS[i])['ok']\n"
	"  if t == 'string' or t == 'hash' then\n"
	"    local cur = redis.pcall('GET', KEYS[i + 1])\n"
	"    if type(cur) ~= 'table' and (not cur or version(cur) <= v) then\n"
	"      redis.call('DEL', KEYS[i])\n"
	"      redis.call('SET', KEYS[i + 1], ARGV[1], 'EX', ARGV[2])\n"
	"      n = n + 1\n"
	"    end\n"
	"  end\n"
	"end\n"
	"return n\n",

	/*
	 * CB_SCRIPT_FILL: KEYS key, marker; ARGV value, ttl, epoch, floors-from,
	 * deadline, nfloors, that many floors, xmin, xmax, xip...  Past the
	 * deadline (milliseconds of Redis' TIME) the fill is refused: markers
	 * the snapshot does not see may have expired.  A marker the caller's
	 * snapshot does not see
	 * refuses the fill.  A 1.3 marker of an older epoch whose xid is not
	 * below xmax was written by a history this one does not continue
	 * (transactions a promoted standby lost, another cluster): every xid
	 * this history gave out in an older epoch is below the xmax of a
	 * snapshot of the current one, so its writer is no transaction of the
	 * snapshot's, and the fill, of the newest history, wins.  (A 1.2 marker
	 * has no epoch: it may be a backend's that still runs the 1.2 library,
	 * and is judged by its xid alone.)  The floors checked the same way are
	 * those of every beginning of the key at least floors-from bytes long
	 * (the caller's key prefix): a pattern deletion whose literal start is
	 * one of them may have covered the key (see CbAppendFloorKey).  On a
	 * Redis Cluster a script reads only keys of its own slot, so the caller
	 * reads the floors first and passes the values found (the nfloors
	 * arguments), which are checked the same way.
	 */
	CB_LUA_VERSION
	"local x = 7 + tonumber(ARGV[6])\n"
	"local function visible(m)\n"
	"  local xid = tonumber(string.match(m, ':(%d+)$'))\n"
	"  if xid == nil then return false end\n"
	"  if xid < tonumber(ARGV[x]) then return true end\n"
	"  if xid >= tonumber(ARGV[x + 1]) then\n"
	"    return epoch(m) ~= '' and epoch(m) < ARGV[3]\n"
	"  end\n"
	"  for i = x + 2, #ARGV do\n"
	"    if tonumber(ARGV[i]) == xid then return false end\n"
	"  end\n"
	"  return true\n"
	"end\n"
	"local t = redis.call('TIME')\n"
	"if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) >= tonumber(ARGV[5]) then return 0 end\n"
	"local cur = redis.call('GET', KEYS[2])\n"
	"if cur and not visible(cur) then return 0 end\n"
	"for n = tonumber(ARGV[4]), #KEYS[1] - 1 do\n"
	"  local f = redis.pcall('GET', string.sub(KEYS[1], 1, n) .. '#cbv#cbv')\n"
	"  if type(f) == 'string' and not visible(f) then return 0 end\n"
	"end\n"
	"for i = 7, x - 1 do\n"
	"  if not visible(ARGV[i]) then return 0 end\n"
	"end\n"
	"if tonumber(ARGV[2]) > 0 then\n"
	"  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])\n"
	"else\n"
	"  redis.call('SET', KEYS[1], ARGV[1])\n"
	"end\n"
	"return 1\n",

	/*
	 * CB_SCRIPT_FLOOR: KEYS floor; ARGV marker, ttl.  Raises a pattern's
	 * floor to the deleting transaction's marker; replies 0 (it deletes
	 * nothing).
	 */
	CB_LUA_VERSION
	"local cur = redis.call('GET', KEYS[1])\n"
	"if not cur or version(cur) <= version(ARGV[1]) then\n"
	"  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])\n"
	"end\n"
	"return 0\n",

	/*
	 * CB_SCRIPT_XADD: KEYS stream, marker; ARGV source, version, after,
	 * then per entry: maxlen (0 for none), field count, fields and values.
	 * after is the version of the append that comes before this one in
	 * the same delivery (the same transaction's previous chunk, or the
	 * previous row's last, see CbChainStreamAppends), or dashes for none:
	 * if the marker is below it, that append failed (an OOM that cleared
	 * meanwhile, say) and this one must not go first -- it would move the
	 * marker past it, and the retry of the missing one would be skipped as
	 * appended already.  It answers CBGAP, an error reply of no
	 * retryable kind: the delivery comes to what the failed append came
	 * to (see apply.c).
	 */
	"local cur = redis.call('HGET', KEYS[2], ARGV[1])\n"
	"if cur and cur >= ARGV[2] then return 0 end\n"
	"if string.sub(ARGV[3], 1, 1) ~= '-' and (not cur or cur < ARGV[3]) then\n"
	"  return redis.error_reply('CBGAP the append before this one is not in the stream (' .. ARGV[3] .. ')')\n"
	"end\n"
	"local i = 4\n"
	"local n = 0\n"
	"while i <= #ARGV do\n"
	"  local last = i + 1 + 2 * tonumber(ARGV[i + 1])\n"
	"  if ARGV[i] ~= '0' then\n"
	"    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[i], '*', unpack(ARGV, i + 2, last))\n"
	"  else\n"
	"    redis.call('XADD', KEYS[1], '*', unpack(ARGV, i + 2, last))\n"
	"  end\n"
	"  n = n + 1\n"
	"  i = last + 1\n"
	"end\n"
	"redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])\n"
	"return n\n",

	/*
	 * CB_SCRIPT_COPY: KEYS and ARGV as CB_SCRIPT_WRITE's, ARGV[1] a fence
	 * (a version no later than the rows were locked) instead of the
	 * transaction's marker, ARGV[2] unused.  A refresh batch's copies of
	 * the committed rows it holds locked (refresh.c): each key whose marker
	 * is not newer than the fence is written -- values with one MSET,
	 * deletions with one UNLINK, hashes replaced, EXPIRE for a TTL -- and
	 * no marker is written or extended, so a copy Redis runs late (after
	 * the batch let go of its rows) is refused by the marker of any write
	 * that committed since.  A call holds effects of one op, in the order
	 * they were made (a key may come twice).  Replies the number of keys
	 * written.
	 */
	CB_LUA_VERSION
	"local n = #KEYS / 2\n"
	"local markers = {}\n"
	"for i = 1, n do markers[i] = KEYS[2 * i] end\n"
	"local cur = redis.call('MGET', unpack(markers))\n"
	"local fence = version(ARGV[1])\n"
	"local set, gone, hashes, expire = {}, {}, {}, {}\n"
	"local a = 3\n"
	"for i = 1, n do\n"
	"  local op, ttl, first, last = ARGV[a], tonumber(ARGV[a + 1]), a + 2, a + 2\n"
	"  if op == 'H' then first = a + 3; last = first + tonumber(ARGV[a + 2]) end\n"
	"  if op == 'S' then last = first + 1 end\n"
	"  a = last\n"
	"  if not cur[i] or version(cur[i]) <= fence then\n"
	"    local key = KEYS[2 * i - 1]\n"
	"    if op == 'D' then\n"
	"      gone[#gone + 1] = key\n"
	"    else\n"
	"      if op == 'S' then\n"
	"        set[#set + 1] = key\n"
	"        set[#set + 1] = ARGV[first]\n"
	"      else\n"
	"        hashes[#hashes + 1] = {key, first, last}\n"
	"      end\n"
	"      if ttl > 0 then\n"
	"        expire[#expire + 1] = key\n"
	"        expire[#expire + 1] = ttl\n"
	"      end\n"
	"    end\n"
	"  end\n"
	"end\n"
	"if #set > 0 then redis.call('MSET', unpack(set)) end\n"
	"if #gone > 0 then redis.call('UNLINK', unpack(gone)) end\n"
	"for _, h in ipairs(hashes) do\n"
	"  redis.call('DEL', h[1])\n"
	"  if h[3] > h[2] then redis.call('HSET', h[1], unpack(ARGV, h[2], h[3] - 1)) end\n"
	"end\n"
	"for i = 1, #expire, 2 do redis.call('EXPIRE', expire[i], expire[i + 1]) end\n"
	"return #set / 2 + #gone + #hashes\n",

	/*
	 * CB_SCRIPT_WRITE_NODE: a call of CB_SCRIPT_WRITE for keys of many
	 * slots of one Redis Cluster master, which the cluster router makes of
	 * the slot-sized calls it would otherwise send (cluster.c): a call per
	 * slot costs the master, and its replica, more than its keys do when a
	 * slot holds a dozen keys of a change.  No KEYS; ARGV the marker and
	 * the marker lifetime, the number g of slots, the number of keys of
	 * each, then every key and its marker, slot by slot, then per key its
	 * op's arguments, as CB_SCRIPT_WRITE's.  The flag lets it reach keys of
	 * several slots, on this node only; each command it runs (MGET, EXISTS,
	 * MSET, UNLINK) takes keys of one slot.  Applies and replies as
	 * CB_SCRIPT_WRITE, a rejected key named by its place among the call's
	 * keys.  A key this node does not own (the router's map was stale)
	 * fails the call where Redis finds it ("non local key"), maybe after
	 * it applied some slots: the router then sends the call again as one
	 * CB_SCRIPT_WRITE per slot, which applies those again with the same
	 * version, changing nothing.
	 */
	"#!lua flags=allow-cross-slot-keys\n"
	CB_LUA_VERSION
	"local g = tonumber(ARGV[3])\n"
	"local kb = 3 + g\n"
	"local from, n = {}, 0\n"
	"for j = 1, g do from[j] = n + 1; n = n + tonumber(ARGV[3 + j]) end\n"
	"from[g + 1] = n + 1\n"
	"local cur, wrong = {}, {}\n"
	"for j = 1, g do\n"
	"  local markers, nils = {}, {}\n"
	"  for i = from[j], from[j + 1] - 1 do markers[#markers + 1] = ARGV[kb + 2 * i] end\n"
	"  local got = redis.call('MGET', unpack(markers))\n"
	"  for x = 1, #markers do\n"
	"    cur[from[j] + x - 1] = got[x]\n"
	"    if not got[x] then nils[#nils + 1] = markers[x] end\n"
	"  end\n"
	"  if #nils > 0 and redis.call('EXISTS', unpack(nils)) > 0 then\n"
	"    for i = from[j], from[j + 1] - 1 do\n"
	"      if not cur[i] and redis.call('TYPE', ARGV[kb + 2 * i])['ok'] ~= 'none' then wrong[i] = true end\n"
	"    end\n"
	"  end\n"
	"end\n"
	CB_LUA_WRITE_CLOCK
	"local hashes, expire = {}, {}\n"
	"local applied, failed = 0, false\n"
	"local a = kb + 2 * n + 1\n"
	"for j = 1, g do\n"
	"  local set, gone = {}, {}\n"
	"  for i = from[j], from[j + 1] - 1 do\n"
	CB_LUA_WRITE_KEY("ARGV[kb + 2 * i - 1]", "ARGV[kb + 2 * i]")
	"  end\n"
	"  if #set > 0 then redis.call('MSET', unpack(set)) end\n"
	"  if #gone > 0 then redis.call('UNLINK', unpack(gone)) end\n"
	"end\n"
	CB_LUA_WRITE_FINISH,

	/*
	 * CB_SCRIPT_WRITE_ONE: a call of CB_SCRIPT_WRITE with one key (KEYS and
	 * ARGV alike), as most commits of one row are: the same apply, the
	 * same reply, in fewer Redis commands (a deletion: 3 instead of 5 or 6,
	 * a value without a TTL: 2 instead of 3 or 4).  The marker is read with
	 * GET, whose WRONGTYPE tells a marker of another type (no EXISTS, no
	 * TYPE); a tombstone is written with its expiry in one SET ... PX, and
	 * a value's expiry is relative (PEXPIRE), so no TIME is read.  Redis
	 * 7.0 propagates both as absolute times, as the batch's PEXPIREAT;
	 * an older Redis propagates them as they are, so a replica counts them
	 * from when it applies them: later, never sooner, which only keeps a
	 * marker longer (no marker that refuses a fill expires early) and a
	 * value with a TTL longer by the replication lag.  A
	 * value and its marker go in one MSET, which Redis refusing (OOM)
	 * stops the call before it changed anything; a deletion writes its
	 * tombstone before it unlinks the key, likewise.  Each Redis command a
	 * script runs costs about as much as the commands of a batch's key
	 * (redis-benchmark, one key deleted: 8.7 µs per call of the batch
	 * script, 6.6 µs of this one, 1.5 µs of "return 1").
	 */
	CB_LUA_VERSION
	"local c = redis.pcall('GET', KEYS[2])\n"
	"if type(c) == 'table' then\n"
	"  if string.sub(c.err or '', 1, 9) == 'WRONGTYPE' then\n"
	"    return redis.error_reply('" CB_LUA_REJECTED_AT "1')\n"
	"  end\n"
	"  return c\n"
	"end\n"
	"if c and version(c) > version(ARGV[1]) then return 0 end\n"
	"local op, ttl, life = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[2])\n"
	"if op == 'D' then\n"
	"  redis.call('SET', KEYS[2], ARGV[1], 'PX', string.format('%d', life * 1000))\n"
	"  redis.call('UNLINK', KEYS[1])\n"
	"  return 1\n"
	"end\n"
	"if op == 'S' then\n"
	"  redis.call('MSET', KEYS[2], ARGV[1], KEYS[1], ARGV[5])\n"
	"else\n"
	"  local n = tonumber(ARGV[5])\n"
	"  redis.call('SET', KEYS[2], ARGV[1])\n"
	"  redis.call('DEL', KEYS[1])\n"
	"  if n > 0 then redis.call('HSET', KEYS[1], unpack(ARGV, 6, 5 + n)) end\n"
	"end\n"
	"if ttl > 0 then\n"
	"  redis.call('PEXPIRE', KEYS[2], string.format('%d', math.max(ttl, life) * 1000))\n"
	"  redis.call('PEXPIRE', KEYS[1], string.format('%d', ttl * 1000))\n"
	"end\n"
	"return 1\n",
};

/*
 * Scripts of earlier versions that outbox rows call by SHA1, loaded
 * unchanged so that rows written by an earlier library and not yet
 * delivered when it was upgraded are still applied, rather than answered
 * NOSCRIPT for ever: 1.3's per-key apply and its delete (1.4 sends both as
 * calls of CB_SCRIPT_WRITE), and the 1.2 scripts (all but the fill, which
 * is never stored; 1.3's xadd is 1.2's).  1.3's compare through CB_LUA_VERSION like 1.4's, on
 * the same markers; 1.2's hold against newer markers: a 1.2 version is a
 * hex digit first, below every "V..." one, so they refuse to overwrite
 * anything 1.3 or 1.4 wrote.  Never edit them.
 */
static const char *const legacy_source[] = {
	/* 1.3 apply: KEYS key, marker; ARGV op, marker, ttl, tombstone ttl, value... */
	CB_LUA_VERSION
	"local cur = redis.call('GET', KEYS[2])\n"
	"if cur and version(cur) > version(ARGV[2]) then return 0 end\n"
	"local ttl = tonumber(ARGV[3])\n"
	"if ARGV[1] == 'D' then\n"
	"  redis.call('DEL', KEYS[1])\n"
	"  redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[4])\n"
	"  return 1\n"
	"end\n"
	"if ARGV[1] == 'S' then\n"
	"  redis.call('SET', KEYS[1], ARGV[5])\n"
	"else\n"
	"  redis.call('DEL', KEYS[1])\n"
	"  if #ARGV > 5 then redis.call('HSET', KEYS[1], unpack(ARGV, 5)) end\n"
	"end\n"
	"if ttl > 0 then\n"
	"  redis.call('EXPIRE', KEYS[1], ttl)\n"
	"  redis.call('SET', KEYS[2], ARGV[2], 'EX', ttl)\n"
	"else\n"
	"  redis.call('SET', KEYS[2], ARGV[2])\n"
	"end\n"
	"return 1\n",

	/* 1.3 delete: KEYS key1, marker1, key2, marker2...; ARGV marker, tombstone ttl */
	CB_LUA_VERSION
	"local n = 0\n"
	"local v = version(ARGV[1])\n"
	"for i = 1, #KEYS, 2 do\n"
	"  local cur = redis.call('GET', KEYS[i + 1])\n"
	"  if not cur or version(cur) <= v then\n"
	"    redis.call('DEL', KEYS[i])\n"
	"    redis.call('SET', KEYS[i + 1], ARGV[1], 'EX', ARGV[2])\n"
	"    n = n + 1\n"
	"  end\n"
	"end\n"
	"return n\n",

	/* 1.2 apply */
	"local cur = redis.call('GET', KEYS[2])\n"
	"if cur and string.sub(cur, 1, 16) > string.sub(ARGV[2], 1, 16) then return 0 end\n"
	"local ttl = tonumber(ARGV[3])\n"
	"if ARGV[1] == 'D' then\n"
	"  redis.call('DEL', KEYS[1])\n"
	"  redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[4])\n"
	"  return 1\n"
	"end\n"
	"if ARGV[1] == 'S' then\n"
	"  redis.call('SET', KEYS[1], ARGV[5])\n"
	"else\n"
	"  redis.call('DEL', KEYS[1])\n"
	"  if #ARGV > 5 then redis.call('HSET', KEYS[1], unpack(ARGV, 5)) end\n"
	"end\n"
	"if ttl > 0 then\n"
	"  redis.call('EXPIRE', KEYS[1], ttl)\n"
	"  redis.call('SET', KEYS[2], ARGV[2], 'EX', ttl)\n"
	"else\n"
	"  redis.call('SET', KEYS[2], ARGV[2])\n"
	"end\n"
	"return 1\n",

	/* 1.2 delete */
	"local n = 0\n"
	"local v = string.sub(ARGV[1], 1, 16)\n"
	"for i = 1, #KEYS, 2 do\n"
	"  local cur = redis.call('GET', KEYS[i + 1])\n"
	"  if not cur or string.sub(cur, 1, 16) <= v then\n"
	"    redis.call('DEL', KEYS[i])\n"
	"    redis.call('SET', KEYS[i + 1], ARGV[1], 'EX', ARGV[2])\n"
	"    n = n + 1\n"
	"  end\n"
	"end\n"
	"return n\n",

	/* 1.2 delete of keys a SCAN found */
	"local n = 0\n"
	"local v = string.sub(ARGV[1], 1, 16)\n"
	"for i = 1, #KEYS, 2 do\n"
	"  local t = redis.call('TYPE', KEYS[i])['ok']\n"
	"  if t == 'string' or t == 'hash' then\n"
	"    local cur = redis.pcall('GET', KEYS[i + 1])\n"
	"    if type(cur) ~= 'table' and (not cur or string.sub(cur, 1, 16) <= v) then\n"
	"      redis.call('DEL', KEYS[i])\n"
	"      redis.call('SET', KEYS[i + 1], ARGV[1], 'EX', ARGV[2])\n"
	"      n = n + 1\n"
	"    end\n"
	"  end\n"
	"end\n"
	"return n\n",

	/* 1.2 xadd, also 1.3's (the same text; 1.4's also checks the append before) */
	"local cur = redis.call('HGET', KEYS[2], ARGV[1])\n"
	"if cur and cur >= ARGV[2] then return 0 end\n"
	"local i = 3\n"
	"local n = 0\n"
	"while i <= #ARGV do\n"
	"  local last = i + 1 + 2 * tonumber(ARGV[i + 1])\n"
	"  if ARGV[i] ~= '0' then\n"
	"    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[i], '*', unpack(ARGV, i + 2, last))\n"
	"  else\n"
	"    redis.call('XADD', KEYS[1], '*', unpack(ARGV, i + 2, last))\n"
	"  end\n"
	"  n = n + 1\n"
	"  i = last + 1\n"
	"end\n"
	"redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])\n"
	"return n\n",
};

/* How the KEYS (and ARGV) of each script are laid out, for a cluster router. */
static const CbScriptKeys script_keys[CB_NSCRIPTS] = {
	[CB_SCRIPT_WRITE] = CB_KEYS_WRITE,
	[CB_SCRIPT_DELETE_FOUND] = CB_KEYS_PAIRS,
	[CB_SCRIPT_FILL] = CB_KEYS_KEY_MARKER,
	[CB_SCRIPT_FLOOR] = CB_KEYS_OTHER,
	[CB_SCRIPT_XADD] = CB_KEYS_KEY_MARKER,
	[CB_SCRIPT_COPY] = CB_KEYS_WRITE,
	[CB_SCRIPT_WRITE_NODE] = CB_KEYS_OTHER,	/* made by the router only */
	[CB_SCRIPT_WRITE_ONE] = CB_KEYS_WRITE,
};

/* The same for legacy_source: 1.3 apply and delete, 1.2 apply, delete, delete found, xadd. */
static const CbScriptKeys legacy_keys[] = {
	CB_KEYS_KEY_MARKER, CB_KEYS_PAIRS,
	CB_KEYS_KEY_MARKER, CB_KEYS_PAIRS, CB_KEYS_PAIRS, CB_KEYS_KEY_MARKER
};

StaticAssertDecl(lengthof(legacy_keys) == lengthof(legacy_source),
				 "every legacy script has a key layout");

/* Positions in legacy_source of 1.3's apply and delete, which replays restamp. */
#define CB_LEGACY_APPLY_1_3 0
#define CB_LEGACY_DELETE_1_3 1

static char script_sha[CB_NSCRIPTS][41];
static char legacy_sha[lengthof(legacy_source)][41];

/* Puts the SHA1 of script text src, as EVALSHA wants it, in sha (once). */
static const char *
CbSourceSha(const char *src, char *sha)
{
	if (sha[0] == '\0')
	{
		pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA1);
		uint8		digest[SHA1_DIGEST_LENGTH];

		if (ctx == NULL ||
			pg_cryptohash_init(ctx) < 0 ||
			pg_cryptohash_update(ctx, (const uint8 *) src, strlen(src)) < 0 ||
			pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
			elog(ERROR, "could not compute the SHA1 of a cachebridge script");
		pg_cryptohash_free(ctx);
		for (int i = 0; i < SHA1_DIGEST_LENGTH; i++)
			snprintf(&sha[i * 2], 3, "%02x", digest[i]);
	}
	return sha;
}

/* The SHA1 of a script, as EVALSHA wants it (computed once). */
const char *
CbScriptSha(CbScript script)
{
	return CbSourceSha(script_source[script], script_sha[script]);
}

/* True if sha (len bytes) names the script text of legacy_source[i]. */
static bool
CbIsLegacySha(const char *sha, size_t len, int i)
{
	return len == 40 && memcmp(sha, CbSourceSha(legacy_source[i], legacy_sha[i]), 40) == 0;
}

/*
 * How the KEYS of the script called by SHA1 sha[0..len) are laid out, for
 * a cluster router that must keep each call within one slot; CB_KEYS_OTHER
 * for a script that is not cachebridge's.
 */
CbScriptKeys
CbScriptKeyLayout(const char *sha, size_t len)
{
	if (len != 40)
		return CB_KEYS_OTHER;
	for (int s = 0; s < CB_NSCRIPTS; s++)
		if (memcmp(CbScriptSha(s), sha, 40) == 0)
			return script_keys[s];
	for (int s = 0; s < lengthof(legacy_source); s++)
		if (CbIsLegacySha(sha, len, s))
			return legacy_keys[s];
	return CB_KEYS_OTHER;
}

/* Appends SCRIPT LOAD of script text src. */
static void
CbAppendScriptLoad(CbPipeline *p, const char *src)
{
	CbPipelineBegin(p, 3, NULL, 0);
	CbPipelineArgStr(p, "SCRIPT");
	CbPipelineArgStr(p, "LOAD");
	CbPipelineArgStr(p, src);
}

/*
 * Appends SCRIPT LOAD of every script, and of the 1.2 ones that outbox rows
 * may still call (sent on each new connection).
 */
void
CbAppendScriptLoads(CbPipeline *p)
{
	for (int s = 0; s < CB_NSCRIPTS; s++)
		CbAppendScriptLoad(p, script_source[s]);
	for (int s = 0; s < lengthof(legacy_source); s++)
		CbAppendScriptLoad(p, legacy_source[s]);
}

/* Appends the name of the version marker of key. */
void
CbAppendVersionKey(StringInfo buf, const char *key, size_t len)
{
	appendBinaryStringInfo(buf, key, len);
	appendStringInfoString(buf, CB_VERSION_SUFFIX);
}

/*
 * The slot tags: slot_tag[s] is a short string t of letters and digits
 * such that t || CB_VERSION_SUFFIX hashes to slot s (see
 * CbAppendClusterVersionKey).  Found once per process by trying every
 * string of one, two, then three such characters (that covers all 16384
 * slots; four are tried if ever not).
 */
static char (*slot_tag)[5] = NULL;

static void
CbMakeSlotTags(void)
{
	static const char alphabet[] =
		"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	const int	nchars = sizeof(alphabet) - 1;
	char		(*tags)[5];
	int			left = CB_CLUSTER_SLOTS;

	tags = MemoryContextAllocZero(TopMemoryContext, sizeof(char[5]) * CB_CLUSTER_SLOTS);
	for (int len = 1; len <= 4 && left > 0; len++)
	{
		int			combinations = 1;

		for (int i = 0; i < len; i++)
			combinations *= nchars;
		for (int n = 0; n < combinations && left > 0; n++)
		{
			char		name[5 + sizeof(CB_VERSION_SUFFIX)];
			int			v = n;
			int			slot;

			for (int i = 0; i < len; i++)
			{
				name[i] = alphabet[v % nchars];
				v /= nchars;
			}
			memcpy(name + len, CB_VERSION_SUFFIX, sizeof(CB_VERSION_SUFFIX));
			slot = CbKeySlot(name, strlen(name));
			if (tags[slot][0] == '\0')
			{
				memcpy(tags[slot], name, len);
				left--;
			}
		}
	}
	if (left > 0)
		elog(ERROR, "could not find a tag for every Redis Cluster slot");
	slot_tag = tags;
}

/*
 * Appends the name of the version marker of key on a Redis Cluster, where
 * a script can only touch keys of one slot, so the marker must hash like
 * its key, whatever the key is:
 *   - a key with a {hash tag}: key || '#cbv', as on a single Redis (the
 *     tag is unchanged, so is the slot);
 *   - a key without '{': key || '{' || t || '#cbv}#cbv', t a slot tag:
 *     the hash tag "t#cbv" hashes to the key's slot, and the name still
 *     begins with the key (so with its namespace, for ACL key patterns);
 *   - a key with a '{' but no hash tag ("a{b", "a{}b"): '{' || t ||
 *     '#cbv}' || key || '#cbv', since any '}' after the key would make a
 *     tag of the key's own stray '{'.
 * All end in '#cbv' and no key may contain '#cbv}' (CbIsMarkerName), so
 * no key has one of these names, and no two keys share one.
 */
void
CbAppendClusterVersionKey(StringInfo buf, const char *key, size_t len)
{
	const char *tag;

	if (CbKeyHasHashTag(key, len))
	{
		CbAppendVersionKey(buf, key, len);
		return;
	}
	if (slot_tag == NULL)
		CbMakeSlotTags();
	tag = slot_tag[CbKeySlot(key, len)];
	if (memchr(key, '{', len) == NULL)
	{
		appendBinaryStringInfo(buf, key, len);
		appendStringInfo(buf, "{%s" CB_VERSION_SUFFIX "}" CB_VERSION_SUFFIX, tag);
	}
	else
	{
		appendStringInfo(buf, "{%s" CB_VERSION_SUFFIX "}", tag);
		appendBinaryStringInfo(buf, key, len);
		appendStringInfoString(buf, CB_VERSION_SUFFIX);
	}
}

/*
 * Appends the name of the floor of a pattern deletion: the literal start of
 * the glob pattern match (up to its first unescaped *, ? or [, with its
 * escapes undone), then CB_VERSION_SUFFIX twice.  That name is a marker
 * name (no key has it, no pattern matches it) and the marker of no key
 * (its key would end in CB_VERSION_SUFFIX).  A fill of a key checks the
 * floor of every beginning of the key: a pattern deletion that could have
 * matched the key has one of them as its floor.
 */
void
CbAppendFloorKey(StringInfo buf, const char *match, size_t len)
{
	for (size_t i = 0; i < len; i++)
	{
		if (match[i] == '*' || match[i] == '?' || match[i] == '[')
			break;
		if (match[i] == '\\' && i + 1 < len)
			i++;
		appendStringInfoChar(buf, match[i]);
	}
	appendStringInfoString(buf, CB_VERSION_SUFFIX CB_VERSION_SUFFIX);
}

/*
 * Appends the name of the floor a fill of key checks for its beginning
 * key[0..n): those n bytes as they are, then CB_VERSION_SUFFIX twice (the
 * name the fill script makes itself, see CB_SCRIPT_FILL).
 */
void
CbAppendPrefixFloorKey(StringInfo buf, const char *key, size_t n)
{
	appendBinaryStringInfo(buf, key, n);
	appendStringInfoString(buf, CB_VERSION_SUFFIX CB_VERSION_SUFFIX);
}

/* True if name[0..len) ends in CB_VERSION_SUFFIX. */
bool
CbHasVersionSuffix(const char *name, size_t len)
{
	size_t		slen = strlen(CB_VERSION_SUFFIX);

	return len >= slen && memcmp(name + len - slen, CB_VERSION_SUFFIX, slen) == 0;
}

/*
 * True if the Redis key name (in full, as sent to Redis) is the name of a
 * version marker: it ends in CB_VERSION_SUFFIX, or holds CB_VERSION_SUFFIX
 * and '}' (the hash tag of a marker on a Redis Cluster, see
 * CbAppendClusterVersionKey).  Such names are reserved:
 * no key cachebridge writes or deletes for a trigger or a cache-aside call
 * may be one (it would overwrite another key's marker, or a stream's), and
 * pattern deletions never match them.
 */
bool
CbIsMarkerName(const char *name, size_t len)
{
	const char	tagged[] = CB_VERSION_SUFFIX "}";

	if (CbHasVersionSuffix(name, len))
		return true;
	for (size_t i = 0; i + sizeof(tagged) - 1 <= len; i++)
		if (name[i] == '#' && memcmp(name + i, tagged, sizeof(tagged) - 1) == 0)
			return true;
	return false;
}

/*
 * Where the version that a plan's call of the script with this SHA compares
 * is among the call's arguments (EVALSHA being argument 0), when called with
 * nkeys keys; -1 for scripts whose version a replay must not restamp (see
 * CbPlanRestamp): stream appends, and the 1.2 scripts, whose markers carry
 * no epoch.
 */
int
CbScriptVersionArg(const char *sha, size_t len, long nkeys)
{
	/* EVALSHA sha nkeys (key marker-key)... marker tombstone-ttl per-key... */
	if (len == 40 && (memcmp(sha, CbScriptSha(CB_SCRIPT_WRITE), 40) == 0 ||
					  memcmp(sha, CbScriptSha(CB_SCRIPT_WRITE_ONE), 40) == 0))
		return 3 + nkeys;
	/* 1.3 apply: EVALSHA sha nkeys keys... op marker ttl tombstone-ttl value... */
	if (CbIsLegacySha(sha, len, CB_LEGACY_APPLY_1_3))
		return 3 + nkeys + 1;
	/* 1.3 delete: EVALSHA sha nkeys (key marker-key)... marker tombstone-ttl */
	if (CbIsLegacySha(sha, len, CB_LEGACY_DELETE_1_3))
		return 3 + nkeys;
	return -1;
}
