//! What `fileintel analyze` prints: one profile per file in the order the files were named, and
//! a summary that counts in words.

use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_fileintel");

#[test]
fn analyze_prints_profiles_in_the_order_the_files_were_named_whatever_order_they_finish_in() {
    let dir = tempfile::tempdir().unwrap();
    // A large file first, which takes longest; small ones after it, named out of name order.
    let large = dir.path().join("large.bin");
    std::fs::write(&large, vec![0u8; 48 << 20]).unwrap();
    let mut named = vec![large];
    for name in ["f.sh", "b.sh", "e.sh", "a.sh", "d.sh", "c.sh"] {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\necho {name}\n")).unwrap();
        named.push(path);
    }
    let output = Command::new(BIN).args(["analyze", "--jobs", "4"]).args(&named).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap()["path"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = named.iter().map(|path| path.display().to_string()).collect();
    assert_eq!(printed, expected);
    let summary = String::from_utf8_lossy(&output.stderr);
    assert!(summary.contains("analysed 7 files ("), "{summary}");
}

#[test]
fn analyze_says_one_file_in_the_singular() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("one.sh");
    std::fs::write(&file, "#!/bin/sh\n").unwrap();
    let output = Command::new(BIN).arg("analyze").arg(&file).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let summary = String::from_utf8_lossy(&output.stderr);
    assert!(summary.contains("analysed 1 file ("), "{summary}");
}
