//! Where the bytes of a store go, per partition, per field and per kind of data.
//!
//! ```text
//! cargo run --release -p crowsnest-store --example space -- <data-dir>/store/partitions
//! ```
//!
//! Prints tantivy's own space accounting (terms, postings, positions, fast columns, docstore)
//! summed over every partition, so a schema change can be judged by what it saves.

use std::collections::BTreeMap;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .ok_or("usage: space <store-dir> (`<data-dir>/store/partitions`)")?;
    let mut per_field: BTreeMap<String, [u64; 6]> = BTreeMap::new();
    let mut store_bytes = 0u64;
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if !path.join("meta.json").exists() {
            continue;
        }
        let index = tantivy::Index::open_in_dir(&path)?;
        let schema = index.schema();
        let searcher = index.reader()?.searcher();
        let usage = searcher.space_usage()?;
        for segment in usage.segments() {
            store_bytes += segment.store().total().get_bytes();
            let parts = [
                segment.termdict(),
                segment.postings(),
                segment.positions(),
                segment.fast_fields(),
                segment.fieldnorms(),
            ];
            for (kind, part) in parts.iter().enumerate() {
                for (field, field_usage) in part.fields() {
                    let name = schema.get_field_name(*field).to_string();
                    let slot = per_field.entry(name).or_default();
                    slot[kind] += field_usage.total().get_bytes();
                    slot[5] += field_usage.total().get_bytes();
                }
            }
        }
    }
    let mb = |b: u64| b as f64 / 1e6;
    println!(
        "{:<10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "field", "terms", "postings", "positions", "fast", "norms", "total MB"
    );
    let mut total = store_bytes;
    for (name, v) in &per_field {
        total += v[5];
        println!(
            "{:<10} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            name,
            mb(v[0]),
            mb(v[1]),
            mb(v[2]),
            mb(v[3]),
            mb(v[4]),
            mb(v[5])
        );
    }
    println!("docstore   {:>59.2}", mb(store_bytes));
    println!("all        {:>59.2}", mb(total));
    Ok(())
}
