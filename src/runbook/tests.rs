//! Parsing runbooks into steps, and what the engine gets from each step.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use super::*;

fn parsed(text: &str) -> Runbook {
    match parse(Path::new("runbooks/restore.md"), text) {
        Ok(runbook) => runbook,
        Err(errors) => panic!("unexpected errors: {errors:?}"),
    }
}

fn errors(text: &str) -> Vec<String> {
    match parse(Path::new("runbooks/restore.md"), text) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

fn step<'a>(runbook: &'a Runbook, title: &str) -> &'a RunbookStep {
    match runbook.steps.iter().find(|step| step.title == title) {
        Some(step) => step,
        None => panic!("no step `{title}` in {:?}", runbook.steps),
    }
}

const RESTORE: &str = "\
# Restore etcd

Read this first. It never runs.

## Stop the member

```sh {timeout=30s}
systemctl stop etcd
```

### Check it stopped

```console
$ systemctl is-active etcd
inactive
# journalctl -u etcd -n 5
-- No entries --
```

## Tell the channel

Post in the *incident* channel.
Then wait for an ack.

## Apply the manifest

```yaml
kind: Pod
```

#### Deep heading

```bash
echo one
```

Some words between.

```shell {exit=3}
echo two
exit 3
```
";

#[test]
fn headings_become_steps_with_their_line_and_level() {
    let runbook = parsed(RESTORE);
    assert_eq!(runbook.path, Path::new("runbooks/restore.md"));
    assert_eq!(runbook.title.as_deref(), Some("Restore etcd"));
    let outline: Vec<(&str, usize, u8)> = runbook
        .steps
        .iter()
        .map(|step| (step.title.as_str(), step.line, step.level))
        .collect();
    assert_eq!(
        outline,
        vec![
            ("Stop the member", 5, 2),
            ("Check it stopped", 11, 3),
            ("Tell the channel", 20, 2),
            ("Apply the manifest", 25, 2),
            ("Deep heading", 31, 4),
        ]
    );
}

#[test]
fn prose_only_and_non_shell_code_are_manual_steps() {
    let runbook = parsed(RESTORE);
    let tell = step(&runbook, "Tell the channel");
    assert!(tell.is_manual());
    assert!(tell.blocks.is_empty());
    assert_eq!(
        tell.prose,
        "Post in the incident channel.\nThen wait for an ack."
    );
    assert_eq!(
        tell.body,
        "Post in the *incident* channel.\nThen wait for an ack."
    );
    assert_eq!(tell.script(), "");

    let apply = step(&runbook, "Apply the manifest");
    assert!(apply.is_manual(), "yaml is for a person to apply");
    assert!(apply.body.contains("kind: Pod"));

    assert!(!step(&runbook, "Stop the member").is_manual());
}

#[test]
fn blocks_of_a_step_run_in_order_as_one_script() {
    let runbook = parsed(RESTORE);
    let deep = step(&runbook, "Deep heading");
    let languages: Vec<&str> = deep.blocks.iter().map(|b| b.lang.as_str()).collect();
    assert_eq!(languages, vec!["bash", "shell"]);
    assert_eq!(deep.blocks[0].line, 33);
    assert_eq!(deep.script(), "echo one\necho two\nexit 3\n");
    assert_eq!(deep.prose, "Some words between.");
}

#[test]
fn console_blocks_run_prompt_lines_only() {
    let runbook = parsed(RESTORE);
    let check = step(&runbook, "Check it stopped");
    assert!(check.blocks[0].is_console());
    assert_eq!(
        check.script(),
        "systemctl is-active etcd\njournalctl -u etcd -n 5\n"
    );
    let lines: Vec<usize> = check.blocks[0].commands().iter().map(|l| l.line).collect();
    assert_eq!(lines, vec![14, 16]);
}

#[test]
fn a_console_block_without_prompts_is_manual() {
    let runbook = parsed("# T\n\n## Look\n\n```console\nonly output\n```\n");
    assert!(step(&runbook, "Look").is_manual());
}

#[test]
fn headings_without_a_title_heading_are_all_steps() {
    let runbook = parsed("## One\n\n```sh\ntrue\n```\n\nTwo\n---\n\ndo it\n");
    assert_eq!(runbook.title, None);
    let outline: Vec<(&str, usize, u8)> = runbook
        .steps
        .iter()
        .map(|step| (step.title.as_str(), step.line, step.level))
        .collect();
    assert_eq!(outline, vec![("One", 1, 2), ("Two", 7, 2)]);
}

