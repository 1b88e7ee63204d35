//! Text expectations (`stdout_contains`, `stdout_matches`) checked on a
//! command's whole output as it streams through the pipe, not only on the
//! part a capped log keeps: a marker printed in the middle of a huge output
//! is found even though the log dropped it (docs/runbooks.md, "Checks on
//! long output").
//!
//! Memory stays bounded whatever the command prints: a text is searched with
//! an overlap of its length minus one byte between reads, so one split
//! across two reads is found; a pattern is searched on every complete line
//! (and on whatever else a read holds whole), with the line being read
//! carried to the next read, up to [`LINE_LIMIT`] bytes.

use regex_automata::{Input, meta, util::syntax};
use regex_syntax::hir::{Class, Hir, HirKind};

/// The longest line a pattern is searched on whole. A longer line is searched
/// in overlapping windows of [`LINE_LIMIT`] bytes, each sharing its last half
/// with the next: a match longer than half of that within it can be missed,
/// and a failed check says so.
pub const LINE_LIMIT: usize = 256 * 1024;

/// How far back a match across lines is always found: the bytes before the
/// line being read that each search repeats. A longer match across lines is
/// found only when one read holds it, and in the kept output.
pub const CONTEXT_LIMIT: usize = 64 * 1024;

/// What lies just outside a searched text: how assertions (`^`, `$`, `\b`,
/// `\A`, `\z`) see its edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    /// The start or the end of the whole output.
    Text,
    /// A line break (`\n`).
    Newline,
    /// More output, not known here: the text's outermost character is
    /// context only, never part of a match found in it.
    Cut,
}

/// A `stdout_matches` pattern, searchable on part of an output with what
/// lies around it as context.
#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    regex: meta::Regex,
    spans_lines: bool,
}

