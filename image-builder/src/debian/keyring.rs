//! The Debian archive keys we trust, and which of their (sub)keys may sign a Release file.
//!
//! The keys are compiled in from `image-builder/keys/` (exported from the build host's
//! `debian-archive-keyring`; see `keys/README.md`), so the trust root is part of the reviewed
//! source tree and not whatever a build host happens to have installed.
//!
//! Debian signs `InRelease` twice per release: the ftp-master "automatic" key signs with a
//! signing *subkey*, the release team's "stable" key with its primary key. rPGP verifies a
//! signature against one key; choosing which keys are allowed to sign is ours to do, as gpgv
//! would: a subkey counts only if its binding signature (and the embedded back-signature)
//! verify, it carries the signing flag, it is not revoked, and it had not expired when the
//! signature was made nor has it expired now. The same holds for a primary key, whose flags and
//! expiry come from its newest self-signature.

use std::time::{Duration, SystemTime};

use pgp::composed::{Deserializable, SignedPublicKey};
use pgp::packet::{PublicKey, PublicSubkey, Signature, SignatureType, SubpacketData};
use pgp::types::{KeyDetails, Tag};

use super::error::DebianError;

/// (file name, armoured key) for each key trusted for a suite.
type KeyFiles = &'static [(&'static str, &'static str)];

const TRIXIE_KEYS: KeyFiles = &[
    (
        "debian-archive-trixie-automatic.asc",
        include_str!("../../keys/debian-archive-trixie-automatic.asc"),
    ),
    (
        "debian-archive-trixie-stable.asc",
        include_str!("../../keys/debian-archive-trixie-stable.asc"),
    ),
];

/// The (sub)keys allowed to sign a Release file, worked out once when the keys are loaded.
pub struct Keyring {
    signers: Vec<Signer>,
}

/// A primary key or subkey that may sign, with its validity window.
pub(crate) struct Signer {
    pub(crate) key: SignerKey,
    /// Upper-case hex, as gpg prints it.
    pub(crate) fingerprint: String,
    created: SystemTime,
    expires: Option<SystemTime>,
}

pub(crate) enum SignerKey {
    Primary(PublicKey),
    Subkey(PublicSubkey),
}

impl Keyring {
    /// The archive keys for a Debian release, by codename (e.g. `trixie`).
    pub fn for_codename(codename: &str) -> Result<Keyring, DebianError> {
        let files = match codename {
            "trixie" => TRIXIE_KEYS,
            _ => {
                return Err(DebianError::NoKeysForRelease {
                    codename: codename.to_owned(),
                });
            }
        };
        let mut signers = Vec::new();
        for (file, armored) in files {
            signers.extend(Self::from_key_file(file, armored)?.signers);
        }
        Ok(Keyring { signers })
    }

    /// Loads every key in an armoured or binary key file.
    pub(crate) fn from_key_file(file: &'static str, data: &str) -> Result<Keyring, DebianError> {
        let (keys, _headers) =
            SignedPublicKey::from_reader_many(data.as_bytes()).map_err(|source| {
                DebianError::LoadKey {
                    file,
                    source: Box::new(source),
                }
            })?;
        let mut signers = Vec::new();
        for key in keys {
            let key = key.map_err(|source| DebianError::LoadKey {
                file,
                source: Box::new(source),
            })?;
            signers.extend(signers_of(&key, file)?);
        }
        Ok(Keyring { signers })
    }

    /// The signers whose keys have not expired at `now`.
    pub(crate) fn signers_at(&self, now: SystemTime) -> impl Iterator<Item = &Signer> {
        self.signers
            .iter()
            .filter(move |signer| signer.expires.is_none_or(|at| now < at))
    }
}

/// The signing-capable keys of one certificate. Only self-signatures count, and only those
/// that verify: third-party certifications on the user ID (Debian's keys carry some) are not
/// ours to judge and are skipped.
fn signers_of(key: &SignedPublicKey, file: &'static str) -> Result<Vec<Signer>, DebianError> {
    let primary = &key.primary_key;
    let by_primary = |signature: &Signature| issued_by(signature, primary);

    let revoked = key
        .details
        .revocation_signatures
        .iter()
        .any(|s| by_primary(s) && s.verify_key(primary).is_ok());
    if revoked {
        // A revoked archive key must not be trusted, nor any of its subkeys.
        return Ok(Vec::new());
    }

    let certifications = key.details.users.iter().flat_map(|user| {
        user.signatures
            .iter()
            .filter(|s| by_primary(s) && is_certification(s))
            .filter(|s| {
                s.verify_certification(primary, Tag::UserId, &user.id)
                    .is_ok()
            })
    });
    let direct = key
        .details
        .direct_signatures
        .iter()
        .filter(|s| by_primary(s) && s.verify_key(primary).is_ok());
    // Usage flags and expiry come from the newest user ID self-certification, as gpg reads
    // them; Debian's keys also carry flag-less direct-key signatures (notations) that are
    // newer and must not hide the flags.
    let self_signature = newest(certifications)
        .or_else(|| newest(direct))
        .ok_or_else(|| DebianError::InvalidKey {
            file,
            reason: format!(
                "key {:X} has no valid self-signature",
                primary.fingerprint()
            ),
        })?;

    let mut signers = Vec::new();
    let created = SystemTime::from(primary.created_at());
    if can_sign(self_signature) {
        signers.push(Signer {
            key: SignerKey::Primary(primary.clone()),
            fingerprint: format!("{:X}", primary.fingerprint()),
            created,
            expires: expiry(created, self_signature),
        });
    }

    for subkey in &key.public_subkeys {
        let genuine = |s: &&Signature| s.verify_subkey_binding(primary, &subkey.key).is_ok();
        let revoked = subkey
            .signatures
            .iter()
            .filter(|s| s.typ() == Some(SignatureType::SubkeyRevocation))
            .any(|s| genuine(&s));
        if revoked {
            continue;
        }
        // A signing subkey must also sign the primary key back (the embedded "primary key
        // binding"), or anyone could attach someone else's signing key as a subkey.
        let bindings = subkey
            .signatures
            .iter()
            .filter(|s| s.typ() == Some(SignatureType::SubkeyBinding))
            .filter(genuine)
            .filter(|s| {
                s.embedded_signature().is_some_and(|back| {
                    back.verify_primary_key_binding(&subkey.key, primary)
                        .is_ok()
                })
            });
        let Some(binding) = newest(bindings) else {
            continue;
        };
        if can_sign(binding) {
            let created = SystemTime::from(subkey.key.created_at());
            signers.push(Signer {
                key: SignerKey::Subkey(subkey.key.clone()),
                fingerprint: format!("{:X}", subkey.key.fingerprint()),
                created,
                expires: expiry(created, binding),
            });
        }
    }
    Ok(signers)
}

