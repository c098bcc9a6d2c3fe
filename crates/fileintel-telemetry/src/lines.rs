//! Numbered lines from a reader, each capped at [`MAX_LINE_BYTES`], for the line-based formats.

use std::io::{self, BufRead};

use fileintel_core::ndjson::MAX_LINE_BYTES;

pub enum Line<'a> {
    Text(&'a [u8]),
    /// The line exceeded the limit; its bytes were skipped.
    Overlong,
}

pub struct Lines<R> {
    input: R,
    buffer: Vec<u8>,
    number: u64,
}

impl<R: BufRead> Lines<R> {
    pub fn new(input: R) -> Self {
        Lines { input, buffer: Vec::new(), number: 0 }
    }

    /// The next line without its `\n` or `\r\n`, or `None` at the end of the input.
    pub fn next_line(&mut self) -> io::Result<Option<(u64, Line<'_>)>> {
        self.buffer.clear();
        let mut overlong = false;
        let mut any = false;
        loop {
            let available = self.input.fill_buf()?;
            if available.is_empty() {
                break;
            }
            any = true;
            let (take, done) = match memchr::memchr(b'\n', available) {
                Some(at) => (at + 1, true),
                None => (available.len(), false),
            };
            if !overlong {
                let content = &available[..if done { take - 1 } else { take }];
                if self.buffer.len() + content.len() > MAX_LINE_BYTES {
                    overlong = true;
                    self.buffer.clear();
                } else {
                    self.buffer.extend_from_slice(content);
                }
            }
            self.input.consume(take);
            if done {
                break;
            }
        }
        if !any {
            return Ok(None);
        }
        self.number += 1;
        if overlong {
            return Ok(Some((self.number, Line::Overlong)));
        }
        let line = self.buffer.strip_suffix(b"\r").unwrap_or(&self.buffer);
        Ok(Some((self.number, Line::Text(line))))
    }
}

pub fn overlong_reason() -> String {
    format!("line longer than {MAX_LINE_BYTES} bytes")
}

pub fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}
