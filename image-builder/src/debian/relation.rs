//! Package relationship fields of binary packages (`Depends`, `Pre-Depends`, `Provides`),
//! deb-control(5) syntax: `a (>= 1.0), b | c:any, d`.
//!
//! Architecture qualifiers (`:any`, `:native`) are accepted and ignored: the image has one
//! architecture, and `Architecture: all` packages serve it too. Architecture lists (`[amd64]`)
//! and build profiles (`<!nocheck>`) only occur in source packages and are refused.

use super::version::DebVersion;

/// One alternative of a dependency: a name and an optional version constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub name: String,
    pub constraint: Option<(Operator, DebVersion)>,
}

/// A version comparison in a relation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Earlier,
    EarlierOrEqual,
    Equal,
    LaterOrEqual,
    Later,
}

impl Operator {
    fn parse(text: &str) -> Option<Operator> {
        // The obsolete `<` and `>` (meaning <= and >=) are refused: dpkg deprecated them
        // decades ago and no binary package in a current suite uses them.
        match text {
            "<<" => Some(Operator::Earlier),
            "<=" => Some(Operator::EarlierOrEqual),
            "=" => Some(Operator::Equal),
            ">=" => Some(Operator::LaterOrEqual),
            ">>" => Some(Operator::Later),
            _ => None,
        }
    }

    pub fn allows(self, candidate: &DebVersion, wanted: &DebVersion) -> bool {
        match self {
            Operator::Earlier => candidate < wanted,
            Operator::EarlierOrEqual => candidate <= wanted,
            Operator::Equal => candidate == wanted,
            Operator::LaterOrEqual => candidate >= wanted,
            Operator::Later => candidate > wanted,
        }
    }
}

impl std::fmt::Display for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Operator::Earlier => "<<",
            Operator::EarlierOrEqual => "<=",
            Operator::Equal => "=",
            Operator::LaterOrEqual => ">=",
            Operator::Later => ">>",
        })
    }
}

impl Relation {
    /// Whether a package of this name at `version` satisfies the relation's constraint.
    pub fn allows(&self, version: &DebVersion) -> bool {
        match &self.constraint {
            Some((operator, wanted)) => operator.allows(version, wanted),
            None => true,
        }
    }
}

/// `Depends`-style field: groups separated by `,`, alternatives inside a group by `|`.
pub fn parse_dependencies(field: &str) -> Result<Vec<Vec<Relation>>, String> {
    field
        .split(',')
        .map(str::trim)
        .filter(|group| !group.is_empty())
        .map(|group| group.split('|').map(parse_relation).collect())
        .collect()
}

/// `Provides` field: a list without alternatives; constraints may only be `=`.
pub fn parse_provides(field: &str) -> Result<Vec<Relation>, String> {
    let relations = field
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(parse_relation)
        .collect::<Result<Vec<_>, _>>()?;
    match relations.iter().find(|relation| {
        relation
            .constraint
            .as_ref()
            .is_some_and(|(operator, _)| *operator != Operator::Equal)
    }) {
        Some(relation) => Err(format!(
            "`Provides: {}` uses an operator other than `=`",
            relation.name
        )),
        None => Ok(relations),
    }
}

fn parse_relation(text: &str) -> Result<Relation, String> {
    let text = text.trim();
    let (name_part, rest) = match text.find(|c: char| c.is_whitespace() || c == '(') {
        Some(at) => (&text[..at], text[at..].trim_start()),
        None => (text, ""),
    };
    let name = match name_part.split_once(':') {
        Some((name, _architecture)) => name,
        None => name_part,
    };
    if !is_package_name(name) {
        return Err(format!("`{text}` does not start with a package name"));
    }
    let constraint = if rest.is_empty() {
        None
    } else {
        let inner = rest
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(|| format!("`{text}`: expected `(operator version)` after the name"))?
            .trim();
        let split = inner
            .find(|c: char| c.is_ascii_alphanumeric())
            .ok_or_else(|| format!("`{text}`: the version is missing"))?;
        let operator = Operator::parse(inner[..split].trim())
            .ok_or_else(|| format!("`{text}`: unknown version operator"))?;
        let version = DebVersion::parse(inner[split..].trim())
            .ok_or_else(|| format!("`{text}`: invalid version"))?;
        Some((operator, version))
    };
    Ok(Relation {
        name: name.to_owned(),
        constraint,
    })
}

/// Debian policy §5.6.1: lower-case letters, digits, `+ - .`; at least two characters,
/// starting with an alphanumeric. Names end up in file names and URLs, so they are checked.
pub fn is_package_name(name: &str) -> bool {
    name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(text: &str) -> DebVersion {
        DebVersion::parse(text).expect("test versions are valid")
    }

    #[test]
    fn parses_groups_alternatives_and_constraints() {
        let groups = parse_dependencies(
            "libc6 (>= 2.38), initramfs-tools | linux-initramfs-tool, python3:any,\n libfoo1 (=1.0-1)",
        )
        .expect("valid field");
        assert_eq!(groups.len(), 4);
        assert_eq!(groups[0][0].name, "libc6");
        assert_eq!(
            groups[0][0].constraint,
            Some((Operator::LaterOrEqual, version("2.38")))
        );
        assert_eq!(
            groups[1]
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>(),
            ["initramfs-tools", "linux-initramfs-tool"]
        );
        assert_eq!(groups[2][0].name, "python3");
        assert_eq!(groups[2][0].constraint, None);
        assert_eq!(
            groups[3][0].constraint,
            Some((Operator::Equal, version("1.0-1")))
        );
    }

    #[test]
    fn constraints_compare_versions() {
        let relation = &parse_dependencies("libc6 (>= 2.38)").expect("valid")[0][0];
        assert!(relation.allows(&version("2.41-12")));
        assert!(!relation.allows(&version("2.36-9")));
        let earlier = &parse_dependencies("xy (<< 2)").expect("valid")[0][0];
        assert!(earlier.allows(&version("1.9")));
        assert!(!earlier.allows(&version("2")));
    }

    #[test]
    fn provides_allow_only_equal() {
        let provides =
            parse_provides("linux-image-generic, wireguard-modules (= 1.0.0)").expect("valid");
        assert_eq!(provides.len(), 2);
        assert_eq!(
            provides[1].constraint,
            Some((Operator::Equal, version("1.0.0")))
        );
        assert!(parse_provides("foo (>= 1)").is_err());
    }

    #[test]
    fn refuses_malformed_relations() {
        for bad in [
            "libc6 (>= )",
            "libc6 (~ 1)",
            "libc6 [amd64]",
            "Libc6",
            "libc6 (>= 1",
            "a | ",
        ] {
            assert!(
                parse_dependencies(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
    }
}
