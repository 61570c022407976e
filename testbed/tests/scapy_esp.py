#!/usr/bin/python3
"""scapy's ESP (RFC 4303), as an oracle for our IPsec code.

  scapy_esp.py encrypt   {"spi", "alg", "key", "mode", "esn"?, "seq", "iv"?,
                          "packet", "tunnel_src"?, "tunnel_dst"?}
                         -> {"ok": true, "esp": hex}
  scapy_esp.py decrypt   {"spi", "alg", "key", "mode", "esn"?, "seq_hi"?,
                         "packet"} -> {"ok": true, "plain": hex, "summary": str}

One JSON object a line on stdin, one answer a line on stdout, in order; a
line that fails answers {"ok": false, "error": ...} (an ICV mismatch says
"integrity check (ICV) failed"). Packets are whole IPv6 packets in hex.

Algorithms, with the key layout of our SAs:
  aes128gcm16, aes256gcm16, chacha20poly1305: cipher key then 4-byte salt
    (scapy takes the salt as the key's last 4 bytes), 8-byte IV, 16-byte ICV;
  null-sha256: NULL encryption with HMAC-SHA-256-128, key = 32-byte HMAC key.

Quirks of scapy 2.5.0 handled here:
  * its ESP HMAC leaves out the ESN high bits (RFC 4303 §3.3.2.1), so
    null-sha256 with ESN is refused; the AEADs do put them in the AAD;
  * transport-mode decrypt classes the payload by the IPv6 header's next
    header, not by the header before ESP (a BU after a Destination Options
    header comes back as a second DestOpt): its bytes are still right
    (scapy keeps dissected bytes), so we re-dissect them for the summary;
  * the header just before ESP is rebuilt (its next header changes), and
    scapy then re-pads its options: only a misaligned option (an HAO not at
    8n+6) would come out different from the packet given.
"""
import json
import sys

from scapy.compat import raw
from scapy.layers.inet6 import IPv6
from scapy.layers.ipsec import ESP, IPSecIntegrityError, SecurityAssociation

# alg -> (scapy crypt_algo, scapy auth_algo, key length in bytes)
ALGS = {
    "aes128gcm16": ("AES-GCM", None, 16 + 4),
    "aes256gcm16": ("AES-GCM", None, 32 + 4),
    "chacha20poly1305": ("CHACHA20-POLY1305", None, 32 + 4),
    "null-sha256": ("NULL", "SHA2-256-128", 32),
}


def security_association(req, tunnel_header, seq_lo=1, seq_hi=0):
    if req["alg"] not in ALGS:
        raise ValueError("unknown alg %r" % req["alg"])
    crypt, auth, key_len = ALGS[req["alg"]]
    key = bytes.fromhex(req["key"])
    if len(key) != key_len:
        raise ValueError("%s key must be %d bytes, got %d" % (req["alg"], key_len, len(key)))
    esn = bool(req.get("esn", False))
    if esn and auth:
        raise ValueError("scapy leaves the ESN high bits out of the ESP HMAC ICV")
    if req["mode"] not in ("transport", "tunnel"):
        raise ValueError("mode must be transport or tunnel")
    return SecurityAssociation(
        ESP, spi=req["spi"], seq_num=seq_lo,
        crypt_algo=crypt, crypt_key=None if auth else key,
        auth_algo=auth, auth_key=key if auth else None,
        tunnel_header=tunnel_header if req["mode"] == "tunnel" else None,
        esn_en=esn, esn=seq_hi)


def encrypt(req):
    seq = req["seq"]
    limit = 1 << 64 if req.get("esn", False) else 1 << 32
    if not 0 <= seq < limit:
        raise ValueError("seq %d out of range" % seq)
    seq_lo, seq_hi = seq & 0xFFFFFFFF, seq >> 32
    tunnel = IPv6(src=req["tunnel_src"], dst=req["tunnel_dst"]) if req["mode"] == "tunnel" else None
    sa = security_association(req, tunnel, seq_lo, seq_hi)
    iv = bytes.fromhex(req["iv"]) if "iv" in req else None
    pkt = IPv6(bytes.fromhex(req["packet"]))
    return {"esp": raw(sa.encrypt(pkt, seq_num=seq_lo, iv=iv)).hex()}


def decrypt(req):
    # scapy decapsulates whenever the SA has a tunnel header, whatever it is
    sa = security_association(req, IPv6(), seq_hi=req.get("seq_hi", 0))
    pkt = IPv6(bytes.fromhex(req["packet"]))
    try:
        plain = raw(sa.decrypt(pkt))
    except IPSecIntegrityError as e:
        raise IPSecIntegrityError("integrity check (ICV) failed: %s" % (str(e) or "tag mismatch"))
    return {"plain": plain.hex(), "summary": IPv6(plain).summary()}


def main():
    ops = {"encrypt": encrypt, "decrypt": decrypt}
    if len(sys.argv) != 2 or sys.argv[1] not in ops:
        sys.exit("usage: scapy_esp.py encrypt|decrypt < requests.jsonl")
    op = ops[sys.argv[1]]
    for line in sys.stdin:
        try:
            out = dict(ok=True, **op(json.loads(line)))
        except Exception as e:  # any bad line is answered, never fatal
            out = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
