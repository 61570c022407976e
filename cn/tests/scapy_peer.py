#!/usr/bin/python3
"""scapy as an independent peer on one or more links, for the daemons'
integration tests (cn/tests/cn.rs, ha/tests/ha.rs, mn/tests/mn.rs).

  scapy_peer.py IFACE [IFACE...]

Runs inside the peer's network namespace. Every frame that arrives on an
interface is kept (with its arrival time); frames we send are not. One JSON
request a line on stdin, one JSON answer a line on stdout, in order; a
request that fails answers {"error": "..."}. Requests (all take "iface",
the interface name, except "hello" and "sa"):

  {"op": "hello"}                       -> {"links": {IFACE: MAC}}
  {"op": "answer", "address", "mac"?, "router"?}
      answer Neighbor Solicitations for ADDRESS (not DAD probes) with a
      solicited NA (S=1, O=1, R=router, TLLA=MAC, default: the link's MAC)
  {"op": "defend", "address", "mac"}
      a squatter: answer DAD probes (NS from ::) for ADDRESS with an
      unsolicited NA to ff02::1 (S=0, O=1, TLLA=MAC, Ethernet source MAC)
  {"op": "sa", "spi", "alg", "key"}     an ESP SA (aes128gcm16: key+salt
      hex) to seal what "send" asks to seal under SPI, and to open every
      frame with that SPI (the opened packet is in "decrypted")
  {"op": "send", "packets": [SPEC...]}  -> {"sent": [HEX...]}
  {"op": "garbage", "count", "seed", "dst_macs", "dst", "src_mac"?}
      -> {"sent": N, "kinds": {KIND: N}, "ipv6": N}: broken frames (see
      garbage()); "ipv6" counts those with the IPv6 ethertype and a
      payload
  {"op": "frames", "since"}             -> {"next": N, "frames": [FRAME...]}

A FRAME is {"index", "time" (seconds, monotonic), "hex", "layers",
"checksums", "decrypted"?, "decrypt_error"?}: "layers" is scapy's
dissection, one object per layer ({"layer": CLASS, FIELD: VALUE...}, bytes
as hex, packet lists as lists of layer lists); "checksums" maps each
Mobility Header, ICMPv6 or UDP layer to whether its checksum is right
(RFC 6275 pseudo-header: the HAO's home address as source, a routing
header's last address as destination).

A SPEC is {"kind": ..., "dst_mac"?, "src_mac"?, ...}:
  ra   src, dst?, hlim?, router_lifetime?, prefixes: [{prefix, len?, L?, A?}]
  ns   src, target, dst?, slla? (bool), hlim?
  na   src, dst, target, R?, S?, O?, tlla?
  bu   src, dst, hoa?, seq, flags ("AH"), lifetime (4 s units), alt_coa?, spi?, nh?
  ba   src, dst, home? (a type 2 routing header), seq, status?, lifetime?, spi?
  mh   src, dst, hoa?, mhtype (a generic 8-byte Mobility Header of that type), nh?
       (nh: the Payload Proto, 59 unless given)
  udp  src, dst, hoa?, sport, dport, payload (hex)
  echo src, dst, hoa?, type ("request", "reply"), id, seq, data (hex)
Any of these but raw takes outer_src and outer_dst: IPv6-in-IPv6 around it
(RFC 2473), as a home agent and a mobile node tunnel.
  raw  hex (a whole frame)
"""
import json
import random
import select
import socket
import sys
import threading
import time

from scapy.config import conf

conf.verb = 0

from scapy.compat import raw  # noqa: E402
from scapy.fields import FlagValue  # noqa: E402
from scapy.layers.inet import UDP  # noqa: E402
from scapy.layers.inet6 import (  # noqa: E402
    HAO,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6ND_RS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrRouting,
    MIP6MH_BA,
    MIP6MH_BU,
    MIP6MH_Generic,
    MIP6OptAltCoA,
    PseudoIPv6,
    _ICMPv6,
    _MobilityHeader,
)
from scapy.layers.ipsec import ESP, SecurityAssociation  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402
from scapy.packet import NoPayload, Packet, Raw  # noqa: E402
from scapy.utils import checksum  # noqa: E402

