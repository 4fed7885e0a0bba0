# test/t/062_notify.pl -- notify=CHANNEL on write_through() and
# invalidate(): after commit every changed key is PUBLISHed on
# key_prefix || CHANNEL, after the key's own SET or DEL; a TRUNCATE
# publishes the glob pattern it invalidated.
#
# A subscriber of our own (PSUBSCRIBE *) GETs each key it is told about,
# or counts the keys matching a pattern, and logs what it found; MONITOR
# logs the order in which Redis ran the commands.  Each round, in a
# delivery mode and with a key prefix:
#   1. one session runs transactions one after the other: inserts, updates
#      (also of the key), deletes, a rolled-back transaction, a rolled-back
#      savepoint and exception block, prepared transactions.  Each message
#      must find the key in a state at least as new as the transaction
#      that sent it, and a transaction left open (or prepared) publishes
#      nothing until it commits;
#   2. pgbench runs a random workload with rollbacks on several connections;
#   3. a TRUNCATE of both tables publishes their patterns, and finds no key
#      left.
# The keys received must be exactly the keys that committed transactions
# changed, as an audit trigger of the test's own records them.
# Real PostgreSQL and a real redis-server of the test's own.

use strict;
use warnings;

use IPC::Run ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep time);

use CacheBridgeTest;

my $redis = CacheBridgeTest::Redis->new(name => 'notify');
my $node = CacheBridgeTest::new_node(
	'notify',
	redis => $redis,
	conf => [
		'deadlock_timeout = 20ms', 'max_connections = 30', 'log_statement = none',
		'max_prepared_transactions = 5',
	]);
my $dir = CacheBridgeTest::scratch_dir('notify');

# item is written through, acct invalidated (two templates); attach makes
# the TRUNCATE triggers too.  audit records, in the same transaction, the
# keys each change affects and the value it leaves (NULL: deleted).
$node->safe_psql('postgres', q{
CREATE TABLE item (id int PRIMARY KEY, grp int NOT NULL, v text);
SELECT cachebridge.attach('item', 'item:{id}', 'write_through', NULL, 'notify=inv');
CREATE TABLE acct (id int PRIMARY KEY, owner text, v int);
SELECT cachebridge.attach('acct', 'acct:{id}', 'invalidate', NULL, 'owner:{owner}', 'notify=inv');

CREATE TABLE audit (
    seq bigserial PRIMARY KEY,
    xid bigint NOT NULL DEFAULT pg_current_xact_id()::text::bigint,
    key text NOT NULL,
    state text);
CREATE FUNCTION audit_item() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    p text := current_setting('cachebridge.key_prefix');
BEGIN
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND OLD.id <> NEW.id) THEN
        INSERT INTO audit (key, state) VALUES (p || 'item:' || OLD.id, NULL);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO audit (key, state) VALUES (p || 'item:' || NEW.id, row_to_json(NEW)::text);
    END IF;
    RETURN NULL;
END $$;
CREATE FUNCTION audit_acct() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    p text := current_setting('cachebridge.key_prefix');
BEGIN
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO audit (key) VALUES (p || 'acct:' || OLD.id);
        INSERT INTO audit (key) SELECT p || 'owner:' || OLD.owner WHERE OLD.owner IS NOT NULL;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO audit (key) VALUES (p || 'acct:' || NEW.id);
        INSERT INTO audit (key) SELECT p || 'owner:' || NEW.owner WHERE NEW.owner IS NOT NULL;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON item
    FOR EACH ROW EXECUTE FUNCTION audit_item();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON acct
    FOR EACH ROW EXECUTE FUNCTION audit_acct();

CREATE FUNCTION n_move(a int, b int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE item SET id = b WHERE id = a;
EXCEPTION WHEN unique_violation THEN NULL;
END $$;
});

