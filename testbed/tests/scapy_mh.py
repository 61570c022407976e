#!/usr/bin/python3
"""scapy's view of Mobile IPv6 packets, in Wireshark field names.

  scapy_mh.py build      prints RFC 6275 messages built by scapy, one JSON
                         object a line: {"hex": ..., "fields": {...}}
  scapy_mh.py dissect    reads hex packets on stdin (ours) and prints the
                         fields scapy dissects from each, one JSON a line

Quirks handled: scapy numbers BU flag bits LSB-first within its 7-bit
field, its Nonce Indices and BAD options default to wrong lengths (we set
olen), and a dissected packet is never re-checksummed.
"""
import json
import sys

from scapy.layers.inet6 import (HAO, ICMPv6EchoReply, ICMPv6EchoRequest, IPv6,
                                IPv6ExtHdrDestOpt, IPv6ExtHdrRouting,
                                MIP6MH_BA, MIP6MH_BE, MIP6MH_BRR, MIP6MH_BU,
                                MIP6MH_CoT, MIP6MH_CoTI, MIP6MH_HoT,
                                MIP6MH_HoTI, MIP6OptAltCoA,
                                MIP6OptBindingAuthData, MIP6OptBRAdvice,
                                MIP6OptNonceIndices)

COA, CN, HOA, HA = "2001:db8:2::10", "2001:db8:3::1", "2001:db8:1::100", "2001:db8:1::1"


def num(b):
    return int.from_bytes(b, "big") if isinstance(b, bytes) else int(b)


def fields(p):
    f = {}

    def add(name, value):
        f.setdefault(name, []).append(value)

    layer = p
    while layer is not None and layer.name != "NoPayload":
        if isinstance(layer, IPv6):
            add("ipv6.src", layer.src)
            add("ipv6.dst", layer.dst)
            add("ipv6.hlim", layer.hlim)
            add("ipv6.nxt", layer.nh)
            add("ipv6.plen", layer.plen)
        elif isinstance(layer, IPv6ExtHdrDestOpt):
            for o in layer.options:
                if isinstance(o, HAO):
                    add("ipv6.opt.mipv6.home_address", o.hoa)
        elif isinstance(layer, IPv6ExtHdrRouting):
            add("ipv6.routing.type", layer.type)
            add("ipv6.routing.segleft", layer.segleft)
            if layer.type == 2:
                add("ipv6.routing.mipv6.home_address", layer.addresses[0])
        elif layer.name.startswith("IPv6 Mobility Header"):
            add("mip6.mhtype", layer.mhtype)
            add("mip6.hlen", layer.len)
            add("mip6.csum", layer.cksum)
            if isinstance(layer, MIP6MH_BU):
                add("mip6.bu.seqnr", layer.seq)
                for letter, name in [("A", "a"), ("H", "h"), ("L", "l"), ("K", "k"), ("M", "m"), ("P", "p")]:
                    add(f"mip6.bu.{name}_flag", int(bool(getattr(layer.flags, letter))))
                add("mip6.nemo.bu.r_flag", int(bool(layer.flags.R)))
                add("mip6.bu.lifetime", layer.mhtime)
            elif isinstance(layer, MIP6MH_BA):
                add("mip6.ba.status", layer.status)
                add("mip6.ba.k_flag", int(bool(layer.flags.K)))
                add("mip6.ba.seqnr", layer.seq)
                add("mip6.ba.lifetime", layer.mhtime)
            # scapy derives CoTI from HoTI and CoT from HoT: test exact types.
            elif type(layer) is MIP6MH_HoTI:
                add("mip6.hoti.cookie", num(layer.cookie))
            elif type(layer) is MIP6MH_CoTI:
                add("mip6.coti.cookie", num(layer.cookie))
            elif type(layer) in (MIP6MH_HoT, MIP6MH_CoT):
                kind = "hot" if type(layer) is MIP6MH_HoT else "cot"
                add(f"mip6.{kind}.nindex", layer.index)
                add(f"mip6.{kind}.cookie", num(layer.cookie))
                add(f"mip6.{kind}.token", num(layer.token))
            elif isinstance(layer, MIP6MH_BE):
                add("mip6.be.status", layer.status)
                add("mip6.be.haddr", layer.ha)
            for o in getattr(layer, "options", []):
                if isinstance(o, MIP6OptBRAdvice):
                    add("mip6.bra.interval", o.rinter)
                elif isinstance(o, MIP6OptAltCoA):
                    add("mip6.acoa.acoa", o.acoa)
                elif isinstance(o, MIP6OptNonceIndices):
                    add("mip6.ni.hni", o.hni)
                    add("mip6.ni.cni", o.coni)
                elif isinstance(o, MIP6OptBindingAuthData):
                    add("mip6.bad.auth", bytes(o.authenticator).hex() if isinstance(o.authenticator, bytes) else "%024x" % o.authenticator)
        elif isinstance(layer, (ICMPv6EchoRequest, ICMPv6EchoReply)):
            add("icmpv6.type", layer.type)
            add("icmpv6.echo.identifier", layer.id)
            add("icmpv6.echo.sequence_number", layer.seq)
        layer = layer.payload
    return f


