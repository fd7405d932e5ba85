//! `ferrolm export` and `ferrolm recovery-key`: key export files and recovery keys.

use std::collections::BTreeMap;
use std::io::Read;

use ferrolm::key_export;
use ferrolm::secret_storage::SecretStorageKey;
use ferrolm::zeroize::Zeroizing;

/// The environment variable a passphrase may come from (scripts, tests); otherwise the user
/// is prompted without echo.
pub(crate) const PASSPHRASE_VAR: &str = "FERROLM_PASSPHRASE";

fn passphrase(confirm: bool) -> Result<Zeroizing<String>, String> {
    crate::read_passphrase(PASSPHRASE_VAR, "Passphrase: ", confirm)
}

fn read_input(path: Option<&str>) -> Result<Zeroizing<String>, String> {
    let mut text = Zeroizing::new(String::new());
    match path {
        None | Some("-") => std::io::stdin().read_to_string(&mut text).map(|_| ()),
        Some(path) => std::fs::read_to_string(path).map(|t| *text = t),
    }
    .map_err(|e| format!("cannot read {}: {e}", path.unwrap_or("standard input")))?;
    Ok(text)
}

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("decrypt") => decrypt(args.get(1..).unwrap_or_default()),
        Some("encrypt") => encrypt(args.get(1..).unwrap_or_default()),
        _ => Err("usage: ferrolm export decrypt FILE [--show-keys] | ferrolm export encrypt [--rounds N] [--in FILE] [--out FILE]".into()),
    }
}

fn decrypt(args: &[String]) -> Result<(), String> {
    let show_keys = args.iter().any(|a| a == "--show-keys");
    let files: Vec<&String> = args.iter().filter(|a| *a != "--show-keys").collect();
    let [file] = files.as_slice() else { return Err("usage: ferrolm export decrypt FILE [--show-keys]".into()) };
    let contents = read_input(Some(file))?;
    let rounds = key_export::rounds(&contents).map_err(|e| e.to_string())?;
    let passphrase = passphrase(false)?;
    eprintln!("Deriving the key from the passphrase ({rounds} PBKDF2 rounds; this takes a moment)…");
    let plaintext = key_export::decrypt(&contents, &passphrase).map_err(|e| e.to_string())?;
    print!("{}", summarize(&plaintext, show_keys)?);
    Ok(())
}

/// A summary of the exported keys: counts per room and algorithm, and the session ids. The
/// session keys themselves only with `show_keys`.
pub(crate) fn summarize(plaintext: &[u8], show_keys: bool) -> Result<String, String> {
    let keys: Zeroizing<Vec<u8>> = Zeroizing::new(plaintext.to_vec());
    let parsed: serde_json::Value =
        serde_json::from_slice(&keys).map_err(|e| format!("the file decrypted, but its contents are not JSON: {e}"))?;
    let entries = parsed.as_array().ok_or("the file decrypted, but does not hold a JSON array of keys")?;
    let field =
        |entry: &serde_json::Value, name: &str| entry.get(name).and_then(|v| v.as_str()).unwrap_or("?").to_owned();
    let mut rooms: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut algorithms: BTreeMap<String, usize> = BTreeMap::new();
    for entry in entries {
        rooms.entry(field(entry, "room_id")).or_default().push(field(entry, "session_id"));
        *algorithms.entry(field(entry, "algorithm")).or_default() += 1;
    }
    let mut out = format!("{} room keys in {} rooms\n", entries.len(), rooms.len());
    for (algorithm, count) in &algorithms {
        out.push_str(&format!("  {algorithm}: {count}\n"));
    }
    for (room, sessions) in &rooms {
        out.push_str(&format!("{room}: {} sessions\n", sessions.len()));
        for session in sessions {
            out.push_str(&format!("  {session}\n"));
        }
    }
    if show_keys {
        out.push_str(&serde_json::to_string_pretty(&parsed).map_err(|e| e.to_string())?);
        out.push('\n');
    } else {
        out.push_str("(session keys not shown; add --show-keys to print them)\n");
    }
    Ok(out)
}

fn encrypt(args: &[String]) -> Result<(), String> {
    let (rounds, rest) = crate::take_option(args, "--rounds")?;
    let (input, rest) = crate::take_option(&rest, "--in")?;
    let (output, rest) = crate::take_option(&rest, "--out")?;
    if let Some(extra) = rest.first() {
        return Err(format!(
            "unexpected argument `{extra}`; usage: ferrolm export encrypt [--rounds N] [--in FILE] [--out FILE]"
        ));
    }
    let rounds = rounds.map_or(Ok(key_export::DEFAULT_ROUNDS), |r| {
        r.parse().map_err(|_| format!("--rounds: `{r}` is not a number"))
    })?;
    let json = read_input(input.as_deref())?;
    let parsed: serde_json::Value = serde_json::from_str(&json).map_err(|e| format!("the input is not JSON: {e}"))?;
    if !parsed.is_array() {
        return Err("the input must be a JSON array of exported room keys".into());
    }
    let passphrase = passphrase(true)?;
    eprintln!("Deriving the key from the passphrase ({rounds} PBKDF2 rounds; this takes a moment)…");
    let file = key_export::encrypt(json.as_bytes(), &passphrase, rounds).map_err(|e| e.to_string())?;
    match output {
        Some(path) => std::fs::write(&path, file).map_err(|e| format!("cannot write {path}: {e}")),
        None => {
            print!("{file}");
            Ok(())
        }
    }
}

pub(crate) fn recovery_key(args: &[String]) -> Result<(), String> {
    let (Some("check"), rest) = (args.first().map(String::as_str), args.get(1..).unwrap_or_default()) else {
        return Err("usage: ferrolm recovery-key check [KEY]   (reads the key from standard input without KEY)".into());
    };
    let key = match rest {
        [] => read_input(None)?,
        words => Zeroizing::new(words.join(" ")),
    };
    match SecretStorageKey::from_recovery_key(key.trim()) {
        Ok(_) => {
            println!("The recovery key is well formed: prefix, length and parity check out.");
            Ok(())
        }
        Err(error) => Err(format!("not a valid recovery key: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_count_rooms_and_hide_keys() {
        let json = br#"[
            {"algorithm":"m.megolm.v1.aes-sha2","room_id":"!a:x","session_id":"s1","session_key":"SECRET1"},
            {"algorithm":"m.megolm.v1.aes-sha2","room_id":"!a:x","session_id":"s2","session_key":"SECRET2"},
            {"algorithm":"m.megolm.v1.aes-sha2","room_id":"!b:x","session_id":"s3","session_key":"SECRET3"}
        ]"#;
        let summary = summarize(json, false).unwrap();
        assert!(summary.starts_with("3 room keys in 2 rooms"), "{summary}");
        assert!(summary.contains("!a:x: 2 sessions") && summary.contains("  s3\n"));
        assert!(!summary.contains("SECRET"));
        assert!(summarize(json, true).unwrap().contains("SECRET2"));
        assert!(summarize(b"{}", false).is_err());
        assert!(summarize(b"not json", false).is_err());
    }

    #[test]
    fn recovery_keys_are_checked() {
        let written = SecretStorageKey::new().to_recovery_key();
        let words: Vec<String> = written.split(' ').map(str::to_owned).collect();
        let mut args = vec!["check".to_owned()];
        args.extend(words.iter().cloned());
        assert!(recovery_key(&args).is_ok());
        args.truncate(5);
        assert!(recovery_key(&args).unwrap_err().contains("characters are missing"));
        assert!(recovery_key(&["verify".to_owned()]).unwrap_err().contains("usage"));
    }
}
