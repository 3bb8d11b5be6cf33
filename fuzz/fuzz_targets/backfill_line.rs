//! A backfill upload split into lines, however its bytes are chunked, and
//! each line parsed: never panics, and chunking never changes the lines.
#![no_main]

use leadbridge::backfill::{parse_line, Line, Lines};
use libfuzzer_sys::fuzz_target;

const MAX_LINE: usize = 256;

fn lines(chunks: &[&[u8]]) -> Vec<(u64, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut take = |l: Line<'_>| match l {
        Line::Text { number, bytes } => out.push((number, Some(bytes.to_vec()))),
        Line::TooLong { number } => out.push((number, None)),
    };
    let mut splitter = Lines::new(MAX_LINE);
    for c in chunks {
        splitter.feed(c, &mut take);
    }
    splitter.finish(&mut take);
    out
}

fuzz_target!(|data: &[u8]| {
    let cut = data.first().map_or(0, |b| *b as usize) % (data.len() + 1);
    let whole = lines(&[data]);
    let split = lines(&[&data[..cut], &data[cut..]]);
    assert_eq!(whole, split, "chunking changed the lines");
    for (_, bytes) in whole {
        if let Some(bytes) = bytes {
            if let Ok(Some((client_id, payload))) = parse_line(&bytes) {
                assert!(!client_id.as_str().trim().is_empty());
                assert!(serde_json::from_str::<serde_json::Value>(&payload).is_ok());
            }
        }
    }
});