# The subscriber: PSUBSCRIBE *, then per message one line "time, channel,
# message, what it found": the key's value ("v:..."), "nil", or for a
# pattern the number of keys matching it ("n:N", version markers left out).
# It stops at a message on test:stop.
my $subscriber = "$dir/subscriber.pl";
open(my $fh, '>', $subscriber) or die "could not write $subscriber: $!";
print $fh <<'EOS';
use strict;
use warnings;
use IO::Handle;
use IO::Socket::INET;
use Time::HiRes qw(time);

my ($port, $log) = @ARGV;
sub connection
{
	return IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp')
	  // die "cannot connect: $!";
}
sub send_command
{
	my ($s, @args) = @_;
	print $s '*', scalar(@args), "\r\n", map { ('$', length($_), "\r\n", $_, "\r\n") } @args;
}
sub reply
{
	my ($s) = @_;
	my $line = <$s> // die "connection closed";
	$line =~ s/\r\n\z//;
	my ($type, $rest) = (substr($line, 0, 1), substr($line, 1));
	die "Redis: $rest" if $type eq '-';
	return $rest if $type eq '+' || $type eq ':';
	return undef if $rest < 0;
	return [ map { reply($s) } 1 .. $rest ] if $type eq '*';
	my $buf = '';
	read($s, $buf, $rest + 2 - length($buf), length($buf)) || die "connection closed"
	  while length($buf) < $rest + 2;
	return substr($buf, 0, $rest);
}
sub command { my ($s, @args) = @_; send_command($s, @args); return reply($s); }

my ($sub, $data) = (connection(), connection());
open(my $out, '>', $log) or die "cannot write $log: $!";
$out->autoflush(1);
command($sub, 'PSUBSCRIBE', '*');
print $out "READY\n";
while (1)
{
	my (undef, undef, $channel, $message) = @{ reply($sub) };
	last if $channel eq 'test:stop';
	my $found = '-';
	if ($channel =~ /^test:/) { }
	elsif ($message =~ /\*/)
	{
		my ($cursor, $n) = (0, 0);
		do
		{
			my $r = command($data, 'SCAN', $cursor, 'MATCH', $message, 'COUNT', 1000);
			$cursor = $r->[0];
			$n += grep { !/#cbv\z/ } @{ $r->[1] };
		} while ($cursor ne '0');
		$found = "n:$n";
	}
	else
	{
		my $v = command($data, 'GET', $message);
		$found = defined $v ? "v:$v" : 'nil';
	}
	printf $out "%.6f\t%s\t%s\t%s\n", time, $channel, $message, $found;
}
EOS
close($fh);

# One random transaction of phase 2.  Rows made by work that is rolled
# back have ids from 9000 or an owner "ghost...".
my $workload = <<'EOS';
\set op random(1, 100)
\set a random(1, 60)
\set b random(1, 60)
\set v random(1, 1000000)
\set o random(1, 8)
\set g random(9000, 9999)
\set fate random(1, 100)
BEGIN;
\if :op <= 20
INSERT INTO item VALUES (:a, :a % 3, 'v' || :v) ON CONFLICT (id) DO UPDATE SET v = excluded.v;
\elif :op <= 35
UPDATE item SET v = 'u' || :v WHERE id = :a;
\elif :op <= 43
SELECT n_move(:a, :b);
\elif :op <= 52
DELETE FROM item WHERE id = :a;
\elif :op <= 62
INSERT INTO acct VALUES (:a, 'o' || :o, :v) ON CONFLICT (id) DO UPDATE SET owner = excluded.owner;
\elif :op <= 72
UPDATE acct SET owner = CASE WHEN :v % 5 = 0 THEN NULL ELSE 'o' || :o END, v = :v WHERE id = :a;
\elif :op <= 78
DELETE FROM acct WHERE id = :a;
\elif :op <= 90
SAVEPOINT s;
INSERT INTO item VALUES (:g, 0, 'ghost') ON CONFLICT (id) DO NOTHING;
UPDATE acct SET owner = 'ghost' || :g WHERE id = :a;
UPDATE item SET id = :g + 1000 WHERE id = :b;
ROLLBACK TO SAVEPOINT s;
UPDATE item SET v = 'after savepoint ' || :v WHERE id = :b;
\else
UPDATE item SET v = v || '+' WHERE id BETWEEN :a AND :a + 5;
\endif
\if :fate <= 10
INSERT INTO acct VALUES (:g, 'ghost' || :g, 0) ON CONFLICT (id) DO NOTHING;
ROLLBACK;
\else
COMMIT;
\endif
EOS

# Keys and patterns only rolled-back work makes.
my $ghost = qr/(?:item|acct):(?:9\d\d\d|1\d\d\d\d)\z|ghost/;

# The subscriber's log, as [time, channel, message, found].
sub messages
{
	my ($log) = @_;
	return map { [ split(/\t/, $_, 4) ] } grep { /\t/ } split(/\n/, slurp_file($log));
}

# Waits until the subscriber has handled every message published so far.
my $nsync = 0;
sub sync_subscriber
{
	my ($log) = @_;
	my $tag = ++$nsync;
	$redis->cli('PUBLISH', 'test:sync', $tag);
	for (1 .. 200)
	{
		return if grep { $_->[1] eq 'test:sync' && $_->[2] eq $tag } messages($log);
		sleep(0.05);
	}
	die "the subscriber did not see test:sync $tag";
}

# Parses MONITOR output into [client, command, args...], with the
# arguments unescaped.
sub monitor_commands
{
	my ($file) = @_;
	my %esc = (n => "\n", r => "\r", t => "\t", a => "\a", b => "\b");
	my @cmds;
	for my $line (split(/\n/, slurp_file($file)))
	{
		my ($client, $args) = $line =~ /^\d+\.\d+ \[\d+ ([^\]]+)\] (.*)$/ or next;
		my @args = map {
			s/\\(x[0-9a-fA-F]{2}|.)/length($1) == 3 ? chr(hex(substr($1, 1))) : $esc{$1} \/\/ $1/ger
		} $args =~ /"((?:[^"\\]|\\.)*)"/g;
		push @cmds, [ $client, @args ];
	}
	return @cmds;
}

