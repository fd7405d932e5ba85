#![no_main]
//! A downloaded key backup (`GET /room_keys/keys`) restored into Bob's machine with the
//! backup's key. Every key is untrusted: one that does not decrypt, decode or match where it
//! is filed is counted as failed, never stored. Every key is counted once; a restore of fewer
//! than `IMPORT_COMMIT_SIZE` keys is one change set (and one more to activate the backup); a
//! refused backup changes nothing.
use ferrolm_fuzz::machine::{BACKUP_KEY, backup_info, machine_fixture};
use ferrolm_machine::{BackupDecryptionKey, BackupError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let fx = machine_fixture();
    let mut bob = fx.bob.open();
    let key = BackupDecryptionKey::from_bytes(&BACKUP_KEY);
    let info = backup_info(&key);
    let generation = bob.store().generation();
    let keys_before = bob.store().all_inbound_group_sessions().expect("store").len();
    match bob.restore_backup(&info, &key, data, |done, total| assert!(done <= total)) {
        Ok(report) => {
            assert_eq!(report.imported + report.not_better + report.failed, report.total, "every key counted once");
            assert!(bob.store().generation() <= generation + 2, "one change set, and the activation");
            let after = bob.store().all_inbound_group_sessions().expect("store").len();
            assert!(after <= keys_before + report.imported, "more keys stored than imported");
        }
        Err(BackupError::MalformedBackup(_) | BackupError::NothingDecrypted { .. }) => {
            let after = bob.store().all_inbound_group_sessions().expect("store").len();
            assert_eq!(after, keys_before, "a refused backup stored keys");
        }
        Err(e) => panic!("a downloaded backup failed the restore: {e}"),
    }
    bob.outgoing_requests().expect("the machine still works");
});
