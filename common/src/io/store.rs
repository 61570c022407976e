//! The store a node keeps across restarts (`store:` in its file): what its
//! engine reports through [`Engine::poll_persist`], in an SQLite database
//! (rusqlite, SQLite built from its bundled source). A commit is atomic
//! and durable (rollback journal, `synchronous=FULL`): a process killed at
//! any point leaves the file as of its last commit, and the next open
//! rolls back the rest. SQLite rather than redb: redb asserts (panics) on
//! a truncated file, SQLite refuses a damaged one with an error.
//!
//! Two tables: `bindings` (home address → care-of address, sequence
//! number, expiry in µs of the wall clock, so a lifetime keeps running
//! while the node is down) and `sequences` (outbound SPI → the highest
//! sequence mark, which only grows); `user_version` is the format.
//! A commit waits at most [`BUSY`] for another program that holds the file
//! (`sqlite3` reading it), then fails: the daemon stops rather than send
//! what it could not keep. Opening runs SQLite's `quick_check` and reads
//! every record back; a file
//! that is not a store of this format, or a record that does not decode,
//! is refused with an error that names the file and the record, never a
//! panic.
//!
//! [`Engine::poll_persist`]: crate::node::Engine::poll_persist

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection};

use super::Clock;
use crate::node::Persist;

const VERSION: i64 = 1;
/// How long a commit waits for the file's lock.
pub const BUSY: std::time::Duration = std::time::Duration::from_secs(1);
const SCHEMA: &str = "
    CREATE TABLE bindings (
        home BLOB PRIMARY KEY,
        care_of BLOB NOT NULL,
        seq INTEGER NOT NULL,
        expires INTEGER NOT NULL
    );
    CREATE TABLE sequences (spi INTEGER PRIMARY KEY, mark INTEGER NOT NULL);
    PRAGMA user_version = 1;
";

/// Why a store could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// At the start: the file cannot be opened or read.
    #[error("store {path}: {source} (move the file away to start with an empty store)")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// A commit failed: what it held must not be relied on.
    #[error("store {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("store {path}: {what} (move the file away to start with an empty store)")]
    Corrupt { path: PathBuf, what: String },
}

