# test/t/063_stream_append_chain.pl -- a stream append never goes in
# before an earlier one that failed.
#
# A stream's marker holds the version of the last chunk of entries
# appended, and a chunk not above it is skipped as appended already: that
# makes a retry harmless, but only if chunks are applied in order.  A
# delivery goes on after a retryable failure (the rest is applied now), and
# the worker sends many rows in one round trip: when Redis refused one
# chunk (OOM, say) and then took the next one of the same stream -- memory
# was freed meanwhile -- the marker moved past the refused chunk, whose
# retry was then skipped: its entries were lost.  Now every append names
# the one that comes before it in the delivery (the transaction's previous
# chunk, or the previous row's, written in by the sender), and Redis
# refuses it with CBGAP while that one is missing.  After a retryable
# failure everything goes again in order; after a permanent one (the
# stream's key turned into a string), the failed row is dead and the rows
# after it are delivered, not retried for ever.
#
# MONITOR shows what the worker sent for two rows delivered in one round
# trip; the calls are then replayed by hand against the stream to check
# what the script does with a gap.  Real PostgreSQL, real redis-server.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

use CacheBridgeTest;

my $redis = CacheBridgeTest::Redis->new(name => 'chain');
my $node = CacheBridgeTest::new_node('chain', redis => $redis);
$node->safe_psql('postgres', q{
	CREATE TABLE ev_t (id int PRIMARY KEY);
	CREATE TRIGGER ev_t_publish AFTER INSERT ON ev_t
		FOR EACH ROW EXECUTE FUNCTION cachebridge.publish('ev');
	INSERT INTO ev_t VALUES (1);
});
is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(10000)'),
	't', 'the first entry is delivered');
is($redis->cli('XLEN', 'ev'), '1', 'the stream has it');

# The arguments of a MONITOR line, unquoted.
sub monitor_args
{
	my ($line) = @_;
	my @args;

	while ($line =~ /"((?:[^"\\]|\\.)*)"/g)
	{
		(my $a = $1) =~ s/\\x([0-9a-f]{2})|\\(.)/
		  defined $1 ? chr(hex($1))
		  : $2 eq 'n' ? "\n" : $2 eq 'r' ? "\r" : $2 eq 't' ? "\t" : $2/ge;
		push @args, $a;
	}
	return @args;
}

# ---------------------------------------------------------------------
# Two rows in one round trip: the second's append names the first's
# ---------------------------------------------------------------------
my @pids;
for (1 .. 100)
{
	@pids = CacheBridgeTest::worker_pids($node);
	last if @pids;
	sleep(0.05);
}
ok(@pids, 'the worker runs');
kill 'STOP', @pids;
$node->safe_psql('postgres', 'INSERT INTO ev_t VALUES (2)');
$node->safe_psql('postgres', 'INSERT INTO ev_t VALUES (3)');

my $mon = '';
my $h = IPC::Run::start([ 'redis-cli', '-p', $redis->port, 'MONITOR' ],
	'<', \undef, '>', \$mon, '2>', \my $err);
sleep(0.5);
kill 'CONT', @pids;
is($node->safe_psql('postgres', 'SELECT cachebridge.wait_delivered(10000)'),
	't', 'both rows are delivered');
my $t0 = time;
sub xadd_calls { my @m = $mon =~ /"EVALSHA" "[0-9a-f]{40}" "2" "ev"/g; return scalar @m; }
while (xadd_calls() < 2 && time - $t0 < 10)
{
	$h->pump_nb;
	sleep(0.05);
}
$h->kill_kill;
is($redis->cli('XLEN', 'ev'), '3', 'the stream has both entries');

my @calls = map { [ monitor_args($_) ] }
  grep { /"EVALSHA" "[0-9a-f]{40}" "2" "ev"/ } split /\n/, $mon;
is(scalar @calls, 2, 'the worker called the xadd script twice')
  or diag($mon);
# EVALSHA sha 2 stream marker source version after entries...
my ($a, $b) = @calls;
like($a->[7], qr/^-{42}$/, 'the first append of the delivery names none before it');
is($b->[7], $a->[6], 'the second names the first');
my $source = $a->[5];

# ---------------------------------------------------------------------
# What the script does with them
# ---------------------------------------------------------------------
my @b = @$b;
is($redis->cli(@b), '0',
	'an append already made is skipped, whatever came before it');

# the first append "failed": the marker is back where it was before it
my $before = $redis->cli('HGET', 'ev#cbv', $source);
is($before, $b->[6], 'the marker is at the second append');
$redis->cli('HSET', 'ev#cbv', $source, 'V0');
like($redis->cli(@b), qr/CBGAP /,
	'with the first missing, the second is refused: CBGAP');
is($redis->cli('XLEN', 'ev'), '3', 'and appends nothing');
is($redis->cli('HGET', 'ev#cbv', $source), 'V0', 'nor moves the marker');

my @a = @$a;
is($redis->cli(@a), '1', 'the first goes in on its retry');
is($redis->cli(@b), '1', 'then the second');
is($redis->cli('HGET', 'ev#cbv', $source), $b->[6], 'the marker is at the second again');
is($redis->cli('XLEN', 'ev'), '5', 'both were appended once more (the marker was reset by hand)');

done_testing();
