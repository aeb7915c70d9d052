//! The host tools as a user runs them: `vdcnet keygen` against the real `wg`
//! (wireguard-tools), and `vdcnet check`'s output and exit statuses.

use std::io::Write;
use std::process::{Command, Output, Stdio};

const VDCNET: &str = env!("CARGO_BIN_EXE_vdcnet");

fn run(program: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "{:?}: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn keygen_public_agrees_with_wg_pubkey() {
    for _ in 0..5 {
        let private = stdout(&run("wg", &["genkey"], ""));
        let theirs = stdout(&run("wg", &["pubkey"], &private));
        let ours = stdout(&run(VDCNET, &["keygen", "--public"], &private));
        assert_eq!(ours, theirs, "public key of {private}");
    }
}

#[test]
fn keygen_pairs_are_consistent_per_wg_pubkey() {
    let out = stdout(&run(VDCNET, &["keygen"], ""));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let private = lines[0]
        .strip_prefix("PrivateKey = ")
        .expect("PrivateKey line");
    let public = lines[1]
        .strip_prefix("PublicKey = ")
        .expect("PublicKey line");
    assert_eq!(private.len(), 44);
    let theirs = stdout(&run("wg", &["pubkey"], &format!("{private}\n")));
    assert_eq!(theirs.trim(), public);
    // A second run gives another key.
    let again = stdout(&run(VDCNET, &["keygen"], ""));
    assert_ne!(again.lines().next(), Some(lines[0]));
}

#[test]
fn keygen_public_refuses_garbage() {
    let o = run(VDCNET, &["keygen", "--public"], "not a key\n");
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    assert_eq!(
        run(VDCNET, &["keygen", "--bogus"], "").status.code(),
        Some(2)
    );
}

#[test]
fn check_reports_errors_with_lines_and_summarises_good_files() {
    let dir = std::env::temp_dir().join(format!("vdcnet-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let private = stdout(&run("wg", &["genkey"], ""));
    let public = stdout(&run("wg", &["pubkey"], &private));
    let good = dir.join("good.conf");
    std::fs::write(
        &good,
        format!(
            "[Link]\nAddress = 192.168.100.1/24\n\n[Interface]\nPrivateKey = {}\n",
            private.trim()
        ),
    )
    .unwrap();
    let bad = dir.join("bad.conf");
    std::fs::write(
        &bad,
        "[Link]\nAddress = 10.0.0.1/24\nMTU = 12\nColour = red\n",
    )
    .unwrap();
    let (good, bad) = (good.to_str().unwrap(), bad.to_str().unwrap());

    let o = run(VDCNET, &["check", good], "");
    let text = stdout(&o);
    assert!(text.starts_with(&format!("{good}: ok\n")), "{text}");
    assert!(
        text.contains(&format!("public key {}", public.trim())),
        "{text}"
    );

    let o = run(VDCNET, &["check", good, bad], "");
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("{bad}:3: ")), "{err}");
    assert!(err.contains(&format!("{bad}:4: ")), "{err}");
    assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("{good}: ok")));

    assert_eq!(run(VDCNET, &["check"], "").status.code(), Some(2));
    let missing = dir.join("missing.conf");
    let o = run(VDCNET, &["check", missing.to_str().unwrap()], "");
    assert_eq!(o.status.code(), Some(1));
    let _ = std::fs::remove_dir_all(&dir);
}
