//! Secrets at rest: values are sealed (ChaCha20-Poly1305, the secret's name as associated data)
//! by the member that proposes them, so the Raft log, snapshots and every file of a data dir
//! hold only ciphertext. The key comes from `--secrets-key-file`, outside the data dir; every
//! member of a cluster is given the same one.

use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use std::path::Path;

const KEY_LEN: usize = 32;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A secret as the replicated state holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SecretRecord {
    /// Base64 of the nonce followed by the ciphertext and its tag.
    pub(crate) sealed: String,
    /// Which key sealed it ([`SecretsKey::id`]), so a member given another key says so.
    pub(crate) key_id: String,
    pub(crate) version: u64,
    pub(crate) created_at_ms: u64,
    pub(crate) updated_at_ms: u64,
}

/// A sealed value, before the state gives it a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    pub(crate) sealed: String,
    pub(crate) key_id: String,
}

pub(crate) struct SecretsKey {
    key: LessSafeKey,
    id: String,
}

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretsKey({})", self.id)
    }
}

impl SecretsKey {
    /// Reads a key file: 32 bytes written as 64 hexadecimal digits (what `fjord dev` and
    /// [`SecretsKey::generate`] write; `openssl rand -hex 32` makes one), surrounding whitespace
    /// ignored.
    pub(crate) fn load(path: &Path) -> Result<SecretsKey, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the secrets key file {}: {e}", path.display()))?;
        let bytes = decode_hex(text.trim()).ok_or_else(|| {
            format!(
                "the secrets key file {} must hold 32 bytes as 64 hexadecimal digits (make one with `openssl rand -hex 32`)",
                path.display()
            )
        })?;
        Ok(SecretsKey::from_bytes(&bytes))
    }

    fn from_bytes(bytes: &[u8; KEY_LEN]) -> SecretsKey {
        let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
        let id = digest.as_ref()[..6].iter().map(|b| format!("{b:02x}")).collect();
        let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, bytes).expect("a 32-byte key"));
        SecretsKey { key, id }
    }

    /// A new random key, as the text a key file holds.
    pub(crate) fn generate() -> String {
        let mut bytes = [0u8; KEY_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .expect("the system's random source");
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>() + "\n"
    }

    /// The key's fingerprint (not secret): the first bytes of its SHA-256.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn seal(&self, name: &str, value: &[u8]) -> Sealed {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .expect("the system's random source");
        let mut data = value.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(name.as_bytes()),
                &mut data,
            )
            .expect("sealing a bounded value");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Sealed {
            sealed: B64.encode(out),
            key_id: self.id.clone(),
        }
    }

    pub(crate) fn open(&self, name: &str, record: &SecretRecord) -> Result<Vec<u8>, String> {
        if record.key_id != self.id {
            return Err(format!(
                "secret {name:?} was sealed with key {}, but this member's --secrets-key-file holds key {}: give every member the cluster's key file",
                record.key_id, self.id
            ));
        }
        let unreadable = || format!("secret {name:?} cannot be opened with this member's key (damaged?)");
        let bytes = B64.decode(&record.sealed).map_err(|_| unreadable())?;
        if bytes.len() < NONCE_LEN {
            return Err(unreadable());
        }
        let (nonce, data) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| unreadable())?;
        let mut data = data.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(name.as_bytes()), &mut data)
            .map_err(|_| unreadable())?;
        Ok(plain.to_vec())
    }
}

/// Writes a new random key to `path` (mode 0600), unless a file is there already: what `fjord
/// dev` does once, outside its data dir.
pub fn ensure_key_file(path: &Path) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if path.exists() {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(SecretsKey::generate().as_bytes())?;
    file.sync_all()
}

fn decode_hex(text: &str) -> Option<[u8; KEY_LEN]> {
    if text.len() != KEY_LEN * 2 {
        return None;
    }
    let mut out = [0u8; KEY_LEN];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SecretsKey {
        SecretsKey::from_bytes(&[byte; KEY_LEN])
    }

    fn record(sealed: Sealed) -> SecretRecord {
        SecretRecord {
            sealed: sealed.sealed,
            key_id: sealed.key_id,
            version: 1,
            created_at_ms: 0,
            updated_at_ms: 0,
        }
    }

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_name_and_holds_no_plaintext() {
        let k = key(7);
        let sealed = k.seal("db-password", b"hunter2-very-secret");
        assert!(!sealed.sealed.contains("hunter2"));
        let decoded = B64.decode(&sealed.sealed).unwrap();
        assert!(!decoded.windows(7).any(|w| w == b"hunter2"));
        let r = record(sealed.clone());
        assert_eq!(k.open("db-password", &r).unwrap(), b"hunter2-very-secret");
        // Moved under another name: refused.
        assert!(k.open("other", &r).unwrap_err().contains("cannot be opened"));
        // Another key: refused, naming both keys.
        let err = key(8).open("db-password", &r).unwrap_err();
        assert!(err.contains(k.id()) && err.contains(key(8).id()), "{err}");
        // Two seals of one value differ (fresh nonces).
        assert_ne!(k.seal("db-password", b"x").sealed, k.seal("db-password", b"x").sealed);
    }

    #[test]
    fn key_files_are_64_hex_digits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, SecretsKey::generate()).unwrap();
        let loaded = SecretsKey::load(&path).unwrap();
        assert_eq!(loaded.id().len(), 12);
        std::fs::write(&path, "not a key").unwrap();
        assert!(SecretsKey::load(&path).unwrap_err().contains("64 hexadecimal digits"));
        assert!(SecretsKey::load(&dir.path().join("missing"))
            .unwrap_err()
            .contains("cannot read"));
    }
}
