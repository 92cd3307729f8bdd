//! Generating and parsing 1M-entry deny-lists.
#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented public function"
)]

use std::io::Write;

use criterion::{Criterion, criterion_group, criterion_main};
use filter_core::generate::{Mix, generate};
use filter_core::{CidrList, Family, ParseOptions};

const ENTRIES: usize = 1_000_000;

fn lists(c: &mut Criterion) {
    let mut group = c.benchmark_group("1M entries");
    group.sample_size(10);
    group.bench_function("generate default mix", |b| {
        b.iter(|| generate(ENTRIES, 1, Mix::Default, &[Family::V4]));
    });
    let list = generate(ENTRIES, 1, Mix::Default, &[Family::V4]);
    let mut text = Vec::new();
    for net in list.iter() {
        writeln!(text, "{net}").unwrap();
    }
    group.bench_function("parse text", |b| {
        b.iter(|| CidrList::parse(&text[..], "bench", &ParseOptions::default()).unwrap());
    });
    group.bench_function("stats (duplicates, covered)", |b| b.iter(|| list.stats()));
    group.finish();
}

criterion_group!(benches, lists);
criterion_main!(benches);
