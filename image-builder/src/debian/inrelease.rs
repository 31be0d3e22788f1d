//! `dists/<suite>/InRelease`: check its clear-text OpenPGP signature, then read the index
//! checksums out of the signed text.
//!
//! Everything downstream is trusted only through this file: the `Packages` indexes are
//! checked against its SHA-256 lines, and the `.deb`s against the SHA-256 sums in those
//! indexes (recorded in the lock). So only the text that was actually signed is parsed —
//! never bytes around the signed block (rPGP refuses leading and trailing data anyway).
//!
//! Rules (the same as apt/gpgv): at least one signature must verify against a trusted,
//! unexpired signing key; signatures by unknown keys are ignored (Debian also signs with the
//! previous release's key); a signature that claims a *trusted* key but does not verify fails
//! the whole file, because that means the text was changed after signing. The signed
//! `Codename` must be the release asked for, so a mirror cannot answer `trixie` with another
//! release's (validly signed) file.

use std::collections::BTreeMap;
use std::time::SystemTime;

use pgp::composed::CleartextSignedMessage;
use pgp::packet::SignatureType;

use super::deb822;
use super::error::DebianError;
use super::keyring::{Keyring, SignerKey};

/// Size and SHA-256 of one file below `dists/<suite>/`, as the signed Release lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexFile {
    pub size: u64,
    pub sha256: String,
}

/// The parts of a verified Release file we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub codename: String,
    pub suite: String,
    /// `Acquire-By-Hash: yes`: indexes can be fetched under `by-hash/SHA256/<sum>`.
    pub acquire_by_hash: bool,
    /// Path relative to `dists/<suite>/` (e.g. `main/binary-all/Packages.xz`) → size, hash.
    pub sha256: BTreeMap<String, IndexFile>,
}

/// Verifies a clear-signed `InRelease` and returns the signed text (with `\n` line ends)
/// and the fingerprint of the key whose signature made it trusted.
pub fn verify(
    armored: &str,
    url: &str,
    keyring: &Keyring,
    now: SystemTime,
) -> Result<(String, String), DebianError> {
    let (message, _headers) = CleartextSignedMessage::from_string(armored).map_err(|source| {
        DebianError::ParseInRelease {
            url: url.to_owned(),
            source: Box::new(source),
        }
    })?;
    let signed_text = message.signed_text();
    let signers: Vec<_> = keyring.signers_at(now).collect();
    let mut trusted_by = None;
    let mut others = Vec::new();

    for signature in message.signatures() {
        let document_signature = matches!(
            signature.typ(),
            Some(SignatureType::Binary | SignatureType::Text)
        );
        let issuers: Vec<_> = signers
            .iter()
            .filter(|signer| signer.issued(signature))
            .collect();
        if issuers.is_empty() || !document_signature {
            others.push(describe_issuer(signature));
            continue;
        }
        for key in issuers {
            let checked = match &key.key {
                SignerKey::Primary(primary) => signature.verify(primary, signed_text.as_bytes()),
                SignerKey::Subkey(subkey) => signature.verify(subkey, signed_text.as_bytes()),
            };
            match checked {
                Err(source) => {
                    return Err(DebianError::BadSignature {
                        url: url.to_owned(),
                        key: key.fingerprint.clone(),
                        source: Box::new(source),
                    });
                }
                Ok(()) if key.valid_at_creation_of(signature) => {
                    trusted_by.get_or_insert_with(|| key.fingerprint.clone());
                }
                Ok(()) => others.push(format!(
                    "{} (made outside the key's validity period)",
                    key.fingerprint
                )),
            }
        }
    }

    match trusted_by {
        Some(fingerprint) => Ok((signed_text.replace("\r\n", "\n"), fingerprint)),
        None => Err(DebianError::Untrusted {
            url: url.to_owned(),
            signers: if others.is_empty() {
                "nobody".to_owned()
            } else {
                others.join(", ")
            },
        }),
    }
}

fn describe_issuer(signature: &pgp::packet::Signature) -> String {
    if let Some(fingerprint) = signature.issuer_fingerprint().first() {
        format!("{fingerprint:X}")
    } else if let Some(key_id) = signature.issuer_key_id().first() {
        let hex: String = key_id.as_ref().iter().map(|b| format!("{b:02X}")).collect();
        format!("key id {hex}")
    } else {
        "an unnamed key".to_owned()
    }
}

