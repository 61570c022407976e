//! ESP seal and open per transform at 64, 512 and 1400 bytes of payload,
//! next to the bare RustCrypto call (AEAD in place, or HMAC-SHA-256) on a
//! buffer of the same length, measured in the same run. `seal`/`open` add
//! what ESP needs around the cipher: sequence number, IV, padding and
//! trailer, the ICV copy, anti-replay and lifetime accounting.
//!
//! ```text
//! cargo bench -p common --bench esp
//! ```

#![allow(clippy::unwrap_used, reason = "bench setup")]

use std::hint::black_box;
use std::net::IpAddr;
use std::time::Duration;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm, Nonce};
use chacha20poly1305::ChaCha20Poly1305;
use common::ipsec::{AddressPair, Algorithm, Mode, SaId, SaKeys, SaPairSpec, Sad, Selector};
use common::time::Instant;
use common::wire::IpProtocol;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const SIZES: [usize; 3] = [64, 512, 1400];

/// A sender SAD and a receiver SAD sharing SPI 0x201 in transport mode.
fn pair(alg: Algorithm) -> (Sad, SaId, Sad, SaId) {
    let a: IpAddr = "2001:db8:1::100".parse().unwrap();
    let b: IpAddr = "2001:db8:3::1".parse().unwrap();
    let key: Vec<u8> = (0..alg.key_len() as u8).collect();
    let spec = |local, peer, inbound: u32, outbound: u32| {
        SaPairSpec::new(
            AddressPair { local, peer },
            Mode::Transport,
            alg,
            Selector::any(),
            SaKeys {
                spi: inbound,
                key: key.clone(),
            },
            SaKeys {
                spi: outbound,
                key: key.clone(),
            },
        )
    };
    let mut tx = Sad::default();
    let (_, out) = tx
        .add_pair(Instant::ZERO, &spec(a, b, 0x202, 0x201))
        .unwrap();
    let mut rx = Sad::default();
    let (inb, _) = rx
        .add_pair(Instant::ZERO, &spec(b, a, 0x201, 0x202))
        .unwrap();
    (tx, out, rx, inb)
}

/// The bare transform over `buf` in place, with ESP's 8-byte AAD.
#[allow(
    clippy::large_enum_variant,
    reason = "boxing would add a pointer chase the bare call must not pay"
)]
enum Bare {
    Aes128(Aes128Gcm),
    Aes256(Aes256Gcm),
    ChaCha(ChaCha20Poly1305),
    Hmac(Hmac<Sha256>),
}

impl Bare {
    fn new(alg: Algorithm) -> Self {
        let key: Vec<u8> = (0..alg.key_len() as u8).collect();
        match alg {
            Algorithm::Aes128Gcm16 => Bare::Aes128(Aes128Gcm::new_from_slice(&key[..16]).unwrap()),
            Algorithm::Aes256Gcm16 => Bare::Aes256(Aes256Gcm::new_from_slice(&key[..32]).unwrap()),
            Algorithm::ChaCha20Poly1305 => {
                Bare::ChaCha(ChaCha20Poly1305::new_from_slice(&key[..32]).unwrap())
            }
            Algorithm::NullSha256 => {
                Bare::Hmac(<Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap())
            }
        }
    }

    fn seal(&self, buf: &mut [u8]) -> [u8; 16] {
        let nonce = Nonce::from_slice(&[7; 12]);
        let aad = [0, 0, 2, 1, 0, 0, 0, 9];
        let mut icv = [0u8; 16];
        match self {
            Bare::Aes128(c) => {
                icv.copy_from_slice(&c.encrypt_in_place_detached(nonce, &aad, buf).unwrap())
            }
            Bare::Aes256(c) => {
                icv.copy_from_slice(&c.encrypt_in_place_detached(nonce, &aad, buf).unwrap())
            }
            Bare::ChaCha(c) => {
                icv.copy_from_slice(&c.encrypt_in_place_detached(nonce, &aad, buf).unwrap())
            }
            Bare::Hmac(m) => {
                let mut m = m.clone();
                m.update(&aad);
                m.update(buf);
                icv.copy_from_slice(&m.finalize().into_bytes()[..16]);
            }
        }
        icv
    }

    fn open(&self, buf: &mut [u8], icv: &[u8; 16]) -> bool {
        let nonce = Nonce::from_slice(&[7; 12]);
        let aad = [0, 0, 2, 1, 0, 0, 0, 9];
        let tag = aes_gcm::Tag::from_slice(icv);
        match self {
            Bare::Aes128(c) => c.decrypt_in_place_detached(nonce, &aad, buf, tag).is_ok(),
            Bare::Aes256(c) => c.decrypt_in_place_detached(nonce, &aad, buf, tag).is_ok(),
            Bare::ChaCha(c) => c.decrypt_in_place_detached(nonce, &aad, buf, tag).is_ok(),
            Bare::Hmac(m) => {
                let mut m = m.clone();
                m.update(&aad);
                m.update(buf);
                m.verify_truncated_left(icv).is_ok()
            }
        }
    }
}

fn esp(c: &mut Criterion) {
    for alg in Algorithm::ALL {
        let mut g = c.benchmark_group(format!("esp/{alg}"));
        g.measurement_time(Duration::from_secs(2))
            .warm_up_time(Duration::from_millis(500));
        for size in SIZES {
            g.throughput(Throughput::Bytes(size as u64));
            let payload = vec![0x5a; size];
            // The ciphertext ESP encrypts: payload, padding to 4, trailer.
            let framed = (size + 2).div_ceil(4) * 4;
            let bare = Bare::new(alg);

            let mut buf = vec![0x5a; framed];
            g.bench_function(format!("bare_seal/{size}"), |b| {
                b.iter(|| black_box(bare.seal(black_box(&mut buf))))
            });

            let (mut tx, out_id, mut rx, in_id) = pair(alg);
            let mut out = Vec::with_capacity(2048);
            g.bench_function(format!("seal/{size}"), |b| {
                b.iter(|| {
                    out.clear();
                    let sa = tx.get_mut(out_id).unwrap();
                    sa.seal(
                        Instant::ZERO,
                        IpProtocol::Mobility,
                        black_box(&payload),
                        &mut out,
                    )
                    .unwrap();
                    black_box(out.len())
                })
            });

            let mut plain = vec![0x5a; framed];
            let icv = bare.seal(&mut plain);
            let sealed = plain;
            g.bench_function(format!("bare_open/{size}"), |b| {
                b.iter_batched_ref(
                    || sealed.clone(),
                    |buf| assert!(bare.open(black_box(buf), &icv)),
                    BatchSize::SmallInput,
                )
            });

            // Fresh sequence numbers each time: anti-replay stays on.
            g.bench_function(format!("open/{size}"), |b| {
                b.iter_batched_ref(
                    || {
                        let mut p = Vec::with_capacity(2048);
                        tx.get_mut(out_id)
                            .unwrap()
                            .seal(Instant::ZERO, IpProtocol::Mobility, &payload, &mut p)
                            .unwrap();
                        p
                    },
                    |p| {
                        out.clear();
                        let sa = rx.get_mut(in_id).unwrap();
                        black_box(sa.open(Instant::ZERO, black_box(p), &mut out).unwrap())
                    },
                    BatchSize::SmallInput,
                )
            });
        }
        g.finish();
    }
}

criterion_group!(benches, esp);
criterion_main!(benches);