impl Pattern {
    /// Compiles `source` as the `regex` crate does, `^` and `$` matching at
    /// every line's start and end when `multi_line`.
    pub fn new(source: &str, multi_line: bool) -> Result<Pattern, String> {
        let config = syntax::Config::new().multi_line(multi_line);
        let hir = syntax::parse_with(source, &config).map_err(|error| error.to_string())?;
        let regex = meta::Regex::builder()
            .syntax(config)
            .build(source)
            .map_err(|error| error.to_string())?;
        Ok(Pattern {
            source: source.to_owned(),
            regex,
            spans_lines: can_match_newline(&hir),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether a match can hold a line break (`\n`, `\s`, `[^x]`, `(?s).`):
    /// only such a match can lie across lines.
    pub fn spans_lines(&self) -> bool {
        self.spans_lines
    }

    /// Whether it matches somewhere in `text` (decoded as UTF-8, an invalid
    /// sequence read as U+FFFD, as the kept output is), with `left` and
    /// `right` saying what lies outside it.
    pub fn found_in(&self, left: Edge, text: &[u8], right: Edge) -> bool {
        let text = whole_characters(text, left, right);
        if text.is_empty() && (left == Edge::Cut || right == Edge::Cut) {
            // Nothing of it to search, and what lies around it is not known.
            return false;
        }
        let mut hay = Vec::with_capacity(text.len() + 2);
        if left == Edge::Newline {
            hay.push(b'\n');
        }
        hay.extend_from_slice(text);
        if right == Edge::Newline {
            hay.push(b'\n');
        }
        let decoded = String::from_utf8_lossy(&hay);
        let (start, end) = span(&decoded, left, right);
        start <= end
            && self
                .regex
                .is_match(Input::new(decoded.as_bytes()).span(start..end))
    }
}

/// Where a search of `text` may find matches: everything but the context
/// characters its edges add.
fn span(text: &str, left: Edge, right: Edge) -> (usize, usize) {
    let start = match left {
        Edge::Text => 0,
        Edge::Newline => 1,
        Edge::Cut => text.chars().next().map_or(0, char::len_utf8),
    };
    let end = match right {
        Edge::Text => text.len(),
        Edge::Newline => text.len().saturating_sub(1),
        Edge::Cut => text.len() - text.chars().next_back().map_or(0, char::len_utf8),
    };
    (start, end)
}

/// `text` without the part of a character cut at a [`Edge::Cut`] edge:
/// the character it belongs to is not known, nor what it means to `\b`.
fn whole_characters(text: &[u8], left: Edge, right: Edge) -> &[u8] {
    let mut text = text;
    if left == Edge::Cut {
        let cut = text
            .iter()
            .take(3)
            .take_while(|byte| is_continuation(**byte))
            .count();
        text = &text[cut..];
    }
    if right == Edge::Cut
        && let Some(start) = (text.len().saturating_sub(4)..text.len())
            .rev()
            .find(|at| !is_continuation(text[*at]))
    {
        let length = match text[start] {
            0xF0.. => 4,
            0xE0.. => 3,
            0xC0.. => 2,
            _ => 1,
        };
        if start + length > text.len() {
            text = &text[..start];
        }
    }
    text
}

/// Whether some text `hir` matches holds a `\n`.
fn can_match_newline(hir: &Hir) -> bool {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => false,
        HirKind::Literal(literal) => literal.0.contains(&b'\n'),
        HirKind::Class(Class::Unicode(class)) => class
            .ranges()
            .iter()
            .any(|range| range.start() <= '\n' && '\n' <= range.end()),
        HirKind::Class(Class::Bytes(class)) => class
            .ranges()
            .iter()
            .any(|range| range.start() <= b'\n' && b'\n' <= range.end()),
        HirKind::Repetition(repetition) => {
            repetition.max != Some(0) && can_match_newline(&repetition.sub)
        }
        HirKind::Capture(capture) => can_match_newline(&capture.sub),
        HirKind::Concat(parts) | HirKind::Alternation(parts) => parts.iter().any(can_match_newline),
    }
}

/// [`LINE_LIMIT`] and [`CONTEXT_LIMIT`], smaller in tests.
#[derive(Debug, Clone, Copy)]
struct Limits {
    line: usize,
    context: usize,
}

/// The line being read, as much of it as is kept.
#[derive(Debug, Clone)]
struct Line {
    /// What lies before `bytes`.
    left: Edge,
    bytes: Vec<u8>,
    /// Longer than [`LINE_LIMIT`]: `bytes` is its latest window.
    windowed: bool,
}

impl Line {
    fn new(left: Edge) -> Line {
        Line {
            left,
            bytes: Vec::new(),
            windowed: false,
        }
    }
}

/// Watches one stream of output for texts and patterns. Feed it every byte
/// ([`Watch::feed`]), then ask what it saw ([`Watch::seen`], or
/// [`Watch::seen_then`] for two streams judged as one output).
#[derive(Debug, Clone)]
pub struct Watch {
    texts: Vec<(String, bool)>,
    patterns: Vec<(Pattern, bool)>,
    /// The longest text's length minus one: the overlap kept between reads.
    reach: usize,
    /// The first `reach` bytes (where a text split across the end of the
    /// stream before this one would continue).
    head: Vec<u8>,
    /// The last `reach` bytes.
    overlap: Vec<u8>,
    /// The line being read (after the last `\n`).
    line: Line,
    /// When what lies before this stream is not known (the second of two
    /// streams): the start of its first line, for [`Watch::seen_then`].
    first: Option<Vec<u8>>,
    /// The first line grew past [`LINE_LIMIT`]: `first` holds its start only.
    first_cut: bool,
    /// The last complete line, for a check that drops the output's final
    /// line break (`strip_final_newline`).
    last: Option<Line>,
    /// The last [`CONTEXT_LIMIT`] bytes before `line` (complete lines, the
    /// first maybe cut), searched again with what follows while a pattern
    /// that can span lines is not found.
    carry: Vec<u8>,
    /// What lies before `carry`.
    carry_left: Edge,
    /// `last` ends with `\r` and was searched without it.
    cr_pending: bool,
    limits: Limits,
    newlines: u64,
    bytes: u64,
    windowed_lines: u64,
    strip_final_newline: bool,
}

/// What a [`Watch`] saw of the whole output.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Seen {
    /// Each text, and whether the output holds it.
    pub texts: Vec<(String, bool)>,
    /// Each pattern as written, and whether it matched.
    pub patterns: Vec<(String, bool)>,
    /// Lines longer than [`LINE_LIMIT`], searched in windows.
    pub windowed_lines: u64,
    /// How many bytes were watched.
    pub bytes: u64,
}

impl Watch {
    /// A watch for `texts` and `patterns` on output that starts here.
    pub fn new(texts: &[String], patterns: Vec<Pattern>) -> Watch {
        let reach = texts.iter().map(String::len).max().unwrap_or(1).max(1) - 1;
        Watch {
            texts: texts.iter().map(|text| (text.clone(), false)).collect(),
            patterns: patterns.into_iter().map(|p| (p, false)).collect(),
            reach,
            head: Vec::new(),
            overlap: Vec::new(),
            line: Line::new(Edge::Text),
            first: None,
            first_cut: false,
            last: None,
            carry: Vec::new(),
            carry_left: Edge::Text,
            cr_pending: false,
            limits: Limits {
                line: LINE_LIMIT,
                context: CONTEXT_LIMIT,
            },
            newlines: 0,
            bytes: 0,
            windowed_lines: 0,
            strip_final_newline: false,
        }
    }

    /// Patterns see the output without one final line break (`\n` or
    /// `\r\n`), so that `$` without multi-line matches after the last line
    /// (a probe's `expect`, docs/drill-format.md).
    pub fn strip_final_newline(mut self) -> Watch {
        self.strip_final_newline = true;
        self
    }

