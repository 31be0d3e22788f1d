//! Which board this is: the kernel command line wins, then DMI, then `generic`.
//!
//! The choice is a pure function over a [`Catalog`], so the table tests below use a
//! made-up catalog and do not change when the real boards do.

use std::fmt;
use std::path::Path;

/// The boards init can choose from.
pub trait Catalog {
    type Board;
    fn by_id(&self, id: &str) -> Option<&Self::Board>;
    fn by_dmi_product_name(&self, product: &str) -> Option<&Self::Board>;
    fn generic(&self) -> &Self::Board;
    fn generic_id(&self) -> &str;
    fn known_ids(&self) -> Vec<String>;
}

/// Why a board was chosen; displayed as the `(<how>)` part of the contract's board line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    CommandLine,
    DmiProductName(String),
    Default,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::CommandLine => f.write_str("kernel command line"),
            Reason::DmiProductName(product) => write!(f, "DMI product name \"{product}\""),
            Reason::Default => f.write_str("default"),
        }
    }
}

/// `cairn.board=` named a board that does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownBoard {
    pub name: String,
    pub fallback: String,
    pub known: Vec<String>,
}

impl fmt::Display for UnknownBoard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown board \"{}\" on the kernel command line; using {} (known: {})",
            self.name,
            self.fallback,
            self.known.join(", ")
        )
    }
}

#[derive(Debug)]
pub struct Choice<'a, B> {
    pub board: &'a B,
    pub reason: Reason,
    pub warning: Option<UnknownBoard>,
}

pub fn choose_board<'a, C: Catalog>(
    catalog: &'a C,
    cmdline_board: Option<&str>,
    dmi_product: Option<&str>,
) -> Choice<'a, C::Board> {
    if let Some(name) = cmdline_board {
        match catalog.by_id(name) {
            Some(board) => {
                return Choice {
                    board,
                    reason: Reason::CommandLine,
                    warning: None,
                };
            }
            // An explicit but wrong name is a mistake to show, not a hint to guess from
            // DMI: the person asked for something specific and gets the safe default.
            None => {
                return Choice {
                    board: catalog.generic(),
                    reason: Reason::Default,
                    warning: Some(UnknownBoard {
                        name: name.to_owned(),
                        fallback: catalog.generic_id().to_owned(),
                        known: catalog.known_ids(),
                    }),
                };
            }
        }
    }
    if let Some(product) = dmi_product.map(str::trim).filter(|p| !p.is_empty())
        && let Some(board) = catalog.by_dmi_product_name(product)
    {
        return Choice {
            board,
            reason: Reason::DmiProductName(product.to_owned()),
            warning: None,
        };
    }
    Choice {
        board: catalog.generic(),
        reason: Reason::Default,
        warning: None,
    }
}

/// DMI's product name, or `None` where there is no DMI (or it is unreadable).
pub fn read_dmi_product_name(sys_root: &Path) -> Option<String> {
    std::fs::read_to_string(sys_root.join("class/dmi/id/product_name"))
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// The real boards, from the board-configs crate.
pub struct BoardConfigs;

impl Catalog for BoardConfigs {
    type Board = board_configs::Board;

    fn by_id(&self, id: &str) -> Option<&Self::Board> {
        board_configs::by_id(id)
    }

    fn by_dmi_product_name(&self, product: &str) -> Option<&Self::Board> {
        board_configs::by_dmi_product_name(product)
    }

    fn generic(&self) -> &Self::Board {
        board_configs::generic()
    }

    fn generic_id(&self) -> &str {
        &board_configs::generic().id
    }

    fn known_ids(&self) -> Vec<String> {
        board_configs::all().iter().map(|b| b.id.clone()).collect()
    }
}

/// What the rest of init needs from a board; keeps board-configs' schema out of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardSettings {
    pub id: String,
    pub console_device: String,
    pub console_baud: u32,
    /// Loaded at every boot whatever coldplug finds.
    pub modules: Vec<String>,
}

