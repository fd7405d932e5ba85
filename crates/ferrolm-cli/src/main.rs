//! `ferrolm`: the command-line tool.
//!
//! - `ferrolm demo [--dir DIR]`: two devices establish an Olm session, talk both ways, pickle
//!   to disk and restore; a Megolm room; then three OlmMachines on SQLite stores in DIR meet
//!   through the in-process test homeserver, and one restarts from its store; printing each step.
//! - `ferrolm inspect [--type 0|1] BASE64`: decode an Olm or Megolm message, or a Megolm
//!   session key, without any key.
//! - `ferrolm export decrypt|encrypt …`: key export files.
//! - `ferrolm recovery-key check [KEY]`: check a secret storage recovery key.
//! - `ferrolm store init|inspect|change-passphrase PATH`: ferrolm-store's SQLite files.

mod demo;
mod demo_machines;
mod export;
mod inspect;
mod store;
mod vectors;

use std::process::ExitCode;

use ferrolm::zeroize::Zeroizing;

const USAGE: &str = "\
ferrolm: end-to-end encryption for Matrix

USAGE:
    ferrolm demo [--dir DIR]            two devices talk over Olm, pickle to DIR and restore,
                                        then a room over Megolm with a late joiner, then three
                                        OlmMachines on SQLite stores in DIR meet through an
                                        in-process homeserver; one restarts from its store
    ferrolm inspect [--type 0|1] B64    decode an Olm message (0 = pre-key, 1 = normal), a
                                        Megolm message or a Megolm session key
    ferrolm export decrypt FILE [--show-keys]
                                        decrypt a key export file and summarize it (rooms,
                                        session ids, algorithms, counts); keys only on request
    ferrolm export encrypt [--rounds N] [--in FILE] [--out FILE]
                                        encrypt a JSON array of room keys into a key export file
    ferrolm recovery-key check [KEY]    check a recovery key's prefix, length and parity
    ferrolm store init PATH [--user USER_ID --device DEVICE_ID] [--kdf M,T,P]
                                        create an empty encrypted key store (SQLite), with a new
                                        account for that device if asked; Argon2id parameters
                                        MEMORY_KIB,PASSES,LANES (default 65536,3,1)
    ferrolm store inspect PATH          counts per table, the account's public identity keys,
                                        devices per user, room keys per room with their first
                                        known indices, schema version, lease holder; no secret
    ferrolm store change-passphrase PATH [--kdf M,T,P]
                                        re-wrap the store key under a new passphrase
                                        ($FERROLM_NEW_PASSPHRASE or prompted); data untouched
    ferrolm vectors DIR                 replay the known-answer test vectors in DIR byte for byte
    ferrolm help                        this text

Passphrases are read from the terminal without echo, or from $FERROLM_PASSPHRASE.
";

/// A passphrase from the environment variable `var` (scripts, tests), or else from the
/// terminal without echo, asked twice when `confirm`.
fn read_passphrase(var: &str, prompt: &str, confirm: bool) -> Result<Zeroizing<String>, String> {
    if let Ok(value) = std::env::var(var) {
        return Ok(Zeroizing::new(value));
    }
    let read = |prompt: &str| {
        rpassword::prompt_password(prompt)
            .map(Zeroizing::new)
            .map_err(|e| format!("cannot read the passphrase (or set ${var}): {e}"))
    };
    let first = read(prompt)?;
    if confirm && *first != *read("Again: ")? {
        return Err("the passphrases differ".into());
    }
    Ok(first)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("demo") => demo::run(args.get(1..).unwrap_or_default()),
        Some("inspect") => inspect::run(args.get(1..).unwrap_or_default()),
        Some("export") => export::run(args.get(1..).unwrap_or_default()),
        Some("recovery-key") => export::recovery_key(args.get(1..).unwrap_or_default()),
        Some("store") => store::run(args.get(1..).unwrap_or_default()),
        Some("vectors") => vectors::run(args.get(1..).unwrap_or_default()),
        Some("help" | "--help" | "-h") => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command `{other}`\n\n{USAGE}")),
        None => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The value after `flag` in `args`, and the remaining arguments.
fn take_option(args: &[String], flag: &str) -> Result<(Option<String>, Vec<String>), String> {
    let mut value = None;
    let mut rest = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == flag {
            value = Some(iter.next().ok_or_else(|| format!("{flag} needs a value"))?.clone());
        } else {
            rest.push(arg.clone());
        }
    }
    Ok((value, rest))
}
