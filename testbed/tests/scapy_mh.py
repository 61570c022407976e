#!/usr/bin/python3
"""scapy's view of Mobile IPv6 packets and the Neighbor Discovery they run
over, in Wireshark field names.

  scapy_mh.py build      prints RFC 6275 messages built by scapy, one JSON
                         object a line: {"hex": ..., "fields": {...}}
  scapy_mh.py build-nd   the same for Neighbor Discovery messages (RFC 4861
                         §4, RFC 6275 §7) built by scapy
  scapy_mh.py dissect    reads hex packets on stdin (ours) and prints what
                         scapy dissects from each, one JSON a line:
                         {"fields": {...}, "layers": [class names],
                          "checksum_ok": bool or null}

checksum_ok is for ICMPv6 Neighbor Discovery messages: whether the checksum
scapy computes for the message equals the one in the packet (scapy never
re-checksums a dissected packet, so the field is cleared on a fresh
dissection and the packet rebuilt); null for other packets.

Quirks handled: scapy numbers BU flag bits LSB-first within its 7-bit
field, its Nonce Indices and BAD options default to wrong lengths (we set
olen), its RA defaults to Prf=1 (High) and its NA to R=1 (we set both), and
it gives the RS/NS reserved word as a number where tshark (and we) give
four bytes.
"""
import json
import sys

from scapy.layers.inet6 import (HAO, ICMPv6EchoReply, ICMPv6EchoRequest,
                                ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6ND_RA,
                                ICMPv6ND_RS, ICMPv6NDOptAdvInterval,
                                ICMPv6NDOptDstLLAddr, ICMPv6NDOptMTU,
                                ICMPv6NDOptPrefixInfo, ICMPv6NDOptSrcLLAddr,
                                IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrRouting,
                                MIP6MH_BA, MIP6MH_BE, MIP6MH_BRR, MIP6MH_BU,
                                MIP6MH_CoT, MIP6MH_CoTI, MIP6MH_HoT,
                                MIP6MH_HoTI, MIP6OptAltCoA,
                                MIP6OptBindingAuthData, MIP6OptBRAdvice,
                                MIP6OptNonceIndices)

COA, CN, HOA, HA = "2001:db8:2::10", "2001:db8:3::1", "2001:db8:1::100", "2001:db8:1::1"
AR, HOME_PEER = "2001:db8:2::1", "2001:db8:1::2"
MN_MAC, AR_MAC, HA_MAC = "02:00:00:00:00:11", "02:00:00:00:00:01", "02:00:00:00:00:02"
MN_LL, AR_LL, HA_LL = "fe80::ff:fe00:11", "fe80::ff:fe00:1", "fe80::ff:fe00:2"

ND_MESSAGES = (ICMPv6ND_RS, ICMPv6ND_RA, ICMPv6ND_NS, ICMPv6ND_NA)


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
        elif isinstance(layer, ND_MESSAGES):
            nd_message(layer, add)
        elif layer.__class__.__name__.startswith("ICMPv6NDOpt"):
            nd_option(layer, add)
        layer = layer.payload
    return f


def nd_message(m, add):
    add("icmpv6.type", m.type)
    add("icmpv6.code", m.code)
    add("icmpv6.checksum", m.cksum)
    if isinstance(m, (ICMPv6ND_RS, ICMPv6ND_NS)):
        add("icmpv6.reserved", "%08x" % m.res)
    if isinstance(m, ICMPv6ND_NS):
        add("icmpv6.nd.ns.target_address", m.tgt)
    elif isinstance(m, ICMPv6ND_RA):
        add("icmpv6.nd.ra.cur_hop_limit", m.chlim)
        add("icmpv6.nd.ra.flag", m.M << 7 | m.O << 6 | m.H << 5 | m.prf << 3 | m.P << 2 | m.res)
        for bit, name in [(m.M, "m"), (m.O, "o"), (m.H, "h"), (m.prf, "prf"), (m.P, "p"), (m.res, "rsv")]:
            add(f"icmpv6.nd.ra.flag.{name}", bit)
        add("icmpv6.nd.ra.router_lifetime", m.routerlifetime)
        add("icmpv6.nd.ra.reachable_time", m.reachabletime)
        add("icmpv6.nd.ra.retrans_timer", m.retranstimer)
    elif isinstance(m, ICMPv6ND_NA):
        add("icmpv6.nd.na.flag", m.R << 31 | m.S << 30 | m.O << 29 | m.res)
        for bit, name in [(m.R, "r"), (m.S, "s"), (m.O, "o"), (m.res, "rsv")]:
            add(f"icmpv6.nd.na.flag.{name}", bit)
        add("icmpv6.nd.na.target_address", m.tgt)


