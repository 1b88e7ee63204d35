//! Just enough shell reading for runbooks: console transcripts, heredocs, quotes,
//! comments, variable uses and assignments. This is not a shell parser; it errs on
//! the side of staying quiet, because a lint that cries wolf gets switched off.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::Regex;

use super::ScriptLine;

/// A heredoc opened on a command line: its body runs until a line equal to `delimiter`.
struct Heredoc {
    delimiter: String,
    /// `<<'EOF'` and `<<"EOF"` bodies are literal: no `$` expansion.
    quoted: bool,
    /// `<<-EOF` allows the terminator (and body) to be indented with tabs.
    strip_tabs: bool,
}

static HEREDOC: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"<<(-?)[ \t]*(['"]?)([A-Za-z_][A-Za-z0-9_]*)"#).expect("constant regex")
});

/// The first heredoc opened on `line`, ignoring `<<<` here-strings.
fn heredoc_start(line: &str) -> Option<Heredoc> {
    HEREDOC.captures_iter(line).find_map(|captures| {
        let whole = captures.get(0)?;
        if line[..whole.start()].ends_with('<') {
            return None;
        }
        Some(Heredoc {
            delimiter: captures.get(3)?.as_str().to_string(),
            quoted: captures.get(2).is_some_and(|q| !q.as_str().is_empty()),
            strip_tabs: captures.get(1).is_some_and(|d| !d.as_str().is_empty()),
        })
    })
}

fn ends_heredoc(line: &str, heredoc: &Heredoc) -> bool {
    let line = if heredoc.strip_tabs {
        line.trim_start_matches('\t')
    } else {
        line
    };
    line.trim_end() == heredoc.delimiter
}

/// A line is continued on the next one when it ends with an unescaped backslash.
fn continues(line: &str) -> bool {
    let trailing = line.len() - line.trim_end_matches('\\').len();
    trailing % 2 == 1
}

/// The lines a `console` block runs: `$ ` (user) and `# ` (root) prompts are
/// stripped, `\` continuations and heredoc bodies belong to the command that
/// opened them, and everything else is expected output, which is not run.
///
/// `# ` is read as a prompt, as in any terminal transcript; a person writing a
/// remark in a `console` block writes it as prose outside the block, or as output.
pub(crate) fn console_commands(fence_line: usize, code: &str) -> Vec<ScriptLine> {
    let mut commands = Vec::new();
    let mut continued = false;
    let mut heredoc: Option<Heredoc> = None;
    for (index, raw) in code.lines().enumerate() {
        let line = fence_line + 1 + index;
        if let Some(open) = &heredoc {
            if ends_heredoc(raw, open) {
                heredoc = None;
            }
            commands.push(ScriptLine::new(line, raw));
            continue;
        }
        let command = if continued {
            Some(raw)
        } else if raw == "$" || raw == "#" {
            Some("")
        } else {
            strip_prompt(raw)
        };
        let Some(command) = command else { continue };
        continued = continues(command);
        heredoc = heredoc_start(command);
        commands.push(ScriptLine::new(line, command));
    }
    commands
}

/// The command after a `$ ` or `# ` prompt, or `None` for an output line.
pub(crate) fn strip_prompt(line: &str) -> Option<&str> {
    line.strip_prefix("$ ").or_else(|| line.strip_prefix("# "))
}

/// A line of shell code as the lint sees it.
pub(crate) struct ShellLine<'a> {
    pub line: usize,
    pub text: &'a str,
    /// `Some(quoted)` when the line is the body (or terminator) of a heredoc.
    pub heredoc: Option<bool>,
}

/// Marks which lines are heredoc bodies, so that their text is not mistaken for commands.
pub(crate) fn shell_view(lines: &[ScriptLine]) -> Vec<ShellLine<'_>> {
    let mut view = Vec::with_capacity(lines.len());
    let mut heredoc: Option<Heredoc> = None;
    for script_line in lines {
        let text = script_line.text.as_str();
        if let Some(open) = &heredoc {
            view.push(ShellLine {
                line: script_line.line,
                text,
                heredoc: Some(open.quoted),
            });
            if ends_heredoc(text, open) {
                heredoc = None;
            }
            continue;
        }
        heredoc = heredoc_start(text);
        view.push(ShellLine {
            line: script_line.line,
            text,
            heredoc: None,
        });
    }
    view
}

