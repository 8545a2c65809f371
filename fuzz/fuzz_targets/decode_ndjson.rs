//! Fuzzes `crowsnest_normalize::decode_ndjson` (the `POST /api/v1/ingest/ndjson` body) with
//! no `source` (detection) and with every `source` that names a parser of the registry
//! (`crowsnest_normalize::registry::PARSERS`: audit, managed, Falco, Docker json-file, CRI,
//! syslog, generic), checking the properties in `crowsnest_normalize::invariants::check_ndjson`.

#![no_main]

use crowsnest_normalize::invariants::{check_ndjson, fuzz_limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = check_ndjson(data, &fuzz_limits()) {
        panic!("invariant violated: {violation}");
    }
});