ETH_P_ALL = 3
PACKET_OUTGOING = 4
ALGS = {"aes128gcm16": ("AES-GCM", 20), "aes256gcm16": ("AES-GCM", 36)}


def norm(addr):
    return socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, addr))


def multicast_mac(addr):
    b = socket.inet_pton(socket.AF_INET6, addr)
    return "33:33:" + ":".join("%02x" % x for x in b[-4:])


def solicited_node(addr):
    b = socket.inet_pton(socket.AF_INET6, addr)
    return socket.inet_ntop(socket.AF_INET6, bytes.fromhex("ff0200000000000000000001ff") + b[-3:])


# ---- dissection --------------------------------------------------------


def value(v):
    if isinstance(v, Packet):
        return layers(v)
    if isinstance(v, list):
        return [value(x) for x in v]
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).hex()
    if isinstance(v, FlagValue):
        return int(v)
    if isinstance(v, bool) or v is None or isinstance(v, (int, float, str)):
        return v
    return str(v)


def layers(pkt):
    out = []
    p = pkt
    while p is not None and not isinstance(p, NoPayload):
        d = {"layer": p.__class__.__name__}
        for f in p.fields_desc:
            try:
                d[f.name] = value(p.getfieldval(f.name))
            except Exception as e:  # a field scapy cannot show
                d[f.name] = "<%s>" % e
        out.append(d)
        p = p.payload
    return out


def pseudo_addresses(layer):
    """RFC 2460 §8.1 with RFC 6275 §6.3, §6.4: the HAO's home address is
    the source, the last address of a routing header with segments left is
    the destination."""
    src = dst = None
    u = layer.underlayer
    while u is not None and not isinstance(u, IPv6):
        if isinstance(u, IPv6ExtHdrRouting) and u.segleft and u.addresses and dst is None:
            dst = u.addresses[-1]
        if isinstance(u, IPv6ExtHdrDestOpt):
            for o in u.options:
                if isinstance(o, HAO):
                    src = o.hoa
        u = u.underlayer
    if u is None:
        return None
    return (src or u.src, dst or u.dst)


def checksums(pkt):
    """[{"layer": CLASS, "ok": bool}] for every MH, ICMPv6 and UDP layer."""
    out = []
    p = pkt
    while p is not None and not isinstance(p, NoPayload):
        spec = None
        if isinstance(p, _MobilityHeader) or isinstance(p, MIP6MH_Generic):
            spec = (135, 4, p.cksum)
        elif isinstance(p, _ICMPv6):
            spec = (58, 2, p.cksum)
        elif isinstance(p, UDP):
            spec = (17, 6, p.chksum)
        if spec is not None:
            nh, at, got = spec
            addrs = pseudo_addresses(p)
            body = bytearray(raw(p))
            body[at:at + 2] = b"\x00\x00"
            if addrs is None:
                ok = False
            else:
                ph = PseudoIPv6(src=addrs[0], dst=addrs[1], uplen=len(body), nh=nh)
                want = checksum(raw(ph) + bytes(body))
                if nh == 17 and want == 0:
                    want = 0xFFFF
                ok = want == got
            out.append({"layer": p.__class__.__name__, "ok": ok})
        p = p.payload
    return out


# ---- the links -----------------------------------------------------------


