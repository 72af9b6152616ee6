//! Stop strings over streamed text.
//!
//! Text arrives in pieces that need not line up with a stop string, so the scanner holds back
//! any tail that could still grow into one and releases it once it cannot. What the caller sees
//! streamed is exactly the final text: never a partial stop string that is later retracted.

/// Finds the first stop string in a growing text and decides what may be released.
#[derive(Debug, Clone)]
pub struct StopScanner {
    stops: Vec<String>,
    text: String,
    /// Bytes of `text` already released.
    released: usize,
    stopped: bool,
}

impl StopScanner {
    /// Empty stop strings are ignored: they would end every generation before it starts.
    pub fn new(stops: &[String]) -> Self {
        Self { stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(), text: String::new(), released: 0, stopped: false }
    }

    /// Adds a piece of text and returns what can be released now. After a stop string is found,
    /// [`stopped`](Self::stopped) is true, the text ends just before it and further pieces are
    /// ignored.
    pub fn push(&mut self, piece: &str) -> String {
        if self.stopped {
            return String::new();
        }
        // A match may start up to (longest stop - 1) bytes before the new piece.
        let longest = self.stops.iter().map(String::len).max().unwrap_or(0);
        let mut search_from = self.text.len().saturating_sub(longest.saturating_sub(1));
        while !self.text.is_char_boundary(search_from) {
            search_from -= 1;
        }
        self.text.push_str(piece);
        let hit = self.stops.iter().filter_map(|stop| self.text[search_from..].find(stop.as_str()).map(|at| search_from + at)).min();
        let end = match hit {
            Some(at) => {
                self.stopped = true;
                self.text.truncate(at);
                at
            }
            None => self.text.len() - self.pending_prefix_len(),
        };
        let out = self.text[self.released.min(end)..end].to_string();
        self.released = self.released.max(end);
        out
    }

    /// Releases whatever was held back; call when generation ends for another reason.
    pub fn finish(&mut self) -> String {
        let out = self.text[self.released..].to_string();
        self.released = self.text.len();
        out
    }

    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// The full text so far, stop string excluded.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Length of the longest tail of the text that is a proper prefix of some stop string.
    fn pending_prefix_len(&self) -> usize {
        let mut best = 0;
        for stop in &self.stops {
            for (at, _) in stop.char_indices().skip(1) {
                let prefix = &stop[..at];
                if at > best && self.text.ends_with(prefix) {
                    best = at;
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (Vec<String>, String, bool) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut scanner = StopScanner::new(&stops);
        let mut out: Vec<String> = pieces.iter().map(|p| scanner.push(p)).collect();
        let stopped = scanner.stopped();
        out.push(scanner.finish());
        (out, scanner.text().to_string(), stopped)
    }

    #[test]
    fn stop_split_across_pieces_is_held_back_and_cut() {
        let (out, text, stopped) = run(&["</end>"], &["hello </", "en", "d> more"]);
        assert_eq!(out, ["hello ", "", "", ""]);
        assert_eq!(text, "hello ");
        assert!(stopped);
    }

    #[test]
    fn a_false_start_is_released_once_it_diverges() {
        let (out, text, stopped) = run(&["STOP"], &["ST", "OCK", " up"]);
        assert_eq!(out, ["", "STOCK", " up", ""]);
        assert_eq!(text, "STOCK up");
        assert!(!stopped);
    }

    #[test]
    fn earliest_of_several_stops_wins_and_multibyte_text_is_safe() {
        let (out, text, _) = run(&["β!", "é"], &["añéβ!"]);
        assert_eq!(out.concat(), "añ");
        assert_eq!(text, "añ");
        let (out, _, stopped) = run(&["\n\n"], &["a\n", "\nb"]);
        assert_eq!(out.concat(), "a");
        assert!(stopped);
    }

    #[test]
    fn without_stops_everything_flows_through() {
        let (out, text, stopped) = run(&[""], &["a", "b"]);
        assert_eq!(out, ["a", "b", ""]);
        assert_eq!(text, "ab");
        assert!(!stopped);
    }
}