#[test]
fn timeout_adds_up_the_blocks_of_a_step() {
    let runbook = parsed(RESTORE);
    let default = Duration::from_secs(300);
    assert_eq!(
        step(&runbook, "Stop the member").timeout(default),
        Duration::from_secs(30)
    );
    assert_eq!(
        step(&runbook, "Deep heading").timeout(default),
        Duration::from_secs(600)
    );
}

#[test]
fn fence_attributes_become_the_step_expectations() {
    let runbook = parsed(
        "# T\n\n## Wait for health\n\n\
         ```sh {timeout=1m stdout_contains=\"is healthy\" retries=3 retry_delay=2s}\n\
         etcdctl endpoint health\n```\n\n\
         ```sh {stdout_matches=\"^[0-9]+ members\" exit=2 retries=1 retry_delay=5s}\n\
         etcdctl member list | wc -l\n```\n",
    );
    let wait = step(&runbook, "Wait for health");
    assert_eq!(wait.retries(), 3);
    assert_eq!(wait.retry_delay(), Duration::from_secs(5));
    assert_eq!(
        wait.timeout(Duration::from_secs(300)),
        Duration::from_secs(360)
    );
    let expected = wait.expectations();
    assert_eq!(expected.exit, 2, "the last block's exit is the shell's");
    assert_eq!(expected.stdout_contains, vec!["is healthy".to_string()]);
    assert_eq!(expected.retries, 3);
    assert_eq!(expected.retry_delay, Duration::from_secs(5));

    assert_eq!(
        expected.check(2, &Printed::whole(&["127.0.0.1 is healthy\n3 members\n"])),
        Ok(())
    );
    assert_eq!(
        expected.check(0, &Printed::whole(&["is healthy: 3 members"])),
        Err("exit 0, expected 2; stdout does not match `^[0-9]+ members`".into())
    );
    assert_eq!(
        expected.check(2, &Printed::whole(&["unhealthy\nno members"])),
        Err("stdout does not contain `is healthy`; stdout does not match `^[0-9]+ members`".into())
    );
}

#[test]
fn defaults_without_attributes() {
    let runbook = parsed("# T\n\n## Go\n\n```sh\ntrue\n```\n");
    let go = step(&runbook, "Go");
    assert_eq!(go.retries(), 0);
    assert_eq!(go.retry_delay(), DEFAULT_RETRY_DELAY);
    assert_eq!(
        go.timeout(Duration::from_secs(300)),
        Duration::from_secs(300)
    );
    let expected = go.expectations();
    assert_eq!(expected.check(0, &Printed::whole(&[""])), Ok(()));
    assert_eq!(
        expected.check(1, &Printed::whole(&[""])),
        Err("exit 1, expected 0".into())
    );
}

#[test]
fn attribute_errors_name_the_file_and_fence_line() {
    let text = "# T\n\n## A\n\n```sh {timout=2m}\ntrue\n```\n\n## B\n\n```bash {exit=x}\ntrue\n```\n\n```yaml {anything=goes}\nx: 1\n```\n";
    assert_eq!(
        errors(text),
        vec![
            "runbooks/restore.md:5: unknown fence attribute `timout`; did you mean `timeout`? (supported: timeout, exit, stdout_contains, stdout_matches, retries, retry_delay)",
            "runbooks/restore.md:11: invalid fence attribute `exit=x`: expected an exit status from 0 to 255",
        ]
    );
}

#[test]
fn load_reports_unreadable_files() {
    let missing = load(Path::new("/nonexistent/runbook.md"));
    let errors = missing.err().unwrap_or_default();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .to_string()
            .starts_with("/nonexistent/runbook.md: cannot read the runbook:"),
        "{}",
        errors[0]
    );
}

#[test]
fn load_names_the_line_that_is_not_utf8() -> std::io::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bad.md");
    std::fs::write(&path, b"# T\n\n## S\n\nbad \xff byte\n")?;
    let errors = load(&path).err().unwrap_or_default();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].line, Some(5));
    assert!(
        errors[0]
            .to_string()
            .ends_with(":5: the runbook is not valid UTF-8")
    );
    Ok(())
}

// Lint: the parts that do not need the binary.

fn lint_kinds(text: &str, known: Option<&BTreeSet<String>>) -> Vec<(usize, LintKind)> {
    lint(Path::new("/nonexistent/dir/runbook.md"), text, known)
        .into_iter()
        .map(|finding| (finding.line, finding.kind))
        .collect()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|name| name.to_string()).collect()
}

