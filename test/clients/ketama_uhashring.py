"""Test client: which node uhashring's ketama ring picks for each key.

Usage: python3 ketama_uhashring.py NODE ... < keys > nodes
Every node has weight 1 (uhashring computes point counts with integer
arithmetic, which matches the float32 formula of twemproxy only where that
formula yields exactly 40 hashes per node).  Reads one UTF-8 key per line,
prints the chosen node per line.  Run by test/t/040_ring_clients.pl.
"""
import sys

from uhashring import HashRing


def main():
    ring = HashRing(nodes=sys.argv[1:], hash_fn="ketama")
    out = []
    for raw in sys.stdin.buffer.read().split(b"\n")[:-1]:
        out.append(ring.get_node(raw.decode("utf-8")))
    sys.stdout.write("\n".join(out) + "\n")


main()
