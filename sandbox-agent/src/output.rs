//! Output capture with a head + tail cap: the first and last bytes of a stream are kept, the
//! middle is counted and replaced by a marker, and the stream is always read to its end (a
//! reader that stops early leaves the writer blocked, or running, in the sandbox).

use std::collections::VecDeque;

/// Keeps at most `head_cap` leading and `tail_cap` trailing bytes of everything pushed.
#[derive(Debug, Clone)]
pub struct CappedOutput {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    head_cap: usize,
    tail_cap: usize,
    total: u64,
}

impl CappedOutput {
    /// Splits `max_bytes` evenly between head and tail.
    pub fn new(max_bytes: usize) -> Self {
        CappedOutput {
            head: Vec::new(),
            tail: VecDeque::new(),
            head_cap: max_bytes / 2,
            tail_cap: max_bytes - max_bytes / 2,
            total: 0,
        }
    }

    pub fn push(&mut self, mut bytes: &[u8]) {
        self.total += bytes.len() as u64;
        let room = self.head_cap - self.head.len();
        if room > 0 {
            let take = room.min(bytes.len());
            self.head.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
        }
        if bytes.len() >= self.tail_cap {
            self.tail.clear();
            self.tail.extend(&bytes[bytes.len() - self.tail_cap..]);
        } else {
            let overflow = (self.tail.len() + bytes.len()).saturating_sub(self.tail_cap);
            self.tail.drain(..overflow);
            self.tail.extend(bytes);
        }
    }

    /// Bytes seen in all.
    pub fn total_bytes(&self) -> u64 {
        self.total
    }

    /// Bytes left out of [`CappedOutput::text`].
    pub fn omitted_bytes(&self) -> u64 {
        self.total - (self.head.len() + self.tail.len()) as u64
    }

    /// Head, a marker saying how much was left out (if anything), and tail, as UTF-8 (invalid
    /// sequences, including any split by the cut, become U+FFFD).
    pub fn text(&self) -> String {
        let tail: Vec<u8> = self.tail.iter().copied().collect();
        let omitted = self.omitted_bytes();
        if omitted == 0 {
            let mut all = self.head.clone();
            all.extend_from_slice(&tail);
            return String::from_utf8_lossy(&all).into_owned();
        }
        format!(
            "{}\n…[{omitted} bytes omitted by clawgate; {} bytes in all]…\n{}",
            String::from_utf8_lossy(&self.head),
            self.total,
            String::from_utf8_lossy(&tail)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_output_passes_whole() {
        let mut out = CappedOutput::new(100);
        out.push(b"hello ");
        out.push(b"world");
        assert_eq!(out.text(), "hello world");
        assert_eq!(out.omitted_bytes(), 0);
    }

    #[test]
    fn large_output_keeps_head_and_tail_and_counts_the_rest() {
        let mut out = CappedOutput::new(20);
        for i in 0..1000 {
            out.push(format!("{i:04}\n").as_bytes());
        }
        let text = out.text();
        assert!(text.starts_with("0000\n0001"), "{text}");
        assert!(text.ends_with("0998\n0999\n"), "{text}");
        assert_eq!(out.total_bytes(), 5000);
        assert!(text.contains("4980 bytes omitted"), "{text}");
    }

    #[test]
    fn one_huge_push_is_capped_too() {
        let mut out = CappedOutput::new(10);
        let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        out.push(&data);
        assert_eq!(out.omitted_bytes(), 9_990);
        assert!(out.text().contains("9990 bytes omitted"));
    }
}