impl From<&board_configs::Board> for BoardSettings {
    fn from(board: &board_configs::Board) -> Self {
        BoardSettings {
            id: board.id.clone(),
            console_device: board.console.device.clone(),
            console_baud: board.console.baud,
            modules: board.modules_to_load(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct FakeBoard {
        id: &'static str,
        dmi: &'static [&'static str],
    }

    struct FakeCatalog(Vec<FakeBoard>);

    impl Catalog for FakeCatalog {
        type Board = FakeBoard;
        fn by_id(&self, id: &str) -> Option<&FakeBoard> {
            self.0.iter().find(|b| b.id == id)
        }
        fn by_dmi_product_name(&self, product: &str) -> Option<&FakeBoard> {
            self.0.iter().find(|b| b.dmi.contains(&product))
        }
        fn generic(&self) -> &FakeBoard {
            self.by_id("generic").expect("the fake catalog has generic")
        }
        fn generic_id(&self) -> &str {
            "generic"
        }
        fn known_ids(&self) -> Vec<String> {
            self.0.iter().map(|b| b.id.to_owned()).collect()
        }
    }

    fn catalog() -> FakeCatalog {
        FakeCatalog(vec![
            FakeBoard {
                id: "ds918plus",
                dmi: &["DS918+"],
            },
            FakeBoard {
                id: "generic",
                dmi: &[],
            },
            FakeBoard {
                id: "qemu-x86_64",
                dmi: &["Standard PC (Q35 + ICH9, 2009)"],
            },
        ])
    }

    #[test]
    fn table() {
        let catalog = catalog();
        let unknown = |name: &str| {
            Some(UnknownBoard {
                name: name.to_owned(),
                fallback: "generic".to_owned(),
                known: vec!["ds918plus".into(), "generic".into(), "qemu-x86_64".into()],
            })
        };
        let q35 = "Standard PC (Q35 + ICH9, 2009)";
        #[allow(clippy::type_complexity)] // a table: (cmdline, dmi) → (id, reason, warning)
        let cases: &[(
            Option<&str>,
            Option<&str>,
            &str,
            Reason,
            Option<UnknownBoard>,
        )] = &[
            (
                Some("ds918plus"),
                None,
                "ds918plus",
                Reason::CommandLine,
                None,
            ),
            (
                Some("ds918plus"),
                Some(q35),
                "ds918plus",
                Reason::CommandLine,
                None,
            ),
            (
                Some("generic"),
                Some(q35),
                "generic",
                Reason::CommandLine,
                None,
            ),
            (
                None,
                Some(q35),
                "qemu-x86_64",
                Reason::DmiProductName(q35.into()),
                None,
            ),
            (
                None,
                Some("  DS918+ \n"),
                "ds918plus",
                Reason::DmiProductName("DS918+".into()),
                None,
            ),
            (
                None,
                Some("To Be Filled By O.E.M."),
                "generic",
                Reason::Default,
                None,
            ),
            (None, Some(""), "generic", Reason::Default, None),
            (None, None, "generic", Reason::Default, None),
            (
                Some("ds9"),
                Some(q35),
                "generic",
                Reason::Default,
                unknown("ds9"),
            ),
            (
                Some("DS918PLUS"),
                None,
                "generic",
                Reason::Default,
                unknown("DS918PLUS"),
            ),
        ];
        for (cmdline, dmi, id, reason, warning) in cases {
            let choice = choose_board(&catalog, *cmdline, *dmi);
            assert_eq!(choice.board.id, *id, "{cmdline:?} {dmi:?}");
            assert_eq!(&choice.reason, reason, "{cmdline:?} {dmi:?}");
            assert_eq!(&choice.warning, warning, "{cmdline:?} {dmi:?}");
        }
    }

    #[test]
    fn contract_lines() {
        assert_eq!(Reason::CommandLine.to_string(), "kernel command line");
        assert_eq!(
            Reason::DmiProductName("DS918+".into()).to_string(),
            "DMI product name \"DS918+\""
        );
        assert_eq!(Reason::Default.to_string(), "default");
        let warning = choose_board(&catalog(), Some("nope"), None).warning;
        assert_eq!(
            warning.map(|w| w.to_string()).as_deref(),
            Some(
                "unknown board \"nope\" on the kernel command line; using generic \
                 (known: ds918plus, generic, qemu-x86_64)"
            )
        );
    }

    #[test]
    fn real_catalog_has_generic_and_qemu() {
        let choice = choose_board(&BoardConfigs, None, None);
        assert_eq!(choice.board.id, "generic");
        let settings = BoardSettings::from(choice.board);
        assert!(!settings.console_device.is_empty());
        assert!(settings.console_baud > 0);
    }

    #[test]
    fn dmi_reads_trimmed_fixture() {
        let dir = crate::test_support::TempDir::new("dmi");
        let id = dir.path().join("class/dmi/id");
        std::fs::create_dir_all(&id).expect("create fixture");
        std::fs::write(id.join("product_name"), "DS918+\n").expect("write fixture");
        assert_eq!(read_dmi_product_name(dir.path()).as_deref(), Some("DS918+"));
        assert_eq!(read_dmi_product_name(&dir.path().join("none")), None);
    }
}
