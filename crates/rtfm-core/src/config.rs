//! Configuration helpers. Each binary has one clap struct with `env = "…"` on every setting;
//! this module loads `.env` first so flags, environment and `.env` agree.

pub use secrecy::{ExposeSecret, SecretString};

/// Loads `.env` from the working directory if present. Real environment variables win.
pub fn load_dotenv() {
    let _ = dotenvy::dotenv();
}

/// Parses a secret from the command line or environment; used as a clap `value_parser` so a
/// secret is never held in a plain `String` (and never printed by `Debug`).
pub fn parse_secret(value: &str) -> Result<SecretString, String> {
    if value.trim().is_empty() {
        return Err("must not be empty".to_string());
    }
    Ok(SecretString::from(value.to_string()))
}