def built():
    bad = MIP6OptBindingAuthData(olen=12, authenticator=0x0B0AD0010203040506070809)
    return [
        IPv6(src=COA, dst=HA) / IPv6ExtHdrDestOpt(options=[HAO(hoa=HOA)]) / MIP6MH_BU(seq=1, flags="AHK", mhtime=100, options=[MIP6OptAltCoA(acoa=COA)]),
        IPv6(src=HA, dst=COA) / IPv6ExtHdrRouting(type=2, segleft=1, addresses=[HOA]) / MIP6MH_BA(status=0, flags="K", seq=1, mhtime=100, options=[MIP6OptBRAdvice(rinter=90)]),
        IPv6(src=COA, dst=CN) / IPv6ExtHdrDestOpt(options=[HAO(hoa=HOA)]) / MIP6MH_BU(seq=2, flags="A", mhtime=105, options=[MIP6OptNonceIndices(olen=4, hni=5, coni=6), bad]),
        IPv6(src=CN, dst=COA) / IPv6ExtHdrRouting(type=2, segleft=1, addresses=[HOA]) / MIP6MH_BA(status=131, flags=0, seq=9, mhtime=0),
        IPv6(src=HOA, dst=CN) / MIP6MH_HoTI(cookie=b"\x01\x02\x03\x04\x05\x06\x07\x08"),
        IPv6(src=COA, dst=CN) / MIP6MH_CoTI(cookie=b"\x11\x12\x13\x14\x15\x16\x17\x18"),
        IPv6(src=CN, dst=HOA) / MIP6MH_HoT(index=5, cookie=b"\x01\x02\x03\x04\x05\x06\x07\x08", token=b"\xa1\xa2\xa3\xa4\xa5\xa6\xa7\xa8"),
        IPv6(src=CN, dst=COA) / MIP6MH_CoT(index=6, cookie=b"\x11\x12\x13\x14\x15\x16\x17\x18", token=b"\xb1\xb2\xb3\xb4\xb5\xb6\xb7\xb8"),
        IPv6(src=CN, dst=COA) / IPv6ExtHdrRouting(type=2, segleft=1, addresses=[HOA]) / MIP6MH_BRR(),
        IPv6(src=CN, dst=COA) / MIP6MH_BE(status=1, ha=HOA),
        IPv6(src=COA, dst=CN) / IPv6ExtHdrDestOpt(options=[HAO(hoa=HOA)]) / ICMPv6EchoRequest(id=7, seq=1, data=b"mip6"),
    ]


def main():
    if sys.argv[1:] == ["build"]:
        for p in built():
            raw = bytes(p)
            print(json.dumps({"hex": raw.hex(), "fields": fields(IPv6(raw))}))
    elif sys.argv[1:] == ["dissect"]:
        for line in sys.stdin:
            if line.strip():
                print(json.dumps({"fields": fields(IPv6(bytes.fromhex(line.strip())))}))
    else:
        sys.exit(__doc__)


main()
