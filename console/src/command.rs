//! What a line typed at the `cairn> ` prompt asks for.
//!
//! The console's own words (`help`, `shell`, `poweroff`, `reboot`, `logout`) come first;
//! every other line is a cairnctl command line, so `status` and `config show` work as typed,
//! and so does the older `cairnctl status`. Words are split like a POSIX shell splits them
//! (quotes and backslashes; no variables, globs or pipes): `config apply "my doc.toml"`.

use thiserror::Error;

/// The console's own commands, for `help` and for telling them from cairnctl's.
pub const HELP: &str = "\
Commands:
  status, board, config show|plan FILE|apply FILE|history|rollback N, ...
                 any cairnctl command, typed directly (`cairnctl help` lists them all);
                 `cairnctl ARGS...` works too
  shell          a root shell (asks for the password again); `exit` comes back here
  poweroff       stop services, unmount, power off
  reboot         stop services, unmount, reboot
  logout, exit   end this session
  help           this text
Ctrl-C stops the running command; at the prompt it clears the line.";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// An empty line (or only white space).
    Nothing,
    Help,
    /// A root shell, after the password is given again.
    Shell,
    Poweroff,
    Reboot,
    Logout,
    /// Run `/usr/bin/cairnctl` with these arguments.
    Cairnctl(Vec<String>),
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("Cannot split the line into words: a quote is not closed or a backslash ends it")]
    Quoting,
    #[error("`{command}` takes no arguments")]
    UnexpectedArguments { command: String },
}

/// Parses one line typed at the prompt.
pub fn parse(line: &str) -> Result<Command, ParseError> {
    let words = shell_words::split(line).map_err(|_| ParseError::Quoting)?;
    let Some((first, rest)) = words.split_first() else {
        return Ok(Command::Nothing);
    };
    let own = match first.as_str() {
        "help" | "?" => Some(Command::Help),
        // `sh` was the placeholder console's name for it; it asks for the password too.
        "shell" | "sh" => Some(Command::Shell),
        "poweroff" => Some(Command::Poweroff),
        "reboot" => Some(Command::Reboot),
        "logout" | "exit" => Some(Command::Logout),
        "cairnctl" => return Ok(Command::Cairnctl(rest.to_vec())),
        _ => None,
    };
    match own {
        Some(command) if rest.is_empty() => Ok(command),
        // `reboot now` must not be taken for a reboot nor passed to cairnctl.
        Some(_) => Err(ParseError::UnexpectedArguments {
            command: first.clone(),
        }),
        None => Ok(Command::Cairnctl(words)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cairnctl(words: &[&str]) -> Result<Command, ParseError> {
        Ok(Command::Cairnctl(
            words.iter().map(|w| (*w).to_owned()).collect(),
        ))
    }

    #[test]
    fn console_words() {
        assert_eq!(parse(""), Ok(Command::Nothing));
        assert_eq!(parse("   \t "), Ok(Command::Nothing));
        assert_eq!(parse("help"), Ok(Command::Help));
        assert_eq!(parse(" shell "), Ok(Command::Shell));
        assert_eq!(parse("sh"), Ok(Command::Shell));
        assert_eq!(parse("poweroff"), Ok(Command::Poweroff));
        assert_eq!(parse("reboot"), Ok(Command::Reboot));
        assert_eq!(parse("logout"), Ok(Command::Logout));
        assert_eq!(parse("exit"), Ok(Command::Logout));
    }

    #[test]
    fn cairnctl_commands_typed_directly_or_prefixed() {
        assert_eq!(parse("status"), cairnctl(&["status"]));
        assert_eq!(parse("config show"), cairnctl(&["config", "show"]));
        assert_eq!(parse("--json status"), cairnctl(&["--json", "status"]));
        assert_eq!(parse("cairnctl status"), cairnctl(&["status"]));
        assert_eq!(parse("cairnctl"), cairnctl(&[]));
        assert_eq!(parse("log -f"), cairnctl(&["log", "-f"]));
    }

    #[test]
    fn words_are_split_like_a_shell_splits_them() {
        assert_eq!(
            parse(r#"config apply "/tmp/my doc.toml""#),
            cairnctl(&["config", "apply", "/tmp/my doc.toml"])
        );
        assert_eq!(
            parse(r"config apply /tmp/a\ b.toml"),
            cairnctl(&["config", "apply", "/tmp/a b.toml"])
        );
        assert_eq!(
            parse("config  plan  'x'"),
            cairnctl(&["config", "plan", "x"])
        );
        assert_eq!(parse("config apply \"open"), Err(ParseError::Quoting));
    }

    #[test]
    fn console_words_take_no_arguments() {
        assert_eq!(
            parse("reboot now"),
            Err(ParseError::UnexpectedArguments {
                command: "reboot".into()
            })
        );
        assert_eq!(
            parse("shell -c id"),
            Err(ParseError::UnexpectedArguments {
                command: "shell".into()
            })
        );
    }

    #[test]
    fn a_quoted_console_word_is_still_that_word() {
        assert_eq!(parse("'reboot'"), Ok(Command::Reboot));
    }
}