    /// The same watch, fresh, for a stream that follows another one (a
    /// probe's stderr after its stdout): what lies before its first line is
    /// known only to [`Watch::seen_then`].
    pub fn following(&self) -> Watch {
        let mut watch = Watch::new(&[], Vec::new());
        watch.texts = self.texts.iter().map(|(t, _)| (t.clone(), false)).collect();
        watch.patterns = self
            .patterns
            .iter()
            .map(|(p, _)| (p.clone(), false))
            .collect();
        watch.reach = self.reach;
        watch.strip_final_newline = self.strip_final_newline;
        watch.limits = self.limits;
        watch.line = Line::new(Edge::Cut);
        watch.first = Some(Vec::new());
        watch
    }

    /// Whether everything it looks for has been found: the rest of the
    /// output need not be searched.
    fn done(&self) -> bool {
        self.texts.iter().all(|(_, found)| *found) && self.patterns.iter().all(|(_, found)| *found)
    }

    /// Takes the next bytes of the stream.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.bytes += bytes.len() as u64;
        if self.done() {
            return;
        }
        self.feed_texts(bytes);
        if self.patterns.iter().any(|(_, found)| !*found) {
            self.feed_lines(bytes);
        }
    }

    fn feed_texts(&mut self, bytes: &[u8]) {
        if self.head.len() < self.reach {
            let n = (self.reach - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..n]);
        }
        if self.texts.iter().all(|(_, found)| *found) {
            return;
        }
        // The overlap and the new bytes: a text split across reads lies
        // whole in them.
        let mut hay = std::mem::take(&mut self.overlap);
        hay.extend_from_slice(bytes);
        for (text, found) in &mut self.texts {
            if !*found {
                *found = memchr::memmem::find(&hay, text.as_bytes()).is_some();
            }
        }
        let keep = hay.len().min(self.reach);
        hay.drain(..hay.len() - keep);
        self.overlap = hay;
    }

    fn feed_lines(&mut self, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.more_output();
        }
        if self.newlines == 0
            && let Some(first) = &mut self.first
        {
            let end = memchr::memchr(b'\n', bytes).unwrap_or(bytes.len());
            let room = self.limits.line.saturating_sub(first.len());
            first.extend_from_slice(&bytes[..end.min(room)]);
            self.first_cut |= end > room;
        }
        let Some(end) = memchr::memrchr(b'\n', bytes) else {
            self.extend_line(bytes);
            return;
        };
        // Every line up to the last line break is complete: search them at
        // once, from the lines kept as context on.
        let line = std::mem::replace(&mut self.line, Line::new(Edge::Newline));
        let (left, mut region) = if self.carry.is_empty() {
            (line.left, line.bytes)
        } else {
            let mut region = std::mem::take(&mut self.carry);
            region.extend_from_slice(&line.bytes);
            (self.carry_left, region)
        };
        region.extend_from_slice(&bytes[..end]);
        // If this is the output's last line, `\r\n` is its ending, not part
        // of it: the `\r` is context until more output comes.
        let cr_pending = self.strip_final_newline && region.last() == Some(&b'\r');
        let right = if cr_pending { Edge::Cut } else { Edge::Newline };
        self.search(left, &region, right);
        self.newlines += memchr::memchr_iter(b'\n', &bytes[..=end]).count() as u64;
        if self.strip_final_newline {
            self.last = Some(match memchr::memrchr(b'\n', &region) {
                Some(at) => Line {
                    left: Edge::Newline,
                    bytes: region[at + 1..].to_vec(),
                    windowed: false,
                },
                None => Line {
                    left,
                    bytes: region.clone(),
                    windowed: line.windowed,
                },
            });
        }
        self.cr_pending = cr_pending;
        if end + 1 < bytes.len() {
            self.more_output();
        }
        if self
            .patterns
            .iter()
            .any(|(p, found)| !found && p.spans_lines)
        {
            // The end of what was searched stays as context, so that a match
            // across lines is found wherever the reads were cut.
            region.push(b'\n');
            let mut start = region.len().saturating_sub(self.limits.context);
            while start > 0 && start < region.len() && is_continuation(region[start]) {
                start += 1;
            }
            self.carry_left = if start == 0 { left } else { Edge::Cut };
            region.drain(..start);
            self.carry = region;
        }
        self.extend_line(&bytes[end + 1..]);
    }

    /// After a line break that may have ended the output, more output: the
    /// line before it was not the last one, and its `\r` is its own.
    fn more_output(&mut self) {
        if !std::mem::take(&mut self.cr_pending) {
            return;
        }
        if let Some(last) = self.last.take() {
            self.search(last.left, &last.bytes, Edge::Newline);
            self.last = Some(last);
        }
    }

    /// Adds to the line being read; past [`LINE_LIMIT`], searches what it
    /// holds and keeps its last half, the character before it as context.
    fn extend_line(&mut self, bytes: &[u8]) {
        self.line.bytes.extend_from_slice(bytes);
        if self.line.bytes.len() <= self.limits.line {
            return;
        }
        if !self.line.windowed {
            self.windowed_lines += 1;
        }
        // The window has its own context.
        self.carry.clear();
        let line = std::mem::replace(
            &mut self.line,
            Line {
                left: Edge::Cut,
                bytes: Vec::new(),
                windowed: true,
            },
        );
        self.search(line.left, &line.bytes, Edge::Cut);
        // The window starts on a character boundary, one character before
        // the half that is kept (that character is its context).
        let mut start = line.bytes.len() - self.limits.line / 2;
        while start > 0 && is_continuation(line.bytes[start]) {
            start -= 1;
        }
        start = start.saturating_sub(1);
        while start > 0 && is_continuation(line.bytes[start]) {
            start -= 1;
        }
        self.line.bytes = line.bytes[start..].to_vec();
    }

    fn search(&mut self, left: Edge, text: &[u8], right: Edge) {
        for (pattern, found) in &mut self.patterns {
            if !*found {
                *found = pattern.found_in(left, text, right);
            }
        }
    }

    /// Whether the stream ended with a line break.
    fn ends_with_newline(&self) -> bool {
        self.newlines > 0 && self.line.bytes.is_empty()
    }

    /// The end of the stream as one piece: the lines kept as context, then
    /// the line being read.
    fn tail(&self) -> (Edge, Vec<u8>) {
        if self.carry.is_empty() {
            (self.line.left, self.line.bytes.clone())
        } else {
            (
                self.carry_left,
                [&self.carry[..], &self.line.bytes].concat(),
            )
        }
    }

    /// The pieces that end the output, to search against its end.
    fn ending(&self, pieces: &mut Vec<(Edge, Vec<u8>, Edge)>) {
        if self.strip_final_newline && self.ends_with_newline() {
            if let Some(last) = &self.last {
                pieces.push((last.left, without_cr(&last.bytes).to_vec(), Edge::Text));
            }
            if let Some(lines) = self.carry.strip_suffix(b"\n") {
                pieces.push((self.carry_left, without_cr(lines).to_vec(), Edge::Text));
            }
        } else {
            let (left, bytes) = self.tail();
            pieces.push((left, bytes, Edge::Text));
        }
    }

    /// What it saw, the stream being the whole output.
    pub fn seen(&self) -> Seen {
        let mut pieces = Vec::new();
        self.ending(&mut pieces);
        let texts = self.texts.iter().map(|(_, found)| *found).collect();
        let patterns = self.patterns.iter().map(|(_, found)| *found).collect();
        self.judged(texts, patterns, &pieces, self.windowed_lines, self.bytes)
    }

    /// What it saw with `next` (made by [`Watch::following`]), the stream
    /// that followed this one, as one output: this stream's last line and
    /// `next`'s first are one line, and a text may be split between them.
    pub fn seen_then(&self, next: &Watch) -> Seen {
        if next.bytes == 0 {
            return self.seen();
        }
        let texts = self
            .texts
            .iter()
            .zip(&next.texts)
            .map(|((text, before), (_, after))| {
                let mut joint = self.overlap.clone();
                joint.extend_from_slice(&next.head);
                *before || *after || memchr::memmem::find(&joint, text.as_bytes()).is_some()
            })
            .collect();
        let patterns = self
            .patterns
            .iter()
            .zip(&next.patterns)
            .map(|((_, before), (_, after))| *before || *after)
            .collect();
        // Where the streams meet: the end of this one and `next`'s first
        // line, whole when both parts are.
        let (left, mut joint) = self.tail();
        joint.extend_from_slice(next.first.as_deref().unwrap_or_default());
        let stripped = self.strip_final_newline && next.ends_with_newline();
        let right = if next.first_cut {
            Edge::Cut
        } else if next.newlines == 0 {
            Edge::Text
        } else if stripped && next.newlines == 1 {
            if joint.last() == Some(&b'\r') {
                joint.pop();
            }
            Edge::Text
        } else {
            Edge::Newline
        };
        let mut pieces = vec![(left, joint, right)];
        if self.cr_pending
            && let Some(last) = &self.last
        {
            pieces.push((last.left, last.bytes.clone(), Edge::Newline));
        }
        if next.newlines > 0 {
            next.ending(&mut pieces);
        }
        self.judged(
            texts,
            patterns,
            &pieces,
            self.windowed_lines + next.windowed_lines,
            self.bytes + next.bytes,
        )
    }

    /// The verdict, once the pieces no read held whole are searched.
    fn judged(
        &self,
        texts: Vec<bool>,
        mut patterns: Vec<bool>,
        pieces: &[(Edge, Vec<u8>, Edge)],
        windowed_lines: u64,
        bytes: u64,
    ) -> Seen {
        for ((pattern, _), found) in self.patterns.iter().zip(&mut patterns) {
            if !*found {
                *found = pieces
                    .iter()
                    .any(|(left, text, right)| pattern.found_in(*left, text, *right));
            }
        }
        Seen {
            texts: self
                .texts
                .iter()
                .zip(texts)
                .map(|((text, _), found)| (text.clone(), found))
                .collect(),
            patterns: self
                .patterns
                .iter()
                .zip(patterns)
                .map(|((pattern, _), found)| (pattern.source.clone(), found))
                .collect(),
            windowed_lines,
            bytes,
        }
    }
}