/// Reads the fields we need from verified Release text, which must be for the release
/// `expected_codename` (e.g. `trixie`).
pub fn parse_release(
    signed_text: &str,
    url: &str,
    expected_codename: &str,
) -> Result<Release, DebianError> {
    let invalid = |reason: String| DebianError::InvalidRelease {
        url: url.to_owned(),
        reason,
    };
    let paragraphs = deb822::parse_str(signed_text).map_err(|e| invalid(e.to_string()))?;
    let [paragraph] = paragraphs.as_slice() else {
        return Err(invalid(format!(
            "expected one paragraph, found {}",
            paragraphs.len()
        )));
    };
    let codename = paragraph.get("Codename").unwrap_or_default().to_owned();
    let suite = paragraph.get("Suite").unwrap_or_default().to_owned();
    // The codename, not the suite: `stable` moves to the next release every two years,
    // `trixie` never does, and the keys we trust are per codename.
    if codename != expected_codename {
        return Err(DebianError::WrongSuite {
            url: url.to_owned(),
            expected: expected_codename.to_owned(),
            codename,
            suite_field: suite,
        });
    }
    let acquire_by_hash = paragraph
        .get("Acquire-By-Hash")
        .is_some_and(|value| value.eq_ignore_ascii_case("yes"));
    let section = paragraph
        .get("SHA256")
        .ok_or_else(|| invalid("it has no SHA256 field".to_owned()))?;
    let sha256 = parse_sha256_section(section).map_err(invalid)?;
    Ok(Release {
        codename,
        suite,
        acquire_by_hash,
        sha256,
    })
}

/// The `SHA256:` field: one `<sha256> <size> <path>` line per file.
fn parse_sha256_section(section: &str) -> Result<BTreeMap<String, IndexFile>, String> {
    let mut files = BTreeMap::new();
    for line in section.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [sha256, size, path] = parts.as_slice() else {
            return Err(format!(
                "SHA256 line `{line}` is not `<sha256> <size> <path>`"
            ));
        };
        if !is_sha256(sha256) {
            return Err(format!("SHA256 line `{line}` has a malformed checksum"));
        }
        let size = size
            .parse()
            .map_err(|_| format!("SHA256 line `{line}` has a malformed size"))?;
        files.insert(
            (*path).to_owned(),
            IndexFile {
                size,
                sha256: (*sha256).to_owned(),
            },
        );
    }
    if files.is_empty() {
        return Err("its SHA256 field lists no files".to_owned());
    }
    Ok(files)
}

