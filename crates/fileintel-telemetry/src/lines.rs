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

/// A line's number, and its text or why it cannot be read.
pub type NumberedLine<'a> = (u64, Result<&'a [u8], String>);

impl<R: BufRead> Lines<R> {
    /// The next line that is not blank, with its number, or why it cannot be read (it is too
    /// long); `None` at the end of the input.
    pub fn next_record(&mut self) -> io::Result<Option<NumberedLine<'_>>> {
        loop {
            // Reborrowed per turn: a blank line's borrow ends before the next read.
            let (number, line) = match self.next_line()? {
                None => return Ok(None),
                Some((number, Line::Overlong)) => return Ok(Some((number, Err(overlong_reason())))),
                Some((number, Line::Text(line))) => (number, is_blank(line)),
            };
            if !line {
                let text = self.buffer.strip_suffix(b"\r").unwrap_or(&self.buffer);
                return Ok(Some((number, Ok(text))));
            }
        }
    }
}

fn overlong_reason() -> String {
    format!("line longer than {MAX_LINE_BYTES} bytes")
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}
