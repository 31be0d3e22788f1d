//! Debian version numbers (`[epoch:]upstream[-revision]`) and their ordering, as dpkg
//! defines it (deb-version(7), `verrevcmp` in dpkg's lib/dpkg/version.c). The resolver needs
//! it to check versioned dependencies such as `libext2fs2t64 (= 1.47.2-3+b12)`.

use std::cmp::Ordering;
use std::fmt;

/// A parsed Debian version. Ordering follows dpkg; equality is dpkg equality
/// (`1.0` equals `1.00`, `0:1.0` equals `1.0`).
#[derive(Debug, Clone)]
pub struct DebVersion {
    epoch: u64,
    upstream: String,
    revision: String,
}

impl DebVersion {
    /// Parses a version; `None` when it is not a valid Debian version.
    pub fn parse(text: &str) -> Option<DebVersion> {
        let (epoch, rest) = match text.split_once(':') {
            Some((epoch, rest)) => {
                if epoch.is_empty() || !epoch.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                (epoch.parse().ok()?, rest)
            }
            None => (0, text),
        };
        let (upstream, revision) = match rest.rsplit_once('-') {
            Some((upstream, revision)) => (upstream, revision),
            None => (rest, ""),
        };
        let upstream_ok = upstream.starts_with(|c: char| c.is_ascii_digit())
            && upstream
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".+~-:".contains(&b));
        let revision_ok = revision
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".+~".contains(&b));
        if !upstream_ok || !revision_ok || (rest.contains('-') && revision.is_empty()) {
            return None;
        }
        Some(DebVersion {
            epoch,
            upstream: upstream.to_owned(),
            revision: revision.to_owned(),
        })
    }
}

impl fmt::Display for DebVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.epoch != 0 {
            write!(f, "{}:", self.epoch)?;
        }
        f.write_str(&self.upstream)?;
        if !self.revision.is_empty() {
            write!(f, "-{}", self.revision)?;
        }
        Ok(())
    }
}

impl Ord for DebVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| compare_part(&self.upstream, &other.upstream))
            .then_with(|| compare_part(&self.revision, &other.revision))
    }
}

impl PartialOrd for DebVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for DebVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for DebVersion {}

/// dpkg's character weight for the non-digit parts: `~` sorts before everything, even
/// the end of the string; letters sort before other characters.
fn weight(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp`: alternate non-digit runs (compared by [`weight`]) and digit runs
/// (compared numerically, of any length).
fn compare_part(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    let digit = |s: &[u8], k: usize| s.get(k).is_some_and(u8::is_ascii_digit);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !digit(a, i)) || (j < b.len() && !digit(b, j)) {
            let (wa, wb) = (weight(a.get(i).copied()), weight(b.get(j).copied()));
            if wa != wb {
                return wa.cmp(&wb);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_difference = Ordering::Equal;
        while digit(a, i) && digit(b, j) {
            if first_difference == Ordering::Equal {
                first_difference = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if digit(a, i) {
            return Ordering::Greater;
        }
        if digit(b, j) {
            return Ordering::Less;
        }
        if first_difference != Ordering::Equal {
            return first_difference;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> DebVersion {
        DebVersion::parse(text).unwrap_or_else(|| panic!("{text} should parse"))
    }

    #[test]
    fn orders_like_dpkg() {
        // Pairs taken from dpkg's own test suite and from the trixie archive.
        let ascending = [
            ("1.0~rc1", "1.0"),
            ("1.0", "1.0-1"),
            ("1.0-1", "1.0+b1"),
            ("1.0-1", "1.0-1+b1"),
            ("2.38", "2.41-12"),
            ("6.12.94-1", "6.12.117-1"),
            ("1.47.2-3", "1.47.2-3+b12"),
            ("257.13-1~deb13u1", "257.13-1"),
            ("9.9", "1:0.1"),
            ("1.2a", "1.2b"),
            ("1.2z", "1.2+"),
            ("1.0~~", "1.0~"),
            ("0.9", "0.10"),
        ];
        for (low, high) in ascending {
            assert!(v(low) < v(high), "{low} < {high}");
            assert!(v(high) > v(low), "{high} > {low}");
        }
    }

    #[test]
    fn equal_versions() {
        assert_eq!(v("1.0"), v("1.00"));
        assert_eq!(v("0:1.0-1"), v("1.0-1"));
        assert_eq!(v("1:1.37.0-6+b9").to_string(), "1:1.37.0-6+b9");
        assert_eq!(v("1.0-0"), v("1.0"));
    }

    #[test]
    fn rejects_invalid_versions() {
        for bad in ["", "a1.0", "1.0-", ":1.0", "x:1.0", "1.0 beta", "1.0-a/b"] {
            assert!(DebVersion::parse(bad).is_none(), "{bad:?} should not parse");
        }
        // A hyphen inside the upstream part is allowed when there is a revision.
        assert!(DebVersion::parse("1.0-rc1-2").is_some());
    }
}