# A glob pattern that matches $s literally.
sub glob_escape { return $_[0] =~ s/([*?\[\]\\])/\\$1/gr; }

# Sets a stale value on every key of acct rows, behind cachebridge's back,
# so that a notified deletion can be seen.
sub fill_acct_keys
{
	my ($prefix) = @_;
	my @keys = split(/\n/, $node->safe_psql('postgres',
		"SELECT k FROM acct, LATERAL (VALUES ('acct:' || id), ('owner:' || owner)) AS t(k) WHERE k IS NOT NULL"));
	$redis->cli('MSET', map { ("$prefix$_", 'stale') } @keys) if @keys;
	return;
}

sub round
{
	my ($mode, $prefix) = @_;
	my $name = "$mode, prefix '$prefix'";
	my $channel = "${prefix}inv";
	my $log = "$dir/messages-$mode-" . length($prefix) . '.log';
	my $monlog = "$dir/monitor-$mode-" . length($prefix) . '.log';

	$node->safe_psql('postgres', qq{
ALTER SYSTEM SET cachebridge.delivery = '$mode';
ALTER SYSTEM SET cachebridge.key_prefix = '$prefix';
SELECT pg_reload_conf();
TRUNCATE audit;
});
	$node->poll_query_until('postgres',
		"SELECT current_setting('cachebridge.delivery') = '$mode' "
		  . "AND current_setting('cachebridge.key_prefix') = '$prefix'")
	  or die "settings not reloaded";

	my $monitor = IPC::Run::start(
		[ 'redis-cli', '-h', '127.0.0.1', '-p', $redis->port, 'MONITOR' ],
		'<', \undef, '>', $monlog, '2>', '/dev/null');
	my $sub = IPC::Run::start([ 'perl', $subscriber, $redis->port, $log ],
		'<', \undef, '>', "$log.out", '2>&1', IPC::Run::timeout(120));
	for (1 .. 100)
	{
		last if -s $monlog && -s $log;
		sleep(0.05);
	}
	like(slurp_file($log), qr/^READY/, "$name: the subscriber listens");

	# -----------------------------------------------------------------
	# Phase 1: one transaction after the other.
	# -----------------------------------------------------------------
	my $s = $node->background_psql('postgres');
	is($s->query_safe('SHOW cachebridge.delivery'), $mode, "$name: delivery mode");
	$s->query_safe(q{
INSERT INTO item SELECT g, g % 3, 'v' || g FROM generate_series(1, 20) g;
INSERT INTO acct SELECT g, 'o' || g % 4, g FROM generate_series(1, 10) g;
});
	sync_subscriber($log);
	fill_acct_keys($prefix);

	# a transaction left open publishes nothing until it commits
	my $count = sub { my ($k) = @_; scalar grep { $_->[2] eq $k } messages($log) };
	$s->query_safe(q{BEGIN;
UPDATE item SET v = 'committed later' WHERE id = 1;
DELETE FROM acct WHERE id = 1;
});
	sleep(0.3);
	sync_subscriber($log);
	is($count->("${prefix}item:1") . ' ' . $count->("${prefix}acct:1"), '1 1',
		"$name: nothing published before COMMIT");
	like($redis->cli('GET', "${prefix}item:1"), qr/"v":"v1"/, "$name: nor written");
	$s->query_safe('COMMIT');
	sync_subscriber($log);
	is($count->("${prefix}item:1") . ' ' . $count->("${prefix}acct:1"), '2 2',
		"$name: published once committed");

	for my $sql (
		"UPDATE item SET v = 'second' WHERE id = 2",
		"UPDATE item SET v = 'third' WHERE id = 2",
		"UPDATE item SET id = 101 WHERE id = 3",
		"DELETE FROM item WHERE id = 4",
		"UPDATE item SET v = v || '+' WHERE grp = 1",
		"UPDATE acct SET owner = 'o9' WHERE id = 2",
		"DELETE FROM acct WHERE id = 3",
		"INSERT INTO acct VALUES (11, NULL, 0)",
		# the same keys changed several times in one transaction
		"BEGIN; UPDATE item SET v = 'a' WHERE id = 8; UPDATE item SET v = 'b' WHERE id = 8;"
		  . " DELETE FROM item WHERE id = 9; INSERT INTO item VALUES (9, 0, 'back'); COMMIT",
		"BEGIN; INSERT INTO item VALUES (9001, 0, 'x'); UPDATE item SET id = 9002 WHERE id = 5;"
		  . " INSERT INTO acct VALUES (9003, 'ghost1', 0); UPDATE acct SET owner = 'ghost2' WHERE id = 4;"
		  . " ROLLBACK",
		"BEGIN; UPDATE item SET v = 'kept' WHERE id = 6; SAVEPOINT s;"
		  . " INSERT INTO item VALUES (9004, 0, 'x'); UPDATE item SET id = 9005 WHERE id = 7;"
		  . " UPDATE acct SET owner = 'ghost3' WHERE id = 5; ROLLBACK TO SAVEPOINT s;"
		  . " INSERT INTO item VALUES (102, 0, 'after the savepoint'); COMMIT",
		"DO \$\$ BEGIN UPDATE item SET v = 'block' WHERE id = 10;"
		  . " BEGIN INSERT INTO item VALUES (9006, 0, 'x'); DELETE FROM acct WHERE id = 6;"
		  . " RAISE EXCEPTION 'undo'; EXCEPTION WHEN raise_exception THEN NULL; END; END \$\$")
	{
		$s->query_safe($sql);
	}

	# a prepared transaction publishes at COMMIT PREPARED (the worker
	# delivers it), never at ROLLBACK PREPARED; sync mode refuses PREPARE
	if ($mode ne 'sync')
	{
		$s->query_safe("BEGIN; UPDATE item SET v = 'prepared' WHERE id = 11;"
			  . " DELETE FROM acct WHERE id = 7; PREPARE TRANSACTION 'p1'");
		$s->query_safe("BEGIN; UPDATE item SET v = 'prepared, rolled back' WHERE id = 12;"
			  . " INSERT INTO item VALUES (9007, 0, 'x'); PREPARE TRANSACTION 'p2'");
		sleep(0.3);
		sync_subscriber($log);
		is($count->("${prefix}item:11") . ' ' . $count->("${prefix}acct:7"), '1 1',
			"$name: nothing published before COMMIT PREPARED");
		$s->query_safe("COMMIT PREPARED 'p1'; ROLLBACK PREPARED 'p2'");
		is($s->query_safe('SELECT cachebridge.wait_delivered(30000)'), 't',
			"$name: the prepared transaction delivered");
		sync_subscriber($log);
		is(join(' ', map { $count->("${prefix}$_") } qw(item:11 acct:7 item:12)), '2 2 1',
			"$name: published after COMMIT PREPARED, not after ROLLBACK PREPARED");
	}
	my $phase1_seq = $s->query_safe('SELECT coalesce(max(seq), 0) FROM audit');
	$s->quit;
	$redis->cli('PUBLISH', 'test:mark', 'phase 2');

	# -----------------------------------------------------------------
	# Phase 2: concurrent writers, with rollbacks.
	# -----------------------------------------------------------------
	my $res = CacheBridgeTest::run_pgbench(
		$node,
		script => $workload,
		clients => 4,
		transactions => 200,
		args => ['--max-tries=100'],
		timeout => 120);
	is($res->{rc}, 0, "$name: pgbench exits with 0")
	  or diag("stdout:\n$res->{stdout}\nstderr:\n$res->{stderr}");
	is($res->{failed} // 0, 0, "$name: no transaction failed");
	is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(30000)'), 't',
		"$name: every effect delivered");

	# -----------------------------------------------------------------
	# Phase 3: TRUNCATE publishes the patterns.
	# -----------------------------------------------------------------
	sync_subscriber($log);
	fill_acct_keys($prefix);
	my @patterns = map { glob_escape($prefix) . $_ } qw(item:* acct:* owner:*);
	my @before = map { scalar(grep { !/#cbv$/ } $redis->scan_keys($_)) } @patterns;
	ok(!grep({ $_ == 0 } @before), "$name: keys to truncate: @before");
	$node->safe_psql('postgres', 'TRUNCATE item, acct');
	is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(30000)'), 't',
		"$name: TRUNCATE delivered");

	$redis->cli('PUBLISH', 'test:stop', 'end');
	eval { $sub->finish; 1 } or $sub->kill_kill;
	for (1 .. 100)
	{
		last if slurp_file($monlog) =~ /"PUBLISH" "test:stop"/;
		sleep(0.05);
	}
	$monitor->kill_kill;

	# -----------------------------------------------------------------
	# What the subscriber received.
	# -----------------------------------------------------------------
	my @all = messages($log);
	my @received = grep { $_->[1] !~ /^test:/ } @all;
	is(join(' ', sort keys %{ { map { $_->[1] => 1 } @received } }), $channel,
		"$name: every message came on channel $channel");
	is(join(' ', map { $_->[2] } grep {
				index($_->[2], $_->[2] =~ /\*/ ? glob_escape($prefix) : $prefix) != 0 } @received),
		'', "$name: every key (and pattern) carries the prefix");

	my %expected = map { $_ => 1 } @patterns,
	  split(/\n/, $node->safe_psql('postgres', 'SELECT DISTINCT key FROM audit'));
	my %got = map { $_->[2] => 1 } @received;
	my @missing = grep { !$got{$_} } sort keys %expected;
	my @extra = grep { !$expected{$_} } sort keys %got;
	is(join(' ', @missing), '', "$name: every key changed by a committed transaction was published");
	is(join(' ', @extra), '', "$name: no other key was published");
	is(join(' ', grep { /$ghost/ } sort keys %got), '', "$name: nothing rolled back was published");
	ok($got{"${prefix}item:3"} && $got{"${prefix}item:101"},
		"$name: an UPDATE of the key published the old and the new key");

	# once per committed transaction and key
	my $changes = $node->safe_psql('postgres', 'SELECT count(DISTINCT (xid, key)) FROM audit');
	if ($mode eq 'sync')
	{
		is(scalar(@received), $changes + @patterns,
			"$name: one message per key and committed transaction");
	}
	else
	{
		diag(sprintf('%s: %d messages for %d changes', $name, scalar @received,
				$changes + @patterns));
	}

	# phase 1: the n-th message of a key finds the state the n-th
	# transaction that changed it left, or a later one
	my %states;
	for (split(/\n/, $node->safe_psql('postgres', qq{
SELECT key, coalesce('v:' || (array_agg(state ORDER BY seq DESC))[1], 'nil')
FROM audit WHERE seq <= $phase1_seq GROUP BY key, xid ORDER BY key, min(seq)})))
	{
		my ($k, $state) = split(/\|/, $_, 2);
		push @{ $states{$k} }, $state;
	}
	my (%seen, @stale);
	for my $m (@all)
	{
		last if $m->[1] eq 'test:mark';
		next if $m->[1] =~ /^test:/;
		my $n = $seen{ $m->[2] }++;
		my @later = @{ $states{ $m->[2] } // [] }[ $n .. $#{ $states{ $m->[2] } // [] } ];
		push @stale, "message " . ($n + 1) . " of $m->[2] found $m->[3]"
		  unless grep { $_ eq $m->[3] } @later;
	}
	my $nphase1 = 0;
	$nphase1 += $_ for values %seen;
	is(join("\n", @stale), '', "$name: each of $nphase1 messages of phase 1 found the key "
		  . "as its transaction left it, or newer");
	my @counts = map { "$_: " . ($seen{$_} // 0) . ' messages, ' . @{ $states{$_} } . ' transactions' }
	  grep { ($seen{$_} // 0) != @{ $states{$_} } } sort keys %states;
	is(join("\n", @counts), '',
		"$name: phase 1 published each key once per transaction that changed it");

	my @patmsg = grep { $_->[2] =~ /\*/ } @received;
	is(join(' ', map { "$_->[2]=$_->[3]" } @patmsg),
		join(' ', map { "$_=n:0" } @patterns),
		"$name: each TRUNCATE pattern published once, after every matching key was gone");

	# MONITOR: each PUBLISH of a key follows, from the same connection, a
	# command on that key made after that connection's previous PUBLISH of it
	my (%touched, %published, @early);
	my $i = 0;
	my $publishes = 0;
	for my $c (monitor_commands($monlog))
	{
		my ($client, $cmd, @args) = @$c;
		$i++;
		next if $client eq 'lua';
		if (uc($cmd) eq 'PUBLISH' && $args[0] eq $channel)
		{
			$publishes++;
			my $k = $args[1];
			push @early, "PUBLISH $k by $client"
			  unless ($touched{$client}{$k} // -1) > ($published{$client}{$k} // -1);
			$published{$client}{$k} = $i;
		}
		elsif (uc($cmd) eq 'EVALSHA')
		{
			$touched{$client}{$_} = $i for @args;
		}
		elsif (uc($cmd) eq 'SCAN')
		{
			$touched{$client}{ $args[2] } = $i if @args >= 3;
		}
	}
	is($publishes, scalar @received, "$name: MONITOR saw every PUBLISH");
	is(join("\n", @early[ 0 .. ($#early < 9 ? $#early : 9) ]), '',
		"$name: every PUBLISH came after the key's own SET or DEL");
	return;
}

round('durable', '');
round('sync', 'app1:');
round('durable', 'app[2]:');

$node->stop;
$redis->stop;
done_testing();