def nd_option(o, add):
    add("icmpv6.opt.type", o.type)
    add("icmpv6.opt.length", o.len)
    if isinstance(o, (ICMPv6NDOptSrcLLAddr, ICMPv6NDOptDstLLAddr)):
        add("icmpv6.opt.linkaddr", o.lladdr)
        # scapy derives DstLLAddr from SrcLLAddr: test the exact type.
        kind = "src" if type(o) is ICMPv6NDOptSrcLLAddr else "target"
        add(f"icmpv6.opt.{kind}_linkaddr", o.lladdr)
    elif isinstance(o, ICMPv6NDOptPrefixInfo):
        add("icmpv6.opt.prefix.length", o.prefixlen)
        add("icmpv6.opt.prefix.flag", o.L << 7 | o.A << 6 | o.R << 5 | o.res1)
        for bit, name in [(o.L, "l"), (o.A, "a"), (o.R, "r"), (o.res1, "reserved")]:
            add(f"icmpv6.opt.prefix.flag.{name}", bit)
        add("icmpv6.opt.prefix.valid_lifetime", o.validlifetime)
        add("icmpv6.opt.prefix.preferred_lifetime", o.preferredlifetime)
        add("icmpv6.opt.prefix", o.prefix)
    elif isinstance(o, ICMPv6NDOptMTU):
        add("icmpv6.opt.mtu", o.mtu)
    elif isinstance(o, ICMPv6NDOptAdvInterval):
        add("icmpv6.opt.advertisement_interval", o.advint)


def layers(p):
    names = []
    layer = p
    while layer is not None and layer.name != "NoPayload":
        names.append(layer.__class__.__name__)
        layer = layer.payload
    return names


def nd_checksum_ok(raw):
    """Whether scapy's checksum for the ND message equals the packet's;
    None when there is no ND message."""
    for cls in ND_MESSAGES:
        p = IPv6(raw)
        if cls in p:
            theirs = p[cls].cksum
            p[cls].cksum = None
            return IPv6(bytes(p))[cls].cksum == theirs
    return None


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


def built_nd():
    """The messages of RFC 4861 §4 as the links of the testbed carry them,
    hop limit 255; scapy computes the checksums."""
    def nd(src, dst):
        return IPv6(src=src, dst=dst, hlim=255)

    def ra(ll, mac, flags, advint, prefix):
        return (nd(ll, "ff02::1")
                / ICMPv6ND_RA(chlim=64, routerlifetime=1800, reachabletime=30000, retranstimer=1000, **flags)
                / ICMPv6NDOptSrcLLAddr(lladdr=mac) / ICMPv6NDOptMTU(mtu=1500)
                / ICMPv6NDOptAdvInterval(advint=advint) / prefix)

    return [
        nd("::", "ff02::2") / ICMPv6ND_RS(),
        nd(MN_LL, "ff02::2") / ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr=MN_MAC),
        # Prf=1 (High), scapy's default, to check the bits around H.
        ra(AR_LL, AR_MAC, dict(M=0, O=1, H=0, prf=1), 1000,
           ICMPv6NDOptPrefixInfo(prefix="2001:db8:2::", prefixlen=64, L=1, A=1, R=0,
                                 validlifetime=2592000, preferredlifetime=604800)),
        # A home agent's (RFC 6275 §7.1-§7.3): H, its address in the prefix with R.
        ra(HA_LL, HA_MAC, dict(M=0, O=0, H=1, prf=0), 3000,
           ICMPv6NDOptPrefixInfo(prefix=HA, prefixlen=64, L=1, A=1, R=1)),
        nd(COA, "ff02::1:ff00:1") / ICMPv6ND_NS(tgt=AR) / ICMPv6NDOptSrcLLAddr(lladdr=MN_MAC),
        nd("::", "ff02::1:ff00:10") / ICMPv6ND_NS(tgt=COA),
        nd(AR, COA) / ICMPv6ND_NA(R=1, S=1, O=1, tgt=AR) / ICMPv6NDOptDstLLAddr(lladdr=AR_MAC),
        nd(HA, HOME_PEER) / ICMPv6ND_NA(R=0, S=1, O=0, tgt=HOA) / ICMPv6NDOptDstLLAddr(lladdr=HA_MAC),
        nd(HA, "ff02::1") / ICMPv6ND_NA(R=0, S=0, O=1, tgt=HOA) / ICMPv6NDOptDstLLAddr(lladdr=HA_MAC),
    ]


def main():
    builds = {"build": built, "build-nd": built_nd}
    if len(sys.argv) == 2 and sys.argv[1] in builds:
        for p in builds[sys.argv[1]]():
            raw = bytes(p)
            print(json.dumps({"hex": raw.hex(), "fields": fields(IPv6(raw))}))
    elif sys.argv[1:] == ["dissect"]:
        for line in sys.stdin:
            if line.strip():
                raw = bytes.fromhex(line.strip())
                p = IPv6(raw)
                print(json.dumps({"fields": fields(p), "layers": layers(p),
                                  "checksum_ok": nd_checksum_ok(raw)}))
    else:
        sys.exit(__doc__)


main()