/// 64 lower-case hex digits.
pub fn is_sha256(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use pgp::composed::ArmorOptions;

    use super::*;

    /// `dists/trixie/InRelease` as served on 2026-11-21 (Debian 13.8), kept verbatim.
    const FIXTURE: &str = include_str!("testdata/trixie-InRelease");
    const URL: &str = "http://mirror.invalid/debian/dists/trixie/InRelease";
    const AUTOMATIC_SUBKEY: &str = "B8E5F13176D2A7A75220028078DBA3BC47EF2265";

    /// Shortly after the fixture was signed (09:18 UTC on 2026-11-21).
    fn fixture_time() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_260_000)
    }

    fn trixie() -> Keyring {
        Keyring::for_codename("trixie").expect("shipped keys load")
    }

    #[test]
    fn real_inrelease_verifies() {
        let (text, signer) = verify(FIXTURE, URL, &trixie(), fixture_time()).expect("verifies");
        assert!(text.starts_with("Origin: Debian\n"));
        assert!(!text.contains('\r'));
        assert!(!text.contains("BEGIN PGP"));
        assert!(
            [AUTOMATIC_SUBKEY, "41587F7DB8C774BCCF131416762F67A0B2C39DE4"]
                .contains(&signer.as_str())
        );
    }

    #[test]
    fn signature_by_a_signing_subkey_is_accepted() {
        // Only the automatic key: its primary key did not sign, its subkey did.
        let keyring = Keyring::from_key_file(
            "debian-archive-trixie-automatic.asc",
            include_str!("../../keys/debian-archive-trixie-automatic.asc"),
        )
        .expect("key loads");
        let (_, signer) = verify(FIXTURE, URL, &keyring, fixture_time()).expect("verifies");
        assert_eq!(signer, AUTOMATIC_SUBKEY);
    }

    #[test]
    fn tampered_inrelease_is_refused() {
        // Point the amd64 index at another checksum, as an attacker would.
        let genuine = " be3d7d96a040eda0505c1808cccc67f183bbc05dff0842c50f88e6c396557412  9679304 main/binary-amd64/Packages.xz";
        assert!(FIXTURE.contains(genuine));
        let forged = " 0000000000000000000000000000000000000000000000000000000000000000  9679304 main/binary-amd64/Packages.xz";
        let tampered = FIXTURE.replace(genuine, forged);
        let error = verify(&tampered, URL, &trixie(), fixture_time()).expect_err("must not verify");
        assert!(
            matches!(error, DebianError::BadSignature { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn signatures_only_by_unknown_keys_are_refused() {
        let (message, _) = CleartextSignedMessage::from_string(FIXTURE).expect("parses");
        // The first signature is by the bookworm automatic key, which we do not ship.
        let bookworm_only = message.signatures()[0].clone();
        let text = message.signed_text().replace("\r\n", "\n");
        let resigned = CleartextSignedMessage::new_many(&text, |_| Ok(vec![bookworm_only]))
            .expect("message")
            .to_armored_string(ArmorOptions::default())
            .expect("armour");
        match verify(&resigned, URL, &trixie(), fixture_time()) {
            Err(DebianError::Untrusted { signers, .. }) => {
                assert!(signers.contains("4CB50190207B4758A3F73A796ED0E7B82643E131"));
            }
            other => panic!("expected Untrusted, got {other:?}"),
        }
    }

    #[test]
    fn expired_keys_are_not_trusted() {
        let after_expiry = SystemTime::UNIX_EPOCH + Duration::from_secs(2_100_000_000);
        assert!(matches!(
            verify(FIXTURE, URL, &trixie(), after_expiry),
            Err(DebianError::Untrusted { .. })
        ));
    }

    #[test]
    fn garbage_is_not_a_signed_message() {
        assert!(matches!(
            verify("Origin: Debian\n", URL, &trixie(), fixture_time()),
            Err(DebianError::ParseInRelease { .. })
        ));
    }

    #[test]
    fn reads_the_sha256_section_of_the_real_release() {
        let (text, _) = verify(FIXTURE, URL, &trixie(), fixture_time()).expect("verifies");
        let release = parse_release(&text, URL, "trixie").expect("parses");
        assert_eq!(release.codename, "trixie");
        assert_eq!(release.suite, "stable");
        assert!(release.acquire_by_hash);
        assert_eq!(
            release.sha256.get("main/binary-amd64/Packages.xz"),
            Some(&IndexFile {
                size: 9_679_304,
                sha256: "be3d7d96a040eda0505c1808cccc67f183bbc05dff0842c50f88e6c396557412"
                    .to_owned()
            })
        );
        assert_eq!(
            release.sha256.get("main/binary-all/Packages.xz"),
            Some(&IndexFile {
                size: 4_534_476,
                sha256: "bb4c324e01a19614b1731a55799c16919babb3f3bca0b472feffdbfb35f20526"
                    .to_owned()
            })
        );
        // Only the codename counts: `stable` names a different release every two years.
        assert!(matches!(
            parse_release(&text, URL, "stable"),
            Err(DebianError::WrongSuite { .. })
        ));
    }

    #[test]
    fn release_for_another_suite_is_refused() {
        let text = "Suite: trixie\nCodename: forky\nSHA256:\n 0000000000000000000000000000000000000000000000000000000000000000 1 main/x\n";
        assert!(matches!(
            parse_release(text, URL, "trixie"),
            Err(DebianError::WrongSuite { .. })
        ));
    }

    #[test]
    fn malformed_sha256_sections_are_refused() {
        let cases = [
            "Codename: trixie\n",
            "Codename: trixie\nSHA256:\n",
            "Codename: trixie\nSHA256:\n abc 1 main/x\n",
            "Codename: trixie\nSHA256:\n 0000000000000000000000000000000000000000000000000000000000000000 x main/x\n",
            "Codename: trixie\nSHA256:\n 0000000000000000000000000000000000000000000000000000000000000000 1\n",
            "Codename: trixie\n\nCodename: trixie\n",
        ];
        for text in cases {
            assert!(
                matches!(
                    parse_release(text, URL, "trixie"),
                    Err(DebianError::InvalidRelease { .. })
                ),
                "{text:?}"
            );
        }
    }
}
