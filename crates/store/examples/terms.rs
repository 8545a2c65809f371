//! How many of a text field's terms occur in a single event, and what they look like.
//!
//! ```text
//! cargo run --release -p crowsnest-store --example terms -- <data-dir>/store/partitions _raw
//! ```
//!
//! A term found in one event only costs a term-dictionary entry and a posting list of its own;
//! identifiers and sub-second timestamps split into words make many of them. Prints, per
//! field, the terms, those with a document frequency of one, and a sample of the latter by
//! shape (digits only, hex, other), so a tokenizer change can be judged by what it would save.

use std::collections::BTreeMap;

fn shape(term: &[u8]) -> &'static str {
    if term.iter().all(u8::is_ascii_digit) {
        "digits"
    } else if term.iter().all(u8::is_ascii_hexdigit) {
        "hex"
    } else if term.iter().any(u8::is_ascii_digit) {
        "mixed letters and digits"
    } else {
        "letters"
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .ok_or("usage: terms <store-dir> <field> (`<data-dir>/store/partitions _raw`)")?;
    let field_name = args.next().unwrap_or_else(|| "_raw".to_string());
    let (mut terms, mut single, mut single_bytes) = (0u64, 0u64, 0u64);
    let mut shapes: BTreeMap<&'static str, (u64, Vec<String>)> = BTreeMap::new();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if !path.join("meta.json").exists() {
            continue;
        }
        let index = tantivy::Index::open_in_dir(&path)?;
        let field = index.schema().get_field(&field_name)?;
        let searcher = index.reader()?.searcher();
        for segment in searcher.segment_readers() {
            let inverted = segment.inverted_index(field)?;
            let mut stream = inverted.terms().stream()?;
            while stream.advance() {
                terms += 1;
                if stream.value().doc_freq == 1 {
                    single += 1;
                    single_bytes += stream.key().len() as u64;
                    let (count, sample) = shapes.entry(shape(stream.key())).or_default();
                    *count += 1;
                    if *count % 997 == 1 && sample.len() < 12 {
                        sample.push(String::from_utf8_lossy(stream.key()).into_owned());
                    }
                }
            }
        }
    }
    println!("{field_name}: {terms} terms (summed over segments), {single} in one event only ({single_bytes} bytes of term text)");
    for (shape, (count, sample)) in shapes {
        println!("  {shape}: {count}, e.g. {}", sample.join(" "));
    }
    Ok(())
}
