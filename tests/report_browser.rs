//! `report.html` opened in a real browser (headless Chromium): the page must
//! parse into the DOM we wrote, with the SVG timeline in it, and paint.
//!
//! CI installs Chromium, so a missing browser fails this test; set
//! `FIREDRILL_SKIP_BROWSER=1` to skip it on a machine without one.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use firedrill::report::{sample_journal_for_docs, write_all};

const CHROMIUM: &str = "/usr/bin/chromium";

/// The browser, or `None` when the environment asks to skip.
fn chromium() -> Option<PathBuf> {
    if std::env::var_os("FIREDRILL_SKIP_BROWSER").is_some_and(|value| value == "1") {
        eprintln!("FIREDRILL_SKIP_BROWSER=1: not checking report.html in a browser");
        return None;
    }
    let path = PathBuf::from(CHROMIUM);
    assert!(
        path.is_file(),
        "{CHROMIUM} is missing: install it (`apt-get install -y chromium`) \
         or set FIREDRILL_SKIP_BROWSER=1 to skip the browser check"
    );
    Some(path)
}

/// Runs headless Chromium on a local file with a fresh profile and nothing
/// that talks to the network.
fn headless(browser: &Path, profile: &Path, extra: &[&str], page: &Path) -> Output {
    let output = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium starts");
    assert!(
        output.status.success(),
        "chromium failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn report_html_renders_in_chromium_with_the_svg_timeline() {
    let Some(browser) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    write_all(&run_dir, &sample_journal_for_docs()).unwrap();
    let page = run_dir.join("report.html");

    // The DOM as the browser built it, not as we wrote it.
    let output = headless(
        &browser,
        &dir.path().join("profile-dom"),
        &["--dump-dom"],
        &page,
    );
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        dom.contains("<h1>etcd-quorum-loss</h1>"),
        "page did not load:\n{dom}"
    );
    assert!(
        dom.contains("<svg id=\"timeline\""),
        "no SVG timeline in the DOM:\n{dom}"
    );
    // The parts of the timeline, inside the svg element.
    let svg = &dom[dom.find("<svg id=\"timeline\"").unwrap()..];
    let svg = &svg[..svg.find("</svg>").expect("the svg element is closed")];
    for part in [
        "data-step=\"restore\"",
        "class=\"bar s-failed\"",
        "class=\"mark m-fault\"",
        "class=\"mark m-recover\"",
        "class=\"h-failed\"",
        "class=\"h-ok\"",
    ] {
        assert!(
            svg.contains(part),
            "{part} missing from the timeline:\n{svg}"
        );
    }
    // Step output was escaped: the browser made text of it, not an element.
    assert!(!dom.contains("<script"), "a script element reached the DOM");
    assert!(
        dom.contains("&lt;script&gt;alert('pwned')&lt;/script&gt;"),
        "{dom}"
    );
    for section in [
        "Score",
        "Objectives",
        "Faults",
        "Drill steps",
        "Runbook",
        "Follow-ups",
    ] {
        assert!(
            dom.contains(&format!("<h2>{section}</h2>")),
            "no {section} section"
        );
    }

    // It paints: a screenshot of the report carries far more than one of an
    // empty page of the same size.
    let blank = dir.path().join("blank.html");
    std::fs::write(&blank, "<!DOCTYPE html><html><body></body></html>").unwrap();
    let shot = |page: &Path, name: &str| {
        let png = dir.path().join(name);
        let flag = format!("--screenshot={}", png.display());
        headless(
            &browser,
            &dir.path().join(format!("profile-{name}")),
            &[&flag, "--window-size=1200,900"],
            page,
        );
        let bytes = std::fs::read(&png).expect("chromium wrote the screenshot");
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{name} is not a PNG"
        );
        let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        assert_eq!((width, height), (1200, 900), "{name} size");
        bytes.len()
    };
    let report_size = shot(&page, "report.png");
    let blank_size = shot(&blank, "blank.png");
    assert!(
        report_size > 4 * blank_size,
        "the report painted next to nothing: {report_size} bytes against {blank_size} for a blank page"
    );
}