/// A node's store, open.
#[derive(Debug)]
pub struct Store {
    db: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens the store at `path`, creating an empty one if there is none,
    /// and checks it.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = Connection::open(path).map_err(|source| StoreError::Unreadable {
            path: path.to_path_buf(),
            source,
        })?;
        let store = Store {
            db,
            path: path.to_path_buf(),
        };
        store.init()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |source| StoreError::Unreadable {
            path: self.path.clone(),
            source,
        }
    }

    fn corrupt(&self, what: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            what: what.into(),
        }
    }

    /// Durable commits; the tables of a new store; the format and
    /// SQLite's own check of an old one.
    fn init(&self) -> Result<(), StoreError> {
        let e = self.db();
        self.db.busy_timeout(BUSY).map_err(&e)?;
        self.db
            .execute_batch("PRAGMA journal_mode = DELETE; PRAGMA synchronous = FULL;")
            .map_err(&e)?;
        let check: String = self
            .db
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(&e)?;
        if check != "ok" {
            return Err(self.corrupt(format!("SQLite's check: {check}")));
        }
        let version: i64 = self
            .db
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(&e)?;
        match version {
            VERSION => Ok(()),
            0 => self.db.execute_batch(SCHEMA).map_err(&e),
            v => Err(self.corrupt(format!("format {v}, not {VERSION}"))),
        }
    }

    /// Every record, checked, with expiry times on `clock` (a binding
    /// already expired comes back expired at [`crate::time::Instant::ZERO`]).
    pub fn load(&self, clock: &Clock) -> Result<Vec<Persist>, StoreError> {
        let e = self.db();
        let mut saved = vec![];
        let mut q = self
            .db
            .prepare("SELECT home, care_of, seq, expires FROM bindings ORDER BY home")
            .map_err(&e)?;
        let rows = q
            .query_map([], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .map_err(&e)?;
        for row in rows {
            let (home, care_of, seq, expires) = row.map_err(&e)?;
            let address = |b: &[u8]| <[u8; 16]>::try_from(b).ok().map(Ipv6Addr::from);
            let (Some(home), Some(care_of), Ok(seq), Ok(expires)) = (
                address(&home),
                address(&care_of),
                u16::try_from(seq),
                u64::try_from(expires),
            ) else {
                return Err(self.corrupt(format!(
                    "a binding that does not decode: home {home:02x?}, care-of {care_of:02x?}, \
                     seq {seq}, expires {expires}"
                )));
            };
            saved.push(Persist::Bound {
                home,
                care_of,
                seq,
                expires: clock.from_unix_micros(expires),
            });
        }
        let mut q = self
            .db
            .prepare("SELECT spi, mark FROM sequences ORDER BY spi")
            .map_err(&e)?;
        let rows = q
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
            .map_err(&e)?;
        for row in rows {
            let (spi, mark) = row.map_err(&e)?;
            let (Ok(spi), Ok(mark)) = (u32::try_from(spi), u64::try_from(mark)) else {
                return Err(self.corrupt(format!(
                    "a sequence mark that does not decode: SPI {spi}, mark {mark}"
                )));
            };
            saved.push(Persist::SequenceMark { spi, mark });
        }
        Ok(saved)
    }

    /// Writes `records` in one durable transaction: when this returns Ok
    /// they survive a crash. A sequence mark never goes down.
    pub fn write(&mut self, records: &[Persist], clock: &Clock) -> Result<(), StoreError> {
        let path = self.path.clone();
        let e = |x| write_error(&path, x);
        let tx = self.db.transaction().map_err(e)?;
        for r in records {
            match *r {
                Persist::Bound {
                    home,
                    care_of,
                    seq,
                    expires,
                } => {
                    let expires = i64::try_from(clock.to_unix_micros(expires)).unwrap_or(i64::MAX);
                    tx.execute(
                        "INSERT OR REPLACE INTO bindings VALUES (?1, ?2, ?3, ?4)",
                        params![&home.octets()[..], &care_of.octets()[..], seq, expires],
                    )
                    .map_err(e)?;
                }
                Persist::Unbound { home } => {
                    tx.execute(
                        "DELETE FROM bindings WHERE home = ?1",
                        params![&home.octets()[..]],
                    )
                    .map_err(e)?;
                }
                Persist::SequenceMark { spi, mark } => {
                    // Beyond i64, the highest mark: a longer skip, never a
                    // lower one.
                    let mark = i64::try_from(mark).unwrap_or(i64::MAX);
                    tx.execute(
                        "INSERT INTO sequences VALUES (?1, ?2) \
                         ON CONFLICT (spi) DO UPDATE SET mark = max(mark, excluded.mark)",
                        params![spi, mark],
                    )
                    .map_err(e)?;
                }
            }
        }
        tx.commit().map_err(e)
    }

    /// Forgets the marks of SPIs for which `live` is false (SAs gone from
    /// the keys file, or IKE's of an earlier run).
    pub fn retain_sequences(&mut self, live: impl Fn(u32) -> bool) -> Result<(), StoreError> {
        let path = self.path.clone();
        let e = |x| write_error(&path, x);
        let tx = self.db.transaction().map_err(e)?;
        let spis: Vec<i64> = {
            let mut q = tx.prepare("SELECT spi FROM sequences").map_err(e)?;
            let rows = q.query_map([], |r| r.get(0)).map_err(e)?;
            rows.collect::<Result<_, _>>().map_err(e)?
        };
        for spi in spis {
            if !u32::try_from(spi).is_ok_and(&live) {
                tx.execute("DELETE FROM sequences WHERE spi = ?1", params![spi])
                    .map_err(e)?;
            }
        }
        tx.commit().map_err(e)
    }
}

