//! The README's drill example is a real drill: it must keep validating.

use std::path::Path;

#[test]
fn the_readme_drill_example_validates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let start = readme
        .find("```yaml\nversion: 1")
        .expect("the README has a drill example")
        + "```yaml\n".len();
    let end = start + readme[start..].find("```").unwrap();
    // It refers to ../runbooks/, as a drill in scenarios/ would.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("scenarios")).unwrap();
    std::fs::create_dir_all(dir.path().join("runbooks")).unwrap();
    std::fs::copy(
        root.join("runbooks/web-restore.md"),
        dir.path().join("runbooks/web-restore.md"),
    )
    .unwrap();
    let drill = dir.path().join("scenarios/example.yaml");
    std::fs::write(&drill, &readme[start..end]).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_firedrill"))
        .arg("validate")
        .arg(&drill)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