/// Long step ids and paths, and an idempotency re-run, laid out by the
/// browser: ids stay on one line, a path breaks only after a `/`, the re-run
/// and the runbook's steps are on the timeline. A script added to a copy of
/// the report measures the layout and writes it into the DOM it dumps.
#[test]
fn long_ids_and_paths_wrap_sensibly_and_the_rerun_is_labelled() {
    let Some(browser) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let mut journal = sample_journal_for_docs();
    let long_id = "lose-disks-of-two-members-at-once";
    let long_path =
        "/home/sre/work/platform-team/game-days/2025/q1/work/etcd/data/member-2/snap/db";
    for step in &mut journal.steps {
        if step.id == "lose-disks" {
            step.id = long_id.to_owned();
        }
    }
    journal.faults[0].step = long_id.to_owned();
    journal.faults[0].targets = vec![
        long_path.to_owned(),
        long_path.replace("member-2", "member-3"),
    ];
    let runbook = journal.runbook.as_mut().unwrap();
    runbook.steps[0].idempotent = Some(true);
    runbook.steps[0].second_run_started_ms = Some(153_500);
    runbook.steps[0].second_run_duration_ms = Some(800);
    write_all(&run_dir, &journal).unwrap();
    let html = std::fs::read_to_string(run_dir.join("report.html")).unwrap();
    let probe = r#"<script>
const lines = el => Math.round(el.getBoundingClientRect().height / parseFloat(getComputedStyle(el).lineHeight));
const out = [];
document.querySelectorAll('td code.id').forEach(el => out.push('id ' + el.textContent + ' ' + lines(el)));
document.querySelectorAll('td').forEach(td => {
  const text = td.textContent;
  if (text.includes('member-2/snap/db')) {
    const rects = [];
    const range = document.createRange();
    range.selectNodeContents(td);
    for (const r of range.getClientRects()) rects.push(r);
    // Every line of the cell ends after a '/', a ',' or at the end: never after a hyphen.
    const walker = document.createTreeWalker(td, NodeFilter.SHOW_TEXT);
    let prev = null, bad = 0, node;
    while ((node = walker.nextNode())) {
      for (let i = 0; i < node.length; i++) {
        const r = document.createRange(); r.setStart(node, i); r.setEnd(node, i + 1);
        const box = r.getBoundingClientRect();
        if (prev && box.top > prev.top + 2 && !'/, '.includes(prev.ch)) bad++;
        prev = { top: box.top, ch: node.data[i] };
      }
    }
    out.push('path-cell bad-breaks ' + bad);
  }
});
document.body.setAttribute('data-layout', out.join(';'));
</script>"#;
    let measured = run_dir.join("measured.html");
    std::fs::write(
        &measured,
        html.replace("</body>", &format!("{probe}</body>")),
    )
    .unwrap();
    let output = headless(
        &browser,
        &dir.path().join("profile-layout"),
        &["--dump-dom", "--window-size=1200,900"],
        &measured,
    );
    let dom = String::from_utf8_lossy(&output.stdout);
    let layout = dom
        .split("data-layout=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("the layout script did not run:\n{dom}"));
    let ids: Vec<&str> = layout.split(';').filter(|m| m.starts_with("id ")).collect();
    assert!(!ids.is_empty(), "{layout}");
    for id in ids {
        assert!(id.ends_with(" 1"), "a step id wraps: {id} ({layout})");
    }
    assert!(
        layout.contains("path-cell bad-breaks 0") && !layout.contains("bad-breaks 1"),
        "a path broke at a hyphen or mid-word: {layout}"
    );
    // The timeline: the re-run is named, and the runbook's steps have rows.
    let svg = &dom[dom.find("<svg id=\"timeline\"").unwrap()..];
    assert!(svg.contains("class=\"mark m-rerun\""), "{svg}");
    assert!(svg.contains("idempotency re-run"), "{svg}");
    assert!(svg.contains("class=\"rerun-span\""), "{svg}");
    assert!(svg.contains("data-runbook-step=\"2\""), "{svg}");
    assert!(svg.contains("class=\"bar rerun s-ok\""), "{svg}");
}
