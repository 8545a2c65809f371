//! Fuzzes `crowsnest_normalize::decode_k8s_audit` (the `POST /api/v1/ingest/k8s-audit` body),
//! checking the properties in `crowsnest_normalize::invariants::check_k8s_audit`.

#![no_main]

use crowsnest_normalize::invariants::{check_k8s_audit, fuzz_limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = check_k8s_audit(data, &fuzz_limits()) {
        panic!("invariant violated: {violation}");
    }
});