class Link:
    def __init__(self, name):
        self.name = name
        with open("/sys/class/net/%s/address" % name) as f:
            self.mac = f.read().strip()
        # A plain packet socket (scapy's L2socket cannot open on a link
        # without carrier): every frame, ours going out marked as such.
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.bind((name, 0))
        self.lock = threading.Lock()
        self.frames = []
        self.answer = {}
        self.defend = {}
        self.stop = False
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def send_bytes(self, b):
        self.sock.send(b)

    def read(self):
        while not self.stop:
            r, _, _ = select.select([self.sock], [], [], 0.2)
            if not r:
                continue
            try:
                data, where = self.sock.recvfrom(65536)
            except OSError:  # the link is down
                time.sleep(0.05)
                continue
            if where[2] == PACKET_OUTGOING:  # one of ours
                continue
            with self.lock:
                self.frames.append((time.monotonic(), bytes(data)))
            try:
                self.respond(bytes(data))
            except Exception as e:  # never let the responder kill the reader
                print("responder: %r" % e, file=sys.stderr)

    def respond(self, data):
        p = Ether(data)
        if ICMPv6ND_NS not in p or IPv6 not in p:
            return
        ip, ns = p[IPv6], p[ICMPv6ND_NS]
        target = norm(ns.tgt)
        if norm(ip.src) == "::":
            mac = self.defend.get(target)
            if mac:
                na = (Ether(src=mac, dst="33:33:00:00:00:01")
                      / IPv6(src=target, dst="ff02::1", hlim=255)
                      / ICMPv6ND_NA(tgt=target, R=0, S=0, O=1)
                      / ICMPv6NDOptDstLLAddr(lladdr=mac))
                self.send_bytes(raw(na))
            return
        entry = self.answer.get(target)
        if not entry:
            return
        mac, router = entry
        to_mac = p[Ether].src
        if ICMPv6NDOptSrcLLAddr in p:
            to_mac = p[ICMPv6NDOptSrcLLAddr].lladdr
        na = (Ether(src=mac, dst=to_mac)
              / IPv6(src=target, dst=ip.src, hlim=255)
              / ICMPv6ND_NA(tgt=target, R=int(router), S=1, O=1)
              / ICMPv6NDOptDstLLAddr(lladdr=mac))
        self.send_bytes(raw(na))


LINKS = {}
SAS = {}


def open_esp(sa, ip):
    """Opens transport-mode ESP with scapy's algorithms and puts the
    packet back together: the header before ESP gets ESP's next header.
    (SecurityAssociation.decrypt classes the payload by the IPv6 header's
    next header, so an MH after a type 2 routing header fails to dissect.)"""
    ip = IPv6(raw(ip))
    enc = ip[ESP]
    sa.auth_algo.verify(enc, sa.auth_key)
    icv_size = sa.crypt_icv_size or sa.crypt_algo.icv_size or sa.auth_algo.icv_size
    plain = sa.crypt_algo.decrypt(sa, enc, sa.crypt_key, icv_size,
                                  esn_en=sa.esn_en, esn=sa.esn)
    under = enc.underlayer
    under.nh = plain.nh
    under.remove_payload()
    ip.plen = len(raw(ip.payload)) + len(plain.data)
    return IPv6(raw(ip) + bytes(plain.data))


def frame_json(index, t, data):
    p = Ether(data)
    f = {"index": index, "time": t, "hex": data.hex(), "layers": layers(p),
         "checksums": checksums(p)}
    if ESP in p and IPv6 in p:
        sa = SAS.get(p[ESP].spi)
        if sa is not None:
            try:
                inner = open_esp(sa, p[IPv6])
                f["decrypted"] = layers(inner)
                f["decrypted_checksums"] = checksums(inner)
            except Exception as e:
                f["decrypt_error"] = "%s: %s" % (e.__class__.__name__, e)
    return f


def with_hao(spec, upper):
    hoa = spec.get("hoa")
    if hoa:
        return IPv6ExtHdrDestOpt(options=[HAO(hoa=hoa)]) / upper
    return upper


