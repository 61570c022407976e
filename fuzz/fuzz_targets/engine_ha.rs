//! Steps into the HA of the demo topology (static keys): see
//! `common_fuzz::World` for the steps and the invariants.
#![no_main]

use common_fuzz::{run, Input, Victim};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: Input| run(Victim::Ha, false, &input));