/// Names from the environment every shell has, which a runbook may use freely.
pub(crate) const COMMON_ENV: [&str; 36] = [
    "HOME",
    "PATH",
    "USER",
    "LOGNAME",
    "PWD",
    "OLDPWD",
    "SHELL",
    "TMPDIR",
    "LANG",
    "LC_ALL",
    "TERM",
    "HOSTNAME",
    "UID",
    "EUID",
    "PPID",
    "RANDOM",
    "LINENO",
    "SECONDS",
    "IFS",
    "REPLY",
    "OPTARG",
    "OPTIND",
    "PIPESTATUS",
    "FIREDRILL_OUTPUT",
    "BASH_SOURCE",
    "BASH_VERSION",
    "BASHPID",
    "FUNCNAME",
    "HOSTTYPE",
    "OSTYPE",
    "MACHTYPE",
    "COLUMNS",
    "LINES",
    "EDITOR",
    "PAGER",
    "XDG_RUNTIME_DIR",
];

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every `$NAME` and `${NAME}` the shell would expand, with its line.
///
/// Skipped on purpose: single-quoted text (awk's `'{print $NF}'`), escaped `\$`,
/// comments, quoted heredoc bodies, shell specials (`$?`, `$1`, `$@` ...: they do
/// not start with a letter), and `${NAME:-default}`-style uses that cope with an
/// unset variable by design.
pub(crate) fn variable_uses(view: &[ShellLine]) -> Vec<(usize, String)> {
    let mut uses = Vec::new();
    let mut in_single = false;
    let mut in_double = false;
    for shell_line in view {
        match shell_line.heredoc {
            Some(true) => continue,
            Some(false) => {
                // An unquoted heredoc body expands `$` but has no quoting of its own.
                scan_line(shell_line, &mut false, &mut false, false, &mut uses);
            }
            None => scan_line(shell_line, &mut in_single, &mut in_double, true, &mut uses),
        }
    }
    uses
}

fn scan_line(
    shell_line: &ShellLine,
    in_single: &mut bool,
    in_double: &mut bool,
    quoting: bool,
    uses: &mut Vec<(usize, String)>,
) {
    let chars: Vec<char> = shell_line.text.chars().collect();
    let mut index = 0;
    while index < chars.len() {
        let c = chars[index];
        if *in_single {
            if c == '\'' {
                *in_single = false;
            }
            index += 1;
            continue;
        }
        match c {
            '\\' => index += 1,
            '\'' if quoting && !*in_double => *in_single = true,
            '"' if quoting => *in_double = !*in_double,
            '#' if quoting
                && !*in_double
                && (index == 0 || chars[index - 1].is_whitespace() || chars[index - 1] == ';') =>
            {
                return;
            }
            '$' => {
                if let Some((name, consumed)) = variable_at(&chars[index + 1..]) {
                    if let Some(name) = name {
                        uses.push((shell_line.line, name));
                    }
                    index += consumed;
                }
            }
            _ => {}
        }
        index += 1;
    }
}

/// Reads the variable after a `$`: `Some((name, chars consumed))`, where the name is
/// `None` for a use that supplies its own default.
fn variable_at(after: &[char]) -> Option<(Option<String>, usize)> {
    match after.first() {
        Some('{') => {
            let mut index = 1;
            if after.get(index) == Some(&'#') {
                index += 1;
            }
            let start = index;
            if !after.get(index).is_some_and(|c| is_name_start(*c)) {
                return None;
            }
            while after.get(index).is_some_and(|c| is_name_char(*c)) {
                index += 1;
            }
            let name: String = after[start..index].iter().collect();
            let next = after.get(index).copied();
            let after_colon = if next == Some(':') {
                after.get(index + 1).copied()
            } else {
                next
            };
            let has_default = matches!(after_colon, Some('-' | '=' | '+'));
            Some(((!has_default).then_some(name), index))
        }
        Some(c) if is_name_start(*c) => {
            let length = after.iter().take_while(|c| is_name_char(**c)).count();
            Some((Some(after[..length].iter().collect()), length))
        }
        _ => None,
    }
}

static ASSIGNMENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?:^|[\s;&|(`"'])(?:(?:export|local|readonly|declare|typeset)\s+(?:-[A-Za-z]+\s+)*)?([A-Za-z_][A-Za-z0-9_]*)(?:\[[^\]]*\])?\+?="#,
    )
    .expect("constant regex")
});

static FOR_LOOP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[\s;&|(])(?:for|select)\s+([A-Za-z_][A-Za-z0-9_]*)\s+in\b")
        .expect("constant regex")
});

/// Whether the line sets names the lint cannot see: `source FILE`, `. FILE`,
/// `eval ...` or `set -a`. After one, any variable may be set.
pub(crate) fn sets_hidden_names(text: &str) -> bool {
    let words = shell_words(strip_comment(text));
    let mut command_start = true;
    for (index, word) in words.iter().enumerate() {
        let word = word.as_str();
        if command_start && matches!(word, "source" | "." | "eval") {
            return true;
        }
        if command_start && word == "set" && words.get(index + 1).is_some_and(|w| w == "-a") {
            return true;
        }
        command_start = matches!(word, ";" | "&" | "|")
            || COMMAND_PREFIXES.contains(&word)
            || (command_start && is_assignment(word));
    }
    false
}

/// Names the script gives a value itself: `NAME=...`, `export NAME=...`,
/// `for NAME in`, `read [-r] NAME...`, and `NAME=value` lines written to
/// `$FIREDRILL_OUTPUT` (the quote before `NAME` is allowed for that reason).
pub(crate) fn assigned_names(view: &[ShellLine]) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for shell_line in view.iter().filter(|l| l.heredoc.is_none()) {
        let text = shell_line.text;
        for captures in ASSIGNMENT.captures_iter(text) {
            if let Some(name) = captures.get(1) {
                names.insert(name.as_str().to_string());
            }
        }
        for captures in FOR_LOOP.captures_iter(text) {
            if let Some(name) = captures.get(1) {
                names.insert(name.as_str().to_string());
            }
        }
        read_targets(text, &mut names);
    }
    names
}

/// `read -r -p "prompt" NAME OTHER`: the names after the options.
fn read_targets(text: &str, names: &mut BTreeSet<String>) {
    let words = shell_words(strip_comment(text));
    for (position, word) in words.iter().enumerate() {
        if word != "read" {
            continue;
        }
        let mut rest = words[position + 1..].iter();
        while let Some(word) = rest.next() {
            if let Some(flags) = word.strip_prefix('-') {
                // These options take an argument; `-a NAME` names an array to fill.
                if let Some(last) = flags.chars().last() {
                    if last == 'a' {
                        if let Some(array) = rest.next() {
                            names.insert(array.clone());
                        }
                    } else if "pdtnNu".contains(last) {
                        rest.next();
                    }
                }
                continue;
            }
            if word.chars().all(is_name_char) && word.chars().next().is_some_and(is_name_start) {
                names.insert(word.clone());
            } else {
                break;
            }
        }
    }
}

/// Splits a line into words as the shell would, keeping quoted text (quotes
/// removed) inside its word, and `;`, `&`, `|` as separate words. No expansion.
fn shell_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(open), c) if c == open => quote = None,
            (Some('"'), '\\') => {
                if let Some(next) = chars.next() {
                    word.get_or_insert_default().push(next);
                }
            }
            (Some(_), c) => word.get_or_insert_default().push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_default();
            }
            (None, '\\') => {
                if let Some(next) = chars.next() {
                    word.get_or_insert_default().push(next);
                }
            }
            (None, c) if c.is_whitespace() => words.extend(word.take()),
            // `2>&1`, `>|`: part of a redirection, not a separator.
            (None, '&' | '|') if word.as_ref().is_some_and(|w| w.ends_with(['>', '<'])) => {
                word.get_or_insert_default().push(c);
            }
            (None, ';' | '&' | '|') => {
                words.extend(word.take());
                words.push(c.to_string());
            }
            (None, c) => word.get_or_insert_default().push(c),
        }
    }
    words.extend(word);
    words
}

/// `<node>`-style placeholders: `<`, a word of letters, digits, `-` and `_` with at
/// least one letter, then `>`. A `<` right after another `<` starts a heredoc
/// (`<<EOF>`), not a placeholder.
pub(crate) fn placeholders(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let bytes = text.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'<' && (index == 0 || bytes[index - 1] != b'<') {
            let word_length = bytes[index + 1..]
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'-' || **b == b'_')
                .count();
            let close = index + 1 + word_length;
            if word_length > 0
                && bytes.get(close) == Some(&b'>')
                && bytes[index + 1..close].iter().any(u8::is_ascii_alphabetic)
            {
                // Every byte in the range is ASCII, so the slice is on char boundaries.
                found.push(&text[index..=close]);
                index = close + 1;
                continue;
            }
        }
        index += 1;
    }
    found
}

/// `TODO`, `FIXME` and `XXX` as whole words.
pub(crate) fn unfinished_markers(text: &str) -> Vec<&'static str> {
    let mut found = Vec::new();
    for word in text.split(|c: char| !c.is_alphanumeric() && c != '_') {
        for marker in ["TODO", "FIXME", "XXX"] {
            if word == marker {
                found.push(marker);
            }
        }
    }
    found
}

/// A `./` or `../` path on a command line, and whether the line surely reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathUse {
    pub path: String,
    /// True where the file must exist before the line runs: the command itself
    /// (`./restore.sh`), an input redirection, an argument of a command that only
    /// reads (`cat`, `source`, `bash`, ...), a source of `cp`/`mv`, or the value of
    /// an option such as `-f`/`--config`. Anywhere else the command may be about to
    /// create it (`snapshot save ./snap.db`, `mkdir ./backup`).
    pub read: bool,
}

/// Commands whose path arguments are all inputs.
const READERS: [&str; 14] = [
    "source",
    ".",
    "cat",
    "less",
    "more",
    "head",
    "tail",
    "bash",
    "sh",
    "zsh",
    "python",
    "python3",
    "diff",
    "sha256sum",
];

/// Options whose value is an input file.
const INPUT_OPTIONS: [&str; 7] = [
    "-f",
    "--filename",
    "--config",
    "--config-file",
    "--kubeconfig",
    "--from-file",
    "--env-file",
];

/// Words after which the next word is a command.
const COMMAND_PREFIXES: [&str; 12] = [
    "then", "do", "else", "elif", "if", "while", "until", "!", "sudo", "exec", "time", "nohup",
];

/// Every `./` or `../` path on a line, in order, with how it is used. Paths that
/// expand (`$`, globs, `~`) and bare `.`/`..` directories are left out; so is
/// everything after an output redirection (`> ./out.log`: the shell creates it).
pub(crate) fn path_uses(text: &str) -> Vec<PathUse> {
    let words = shell_words(strip_comment(text));
    let mut uses = Vec::new();
    let mut command: Option<&str> = None;
    let mut copy_sources_end = None;
    let mut previous: Option<&str> = None;
    for (index, word) in words.iter().enumerate() {
        let word = word.as_str();
        if matches!(word, ";" | "&" | "|") {
            command = None;
            previous = None;
            continue;
        }
        let redirect = word.trim_start_matches(['0', '1', '2', '&']);
        let (input, output) = (redirect.starts_with('<'), redirect.starts_with('>'));
        let after_output = previous
            .map(|p| p.trim_start_matches(['0', '1', '2', '&']))
            .is_some_and(|p| p.starts_with('>') && p.trim_start_matches(['>', '|']).is_empty());
        let after_input = previous.is_some_and(|p| p == "<");
        let starts_command = command.is_none()
            && !COMMAND_PREFIXES.contains(&word)
            && !is_assignment(word)
            && !input
            && !output;
        let (option, value) = match word.split_once('=') {
            Some((option, value)) if option.starts_with('-') => (Some(option), value),
            _ => (
                None,
                word.trim_start_matches(['<', '(']).trim_start_matches('>'),
            ),
        };
        let value = value.trim_end_matches([')', ',']);
        if starts_command {
            command = Some(value.rsplit('/').next().unwrap_or(value));
            if matches!(command, Some("cp" | "mv")) {
                // The last word before a separator is the destination.
                let rest = &words[index + 1..];
                let length = rest
                    .iter()
                    .position(|w| matches!(w.as_str(), ";" | "&" | "|"))
                    .unwrap_or(rest.len());
                copy_sources_end = Some(index + length);
            }
        }
        previous = Some(word);
        if !is_local_path(value) || output || after_output {
            continue;
        }
        let read = starts_command
            || input
            || after_input
            || command.is_some_and(|c| READERS.contains(&c))
            || copy_sources_end.is_some_and(|end| index < end)
            || option.is_some_and(|o| INPUT_OPTIONS.contains(&o))
            || index
                .checked_sub(1)
                .and_then(|i| words.get(i))
                .is_some_and(|p| INPUT_OPTIONS.contains(&p.as_str()));
        uses.push(PathUse {
            path: value.to_string(),
            read,
        });
    }
    uses
}

fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        name.chars().next().is_some_and(is_name_start) && name.chars().all(is_name_char)
    })
}

fn is_local_path(word: &str) -> bool {
    (word.starts_with("./") || word.starts_with("../"))
        && !word
            .chars()
            .any(|c| matches!(c, '$' | '*' | '?' | '[' | '{' | '`' | '~'))
        && !word
            .trim_end_matches('/')
            .chars()
            .all(|c| c == '.' || c == '/')
}

/// Whether the line runs `cd` or `pushd` anywhere (errs towards yes).
pub(crate) fn changes_directory(text: &str) -> bool {
    strip_comment(text)
        .split(|c: char| c.is_whitespace() || matches!(c, ';' | '&' | '|' | '(' | ')' | '`'))
        .any(|word| word == "cd" || word == "pushd")
}

/// The line without its `#` comment, minding quotes on this line.
pub(crate) fn strip_comment(text: &str) -> &str {
    let mut in_single = false;
    let mut in_double = false;
    let mut previous = ' ';
    let mut escaped = false;
    for (index, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' && !in_single {
            escaped = true;
        } else if c == '\'' && !in_double {
            in_single = !in_single;
        } else if c == '"' && !in_single {
            in_double = !in_double;
        } else if c == '#'
            && !in_single
            && !in_double
            && (previous.is_whitespace() || previous == ';')
        {
            return &text[..index];
        }
        previous = c;
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(code: &str) -> Vec<ScriptLine> {
        code.lines()
            .enumerate()
            .map(|(index, text)| ScriptLine::new(index + 1, text))
            .collect()
    }

    fn uses(code: &str) -> Vec<(usize, String)> {
        let lines = lines(code);
        variable_uses(&shell_view(&lines))
    }

    #[test]
    fn console_prompts_continuations_and_heredocs() {
        let code = "$ etcdctl member list \\\n    --write-out=table\n+----+\n| id |\n$ cat <<EOF > x\nhello\nEOF\n$\nok\n# systemctl restart etcd\n#no-space is output\n";
        let commands = console_commands(10, code);
        let seen: Vec<(usize, &str)> = commands.iter().map(|c| (c.line, c.text.as_str())).collect();
        assert_eq!(
            seen,
            vec![
                (11, "etcdctl member list \\"),
                (12, "    --write-out=table"),
                (15, "cat <<EOF > x"),
                (16, "hello"),
                (17, "EOF"),
                (18, ""),
                (20, "systemctl restart etcd"),
            ]
        );
    }

    #[test]
    fn escaped_backslash_does_not_continue() {
        assert!(continues("echo a \\"));
        assert!(!continues("echo a \\\\"));
        assert!(!continues("echo a"));
    }

    #[test]
    fn variables_are_found_where_the_shell_expands_them() {
        let found = uses(concat!(
            "echo $A \"${B}\" '$NOT' \\$ESCAPED ${C:-default} ${D-x} ${E:?required} ${#F}\n",
            "awk '{print $NF}' # and $COMMENTED\n",
            "echo \"x#$G\" $? $1 $@ $$ $(date)\n",
            "cat <<'EOF'\n$LITERAL\nEOF\n",
            "cat <<EOF\n$EXPANDED don't\nEOF\n",
            "echo '\nmulti $LINE_QUOTED\n' $AFTER\n",
        ));
        let names: Vec<(usize, &str)> = found.iter().map(|(l, n)| (*l, n.as_str())).collect();
        assert_eq!(
            names,
            vec![
                (1, "A"),
                (1, "B"),
                (1, "E"),
                (1, "F"),
                (3, "G"),
                (8, "EXPANDED"),
                (12, "AFTER"),
            ]
        );
    }

    #[test]
    fn assignments_are_collected() {
        let lines = lines(concat!(
            "A=1\nexport B=\"x\"\nlocal -r C=2; D+=3\nfor E in 1 2; do :; done\n",
            "read -r -p 'name? ' F G < /dev/null\n",
            "echo \"H=value\" >> \"$FIREDRILL_OUTPUT\"\nif x; then I=1; fi\n",
        ));
        let names = assigned_names(&shell_view(&lines));
        let expected: BTreeSet<String> = ["A", "B", "C", "D", "E", "F", "G", "H", "I"]
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(names, expected);
    }

    #[test]
    fn placeholders_are_not_redirections() {
        assert_eq!(
            placeholders("kubectl drain <node> --context <cluster-name> <my_ns2>"),
            vec!["<node>", "<cluster-name>", "<my_ns2>"]
        );
        for clean in [
            "cat <<EOF>out",
            "cmd 2>&1 </dev/null",
            "cat <<EOF",
            "diff <(a) <(b)",
            "test 1 -lt 2 <3>",
            "echo <>",
            "é<ü>",
        ] {
            assert!(placeholders(clean).is_empty(), "{clean}");
        }
    }

    #[test]
    fn unfinished_markers_are_words() {
        assert_eq!(
            unfinished_markers("TODO: fix; FIXME(x) XXX"),
            vec!["TODO", "FIXME", "XXX"]
        );
        assert!(unfinished_markers("TODOS XXXL todo mastodon").is_empty());
    }

    fn reads(text: &str) -> Vec<(String, bool)> {
        path_uses(text)
            .into_iter()
            .map(|u| (u.path, u.read))
            .collect()
    }

    #[test]
    fn paths_that_must_exist_are_told_from_paths_a_command_may_create() {
        let found = reads(concat!(
            "./restore.sh --config=./cfg.yaml ../x/y.db; cat \"./q.txt\" > ./out.log 2>./err",
            " && etcdctl snapshot save ./snap.db < ./in.txt && kubectl apply -f ./pod.yaml",
            " && cp ./a ./b ./dest/ # ./commented",
        ));
        let expected = [
            ("./restore.sh", true),
            ("./cfg.yaml", true),
            ("../x/y.db", false),
            ("./q.txt", true),
            ("./snap.db", false),
            ("./in.txt", true),
            ("./pod.yaml", true),
            ("./a", true),
            ("./b", true),
            ("./dest/", false),
        ];
        let expected: Vec<(String, bool)> = expected
            .iter()
            .map(|(path, read)| (path.to_string(), *read))
            .collect();
        assert_eq!(found, expected);
        assert_eq!(
            reads("FOO=1 sudo ./run.sh; mkdir -p ./backup"),
            vec![
                ("./run.sh".to_string(), true),
                ("./backup".to_string(), false)
            ]
        );
        assert!(reads("cd ./ && ls ./$DIR ./*.yaml ../ >> ./log").is_empty());
    }

    #[test]
    fn hidden_assignments_are_seen() {
        for hidden in [
            "source ./env.sh",
            ". \"$WORKDIR/env\"",
            "if x; then eval \"$(cmd)\"; fi",
            "set -a",
        ] {
            assert!(sets_hidden_names(hidden), "{hidden}");
        }
        for plain in ["echo source", "ls .", "set -eu", "cat ./x # source y"] {
            assert!(!sets_hidden_names(plain), "{plain}");
        }
    }

    #[test]
    fn words_split_like_the_shell() {
        assert_eq!(
            shell_words("a 'b c'\"d\" e\\ f;g&&h 2>&1 >|x"),
            vec!["a", "b cd", "e f", ";", "g", "&", "&", "h", "2>&1", ">|x"]
        );
    }

    #[test]
    fn directory_changes_are_seen() {
        assert!(changes_directory("cd /tmp"));
        assert!(changes_directory("make && (cd sub; ./run.sh)"));
        assert!(changes_directory("pushd ./x"));
        assert!(!changes_directory("echo abcd # cd there"));
        assert!(!changes_directory("./cdrom.sh"));
    }

    #[test]
    fn comments_respect_quotes() {
        assert_eq!(
            strip_comment("echo '#x' \"#y\" a#b # c"),
            "echo '#x' \"#y\" a#b "
        );
        assert_eq!(strip_comment("# all"), "");
    }
}
