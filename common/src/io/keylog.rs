//! Appends key-log rows to a Wireshark configuration directory as SAs
//! come (`--keylog DIR` of the daemons and `testbed ike`): then
//! `WIRESHARK_CONFIG_DIR=DIR wireshark capture.pcap` opens it decrypted.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::keylog::{KeyTable, PREFERENCES, UAT_HEADER};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLog {
    dir: PathBuf,
}

impl KeyLog {
    /// Creates `dir` and its `preferences` (ESP decryption and ICV checks).
    pub fn create(dir: &Path) -> io::Result<KeyLog> {
        fs::create_dir_all(dir)?;
        fs::write(dir.join("preferences"), PREFERENCES)?;
        Ok(KeyLog {
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one row, starting a new file with Wireshark's header line;
    /// a row already there (the other end of the SA wrote it) is not
    /// repeated.
    pub fn append(&self, table: KeyTable, row: &str) -> io::Result<()> {
        let path = self.dir.join(table.file_name());
        if fs::read_to_string(&path).is_ok_and(|t| t.lines().any(|l| l == row)) {
            return Ok(());
        }
        let mut f = OpenOptions::new().create(true).append(true).open(&path)?;
        if f.metadata()?.len() == 0 {
            writeln!(f, "{UAT_HEADER}")?;
        }
        writeln!(f, "{row}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_go_after_one_header() {
        let dir = std::env::temp_dir().join(format!("mip6-keylog-{}", std::process::id()));
        let log = KeyLog::create(&dir).unwrap();
        log.append(KeyTable::Esp, "a").unwrap();
        log.append(KeyTable::Esp, "b").unwrap();
        log.append(KeyTable::Esp, "a").unwrap();
        let text = fs::read_to_string(dir.join("esp_sa")).unwrap();
        assert_eq!(text, format!("{UAT_HEADER}\na\nb\n"));
        assert_eq!(
            fs::read_to_string(dir.join("preferences")).unwrap(),
            PREFERENCES
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
