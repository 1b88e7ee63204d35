//! Markdown → sections. One pass over pulldown-cmark's events with byte offsets;
//! everything the lint needs beyond the public [`Runbook`] (code line ranges,
//! links, the text before the first step) is kept in [`Document`].

use std::path::Path;

use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};

use super::fence::{parse_attrs, split_info};
use super::{CodeBlock, FenceAttrs, Runbook, RunbookError, RunbookStep, SHELL_LANGUAGES};
use crate::diagnostic::LineIndex;

/// A runbook as parsed, with what the lint needs to point at exact lines.
pub(crate) struct Document {
    pub title: Option<String>,
    pub sections: Vec<Section>,
    pub errors: Vec<RunbookError>,
}

/// The text from one heading to the next (or, for the first section, from the
/// start of the file to the first heading).
pub(crate) struct Section {
    pub heading: Option<Heading>,
    /// False for the title's section and for text before the first heading.
    pub is_step: bool,
    /// First and last line (1-based, inclusive); the first is the heading's.
    pub start_line: usize,
    pub end_line: usize,
    /// Shell blocks, in order.
    pub blocks: Vec<CodeBlock>,
    /// Line ranges (inclusive, fences included) of every fenced code block, any language.
    pub code_lines: Vec<(usize, usize)>,
    /// Link and image destinations with their line.
    pub links: Vec<(usize, String)>,
    pub prose: String,
    pub body: String,
    body_start: usize,
}

pub(crate) struct Heading {
    pub title: String,
    pub line: usize,
    pub level: u8,
}

impl Section {
    fn new(heading: Option<Heading>, start_line: usize, body_start: usize) -> Self {
        Section {
            heading,
            is_step: false,
            start_line,
            end_line: start_line,
            blocks: Vec::new(),
            code_lines: Vec::new(),
            links: Vec::new(),
            prose: String::new(),
            body: String::new(),
            body_start,
        }
    }

    /// Whether `line` lies in a fenced code block of this section.
    pub fn in_code(&self, line: usize) -> bool {
        self.code_lines
            .iter()
            .any(|(first, last)| (*first..=*last).contains(&line))
    }
}

struct OpenCode {
    start: usize,
    /// `None` for an indented code block, which has no language and so never runs.
    info: Option<String>,
    code: String,
}

