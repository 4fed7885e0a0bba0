#!/usr/bin/perl
#
# examples/cqrs/consumer.pl -- keeps the read model of schema.sql up to date
# from the Redis stream that cachebridge.publish() appends to.
#
# It reads the stream through a consumer group, applies each batch of
# entries in ONE PostgreSQL transaction (psql, calling apply_shop_event()
# once per entry), then acknowledges the batch with XACK.  If it dies in
# between, the batch stays pending in the group and is read again, first
# thing, on restart (XREADGROUP ... 0); apply_shop_event() skips the
# entries it applied already.  A batch can end in the middle of a source
# transaction's entries: the read model then shows part of that
# transaction until the next batch.  Only core Perl and psql are needed.
#
#   perl examples/cqrs/consumer.pl --dsn 'dbname=shop' --redis-port 6379
#
# Options (defaults in brackets):
#   --redis-host H [127.0.0.1]  --redis-port P [6379]  --redis-socket PATH
#   --redis-password PW         --stream S [events:shop]
#   --group G [read-model]      --consumer C [consumer-1]
#   --dsn CONNINFO [psql's defaults, from PG* variables]
#   --function F [apply_shop_event]
#   --count N [100] entries per batch   --block MS [2000]
#   --once    exit when no new entry arrived within --block ms
#
# SIGTERM or SIGINT stops it after the batch in hand (within --block ms
# when it is waiting).  A Ctrl-C also interrupts psql: that batch is not
# applied and stays pending.
#
use strict;
use warnings;

use File::Temp ();
use Getopt::Long;
use IO::Socket::INET;
use IO::Socket::UNIX;

my %opt = (
    'redis-host' => '127.0.0.1',
    'redis-port' => 6379,
    stream => 'events:shop',
    group => 'read-model',
    consumer => 'consumer-1',
    function => 'apply_shop_event',
    count => 100,
    block => 2000,
);
GetOptions(\%opt, 'redis-host=s', 'redis-port=i', 'redis-socket=s',
    'redis-password=s', 'stream=s', 'group=s', 'consumer=s', 'dsn=s',
    'function=s', 'count=i', 'block=i', 'once')
  or die "usage: $0 [--option value ...]; see the top of this file\n";
$| = 1;

# --- A tiny RESP client: one command, one reply. ---------------------------

my $redis = $opt{'redis-socket'}
  ? IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => $opt{'redis-socket'})
  : IO::Socket::INET->new(PeerAddr => $opt{'redis-host'},
    PeerPort => $opt{'redis-port'}, Proto => 'tcp');
die "cannot connect to Redis: $!\n" unless $redis;
binmode($redis);

# Sends a command; returns its reply (arrays as array references, nil as
# undef) or dies with an error reply.
sub redis
{
    my @args = @_;
    print $redis '*', scalar(@args), "\r\n",
      map { ('$', length($_), "\r\n", $_, "\r\n") } @args;
    return read_reply();
}

sub read_reply
{
    my $line = <$redis>;
    die "Redis closed the connection\n" unless defined $line;
    $line =~ s/\r\n\z//;
    my ($type, $rest) = (substr($line, 0, 1), substr($line, 1));
    return $rest if $type eq '+';
    return $rest + 0 if $type eq ':';
    die "Redis: $rest\n" if $type eq '-';
    return undef if $rest < 0;    # nil bulk string or array
    return [ map { read_reply() } 1 .. $rest ] if $type eq '*';
    die "unexpected Redis reply: $line\n" unless $type eq '$';
    my $buf = '';
    while (length($buf) < $rest + 2)
    {
        read($redis, $buf, $rest + 2 - length($buf), length($buf))
          or die "Redis closed the connection\n";
    }
    return substr($buf, 0, $rest);
}

# --- Applying a batch. ------------------------------------------------------

# A standard-conforming SQL literal (or NULL): quotes doubled, nothing else
# is special.
sub literal
{
    my ($v) = @_;
    return 'NULL' unless defined $v;
    $v =~ s/'/''/g;
    return "'$v'";
}

# Applies the entries [id, [field, value, ...]] in one transaction; returns
# how many were applied (the others had been already).
sub apply_batch
{
    my (@entries) = @_;
    my $sql = "SET standard_conforming_strings = on;\nBEGIN;\n";
    for my $e (@entries)
    {
        my ($id, $fields) = @$e;
        next unless $fields;    # trimmed from the stream (maxlen) meanwhile
        my %f = @$fields;
        $sql .= "SELECT $opt{function}("
          . join(', ', literal($id), literal($f{op}), literal($f{table}),
            literal($f{row}) . '::jsonb', literal($f{old}) . '::jsonb')
          . ");\n";
    }
    $sql .= "COMMIT;\n";

    my $tmp = File::Temp->new(TEMPLATE => 'cqrs-XXXXXX', TMPDIR => 1);
    print $tmp $sql;
    close($tmp);
    open(my $psql, '-|', 'psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1',
        (defined $opt{dsn} ? ('-d', $opt{dsn}) : ()), '-f', $tmp->filename)
      or die "cannot run psql: $!\n";
    my @results = <$psql>;
    close($psql) or die "psql failed; the batch stays pending\n";
    return scalar grep { /^t$/ } @results;
}

# --- The loop. --------------------------------------------------------------

redis('AUTH', $opt{'redis-password'}) if defined $opt{'redis-password'};
# the group starts at the beginning of the stream, created if need be
eval { redis('XGROUP', 'CREATE', $opt{stream}, $opt{group}, '0', 'MKSTREAM'); 1 }
  or $@ =~ /BUSYGROUP/
  or die $@;

my $stop = 0;
$SIG{TERM} = $SIG{INT} = sub { $stop = 1 };

# First what was delivered to us before but never acknowledged, then new
# entries ('>').
my $from = '0';
while (!$stop)
{
    my $reply = redis('XREADGROUP', 'GROUP', $opt{group}, $opt{consumer},
        'COUNT', $opt{count}, ($from eq '>' ? ('BLOCK', $opt{block}) : ()),
        'STREAMS', $opt{stream}, $from);
    my @entries = $reply ? @{ $reply->[0][1] } : ();

    if (!@entries)
    {
        if ($from ne '>') { $from = '>'; next; }
        last if $opt{once};
        next;
    }
    my $applied = apply_batch(@entries);
    redis('XACK', $opt{stream}, $opt{group}, map { $_->[0] } @entries);
    printf "%s: %d entries up to %s, %d applied, %d skipped%s\n",
      $opt{consumer}, scalar @entries, $entries[-1][0], $applied,
      @entries - $applied, $from eq '>' ? '' : ' (pending)';
    $from = $entries[-1][0] if $from ne '>';
}