#[test]
fn variables_are_checked_only_against_a_known_set() {
    let text = "# T\n\n## A\n\n```sh\necho \"$NODE\" \"${MISSING}\" $HOME\n```\n";
    assert_eq!(lint_kinds(text, None), vec![]);
    assert_eq!(
        lint_kinds(text, Some(&names(&["NODE"]))),
        vec![(6, LintKind::UnsetVariable)]
    );
}

#[test]
fn names_the_runbook_assigns_are_known_in_later_steps() {
    let text = "# T\n\n## Find\n\n```sh\nexport LEADER=$(leader)\nread -r ANSWER\n```\n\n## Use\n\n```console\n$ for n in a b; do echo \"$n $LEADER $ANSWER\"; done\n```\n";
    assert_eq!(lint_kinds(text, Some(&BTreeSet::new())), vec![]);
}

#[test]
fn relative_paths_are_not_checked_after_cd() {
    let text = "# T\n\n## A\n\n```sh\n./missing.sh\ncd /tmp\n./elsewhere.sh\n```\n\n```sh\n./also-elsewhere.sh\n```\n\n## B\n\n```sh\n./missing-too.sh\n```\n";
    assert_eq!(
        lint_kinds(text, None),
        vec![(6, LintKind::MissingFile), (18, LintKind::MissingFile)]
    );
}

#[test]
fn paths_an_earlier_command_may_have_made_are_not_missing() {
    let text = "# T\n\n## Save\n\n```sh\netcdctl snapshot save ./snap.db\nmkdir -p ./backup\n```\n\n## Use\n\n```sh\ncat ./snap.db\n./backup/restore.sh\n./never-made.sh\n```\n";
    assert_eq!(lint_kinds(text, None), vec![(15, LintKind::MissingFile)]);
}

#[test]
fn variables_are_not_checked_after_source_or_eval() {
    let text = "# T\n\n## Load\n\n```sh\n. ./env.sh\necho \"$FROM_ENV\"\n```\n";
    let findings = lint_kinds(text, Some(&BTreeSet::new()));
    assert_eq!(findings, vec![(6, LintKind::MissingFile)]);
}

#[test]
fn a_heading_that_groups_deeper_ones_is_not_empty() {
    let text = "# T\n\n## Phase one\n\n### Do it\n\nNow.\n\n## Empty\n\n## Last\n\nDone.\n";
    assert_eq!(
        lint_kinds(text, None),
        vec![(1, LintKind::NothingToRun), (9, LintKind::EmptyStep)]
    );
}

#[test]
fn html_and_shell_syntax_are_not_placeholders() {
    let text = "# T\n\n## A\n\nPress <kbd>Enter</kbd>, see <https://example.com>.\n\n```sh\ncmd 2>&1 </dev/null | diff <(a) - > out # roles: <none>\ncat <<EOF\n<config>\nEOF\n```\n";
    assert_eq!(lint_kinds(text, None), vec![]);
}

#[test]
fn findings_display_as_file_line_kind_message() {
    let findings = lint(
        Path::new("rb.md"),
        "# T\n\n## Empty\n\n## Run\n\n```sh\ntrue\n```\n",
        None,
    );
    assert_eq!(findings.len(), 1);
    assert_eq!(
        findings[0].to_string(),
        "rb.md:3: empty_step: step `Empty` is empty: no instructions and no commands"
    );
}

proptest::proptest! {
    /// Whatever the text, parsing and linting end with a result, never a panic,
    /// and every finding points at a line of the file.
    #[test]
    fn any_text_parses_and_lints_without_panicking(
        text in r"(#{1,3} [a-z<>$]{0,4}\n|```(sh|console|yaml)?( \{[a-z_=0-9\x22 ]{0,12}\}?)?\n|\$ [a-z./<>${}'\x22 \\]{0,12}\n|[a-zA-Z./<>${}()'\x22#\\ \t-]{0,16}\n|<<-?'?EOF'?\n|EOF\n|é\n){0,24}"
    ) {
        let path = Path::new("fuzz.md");
        let _ = parse(path, &text);
        let line_count = text.lines().count().max(1);
        for finding in lint(path, &text, Some(&BTreeSet::new())) {
            proptest::prop_assert!(finding.line >= 1 && finding.line <= line_count, "{finding}");
        }
    }
}
