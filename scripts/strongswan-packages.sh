# Sourced by scripts/test.sh and scripts/bench.sh: adds to `need` the
# Debian packages of strongSwan's charon with kernel-libipsec (the interop
# peer and the benches' baseline) that are missing.
[ -x /usr/lib/ipsec/charon ] || need+=(strongswan-charon)
command -v swanctl >/dev/null || need+=(strongswan-swanctl)  # swanctl + vici
[ -e /usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so ] || need+=(libcharon-extra-plugins)  # kernel-libipsec
[ -e /usr/lib/ipsec/plugins/libstrongswan-curve25519.so ] || need+=(libstrongswan-extra-plugins)  # curve25519, chapoly
[ -e /usr/lib/ipsec/plugins/libstrongswan-openssl.so ] || need+=(libstrongswan-standard-plugins)  # openssl, gcm
