//! The admin password as the console keeps it: a SHA-512 crypt hash (`$6$salt$digest`), the
//! format of `/etc/shadow`, `mkpasswd -m sha-512` and `openssl passwd -6`, so a hash can be
//! checked or made with standard tools. The salt is 12 bytes from the kernel's random source
//! (16 characters once encoded: the longest salt SHA-crypt uses).

use sha_crypt::password_hash::Error as CryptError;
use sha_crypt::{PasswordHasher, PasswordVerifier, ShaCrypt};
use thiserror::Error;

/// Shorter passwords are refused when one is set. Eight characters is the floor most
/// guidance (NIST SP 800-63B) gives for a secret chosen by a person.
pub const MIN_LENGTH: usize = 8;
/// Raw salt bytes; base64 makes them the 16 characters SHA-crypt uses at most.
const SALT_BYTES: usize = 12;
const PREFIX: &str = "$6$";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum HashError {
    #[error("Not a SHA-512 crypt hash (it should start with \"$6$\")")]
    NotSha512,
    #[error("The SHA-512 crypt hash is malformed ({0})")]
    Malformed(String),
    #[error("Cannot get random bytes for the salt from the kernel ({0})")]
    Salt(String),
}

/// Why a new password is not taken.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum NewPasswordError {
    #[error("Too short: {got} characters; use at least {MIN_LENGTH}")]
    TooShort { got: usize },
    #[error("The two passwords differ; type the same one twice")]
    Mismatch,
}

/// A well-formed `$6$` hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Checks that `text` (surrounding white space ignored) is a SHA-512 crypt hash that
    /// verification can use, without knowing the password.
    pub fn parse(text: &str) -> Result<Self, HashError> {
        let text = text.trim();
        if !text.starts_with(PREFIX) {
            return Err(HashError::NotSha512);
        }
        // Verifying any password parses the whole hash first: a wrong password is the only
        // answer a well-formed hash gives (or success, if the stored password is empty).
        match ShaCrypt::SHA512.verify_password(b"", text) {
            Ok(()) | Err(CryptError::PasswordInvalid) => Ok(Self(text.to_owned())),
            Err(other) => Err(HashError::Malformed(other.to_string())),
        }
    }

    /// Hashes `password` with a fresh random salt.
    pub fn new(password: &str) -> Result<Self, HashError> {
        let mut salt = [0u8; SALT_BYTES];
        getrandom::fill(&mut salt).map_err(|e| HashError::Salt(e.to_string()))?;
        Self::with_salt(password, &salt)
    }

    /// Hashes `password` with `salt` (raw bytes; at most 12 are used).
    pub fn with_salt(password: &str, salt: &[u8]) -> Result<Self, HashError> {
        let salt = &salt[..salt.len().min(SALT_BYTES)];
        let hash: sha_crypt::PasswordHash = ShaCrypt::SHA512
            .hash_password_with_salt(password.as_bytes(), salt)
            .map_err(|e| HashError::Malformed(e.to_string()))?;
        Ok(Self(hash.as_str().to_owned()))
    }

    /// Whether `password` is the one this hash was made from (constant-time comparison).
    pub fn verify(&self, password: &str) -> bool {
        ShaCrypt::SHA512
            .verify_password(password.as_bytes(), self.0.as_str())
            .is_ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The rules for a new password, typed twice.
pub fn check_new(first: &str, second: &str) -> Result<(), NewPasswordError> {
    let got = first.chars().count();
    if got < MIN_LENGTH {
        return Err(NewPasswordError::TooShort { got });
    }
    if first != second {
        return Err(NewPasswordError::Mismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `openssl passwd -6 -salt Cairn.salt.16ch 'correct horse'`: a hash made by another
    /// implementation must verify.
    const OPENSSL: &str = "$6$Cairn.salt.16ch$prPUCjQHraPtWvBK4UuamQ3s9.J2b3UhECBHG3Yj24y1gl4.OFZkkJt0PzhacNLAuls7M28YQCrwyn7IGKYwV0";
    /// The SHA-crypt specification's own vector (Drepper), with explicit rounds.
    const SPEC_ROUNDS: &str = "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.";

    #[test]
    fn known_vectors_verify() {
        let openssl = PasswordHash::parse(OPENSSL).expect("valid");
        assert!(openssl.verify("correct horse"));
        assert!(!openssl.verify("correct horse "));
        let spec = PasswordHash::parse(&format!("{SPEC_ROUNDS}\n")).expect("valid");
        assert!(spec.verify("Hello world!"));
        assert!(!spec.verify("hello world!"));
    }

    #[test]
    fn round_trip_with_random_salt() {
        let a = PasswordHash::new("s3cret-admin").expect("hash");
        let b = PasswordHash::new("s3cret-admin").expect("hash");
        assert!(a.as_str().starts_with("$6$"), "{}", a.as_str());
        assert_ne!(a, b, "two hashes of one password must differ by their salt");
        assert!(a.verify("s3cret-admin") && b.verify("s3cret-admin"));
        assert!(!a.verify("s3cret-admin2"));
        assert_eq!(PasswordHash::parse(a.as_str()), Ok(a));
    }

    #[test]
    fn same_salt_same_hash() {
        let a = PasswordHash::with_salt("passw0rd!", b"0123456789ab").expect("hash");
        let b = PasswordHash::with_salt("passw0rd!", b"0123456789ab").expect("hash");
        assert_eq!(a, b);
    }

    #[test]
    fn malformed_hashes_are_named() {
        assert_eq!(PasswordHash::parse(""), Err(HashError::NotSha512));
        assert_eq!(
            PasswordHash::parse("$5$salt$abc"),
            Err(HashError::NotSha512)
        );
        assert!(matches!(
            PasswordHash::parse("$6$salt$not*base64"),
            Err(HashError::Malformed(_))
        ));
        assert!(matches!(
            PasswordHash::parse("$6$onlysalt"),
            Err(HashError::Malformed(_))
        ));
    }

    #[test]
    fn new_password_rules() {
        assert_eq!(check_new("longenough", "longenough"), Ok(()));
        assert_eq!(
            check_new("short", "short"),
            Err(NewPasswordError::TooShort { got: 5 })
        );
        assert_eq!(
            check_new("longenough", "longenougH"),
            Err(NewPasswordError::Mismatch)
        );
        // Characters, not bytes: "äöüäöüäö" is 8.
        assert_eq!(check_new("äöüäöüäö", "äöüäöüäö"), Ok(()));
    }
}
