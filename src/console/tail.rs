//! The last few KiB of a stream, for error messages.

#[derive(Debug)]
pub struct Tail {
    buf: Vec<u8>,
    cap: usize,
    /// The first error writing the stream's file: the stream is evidence, and losing it is
    /// reported, never silent.
    pub write_error: Option<String>,
}

impl Tail {
    pub fn new(cap: usize) -> Self {
        Tail {
            buf: Vec::new(),
            cap,
            write_error: None,
        }
    }

    /// Keeps the first write error of the stream's file `file`.
    pub fn note_write_error(&mut self, file: &std::path::Path, e: &std::io::Error) {
        self.write_error
            .get_or_insert_with(|| format!("writing {}: {e}", file.display()));
    }

    pub fn push(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
        if self.buf.len() > self.cap {
            let cut = self.buf.len() - self.cap;
            self.buf.drain(..cut);
        }
    }

    /// The last `lines` lines, lossily decoded.
    pub fn lines(&self, lines: usize) -> String {
        let s = String::from_utf8_lossy(&self.buf).replace('\r', "");
        let v: Vec<&str> = s.lines().collect();
        v[v.len().saturating_sub(lines)..].join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_end() {
        let mut t = Tail::new(8);
        t.push(b"abc\ndef\n");
        t.push(b"ghi\n");
        assert_eq!(t.lines(10), "def\nghi");
        assert_eq!(t.lines(1), "ghi");
    }
}
