#!/usr/bin/python3
"""scapy's view of the Mobility Header messages in a demo pcap.

  scapy_demo.py PCAP     prints one JSON object a line for every packet of
                         PCAP (LINKTYPE_RAW IPv6) that carries a Mobility
                         Header, tunnelled or not:
                         {"frame": n, "mhtype": t, "seq": s or null,
                          "checksum_ok": bool}

seq is the BU's or BA's sequence number. checksum_ok says whether the
checksum scapy computes for the message (with its pseudo-header rules:
the HAO's home address as source, the RH2's address as destination) equals
the one in the packet. scapy never re-checksums a dissected packet, so the
checksum field is cleared on a fresh dissection and the packet rebuilt.
scapy's in6_chksum only takes the HAO's address when the HAO is the sole
option of its Destination Options header; ours is preceded by the PadN that
aligns it (8n+6), so padding options are dropped before the rebuild (scapy
pads again by itself).
"""
import json
import sys

from scapy.layers.inet6 import (IPv6, IPv6ExtHdrDestOpt, MIP6MH_BA, MIP6MH_BU,
                                Pad1, PadN, _MobilityHeader)
from scapy.utils import rdpcap


def as_ipv6(p):
    # LINKTYPE_RAW may dissect as IPv46, IPv6, or Raw: take the bytes again.
    return p if type(p) is IPv6 else IPv6(bytes(p))


def mobility_header(p):
    # haslayer matches exact classes only; every MH message subclasses this.
    layer = p
    while layer is not None and layer.name != "NoPayload":
        if isinstance(layer, _MobilityHeader):
            return layer
        layer = layer.payload
    return None


def recomputed_checksum(raw):
    p = IPv6(raw)
    layer = p
    while not isinstance(layer, _MobilityHeader):
        if isinstance(layer, IPv6ExtHdrDestOpt):
            layer.options = [o for o in layer.options if not isinstance(o, (Pad1, PadN))]
        layer = layer.payload
    layer.cksum = None
    return mobility_header(IPv6(bytes(p))).cksum


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    for frame, p in enumerate(rdpcap(sys.argv[1]), start=1):
        raw = bytes(p)
        p = as_ipv6(p)
        mh = mobility_header(p)
        if mh is None:
            continue
        seq = mh.seq if isinstance(mh, (MIP6MH_BU, MIP6MH_BA)) else None
        print(json.dumps({
            "frame": frame,
            "mhtype": mh.mhtype,
            "seq": seq,
            "checksum_ok": recomputed_checksum(raw) == mh.cksum,
        }))


main()