impl Document {
    pub fn parse(path: &Path, text: &str) -> Document {
        let lines = LineIndex::new(text);
        let options = Options::ENABLE_TABLES
            | Options::ENABLE_STRIKETHROUGH
            | Options::ENABLE_TASKLISTS
            // Front matter would otherwise read as a thematic break and a setext heading.
            | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS;
        let mut document = Document {
            title: None,
            sections: vec![Section::new(None, 1, 0)],
            errors: Vec::new(),
        };
        let mut heading: Option<(u8, usize, String)> = None;
        let mut code: Option<OpenCode> = None;
        let mut in_metadata = false;

        for (event, range) in Parser::new_ext(text, options).into_offset_iter() {
            match event {
                Event::Start(Tag::Heading { level, .. }) => {
                    document.close_last(text, &lines, range.start);
                    let line = lines.line_of(range.start);
                    document
                        .sections
                        .push(Section::new(None, line, range.start));
                    heading = Some((level as u8, line, String::new()));
                }
                Event::End(TagEnd::Heading(_)) => {
                    if let (Some((level, line, title)), Some(section)) =
                        (heading.take(), document.sections.last_mut())
                    {
                        let title = title.split_whitespace().collect::<Vec<_>>().join(" ");
                        if level == 1 && document.title.is_none() {
                            document.title = Some(title.clone());
                        } else {
                            section.is_step = true;
                        }
                        section.heading = Some(Heading { title, line, level });
                        section.body_start = range.end;
                    }
                }
                Event::Start(Tag::MetadataBlock(_)) => in_metadata = true,
                Event::End(TagEnd::MetadataBlock(_)) => in_metadata = false,
                Event::Start(Tag::CodeBlock(kind)) => {
                    code = Some(OpenCode {
                        start: range.start,
                        info: match kind {
                            CodeBlockKind::Fenced(info) => Some(info.to_string()),
                            CodeBlockKind::Indented => None,
                        },
                        code: String::new(),
                    });
                }
                Event::End(TagEnd::CodeBlock) => {
                    if let Some(open) = code.take() {
                        document.close_code(path, &lines, open, range.end);
                    }
                }
                Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) => {
                    if let Some(section) = document.sections.last_mut() {
                        section
                            .links
                            .push((lines.line_of(range.start), dest_url.to_string()));
                    }
                }
                // Front matter is metadata, not something a person reads as a step.
                Event::Text(_) if in_metadata => {}
                Event::Text(text) | Event::Code(text) | Event::InlineHtml(text) => {
                    if let Some(open) = code.as_mut() {
                        open.code.push_str(&text);
                    } else if let Some((_, _, title)) = heading.as_mut() {
                        title.push_str(&text);
                    } else {
                        document.push_prose(&text);
                    }
                }
                Event::SoftBreak | Event::HardBreak => {
                    if let Some((_, _, title)) = heading.as_mut() {
                        title.push(' ');
                    } else {
                        document.push_prose("\n");
                    }
                }
                Event::Start(Tag::Item) => document.push_prose("- "),
                Event::TaskListMarker(done) => {
                    document.push_prose(if done { "[x] " } else { "[ ] " })
                }
                Event::End(TagEnd::Paragraph) => document.push_prose("\n\n"),
                Event::End(TagEnd::Item | TagEnd::TableRow | TagEnd::TableHead) => {
                    document.push_prose("\n")
                }
                Event::End(TagEnd::TableCell) => document.push_prose(" | "),
                _ => {}
            }
        }
        document.close_last(text, &lines, text.len());
        if let Some(last) = document.sections.last_mut() {
            last.end_line = lines
                .line_of(text.len().saturating_sub(1))
                .max(last.start_line);
        }
        for section in &mut document.sections {
            section.prose = tidy_prose(&section.prose);
        }
        document
    }

    /// Ends the last section where the next one begins.
    fn close_last(&mut self, text: &str, lines: &LineIndex, next_start: usize) {
        if let Some(last) = self.sections.last_mut() {
            last.end_line = lines
                .line_of(next_start)
                .saturating_sub(1)
                .max(last.start_line);
            last.body = text
                .get(last.body_start..next_start)
                .unwrap_or("")
                .trim_matches(['\n', '\r'])
                .to_string();
        }
    }

    fn close_code(&mut self, path: &Path, lines: &LineIndex, open: OpenCode, end: usize) {
        let Some(section) = self.sections.last_mut() else {
            return;
        };
        let line = lines.line_of(open.start);
        section
            .code_lines
            .push((line, lines.line_of(end.saturating_sub(1)).max(line)));
        let Some(info) = open.info else { return };
        let (lang, rest) = split_info(&info);
        if !SHELL_LANGUAGES.contains(&lang) {
            return;
        }
        let attrs = match parse_attrs(rest) {
            Ok(attrs) => attrs,
            Err(messages) => {
                self.errors
                    .extend(messages.into_iter().map(|message| RunbookError {
                        path: path.to_path_buf(),
                        line: Some(line),
                        message,
                    }));
                FenceAttrs::default()
            }
        };
        section.blocks.push(CodeBlock {
            line,
            lang: lang.to_string(),
            code: open.code,
            attrs,
        });
    }

    fn push_prose(&mut self, text: &str) {
        if let Some(section) = self.sections.last_mut() {
            section.prose.push_str(text);
        }
    }

    /// The public view: the title and the step sections.
    pub fn runbook(&self, path: &Path) -> Runbook {
        let steps = self
            .sections
            .iter()
            .filter(|section| section.is_step)
            .filter_map(|section| {
                let heading = section.heading.as_ref()?;
                Some(RunbookStep {
                    title: heading.title.clone(),
                    line: heading.line,
                    level: heading.level,
                    blocks: section.blocks.clone(),
                    prose: section.prose.clone(),
                    body: section.body.clone(),
                })
            })
            .collect();
        Runbook {
            path: path.to_path_buf(),
            title: self.title.clone(),
            steps,
        }
    }
}

/// Trims each line's end and collapses runs of blank lines, so prose reads cleanly
/// in a terminal or report.
fn tidy_prose(prose: &str) -> String {
    let mut tidy = String::new();
    let mut blank = false;
    for line in prose.lines().map(str::trim_end) {
        if line.is_empty() {
            blank = !tidy.is_empty();
            continue;
        }
        if blank {
            tidy.push('\n');
            blank = false;
        }
        if !tidy.is_empty() {
            tidy.push('\n');
        }
        tidy.push_str(line);
    }
    tidy
}
