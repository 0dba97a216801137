//! Configuration helpers. Each binary has one clap struct with `env = "…"` on every setting;
//! [`parse`] loads `.env` first so flags, environment and `.env` agree, and treats a variable
//! that is set but empty as unset.
//!
//! Why "empty means unset": `docker compose` hands a service `DISCORD_TOKEN: ${DISCORD_TOKEN:-}`
//! as an empty string, and a `.env` copied from `.env.example` has lines such as
//! `GEMINI_API_KEY=`. clap passes an empty environment value to the setting's parser like any
//! other (`""` is no number, no address, no secret), so without this every such line would stop
//! the service at start. A malformed value that is not empty is still an error naming the
//! variable.

use std::ffi::OsString;

pub use secrecy::{ExposeSecret, SecretString};

/// Loads `.env` from the working directory (only there: not from a parent folder) if present.
/// Real environment variables win. A line it cannot read (an unquoted value with spaces, say)
/// stops the program naming the variable — never showing the line, which may hold a secret:
/// dotenvy stops at the first such line, and silently running on half a configuration is
/// worse than not starting.
pub fn load_dotenv() {
    match dotenvy::from_path(".env") {
        Ok(()) => {}
        Err(err) if err.not_found() => {}
        Err(dotenvy::Error::LineParse(..)) => {
            // dotenvy's error carries the text it choked on, which may be a secret's value:
            // name the variable instead.
            let name = malformed_dotenv_variable().unwrap_or_else(|| "a variable".to_string());
            eprintln!(
                "error: cannot read .env: the line of {name} is malformed (not shown: it may \
                 hold a secret). Quote a value that contains spaces: {name}=\"a b\""
            );
            std::process::exit(2);
        }
        Err(err) => {
            eprintln!("error: cannot read .env: {err}");
            std::process::exit(2);
        }
    }
}

/// The name on the first line of `.env` that dotenvy cannot read.
fn malformed_dotenv_variable() -> Option<String> {
    let text = std::fs::read_to_string(".env").ok()?;
    let line = text
        .lines()
        .find(|line| dotenvy::from_read_iter(line.as_bytes()).any(|item| item.is_err()))?;
    let name = line.split('=').next()?.trim();
    Some(name.trim_start_matches("export ").trim().to_string())
}

/// What a binary does before anything else: `.env` loaded, every variable of `C` that is set
/// but empty (or blank) removed from the environment, then the command line parsed (exits
/// with clap's message on a bad flag or value). Returns the names it unset, for
/// [`log_unset`] once logging is up.
///
/// Call it from a synchronous `main` before the async runtime starts: it changes the process
/// environment, which must not happen while other threads may read it.
pub fn parse<C: clap::Parser>() -> (C, Vec<String>) {
    load_dotenv();
    let unset = empty_variables(&C::command(), |name| std::env::var_os(name));
    for name in &unset {
        std::env::remove_var(name);
    }
    (C::parse(), unset)
}

/// One info line naming the empty variables [`parse`] treated as unset (nothing if none).
pub fn log_unset(names: &[String]) {
    if !names.is_empty() {
        tracing::info!(variables = %names.join(", "), "empty variables treated as unset");
    }
}

/// The variables `command` reads (its arguments' `env`, subcommands included) whose value,
/// as `lookup` finds it, is present but empty or only whitespace. Sorted, without repeats.
pub fn empty_variables(
    command: &clap::Command,
    lookup: impl Fn(&str) -> Option<OsString>,
) -> Vec<String> {
    let mut names = Vec::new();
    let mut commands = vec![command];
    while let Some(command) = commands.pop() {
        commands.extend(command.get_subcommands());
        for arg in command.get_arguments() {
            let Some(name) = arg.get_env().and_then(|name| name.to_str()) else {
                continue;
            };
            let blank = lookup(name).is_some_and(|value| value.to_string_lossy().trim().is_empty());
            if blank {
                names.push(name.to_string());
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

/// Parses a secret from the command line or environment; used as a clap `value_parser` so a
/// secret is never held in a plain `String` (and never printed by `Debug`). An empty variable
/// never gets here ([`parse`] unsets it); an empty flag is refused.
pub fn parse_secret(value: &str) -> Result<SecretString, String> {
    if value.trim().is_empty() {
        return Err("must not be empty".to_string());
    }
    Ok(SecretString::from(value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Parser)]
    struct Cli {
        #[arg(long, env = "TEST_TOKEN", value_parser = parse_secret)]
        token: Option<SecretString>,
        #[arg(long, env = "TEST_PORT", default_value_t = 8080)]
        port: u16,
        #[arg(long, env = "TEST_NAME")]
        name: Option<String>,
        #[command(subcommand)]
        command: Option<Sub>,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Sub {
        Run {
            #[arg(long, env = "TEST_SUB_URL")]
            url: Option<String>,
        },
    }

    fn environment(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| OsString::from(value))
        }
    }

    #[test]
    fn empty_and_blank_variables_of_the_command_and_its_subcommands_are_found() {
        let lookup = environment(&[
            ("TEST_TOKEN", ""),
            ("TEST_PORT", "  "),
            ("TEST_NAME", "alice"),
            ("TEST_SUB_URL", ""),
            ("NOT_OURS", ""),
        ]);
        assert_eq!(
            empty_variables(&Cli::command(), lookup),
            ["TEST_PORT", "TEST_SUB_URL", "TEST_TOKEN"]
        );
    }

    #[test]
    fn unset_variables_are_not_reported() {
        assert!(empty_variables(&Cli::command(), environment(&[])).is_empty());
    }

    #[test]
    fn without_the_unset_step_clap_refuses_an_empty_secret_and_an_empty_number() {
        // What `parse` prevents: clap hands "" to the parsers.
        assert!(Cli::try_parse_from(["cli", "--token", ""]).is_err());
        assert!(Cli::try_parse_from(["cli", "--port", ""]).is_err());
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let cli = Cli::try_parse_from(["cli", "--token", "very-secret-value"]).expect("parses");
        assert!(!format!("{cli:?}").contains("very-secret-value"));
    }
}
