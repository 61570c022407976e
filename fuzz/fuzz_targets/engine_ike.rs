//! Steps into the home agent keyed by IKEv2 (MOBIKE, a payload tunnel):
//! the mobile node's IKE_SA_INIT, IKE_AUTH and INFORMATIONAL exchanges to
//! replay and change, with the IKE SA count bounded by the COOKIE threshold.
#![no_main]

use common_fuzz::{run, Input, Victim};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: Input| run(Victim::Ha, true, &input));
