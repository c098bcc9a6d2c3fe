#[test]
fn probe() {
    let mut files: Vec<_> = std::process::Command::new("find").args(["/work/shared/testdata/evtx", "-name", "*.evtx"]).output().unwrap().stdout.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| String::from_utf8(l.to_vec()).unwrap()).collect();
    files.sort();
    let (mut records, mut obs, mut rej) = (0, 0, 0);
    for f in &files {
        let mut d = fileintel_telemetry::decoder(None, std::fs::File::open(f).unwrap(), None).unwrap();
        while let Some(b) = d.next_batch(1000).unwrap() { records += b.records; obs += b.observations.len(); rej += b.rejections.len(); for r in &b.rejections { eprintln!("{f}: {r:?}"); } }
    }
    eprintln!("records {records} obs {obs} rej {rej}");
}
