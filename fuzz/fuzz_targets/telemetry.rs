//! The telemetry targets' checks: a decoder drained to its end, with the invariants every decoder
//! keeps whatever its input. Shared with fileintel-telemetry's tests/fuzz_regressions.rs, which
//! replays the kept findings through these same functions.
#![allow(dead_code)]

use fileintel_core::{NdjsonReader, ParsedBatch, Position};
use fileintel_telemetry::Decoder;

/// Batches small enough that a few records fill one, so that batch boundaries get fuzzed too.
const BATCH: usize = 7;

/// Drains `decoder`, checking that each observation has its position, that a line-based input
/// never goes back a line, and that the decoder ends: a batch consumes something, so there can
/// never be more batches than input bytes (and a final one).
pub fn drain(mut decoder: Box<dyn Decoder + '_>, input_len: usize, line_based: bool) -> ParsedBatch {
    let mut all = ParsedBatch::default();
    let mut batches = 0usize;
    while let Some(batch) = decoder.next_batch(BATCH).expect("reading from memory never fails") {
        batches += 1;
        assert!(batches <= input_len + 2, "the decoder keeps handing batches after {input_len} bytes");
        assert_eq!(batch.observations.len(), batch.positions.len(), "every observation has its position");
        all.observations.extend(batch.observations);
        all.positions.extend(batch.positions);
        all.rejections.extend(batch.rejections);
        all.records += batch.records;
    }
    if line_based {
        let line = |at: &Position| match at {
            Position::Line(line) => *line,
            other => panic!("a line-based format reported {other:?}"),
        };
        let lines: Vec<u64> = all.positions.iter().map(line).collect();
        assert!(lines.windows(2).all(|pair| pair[0] <= pair[1]), "observation lines go back: {lines:?}");
        let rejected: Vec<u64> = all.rejections.iter().map(|rejection| line(&rejection.at)).collect();
        assert!(rejected.windows(2).all(|pair| pair[0] <= pair[1]), "rejected lines go back: {rejected:?}");
    }
    all
}

pub fn run(format: fileintel_telemetry::Format, data: &[u8], line_based: bool) {
    let decoder = fileintel_telemetry::decoder(Some(format), std::io::Cursor::new(data), None)
        .expect("opening a named format never fails");
    drain(decoder, data.len(), line_based);
}

/// The event-log decoder with every record read by the evtx crate, the direct reader off.
pub fn evtx_crate(data: &[u8]) {
    let decoder = fileintel_telemetry::evtx_crate_decoder(std::io::Cursor::new(data), "default".into());
    drain(decoder, data.len(), false);
}

/// NDJSON through the decoder, and the same bytes pushed to an `NdjsonReader` cut in two where
/// the first byte says, which must read them exactly as whole: however a request body arrives in
/// pieces, it means the same.
pub fn ndjson(data: &[u8]) {
    let decoder =
        fileintel_telemetry::decoder(Some(fileintel_telemetry::Format::Ndjson), std::io::Cursor::new(data), None)
            .expect("opening a named format never fails");
    let whole = drain(decoder, data.len(), true);
    let cut = data.first().map_or(0, |&byte| usize::from(byte) % (data.len() + 1));
    let mut reader = NdjsonReader::new();
    reader.push(&data[..cut]);
    reader.push(&data[cut..]);
    reader.finish();
    let pieces = reader.take_batch();
    assert_eq!(reader.bytes, data.len() as u64);
    assert_eq!(pieces.observations, whole.observations, "cut at {cut}");
    assert_eq!(pieces.positions, whole.positions, "cut at {cut}");
    assert_eq!(pieces.rejections, whole.rejections, "cut at {cut}");
}