def build(link, spec):
    kind = spec["kind"]
    if kind == "raw":
        return bytes.fromhex(spec["hex"])
    src_mac = spec.get("src_mac", link.mac)
    if kind == "ra":
        ra = ICMPv6ND_RA(routerlifetime=spec.get("router_lifetime", 1800), prf=0, chlim=64)
        for pr in spec.get("prefixes", []):
            ra = ra / ICMPv6NDOptPrefixInfo(
                prefix=pr["prefix"], prefixlen=pr.get("len", 64),
                L=int(pr.get("L", True)), A=int(pr.get("A", True)),
                validlifetime=pr.get("valid", 86400), preferredlifetime=pr.get("preferred", 14400))
        ra = ra / ICMPv6NDOptSrcLLAddr(lladdr=src_mac)
        pkt = IPv6(src=spec["src"], dst=spec.get("dst", "ff02::1"), hlim=spec.get("hlim", 255)) / ra
    elif kind == "ns":
        target = spec["target"]
        ns = ICMPv6ND_NS(tgt=target)
        if spec.get("slla", True) and norm(spec["src"]) != "::":
            ns = ns / ICMPv6NDOptSrcLLAddr(lladdr=src_mac)
        dst = spec.get("dst") or solicited_node(target)
        pkt = IPv6(src=spec["src"], dst=dst, hlim=spec.get("hlim", 255)) / ns
    elif kind == "na":
        na = ICMPv6ND_NA(tgt=spec["target"], R=int(spec.get("R", 0)), S=int(spec.get("S", 0)),
                         O=int(spec.get("O", 1)))
        na = na / ICMPv6NDOptDstLLAddr(lladdr=spec.get("tlla", src_mac))
        pkt = IPv6(src=spec["src"], dst=spec["dst"], hlim=spec.get("hlim", 255)) / na
    elif kind == "bu":
        opts = []
        if spec.get("alt_coa"):
            opts.append(MIP6OptAltCoA(acoa=spec["alt_coa"]))
        mh = MIP6MH_BU(nh=spec.get("nh", 59), seq=spec["seq"], flags=spec.get("flags", "A"),
                       mhtime=spec.get("lifetime", 100), options=opts)
        pkt = IPv6(src=spec["src"], dst=spec["dst"]) / with_hao(spec, mh)
    elif kind == "ba":
        mh = MIP6MH_BA(status=spec.get("status", 0), flags=0, seq=spec["seq"],
                       mhtime=spec.get("lifetime", 0))
        if spec.get("home"):
            mh = IPv6ExtHdrRouting(type=2, segleft=1, addresses=[spec["home"]]) / mh
        pkt = IPv6(src=spec["src"], dst=spec["dst"]) / mh
    elif kind == "mh":
        mh = MIP6MH_Generic(nh=spec.get("nh", 59), mhtype=spec["mhtype"], res=0, msg=b"\x00\x00")
        pkt = IPv6(src=spec["src"], dst=spec["dst"]) / with_hao(spec, mh)
    elif kind == "echo":
        cls = ICMPv6EchoRequest if spec.get("type", "request") == "request" else ICMPv6EchoReply
        echo = cls(id=spec.get("id", 0), seq=spec.get("seq", 0), data=bytes.fromhex(spec.get("data", "")))
        pkt = IPv6(src=spec["src"], dst=spec["dst"]) / with_hao(spec, echo)
    elif kind == "udp":
        udp = UDP(sport=spec["sport"], dport=spec["dport"]) / Raw(bytes.fromhex(spec.get("payload", "")))
        pkt = IPv6(src=spec["src"], dst=spec["dst"]) / with_hao(spec, udp)
    else:
        raise ValueError("unknown kind %r" % kind)
    if spec.get("spi") is not None:
        pkt = SAS[spec["spi"]].encrypt(IPv6(raw(pkt)))
    if spec.get("outer_src"):
        pkt = IPv6(src=spec["outer_src"], dst=spec["outer_dst"]) / pkt
    dst_mac = spec.get("dst_mac")
    if dst_mac is None:
        if not pkt[IPv6].dst.startswith("ff"):
            raise ValueError("%s to a unicast address needs dst_mac" % kind)
        dst_mac = multicast_mac(pkt[IPv6].dst)
    return raw(Ether(src=src_mac, dst=dst_mac) / pkt)


