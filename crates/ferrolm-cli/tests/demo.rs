//! `ferrolm demo` end to end: the binary runs every scene, exits 0, and leaves its pickles and
//! the three SQLite stores in the demo folder.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::process::Command;

#[test]
fn the_demo_runs_every_scene_and_leaves_its_stores() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_ferrolm")).args(["demo", "--dir"]).arg(dir.path()).output().unwrap();
    let out = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "exit {:?}\n{out}\n{}", output.status, String::from_utf8_lossy(&output.stderr));
    // The machine scenes, in order.
    let scenes = [
        "== 11. Three OlmMachines",
        "== 12. Alice claims one-time keys",
        "== 13. Bob answers",
        "== 14. Bob's process stops",
        "== Done.",
    ];
    let mut at = 0;
    for scene in scenes {
        let found = out[at..].find(scene).unwrap_or_else(|| panic!("{scene} missing or out of order:\n{out}"));
        at += found;
    }
    // Each device learned the other two; Alice opened two sessions and sent her key to both.
    assert!(out.contains("Alice queried and validated the others' devices: @bob:demo.example BOBLAPTOP, @carol:demo.example CAROLTABLET"), "{out}");
    assert!(out.contains("2 new Olm sessions; room key"), "{out}");
    assert!(out.contains("sent to 2 devices"), "{out}");
    assert!(
        out.contains("Bob opens 1 new Olm session (Alice's to him exists) and sends his room key to 2 devices"),
        "{out}"
    );
    // Messages both ways, decrypted by the others with the sender's device identified.
    for line in [
        "Bob reads [0] @alice:demo.example (ALICEPHONE, Unverified): \"Hello Bob and Carol, this room is end-to-end encrypted.\"",
        "Carol reads [0] @alice:demo.example (ALICEPHONE, Unverified): \"Hello Bob and Carol",
        "Alice reads [0] @bob:demo.example (BOBLAPTOP, Unverified): \"Hi Alice! Bob here, on my laptop.\"",
        "Bob reads [0] @carol:demo.example (CAROLTABLET, Unverified): \"Carol here.",
        // After the restart: Bob reads Alice's next message with the key from his store, and his
        // stored outbound session goes on at the next index.
        "Bob reads [1] @alice:demo.example (ALICEPHONE, Unverified): \"Bob, are you back?\"",
        "Alice reads [1] @bob:demo.example (BOBLAPTOP, Unverified): \"Back, with every key and session from my store.\"",
        "Carol reads [1] @bob:demo.example (BOBLAPTOP, Unverified): \"Back, with every key",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    assert!(out.contains("reopened: same identity true;"), "{out}");
    assert!(out.contains("10 room messages decrypted in all"), "{out}");
    for name in ["alice", "bob", "carol"] {
        let path = dir.path().join(format!("{name}.sqlite3"));
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.starts_with(b"SQLite format 3\0"), "{} is not a SQLite file", path.display());
    }
    assert!(dir.path().join("bob-session").exists(), "the Olm scene's pickles are there too");
}

#[test]
fn the_demo_can_run_twice_in_the_same_folder() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let output =
            Command::new(env!("CARGO_BIN_EXE_ferrolm")).args(["demo", "--dir"]).arg(dir.path()).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
}