/// A line without the `\r` of a `\r\n` ending.
fn without_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn is_continuation(byte: u8) -> bool {
    byte & 0xC0 == 0x80
}

/// What a command printed, as the text checks judge it: what was kept of
/// it, how much of it was not kept, and what a [`Watch`] saw of all of it.
#[derive(Debug, Clone, Copy)]
pub struct Printed<'a> {
    /// What was kept, in order: one piece, or where output was dropped, the
    /// pieces around each gap (a capped log's head and tail; a probe's
    /// stdout and stderr).
    pub kept: &'a [&'a str],
    /// Bytes of output `kept` does not hold.
    pub dropped: u64,
    /// What a watch saw of the whole output, if one watched it.
    pub seen: Option<&'a Seen>,
}

impl<'a> Printed<'a> {
    /// Output kept whole and not watched (what a test checks).
    pub fn whole(text: &'a [&'a str]) -> Printed<'a> {
        Printed {
            kept: text,
            dropped: 0,
            seen: None,
        }
    }

    /// Whether the output holds `text`. If not, what the failure adds: how
    /// much output was searched, or that the text may have been dropped.
    pub fn contains(&self, text: &str) -> Result<(), String> {
        let seen = self
            .seen
            .and_then(|seen| seen.texts.iter().find(|(t, _)| t == text));
        match seen {
            Some((_, true)) => Ok(()),
            Some((_, false)) if self.dropped > 0 => Err(format!(
                " (all {} bytes of the output were searched, as they were printed)",
                self.seen.map_or(0, |seen| seen.bytes)
            )),
            Some((_, false)) => Err(String::new()),
            None if self.kept_contains(text) => Ok(()),
            None => Err(self.dropped_note()),
        }
    }

    fn kept_contains(&self, text: &str) -> bool {
        if self.dropped == 0 {
            self.kept.concat().contains(text)
        } else {
            self.kept.iter().any(|piece| piece.contains(text))
        }
    }

    /// Whether `pattern` matches the output; `strip_final_newline` as for
    /// [`Watch::strip_final_newline`]. If not, what the failure adds: where
    /// a match could have been that no check saw.
    pub fn matches(&self, pattern: &Pattern, strip_final_newline: bool) -> Result<(), String> {
        let watched = self.seen.filter(|seen| {
            seen.patterns
                .iter()
                .any(|(source, _)| source == pattern.as_str())
        });
        let found_on_stream = watched.is_some_and(|seen| {
            seen.patterns
                .iter()
                .any(|(source, found)| *found && source == pattern.as_str())
        });
        if found_on_stream || self.kept_matches(pattern, strip_final_newline) {
            return Ok(());
        }
        let Some(seen) = watched else {
            return Err(self.dropped_note());
        };
        let mut note = String::new();
        if self.dropped > 0 && pattern.spans_lines() {
            note.push_str(&format!(
                "; every line of the output was searched, but the output was truncated ({} bytes \
                 were dropped before the check) and this pattern can match across lines, which \
                 only the kept output shows, so a match may have been in the dropped part",
                self.dropped
            ));
        }
        if seen.windowed_lines > 0 {
            note.push_str(&format!(
                "; {} of the output's lines were longer than {} KiB and were searched in \
                 overlapping pieces of that size, so a match longer than {} KiB in them was \
                 not seen",
                seen.windowed_lines,
                LINE_LIMIT / 1024,
                LINE_LIMIT / 2048
            ));
        }
        Err(note)
    }

    /// Whether `pattern` matches what was kept: the whole output when it was
    /// all kept, else within one piece, whose edges are then context only.
    fn kept_matches(&self, pattern: &Pattern, strip_final_newline: bool) -> bool {
        if self.dropped == 0 {
            let whole = self.kept.concat();
            let text = if strip_final_newline {
                crate::text::without_final_newline(&whole)
            } else {
                &whole
            };
            pattern.found_in(Edge::Text, text.as_bytes(), Edge::Text)
        } else {
            self.kept
                .iter()
                .any(|piece| pattern.found_in(Edge::Cut, piece.as_bytes(), Edge::Cut))
        }
    }

    /// What a failed check on output that was not watched adds when the
    /// output was cut: the expected text may have been in the dropped part.
    fn dropped_note(&self) -> String {
        if self.dropped > 0 {
            format!(
                "; the output was truncated ({} bytes were dropped before the check), so the \
                 expected text may have been in the dropped part",
                self.dropped
            )
        } else {
            String::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds `text` to `watch` cut at `cuts` (offsets, in any order).
    fn fed(mut watch: Watch, text: &[u8], cuts: &[usize]) -> Watch {
        let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut % (text.len() + 1)).collect();
        cuts.sort_unstable();
        let mut from = 0;
        for cut in cuts.into_iter().chain([text.len()]) {
            watch.feed(&text[from..cut]);
            from = cut;
        }
        watch
    }

    fn texts_found(seen: &Seen) -> Vec<bool> {
        seen.texts.iter().map(|(_, found)| *found).collect()
    }

    fn patterns_found(seen: &Seen) -> Vec<bool> {
        seen.patterns.iter().map(|(_, found)| *found).collect()
    }

    #[test]
    fn a_marker_split_across_reads_is_found_at_every_offset() {
        let marker = "MARK-é-42";
        let mut text = vec![b'x'; 100];
        text.extend_from_slice(marker.as_bytes());
        text.extend_from_slice(&[b'y'; 100]);
        let pattern = Pattern::new(r"^x+MARK-é-\d+y+$", true).unwrap();
        let watch = Watch::new(&[marker.to_owned()], vec![pattern]);
        for one in 0..=text.len() {
            let seen = fed(watch.clone(), &text, &[one]).seen();
            assert_eq!(texts_found(&seen), [true], "cut at {one}");
            assert_eq!(patterns_found(&seen), [true], "cut at {one}");
            for two in one..=text.len() {
                let seen = fed(watch.clone(), &text, &[one, two]).seen();
                assert_eq!(texts_found(&seen), [true], "cut at {one} and {two}");
            }
        }
        let bytewise = fed(watch.clone(), &text, &(0..text.len()).collect::<Vec<_>>());
        assert_eq!(texts_found(&bytewise.seen()), [true]);
        assert_eq!(patterns_found(&bytewise.seen()), [true]);
        // Absent: not found, however it is cut.
        let absent = Watch::new(&["MARK-é-43".to_owned()], Vec::new());
        for one in 0..=text.len() {
            assert_eq!(
                texts_found(&fed(absent.clone(), &text, &[one]).seen()),
                [false]
            );
        }
    }

    #[test]
    fn memory_is_bounded_by_the_texts_and_the_line_limit() {
        let mut watch = Watch::new(
            &["needle".to_owned()],
            vec![Pattern::new("^z$", true).unwrap()],
        );
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..64 {
            watch.feed(&chunk);
        }
        assert_eq!(watch.overlap.len(), 5);
        assert!(
            watch.line.bytes.len() <= LINE_LIMIT,
            "{}",
            watch.line.bytes.len()
        );
        assert_eq!(watch.windowed_lines, 1);
        let seen = watch.seen();
        assert_eq!(seen.bytes, 64 * 64 * 1024);
        assert_eq!(patterns_found(&seen), [false]);
    }

    #[test]
    fn a_long_line_is_searched_in_windows_without_inventing_edges() {
        // 1 MiB of `a`, `MARK`, 1 MiB of `b`, on one line.
        let mut text = vec![b'a'; 1 << 20];
        text.extend_from_slice(b"MARK");
        text.extend_from_slice(&vec![b'b'; 1 << 20]);
        let patterns = ["aMARKb", r"\bMARK", "^a", "b$", "^b", "a$", r"\Ab", "MARK$"]
            .map(|source| Pattern::new(source, true).unwrap());
        let watch = fed(
            Watch::new(&[], patterns.to_vec()),
            &text,
            &(1..40).map(|i| i * 54_321).collect::<Vec<_>>(),
        );
        let seen = watch.seen();
        assert_eq!(
            patterns_found(&seen),
            [true, false, true, true, false, false, false, false]
        );
        assert_eq!(seen.windowed_lines, 1);
    }

    const LINE_PATTERNS: [&str; 12] = [
        "a", "ab", "^a", "a$", "^$", r"\bab\b", r"\Aa", r"b\z", "^b+a$", "é", r"\Bb", ".a.",
    ];
    const CROSS_PATTERNS: [&str; 5] = [r"a\nb", r"b\s+a", "(?s)a.b", r"a\n\z", "[^x]{3}"];

    fn patterns(multi_line: bool) -> Vec<Pattern> {
        let patterns: Vec<Pattern> = LINE_PATTERNS
            .iter()
            .chain(&CROSS_PATTERNS)
            .map(|source| Pattern::new(source, multi_line).unwrap())
            .collect();
        for (index, pattern) in patterns.iter().enumerate() {
            assert_eq!(
                pattern.spans_lines(),
                index >= LINE_PATTERNS.len(),
                "{}",
                pattern.as_str()
            );
        }
        patterns
    }

    const TEXTS: [&str; 4] = ["ab", "a\nb", "éa", "\r\n"];

    /// A watch for every test text and pattern.
    fn watching_all(multi_line: bool, strip: bool) -> Watch {
        let texts: Vec<String> = TEXTS.iter().map(|t| t.to_string()).collect();
        let watch = Watch::new(&texts, patterns(multi_line));
        if strip {
            watch.strip_final_newline()
        } else {
            watch
        }
    }

    fn output() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop::sample::select(vec![b'a', b'b', b'\n', b'\r', b' ', 0xC3, 0xA9]),
            0..40,
        )
    }

    /// What the checks say on the whole text, as `regex` and `str` see it.
    fn expected(text: &[u8], multi_line: bool, strip: bool) -> (Vec<bool>, Vec<bool>) {
        let whole = String::from_utf8_lossy(text);
        let judged = if strip {
            crate::text::without_final_newline(&whole)
        } else {
            &whole
        };
        let texts = TEXTS.iter().map(|t| whole.contains(t)).collect();
        let patterns = LINE_PATTERNS
            .iter()
            .chain(&CROSS_PATTERNS)
            .map(|source| {
                regex::RegexBuilder::new(source)
                    .multi_line(multi_line)
                    .build()
                    .unwrap()
                    .is_match(judged)
            })
            .collect();
        (texts, patterns)
    }

    /// Texts are found exactly; a pattern that cannot span lines is matched
    /// exactly; one that can is never matched where the whole text has no
    /// match, and in one stream shorter than [`CONTEXT_LIMIT`] exactly.
    fn agrees(
        seen: &Seen,
        texts: &[bool],
        patterns: &[bool],
        one_stream: bool,
    ) -> Result<(), TestCaseError> {
        prop_assert_eq!(texts_found(seen), texts.to_vec());
        let found = patterns_found(seen);
        let lines = LINE_PATTERNS.len();
        let exact = if one_stream { found.len() } else { lines };
        prop_assert_eq!(&found[..exact], &patterns[..exact]);
        for (index, (found, whole)) in found.iter().zip(patterns).enumerate().skip(lines) {
            prop_assert!(
                !found || *whole,
                "{} found but not in the whole text",
                CROSS_PATTERNS[index - lines]
            );
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn one_stream_agrees_with_the_whole_text(
            text in output(),
            cuts in proptest::collection::vec(0usize..64, 0..6),
            multi_line in any::<bool>(),
            strip in any::<bool>(),
        ) {
            let watch = watching_all(multi_line, strip);
            let seen = fed(watch, &text, &cuts).seen();
            let (texts, patterns) = expected(&text, multi_line, strip);
            agrees(&seen, &texts, &patterns, true)?;
        }

        #[test]
        fn two_streams_agree_with_their_concatenation(
            first in output(),
            second in output(),
            cuts in proptest::collection::vec(0usize..64, 0..4),
            multi_line in any::<bool>(),
            strip in any::<bool>(),
        ) {
            let watch = watching_all(multi_line, strip);
            let following = fed(watch.following(), &second, &cuts);
            let seen = fed(watch, &first, &cuts).seen_then(&following);
            let (texts, patterns) = expected(&[first, second].concat(), multi_line, strip);
            agrees(&seen, &texts, &patterns, false)?;
        }
    }

    proptest! {
        /// With tiny limits every line is windowed and every context cut:
        /// nothing is found that the whole text does not hold, and lines
        /// within the limit are still searched exactly.
        #[test]
        fn cut_lines_and_context_never_invent_a_match(
            first in output(),
            second in output(),
            cuts in proptest::collection::vec(0usize..64, 0..6),
            multi_line in any::<bool>(),
            strip in any::<bool>(),
            line in 2usize..12,
            context in 1usize..8,
        ) {
            let mut watch = watching_all(multi_line, strip);
            watch.limits = Limits { line, context };
            let all = [&first[..], &second[..]].concat();
            let (texts, patterns) = expected(&all, multi_line, strip);
            let seen = fed(watch.clone(), &all, &cuts).seen();
            let short_lines = all.split(|b| *b == b'\n').all(|l| l.len() <= line);
            prop_assert_eq!(texts_found(&seen), texts.clone());
            for (index, (found, whole)) in patterns_found(&seen).iter().zip(&patterns).enumerate() {
                prop_assert!(!found || *whole, "pattern {} found but not in the whole text", index);
                if short_lines && index < LINE_PATTERNS.len() {
                    prop_assert_eq!(found, whole, "pattern {}", index);
                }
            }
            let following = fed(watch.following(), &second, &cuts);
            let seen = fed(watch, &first, &cuts).seen_then(&following);
            prop_assert_eq!(texts_found(&seen), texts);
            for (index, (found, whole)) in patterns_found(&seen).iter().zip(&patterns).enumerate() {
                prop_assert!(!found || *whole, "pattern {} found in two streams but not in the whole text", index);
            }
        }
    }

    #[test]
    fn kept_output_decides_what_the_stream_cannot() {
        let across = Pattern::new(r"all\nfine", true).unwrap();
        let mut watch = Watch::new(&["all".to_owned()], vec![across.clone()]);
        watch.feed(b"all\nfine\n");
        let seen = watch.seen();
        assert_eq!(patterns_found(&seen), [true], "one read held both lines");
        let mut watch = Watch::new(&["all".to_owned()], vec![across.clone()]);
        watch.feed(b"all\n");
        watch.feed(b"fine\n");
        assert_eq!(
            patterns_found(&watch.seen()),
            [true],
            "the first line was kept as context"
        );
        let far = Pattern::new(r"all\n+fine", true).unwrap();
        let mut watch = Watch::new(&["all".to_owned()], vec![far.clone()]);
        watch.feed(b"all\n");
        watch.feed(&vec![b'\n'; CONTEXT_LIMIT]);
        watch.feed(b"fine\n");
        let seen = watch.seen();
        assert_eq!(
            patterns_found(&seen),
            [false],
            "no read held the match, too long to keep"
        );
        // In the kept output whole.
        let kept = ["all\nfine\n"];
        let printed = Printed {
            kept: &kept,
            dropped: 0,
            seen: Some(&seen),
        };
        assert_eq!(printed.matches(&far, false), Ok(()));
        // Cut: the kept pieces do not hold it, and the failure says why.
        let kept = ["al", "ne\n"];
        let printed = Printed {
            kept: &kept,
            dropped: 5,
            seen: Some(&seen),
        };
        assert!(
            printed
                .matches(&far, false)
                .unwrap_err()
                .contains("this pattern can match across lines"),
        );
        assert_eq!(printed.contains("all"), Ok(()));
        assert!(
            printed
                .contains("none")
                .unwrap_err()
                .contains("may have been in the dropped part"),
            "a text it was not told to watch is only looked for in the kept output"
        );
        let mut watch = Watch::new(&["none".to_owned()], Vec::new());
        watch.feed(b"all\nfine\n");
        let seen = watch.seen();
        let printed = Printed {
            seen: Some(&seen),
            ..printed
        };
        assert_eq!(
            printed.contains("none"),
            Err(" (all 9 bytes of the output were searched, as they were printed)".to_owned())
        );
    }

    #[test]
    fn an_invalid_byte_at_the_start_is_output_too() {
        let pattern = Pattern::new(r"a\n\z", false).unwrap();
        let seen = fed(Watch::new(&[], vec![pattern]), &[0xA9, b'a', b'\n'], &[]).seen();
        assert_eq!(patterns_found(&seen), [true]);
    }

    #[test]
    fn a_carriage_return_is_the_lines_own_when_output_follows() {
        // `.a.` matches `aa\r`: that `\r\n` is not the output's end.
        let pattern = Pattern::new(".a.", false).unwrap();
        let mut watch = Watch::new(&[], vec![pattern.clone()]).strip_final_newline();
        watch.limits = Limits {
            line: 3,
            context: 1,
        };
        assert_eq!(
            patterns_found(&fed(watch.clone(), b"aa\r\na", &[]).seen()),
            [true]
        );
        assert_eq!(
            patterns_found(&fed(watch.clone(), b"aa\r\na", &[4]).seen()),
            [true]
        );
        // It is the end: the `\r` goes with the final line break.
        assert_eq!(patterns_found(&fed(watch, b"aa\r\n", &[]).seen()), [false]);
    }

    #[test]
    fn a_character_cut_at_an_edge_is_context_only() {
        let word = Pattern::new(r"\bab\b", false).unwrap();
        // `é` split between two streams: `ab` is not a word after it.
        let first = fed(Watch::new(&[], vec![word.clone()]), &[0xC3], &[]);
        let second = fed(first.following(), &[0xA9, b'a', b'b', b'\n', b'a'], &[]);
        assert_eq!(patterns_found(&first.seen_then(&second)), [false]);
        assert!(!word.found_in(Edge::Cut, &[0xA9, b'a', b'b'], Edge::Text));
        assert!(!word.found_in(Edge::Text, &[b'a', b'b', 0xC3], Edge::Cut));
        assert!(word.found_in(Edge::Text, &[b'a', b'b', b' ', 0xC3], Edge::Cut));
    }

    #[test]
    fn search_edges_are_context_only() {
        let word = Pattern::new(r"\bab\b", true).unwrap();
        assert!(word.found_in(Edge::Text, b"ab", Edge::Text));
        assert!(word.found_in(Edge::Newline, b"ab", Edge::Newline));
        assert!(!word.found_in(Edge::Cut, b"xab ", Edge::Cut));
        assert!(word.found_in(Edge::Cut, b" ab ", Edge::Cut));
        assert!(
            !word.found_in(Edge::Cut, b"ab ", Edge::Cut),
            "`a` is context only"
        );
        let start = Pattern::new(r"\Aab", true).unwrap();
        assert!(!start.found_in(Edge::Newline, b"ab", Edge::Text));
        assert!(start.found_in(Edge::Text, b"ab", Edge::Text));
        assert!(Pattern::new("é$", false).unwrap().found_in(
            Edge::Cut,
            "aé".as_bytes(),
            Edge::Text
        ));
    }
}
