//! Shared by the tests that check our bytes with tools we did not write,
//! or run them, and by those that craft packets for the engines.

#![allow(
    dead_code,
    reason = "each test binary uses its own part of these helpers"
)]

pub mod crafted;
pub mod pictures;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};

use common::wire::packet::Decoded;
use common::wire::FieldValue;
use serde_json::Value;

/// Whether `program --version`-style probe succeeds. Under `CI=true` a
/// missing tool fails the test (CI installs it); elsewhere the test is
/// skipped with a message.
pub fn require(program: &str, probe: &[&str]) -> bool {
    let ok = Command::new(program)
        .args(probe)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{program} is required under CI=true"
        );
        eprintln!(
            "skipping: {program} is not installed (apt-get install the package; .ci/run does)"
        );
    }
    ok
}

/// False (after saying why) when something in `missing` keeps this
/// machine from running a test; under CI=true that fails instead.
pub fn prerequisites_met(missing: &[String]) -> bool {
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but missing: {missing:?} (run as root; scripts/test.sh installs the packages)"
    );
    eprintln!("skipping: missing {missing:?}");
    false
}

/// A fresh directory under the target's tmp dir for one test.
pub fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn tshark(args: &[&str]) -> String {
    let out = Command::new("tshark").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "tshark {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `tshark -r PCAP EXTRA -T fields` with `-e` for each of `names`: one
/// line a frame, one tab-separated column a name, repeated values joined
/// by `|`.
pub fn tshark_fields(pcap: &str, extra: &[&str], names: &[&str]) -> String {
    let mut args = vec!["-r", pcap];
    args.extend_from_slice(extra);
    args.extend([
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=|",
        "-E",
        "separator=\t",
    ]);
    for n in names {
        args.extend(["-e", n]);
    }
    tshark(&args)
}

/// Our value in tshark's `-T fields` spelling.
fn ours(v: &FieldValue) -> String {
    match v {
        FieldValue::Num(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// tshark prints numbers in decimal or 0x-hex, booleans as 1/0 or
/// True/False, bytes with or without colons.
pub fn normalise(v: &str) -> String {
    let v = v.trim();
    if let Some(h) = v.strip_prefix("0x") {
        if let Ok(n) = u64::from_str_radix(h, 16) {
            return n.to_string();
        }
    }
    match v {
        // An empty byte string.
        "<MISSING>" | "<missing>" => String::new(),
        "True" => "1".into(),
        "False" => "0".into(),
        _ if v.contains(':')
            && v.split(':')
                .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit())) =>
        {
            v.replace(':', "")
        }
        _ => match v.parse::<std::net::IpAddr>() {
            Ok(a) => a.to_string(),
            Err(_) => v.to_lowercase(),
        },
    }
}

/// tshark (with `extra` options) finds no malformed packet and no expert
/// error in `pcap`.
pub fn assert_nothing_malformed(pcap: &str, extra: &[&str]) {
    // The flows' random bytes now and then pass Thrift's heuristic, which
    // then reassembles; on the home link every tunnelled segment shows
    // twice (to the HA, then decapsulated) and reads as an overlap.
    let mut args = vec!["-r", pcap, "--disable-protocol", "thrift"];
    args.extend_from_slice(extra);
    args.extend([
        "-Y",
        "_ws.malformed || _ws.expert.severity >= 8388608",
        "-T",
        "fields",
        "-e",
        "frame.number",
        "-e",
        "_ws.expert.message",
    ]);
    let bad = tshark(&args);
    assert_eq!(
        bad.trim(),
        "",
        "tshark found malformed packets or expert errors (frame, message)"
    );
}

/// Compares every field our decoder recorded (in `packets`, one per frame
/// of `pcap`) with what tshark reports under the same name, except `skip`;
/// fails listing every mismatch. Returns (values compared, field names).
pub fn compare_with_tshark(
    pcap: &str,
    extra: &[&str],
    packets: &[Decoded],
    skip: &[&str],
) -> (usize, usize) {
    let known: BTreeSet<String> = tshark(&["-G", "fields"])
        .lines()
        .filter_map(|l| l.split('\t').nth(2).map(str::to_owned))
        .collect();
    let names: Vec<String> = packets
        .iter()
        .flat_map(|d| d.fields.entries.iter().map(|(n, _)| n.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|n| known.contains(n) && !skip.contains(&n.as_str()))
        .collect();
    let columns: Vec<&str> = names.iter().map(String::as_str).collect();
    let out = tshark_fields(pcap, extra, &columns);
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(rows.len(), packets.len());
    let mut compared = 0;
    let mut mismatches = Vec::new();
    for (i, (row, d)) in rows.iter().zip(packets).enumerate() {
        let theirs: BTreeMap<&str, Vec<String>> = names
            .iter()
            .map(String::as_str)
            .zip(row.split('\t'))
            .map(|(n, v)| {
                (
                    n,
                    if v.is_empty() {
                        vec![]
                    } else {
                        v.split('|').map(normalise).collect()
                    },
                )
            })
            .collect();
        for n in &names {
            let mine: Vec<String> = d
                .fields
                .get(n)
                .into_iter()
                .map(|v| normalise(&ours(v)))
                .collect();
            if mine.is_empty() {
                continue;
            }
            compared += mine.len();
            if theirs[n.as_str()] != mine {
                mismatches.push(format!(
                    "packet {} {n}: ours {mine:?}, tshark {:?}",
                    i + 1,
                    theirs[n.as_str()]
                ));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    (compared, names.len())
}

/// Runs `python script mode`, feeding `input` on stdin, and parses each
/// line it prints as JSON.
pub fn python_lines(python: &str, script: &str, mode: &str, input: &str) -> Vec<Value> {
    json_lines(python, &[script, mode], input)
}

/// Runs `program args`, feeding `input` on stdin; it must succeed, and
/// each line it prints is parsed as JSON.
pub fn json_lines(program: &str, args: &[&str], input: &str) -> Vec<Value> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
