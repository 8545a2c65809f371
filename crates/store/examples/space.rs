//! Where the bytes of a store go, per partition, per field and per kind of data.
//!
//! ```text
//! cargo run --release -p crowsnest-store --example space -- <data-dir>/store/partitions
//! ```
//!
//! Prints tantivy's own space accounting (terms, postings, positions, fast columns, docstore)
//! summed over every partition, so a schema change can be judged by what it saves; then the
//! fast columns of the JSON fields (which tantivy's accounting leaves out) by path: the largest
//! columns, and their sum per path prefix of two segments.

use std::collections::BTreeMap;

use tantivy::Directory;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .ok_or("usage: space <store-dir> (`<data-dir>/store/partitions`)")?;
    let mut per_field: BTreeMap<String, [u64; 6]> = BTreeMap::new();
    let mut store_bytes = 0u64;
    let mut columns: BTreeMap<String, u64> = BTreeMap::new();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if !path.join("meta.json").exists() {
            continue;
        }
        let index = tantivy::Index::open_in_dir(&path)?;
        let schema = index.schema();
        let searcher = index.reader()?.searcher();
        for segment in searcher.segment_readers() {
            let name = format!("{}.fast", segment.segment_id().uuid_string());
            let file = index.directory().open_read(std::path::Path::new(&name))?;
            let columnar = tantivy::columnar::ColumnarReader::open(file)?;
            for (name, handle) in columnar.list_columns()? {
                *columns.entry(name.replace('\u{1}', ".")).or_default() +=
                    handle.num_bytes().get_bytes();
            }
        }
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

    // A JSON field's columns are named `field.path` (tantivy's \u{1} separators shown as dots).
    let mut json_columns: Vec<(&String, u64)> = columns
        .iter()
        .filter(|(name, _)| name.contains('.'))
        .map(|(name, bytes)| (name, *bytes))
        .collect();
    json_columns.sort_by_key(|&(_, bytes)| std::cmp::Reverse(bytes));
    let json_bytes: u64 = json_columns.iter().map(|(_, bytes)| bytes).sum();
    println!(
        "\nfast columns of JSON fields: {:.2} MB in {} columns",
        mb(json_bytes),
        json_columns.len()
    );
    for (name, bytes) in json_columns.iter().take(15) {
        println!("{:>9.3} MB  {name}", mb(*bytes));
    }
    let mut prefixes: BTreeMap<String, u64> = BTreeMap::new();
    for (name, bytes) in &json_columns {
        let prefix: Vec<&str> = name.split('.').take(3).collect();
        *prefixes.entry(prefix.join(".")).or_default() += bytes;
    }
    let mut prefixes: Vec<(String, u64)> = prefixes.into_iter().collect();
    prefixes.sort_by_key(|&(_, bytes)| std::cmp::Reverse(bytes));
    println!("\nby prefix (field and two path segments):");
    for (prefix, bytes) in prefixes.iter().take(15) {
        println!("{:>9.3} MB  {prefix}", mb(*bytes));
    }
    Ok(())
}