fn write_error(path: &Path, source: rusqlite::Error) -> StoreError {
    StoreError::Write {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{Duration, Instant};

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mip6-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("ha.db")
    }

    const HOME: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x100);
    const COA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, 1);

    fn bound(seq: u16, expires: Instant) -> Persist {
        Persist::Bound {
            home: HOME,
            care_of: COA,
            seq,
            expires,
        }
    }

    #[test]
    fn what_is_written_comes_back_after_reopening_and_marks_only_grow() {
        let path = scratch("roundtrip");
        let clock = Clock::new();
        let expires = clock.now() + Duration::from_secs(600);
        {
            let mut store = Store::open(&path).unwrap();
            assert_eq!(store.load(&clock).unwrap(), vec![]);
            let marks = [(0x301, 65_537), (0x101, 65_538)]
                .map(|(spi, mark)| Persist::SequenceMark { spi, mark });
            store.write(&[bound(7, expires)], &clock).unwrap();
            store.write(&marks, &clock).unwrap();
            // A lower mark for the same SPI does not win.
            let lower = Persist::SequenceMark {
                spi: 0x301,
                mark: 3,
            };
            store.write(&[lower], &clock).unwrap();
        }
        let mut store = Store::open(&path).unwrap();
        let saved = store.load(&clock).unwrap();
        assert_eq!(saved.len(), 3);
        assert_eq!(saved[0], bound(7, expires));
        assert!(saved.contains(&Persist::SequenceMark {
            spi: 0x301,
            mark: 65_537
        }));
        store.retain_sequences(|spi| spi == 0x101).unwrap();
        store
            .write(&[Persist::Unbound { home: HOME }], &clock)
            .unwrap();
        assert_eq!(
            store.load(&clock).unwrap(),
            vec![Persist::SequenceMark {
                spi: 0x101,
                mark: 65_538
            }]
        );
    }

    #[test]
    fn a_binding_expired_while_down_comes_back_expired() {
        let path = scratch("expired");
        let clock = Clock::new();
        let mut store = Store::open(&path).unwrap();
        // A clock started 10 s later sees an expiry 5 s after this one's
        // start as past.
        store
            .write(&[bound(1, Instant::from_secs(5))], &clock)
            .unwrap();
        let later = clock.shifted(std::time::Duration::from_secs(10));
        assert_eq!(store.load(&later).unwrap(), vec![bound(1, Instant::ZERO)]);
    }

    #[test]
    fn a_torn_or_foreign_file_is_refused_with_its_name_or_recovered_never_a_panic() {
        let path = scratch("torn");
        let clock = Clock::new();
        {
            let mut store = Store::open(&path).unwrap();
            for seq in 0..20 {
                store.write(&[bound(seq, clock.now())], &clock).unwrap();
            }
        }
        let whole = std::fs::read(&path).unwrap();
        // Cut anywhere (a write cut short), or a page overwritten.
        let mut cuts: Vec<Vec<u8>> = (0..whole.len())
            .step_by(whole.len() / 64 + 1)
            .map(|n| whole[..n].to_vec())
            .collect();
        for at in (0..whole.len()).step_by(whole.len() / 32 + 1) {
            let mut b = whole.clone();
            for x in b.iter_mut().skip(at).take(512) {
                *x ^= 0x5a;
            }
            cuts.push(b);
        }
        cuts.push(b"address: 2001:db8::1\n".to_vec());
        let (mut refused, mut opened) = (0, 0);
        for bytes in cuts {
            std::fs::write(&path, &bytes).unwrap();
            match Store::open(&path).and_then(|s| s.load(&clock)) {
                Ok(saved) => {
                    opened += 1;
                    // Whatever survives is whole records.
                    assert!(saved.len() <= 1, "{saved:?}");
                }
                Err(e) => {
                    refused += 1;
                    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
                }
            }
        }
        assert!(
            refused > 0 && opened > 0,
            "{refused} refused, {opened} opened"
        );
    }

    #[test]
    fn a_record_that_does_not_decode_is_refused_by_name() {
        let path = scratch("short");
        drop(Store::open(&path).unwrap());
        let db = Connection::open(&path).unwrap();
        db.execute(
            "INSERT INTO bindings VALUES (?1, x'0102', 70000, 0)",
            params![&HOME.octets()[..]],
        )
        .unwrap();
        drop(db);
        let e = Store::open(&path)
            .and_then(|s| s.load(&Clock::new()))
            .unwrap_err();
        assert!(
            e.to_string().contains("a binding that does not decode"),
            "{e}"
        );
        assert!(e.to_string().contains("seq 70000"), "{e}");
    }

    #[test]
    fn a_commit_while_another_program_holds_the_file_fails_naming_it() {
        let path = scratch("locked");
        let clock = Clock::new();
        let b = bound(1, Instant::from_secs(60));
        let mut store = Store::open(&path).unwrap();
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN EXCLUSIVE").unwrap();
        // After waiting BUSY for it.
        let e = store.write(&[b], &clock).unwrap_err();
        assert!(e.to_string().contains("database is locked"), "{e}");
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        other.execute_batch("ROLLBACK").unwrap();
        store.write(&[b], &clock).unwrap();
        assert_eq!(store.load(&clock).unwrap(), vec![b]);
    }

    #[test]
    fn a_store_of_another_format_is_refused() {
        let path = scratch("format");
        drop(Store::open(&path).unwrap());
        let db = Connection::open(&path).unwrap();
        db.execute_batch("PRAGMA user_version = 9").unwrap();
        drop(db);
        let e = Store::open(&path).unwrap_err();
        assert!(e.to_string().contains("format 9, not 1"), "{e}");
    }
}
