# test/t/002_layers.pl -- the layers of src/ stay what their headers say.
#
# Delivery is built in layers (README, "How it is built"): a pure RESP
# codec and plan codec at the bottom, the transport above them, the apply
# layer that decides what a reply means above that, and the outbox, the
# worker and the commit path on top.  This test reads the sources (no
# servers) and fails when a change breaks the shape:
#   - the module import graph (foo.c and foo.h are module foo; an include
#     of "bar.h" is an edge to bar) has no cycle;
#   - every file starts with a header naming it and what it owns;
#   - the parts that must not talk to Redis (the codecs, the outbox, the
#     worker slots, the pending-rows checks) include no transport;
#   - only reply.c reads the text of a reply to decide what it means;
#   - only scripts.c names version markers.

use strict;
use warnings;

use File::Basename qw(basename dirname);
use Test::More;

my $src = (dirname($ENV{TESTDIR} // 'test')) . '/src';
my @files = sort glob("$src/*.c $src/*.h");
ok(@files > 20, 'the sources are there') or BAIL_OUT("no sources under $src");

sub slurp
{
	my ($path) = @_;
	open(my $fh, '<', $path) or die "cannot read $path: $!";
	local $/;
	return <$fh>;
}

my %text = map { basename($_) => slurp($_) } @files;
my %module_of = map { my $m = $_; $m =~ s/\.[ch]$//; ($_ => $m) } keys %text;
my %has_header = map { $_ => 1 } grep { /\.h$/ } keys %text;

# the import graph
my %edges;
for my $file (keys %text)
{
	my $from = $module_of{$file};
	for my $inc ($text{$file} =~ /^#include "([a-z_0-9]+\.h)"/mg)
	{
		next unless $has_header{$inc};
		my $to = $module_of{$inc};
		$edges{$from}{$to} = 1 unless $to eq $from;
	}
}

my (%state, @cycle);
sub visit
{
	my ($node, @path) = @_;
	$state{$node} = 1;
	for my $next (sort keys %{ $edges{$node} || {} })
	{
		return if @cycle;
		if (($state{$next} // 0) == 1)
		{
			my @p = (@path, $node);
			my ($at) = grep { $p[$_] eq $next } 0 .. $#p;
			@cycle = (@p[$at .. $#p], $next);
			return;
		}
		visit($next, @path, $node) unless $state{$next};
	}
	$state{$node} = 2;
}
for my $m (sort keys %edges)
{
	visit($m) unless $state{$m} || @cycle;
}
ok(!@cycle, 'the module import graph is acyclic')
  or diag('cycle: ' . join(' -> ', @cycle));

# the headers
my @unnamed = grep {
	$text{$_} !~ m{\A/\*-+\n \*\n \* \Q$_\E\n \*\t\t\S}
} sort keys %text;
is_deeply(\@unnamed, [], 'every file starts with a header naming it and what it owns');

# no transport below the apply layer, nor in the outbox and its helpers:
# nothing these modules reach, directly or through others, is one
sub reaches
{
	my ($from) = @_;
	my %seen;
	my @todo = ($from);
	while (my $m = shift @todo)
	{
		for my $next (keys %{ $edges{$m} || {} })
		{
			push @todo, $next unless $seen{$next}++;
		}
	}
	return \%seen;
}
for my $module (qw(resp plan copies outbox mailbox pending backlog breaker reply scripts version))
{
	my $reached = reaches($module);
	my @bad = grep { $reached->{$_} } qw(redis conn cluster apply tls delivery worker);
	is_deeply(\@bad, [], "$module reaches no transport and no deliverer");
}

# reply text is read in reply.c only
my @readers = grep {
	$_ ne 'reply.c' && $text{$_} =~ /(?:strn?cmp|memcmp|strstr|pg_strncasecmp)\s*\([^;]*->str\b/
} sort keys %text;
is_deeply(\@readers, [], 'only reply.c reads the text of a Redis reply');

# markers are named in scripts.c only
my @namers = grep { !/^scripts\.[ch]$/ && $text{$_} =~ /#cbv/ } sort keys %text;
is_deeply(\@namers, [], 'only scripts.c names version markers');

done_testing();