impl Signer {
    /// Whether `signature` names this key as its issuer (by fingerprint or key id).
    pub(crate) fn issued(&self, signature: &Signature) -> bool {
        match &self.key {
            SignerKey::Primary(key) => issued_by(signature, key),
            SignerKey::Subkey(key) => issued_by(signature, key),
        }
    }

    /// Whether the key was valid when `signature` was made.
    pub(crate) fn valid_at_creation_of(&self, signature: &Signature) -> bool {
        let Some(made) = signature.created().map(SystemTime::from) else {
            return false;
        };
        made >= self.created && self.expires.is_none_or(|at| made < at)
    }
}

fn issued_by(signature: &Signature, key: &impl KeyDetails) -> bool {
    signature.issuer_fingerprint().contains(&&key.fingerprint())
        || signature.issuer_key_id().contains(&&key.legacy_key_id())
}

fn newest<'a>(signatures: impl Iterator<Item = &'a Signature>) -> Option<&'a Signature> {
    signatures.max_by_key(|s| s.created().map(|t| t.as_secs()).unwrap_or(0))
}

fn is_certification(signature: &Signature) -> bool {
    matches!(
        signature.typ(),
        Some(
            SignatureType::CertGeneric
                | SignatureType::CertPersona
                | SignatureType::CertCasual
                | SignatureType::CertPositive
        )
    )
}

/// Signing capability from the Key Flags subpacket. A key without the subpacket is treated
/// as unable to sign: every Debian archive key carries flags, and guessing would only widen
/// what we trust.
fn can_sign(signature: &Signature) -> bool {
    let has_flags = signature.config().is_some_and(|config| {
        config
            .hashed_subpackets()
            .any(|p| matches!(p.data, SubpacketData::KeyFlags(_)))
    });
    has_flags && signature.key_flags().sign()
}

/// Key expiry is stored as an offset from the key's creation; zero means "never".
fn expiry(created: SystemTime, signature: &Signature) -> Option<SystemTime> {
    signature
        .key_expiration_time()
        .map(|offset| Duration::from_secs(u64::from(offset.as_secs())))
        .filter(|offset| !offset.is_zero())
        .map(|offset| created + offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-21, the day the fixture InRelease was signed.
    fn fixture_time() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_252_000)
    }

    #[test]
    fn trixie_keys_load_with_the_expected_signers() {
        let keyring = Keyring::for_codename("trixie").expect("shipped keys load");
        let mut signers: Vec<(String, bool)> = keyring
            .signers_at(fixture_time())
            .map(|s| (s.fingerprint.clone(), matches!(s.key, SignerKey::Subkey(_))))
            .collect();
        signers.sort();
        assert_eq!(
            signers,
            [
                // Automatic signing key: primary (certifies and signs) and signing subkey.
                ("04B54C3CDCA79751B16BC6B5225629DF75B188BD".to_owned(), false),
                // Stable release key: signs with its primary key.
                ("41587F7DB8C774BCCF131416762F67A0B2C39DE4".to_owned(), false),
                ("B8E5F13176D2A7A75220028078DBA3BC47EF2265".to_owned(), true),
            ]
        );
    }

    #[test]
    fn expired_keys_do_not_sign() {
        let keyring = Keyring::for_codename("trixie").expect("shipped keys load");
        // Both trixie keys expire by 2035-03-28.
        let later = SystemTime::UNIX_EPOCH + Duration::from_secs(2_100_000_000);
        assert_eq!(keyring.signers_at(later).count(), 0);
    }

    #[test]
    fn unknown_suite_has_no_keys() {
        assert!(matches!(
            Keyring::for_codename("bookworm"),
            Err(DebianError::NoKeysForRelease { .. })
        ));
    }

    #[test]
    fn garbage_key_file_is_an_error() {
        assert!(matches!(
            Keyring::from_key_file("garbage.asc", "not a key"),
            Err(DebianError::LoadKey { .. })
        ));
    }
}