# ---- garbage -----------------------------------------------------------


def garbage(link, req):
    """`count` broken frames, reproducible from `seed`, to the MACs in
    `dst_macs` (the daemon's, multicast): random bytes under random and
    IPv6 ethertypes, truncated IPv6 headers, IPv6 with random next headers
    and payloads, broken Mobility Headers (bad checksum, length, type,
    truncation), broken ND (bad checksum, hop limit, zero-length and
    truncated options), broken extension headers, and lying payload
    lengths."""
    rng = random.Random(req["seed"])
    dst_ip = req["dst"]
    macs = req["dst_macs"]
    src_mac = req.get("src_mac", link.mac)
    kinds = {}
    ipv6 = 0

    def rbytes(lo, hi):
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(lo, hi)))

    def raddr():
        return "2001:db8:%x::%x" % (rng.randint(0, 0xffff), rng.randint(1, 0xffff))

    def mutate(b, start):
        b = bytearray(b)
        i = rng.randrange(start, len(b))
        b[i] ^= 1 << rng.randrange(8)
        return bytes(b)

    def ether(mac, payload, etype=0x86DD):
        return raw(Ether(src=src_mac, dst=mac, type=etype)) + payload

    for _ in range(req["count"]):
        mac = rng.choice(macs)
        kind = rng.choice(["random", "truncated-ipv6", "random-next-header", "broken-mh",
                           "broken-nd", "broken-ext", "lying-length", "empty"])
        dst = rng.choice([dst_ip, dst_ip, "ff02::1", raddr()])
        src = raddr()
        if kind == "random":
            etype = rng.choice([0x86DD, 0x86DD, 0x0800, rng.getrandbits(16)])
            frame = ether(mac, rbytes(0, 200), etype)
        elif kind == "truncated-ipv6":
            ip = raw(IPv6(src=src, dst=dst, nh=rng.randint(0, 255)) / Raw(rbytes(0, 40)))
            frame = ether(mac, ip[:rng.randint(1, 39)])
        elif kind == "random-next-header":
            frame = ether(mac, raw(IPv6(src=src, dst=dst, nh=rng.randint(0, 255)) / Raw(rbytes(0, 120))))
        elif kind == "broken-mh":
            which = rng.randrange(4)
            bu = MIP6MH_BU(seq=rng.getrandbits(16), flags="A", mhtime=10,
                           options=[MIP6OptAltCoA(acoa=src)])
            ip = raw(IPv6(src=src, dst=dst) / IPv6ExtHdrDestOpt(options=[HAO(hoa=raddr())]) / bu)
            mh_at = 40 + 24
            if which == 0:  # a bit flipped: the checksum fails
                ip = mutate(ip, mh_at)
            elif which == 1:  # header length too long for the packet
                b = bytearray(ip)
                b[mh_at + 1] = rng.randint(4, 255)
                ip = bytes(b)
            elif which == 2:  # truncated, payload length kept
                ip = ip[:rng.randint(mh_at, len(ip) - 1)]
            else:  # the payload protocol of an MH must be 59
                b = bytearray(ip)
                b[mh_at] = rng.randint(0, 58)
                ip = bytes(b)
            frame = ether(mac, ip)
        elif kind == "broken-nd":
            which = rng.randrange(5)
            target = rng.choice([dst_ip, raddr()])
            msg = rng.choice([
                ICMPv6ND_NS(tgt=target) / ICMPv6NDOptSrcLLAddr(lladdr=src_mac),
                ICMPv6ND_NA(tgt=target, R=0, S=0, O=1) / ICMPv6NDOptDstLLAddr(lladdr=src_mac),
                ICMPv6ND_RA(routerlifetime=0) / ICMPv6NDOptSrcLLAddr(lladdr=src_mac),
                ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr=src_mac),
            ])
            hlim = 64 if which == 1 else 255
            ip = raw(IPv6(src="fe80::%x" % rng.randint(1, 0xffff), dst=rng.choice([dst_ip, "ff02::1"]),
                          hlim=hlim) / msg)
            if which == 0:  # a bit flipped after the IPv6 header
                ip = mutate(ip, 40)
            elif which == 2:  # an option of length 0
                b = bytearray(ip)
                b[-7] = 0
                ip = bytes(b)
            elif which == 3:  # truncated inside the message
                ip = ip[:rng.randint(41, len(ip) - 1)]
            elif which == 4:  # a code other than 0, checksum still right
                pkt = IPv6(ip)
                pkt[pkt[IPv6].payload.__class__].code = rng.randint(1, 255)
                del pkt[pkt[IPv6].payload.__class__].cksum
                ip = raw(pkt)
            frame = ether(mac, ip)
        elif kind == "broken-ext":
            nh = rng.choice([0, 43, 60])
            ext = bytes([rng.randint(0, 255), rng.randint(0, 255)]) + rbytes(0, 30)
            frame = ether(mac, raw(IPv6(src=src, dst=dst, nh=nh) / Raw(ext)))
        elif kind == "lying-length":
            b = bytearray(raw(IPv6(src=src, dst=dst, nh=59) / Raw(rbytes(0, 40))))
            plen = rng.randint(len(b) - 40 + 1, 0xffff)
            b[4:6] = plen.to_bytes(2, "big")
            frame = ether(mac, bytes(b))
        else:  # an Ethernet header and nothing else
            frame = ether(mac, b"")
        link.send_bytes(frame)
        kinds[kind] = kinds.get(kind, 0) + 1
        # The kernel delivers no Ethernet frame without payload ("empty")
        # to a packet socket, so those are not counted.
        if frame[12:14] == b"\x86\xdd" and len(frame) > 14:
            ipv6 += 1
    return {"sent": req["count"], "kinds": kinds, "ipv6": ipv6}


# ---- requests ----------------------------------------------------------


def handle(req):
    op = req["op"]
    if op == "hello":
        return {"links": {n: l.mac for n, l in LINKS.items()}}
    if op == "sa":
        alg, key_len = ALGS[req["alg"]]
        key = bytes.fromhex(req["key"])
        if len(key) != key_len:
            raise ValueError("%s keys are %d bytes" % (req["alg"], key_len))
        SAS[req["spi"]] = SecurityAssociation(ESP, spi=req["spi"], crypt_algo=alg, crypt_key=key)
        return {"ok": True}
    link = LINKS[req["iface"]]
    if op == "answer":
        link.answer[norm(req["address"])] = (req.get("mac", link.mac), bool(req.get("router", False)))
        return {"ok": True}
    if op == "defend":
        link.defend[norm(req["address"])] = req["mac"]
        return {"ok": True}
    if op == "send":
        sent = []
        for spec in req["packets"]:
            b = build(link, spec)
            link.send_bytes(b)
            sent.append(b.hex())
        return {"sent": sent}
    if op == "garbage":
        return garbage(link, req)
    if op == "frames":
        since = req.get("since", 0)
        with link.lock:
            got = link.frames[since:]
            n = len(link.frames)
        return {"next": n, "frames": [frame_json(since + i, t, d) for i, (t, d) in enumerate(got)]}
    raise ValueError("unknown op %r" % op)


def main():
    for name in sys.argv[1:]:
        LINKS[name] = Link(name)
    print(json.dumps({"ready": True, "links": {n: l.mac for n, l in LINKS.items()}}), flush=True)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            answer = handle(json.loads(line))
        except Exception as e:
            answer = {"error": "%s: %s" % (e.__class__.__name__, e)}
        print(json.dumps(answer), flush=True)
    for link in LINKS.values():
        link.stop = True


if __name__ == "__main__":
    main()
